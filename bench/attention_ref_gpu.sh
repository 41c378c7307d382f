#!/usr/bin/env bash
# One device call for the model-op kernels: build, run the CudaModel* tests, time the reference
# attention (CudaModelBench) and PyTorch SDPA on the same card. Logs under $OUT (or ./gpu-out).
set -o pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
git log -1 --format='%H %cd' 2>/dev/null | tee "$OUT/commit.txt"  # the device copy may have no history
date -u | tee -a "$OUT/commit.txt"
build() {
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/build.log" 2>&1 &&
    ninja -C build-gpu gta_tests >>"$OUT/build.log" 2>&1
}
build || { grep -E "error|FAILED" "$OUT/build.log" | head -20; exit 1; }
echo "build ok"
./build-gpu/gta_tests --gtest_filter='CudaModel*' 2>&1 | tee "$OUT/tests.log" | grep -vE '^\[ (RUN|      OK) ' | tail -80
./build-gpu/gta_tests --gtest_also_run_disabled_tests --gtest_filter='CudaModelBench.*' 2>&1 | tee "$OUT/bench.log" | grep BENCH
PYTHONUNBUFFERED=1 python3 bench/attention_sdpa.py 2>&1 | tee "$OUT/sdpa.log"
