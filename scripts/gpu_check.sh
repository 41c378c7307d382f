#!/usr/bin/env bash
# On a CUDA machine: build, run the test suite (GPU tests included), then a short training
# benchmark of the S ablation family (GTA-S and GQA-S first; B8 T2048, random tokens, bf16 mixed
# precision): tokens/s, model TFLOP/s and MFU (FLOPs from `gta info`, peak 989 TFLOP/s = H100
# SXM dense bf16), peak GPU memory. Writes a report to ${OUT:-gpu-check}/report.md with the
# card, commit and date. MODELS="gta gqa mla mha" picks the configs (configs/models/s/NAME.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
cmake --preset gpu > "$out/configure.log"
cmake --build build-gpu --parallel "$(nproc)" > "$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
status=0
ctest --test-dir build-gpu --output-on-failure --parallel 8 > "$out/ctest.log" 2>&1 || status=$?
tail -5 "$out/ctest.log"

card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
{
  echo "# gpu_check $(date -u +%Y-%m-%d) on ${card:-unknown GPU}, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "ctest: $(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -n 1)"
  echo
  echo "| model | device, dtype | batch x seq | tokens/s | model TFLOP/s | MFU | peak GPU memory (allocated / reserved) |"
  echo "|---|---|---|---|---|---|---|"
  for m in ${MODELS:-gta gqa}; do
    j=$(build-gpu/gta bench train "configs/models/s/$m.yaml" --device cuda --dtype bf16 --batch 8 --seq-len 2048 \
        --steps 10 --warmup 3 --peak-tflops 989 --json 2> "$out/bench_$m.err") ||
      { echo "| $m-S | bench failed: $(tail -n 1 "$out/bench_$m.err") |"; continue; }
    echo "$j" > "$out/bench_$m.json"
    /usr/bin/env python3 -c "
import json, sys
r = json.loads(sys.argv[1])
print(f\"| {sys.argv[2]}-S | {r['device']}, bf16 | 8 x 2048 | {r['tokens_per_s']:.0f} | {r['model_tflops']:.1f} | \"
      f\"{100 * r.get('mfu', 0):.1f}% | {r.get('peak_allocated_gb', 0):.1f} / {r.get('peak_reserved_gb', 0):.1f} GB |\")" "$j" "$m"
  done
} | tee "$out/report.md"
exit $status
