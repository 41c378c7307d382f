#!/usr/bin/env bash
# One device call for the flash attention kernels: build (Ninja, sm_90, build-gpu), run the flash
# tests and the existing CudaModelOps attention tests, then gta vs PyTorch SDPA
# (bench/attention_compare.py). Logs under $OUT (or ./gpu-out); the table in $OUT/compare.md.
set -o pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
git log -1 --format='%H %cd' 2>/dev/null | tee "$OUT/commit.txt"  # the device copy may have no history
date -u | tee -a "$OUT/commit.txt"
build() {
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/build.log" 2>&1 &&
    ninja -C build-gpu -k 0 gta gta_tests >>"$OUT/build.log" 2>&1
}
SECONDS=0
build || { grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "build ok (${SECONDS}s)"
timeout 150 ./build-gpu/gta_tests --gtest_filter='CudaFlashAttention.*:CudaModelOps.Attention*' 2>&1 | tee "$OUT/tests.log" |
  grep -vE '^\[ (RUN|      OK) ' | tail -70
echo "tests done (${SECONDS}s)"
PYTHONUNBUFFERED=1 timeout 240 python3 bench/attention_compare.py ./build-gpu/gta "$@" >"$OUT/compare.md" 2>"$OUT/compare.err"
echo "compare rc=$? (${SECONDS}s)"
cat "$OUT/compare.md"
tail -5 "$OUT/compare.err"
