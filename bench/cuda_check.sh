#!/usr/bin/env bash
# On the GPU machine (repository root): build, run the CUDA op tests with the CPU op tests they
# lean on, then time gta's bf16 linear against PyTorch. Logs go to $OUT (or ./out).
set -u -o pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,memory.used --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
t0=$(date +%s)
if ! { cmake --preset gpu > "$OUT/cmake.log" 2>&1 &&
       ninja -C build-gpu gta_tests > "$OUT/build.log" 2>&1; }; then
  tail -c 6000 "$OUT/cmake.log"; grep -E "error|FAILED" -A5 "$OUT/build.log" | head -80; exit 1
fi
echo "build: $(( $(date +%s) - t0 )) s"
./build-gpu/gta_tests --gtest_filter="${GTA_FILTER:-Cuda*:GradCheck*:Forward*}" > "$OUT/tests.log" 2>&1
rc=$?
grep -E "^\[  FAILED|^\[  PASSED|^\[  SKIPPED|Failure|Expected|Which is|seed|normwise error|actual|^\[       OK" "$OUT/tests.log" | grep -v "^\[       OK" | head -150
grep -E "^\[       OK" "$OUT/tests.log" | sed 's/^\[       OK \] //' | tr '\n' ' ' | head -c 4000; echo
echo "tests rc=$rc"
if [ "${GTA_SKIP_BENCH:-0}" != 1 ]; then
  GTA_BENCH=1 ./build-gpu/gta_tests --gtest_filter='CudaBench*' > "$OUT/bench_gta.log" 2>&1
  grep GTA_BENCH "$OUT/bench_gta.log" || tail -20 "$OUT/bench_gta.log"
  PYTHONUNBUFFERED=1 python3 bench/gemm_torch.py 8192 > "$OUT/bench_torch.log" 2>&1
  grep TORCH_BENCH "$OUT/bench_torch.log" || tail -20 "$OUT/bench_torch.log"
  GTA_BENCH=1 ./build-gpu/gta_tests --gtest_filter='CudaBench*' 2>&1 | grep GTA_BENCH | tee -a "$OUT/bench_gta.log"
fi
exit $rc
