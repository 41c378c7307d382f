#!/usr/bin/env bash
# One device call for the flash attention kernels: build (Ninja, sm_90, build-gpu), run the flash
# tests and the existing CudaModelOps attention tests (the flash tests again under the other
# tilings, see the knobs in kernels/flash/knobs.h), time the tilings against each other
# (gta bench attention, B8, $SWEEP_T; SWEEP=0 skips it), then gta vs PyTorch SDPA (bench/attention_compare.py, T in
# $COMPARE_T). Logs under $OUT (or ./gpu-out); the table in $OUT/compare.md, the sweep in $OUT/sweep.txt.
set -o pipefail
OUT=${OUT:-gpu-out}
COMPARE_T=${COMPARE_T:-"1024 2048 4096 8192"}
SWEEP_T=${SWEEP_T:-"2048 8192"}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
git log -1 --format='%H %cd' 2>/dev/null | tee "$OUT/commit.txt"  # the device copy may have no history
date -u | tee -a "$OUT/commit.txt"
build() {
  cmake --preset gpu >"$OUT/build.log" 2>&1 &&
    ninja -C build-gpu -k 0 gta gta_tests >>"$OUT/build.log" 2>&1
}
SECONDS=0
build || { grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "build ok (${SECONDS}s)"
timeout 150 ./build-gpu/gta_tests --gtest_filter='CudaFlashAttention.*:CudaModelOps.Attention*' 2>&1 | tee "$OUT/tests.log" |
  grep -vE '^\[ (RUN|      OK) ' | grep -vE '^flash vs' | tail -40
# the other tilings (64-row everywhere = 9c04cc5's; mixed; forced head splits) must pass too
for knobs in "GTA_FLASH_FWD_MR=1 GTA_FLASH_DQ_MR=1 GTA_FLASH_DKV_MR=1 GTA_FLASH_SPLIT=1" \
  "GTA_FLASH_DQ_MR=1 GTA_FLASH_SPLIT=2"; do
  echo "tests with $knobs:" | tee -a "$OUT/tests.log"
  env $knobs timeout 60 ./build-gpu/gta_tests --gtest_filter='CudaFlashAttention.*' 2>&1 | tee -a "$OUT/tests.log" |
    grep -E '^\[  (PASSED|FAILED) |Failure|error' | head -12
done
echo "tests done (${SECONDS}s)"
if [ "${SWEEP:-1}" = 1 ]; then
  for knobs in "GTA_FLASH_FWD_MR=1 GTA_FLASH_DQ_MR=1 GTA_FLASH_DKV_MR=1 GTA_FLASH_SPLIT=1" "GTA_FLASH_DEFAULTS=1" \
    "GTA_FLASH_DQ_MR=1" "GTA_FLASH_SPLIT=1"; do
    echo "== $knobs" | tee -a "$OUT/sweep.txt"
    env $knobs timeout 60 ./build-gpu/gta bench attention --shape "MHA 12x64" --shape GQA-S --shape GTA-S \
      --seq-len $SWEEP_T 2>&1 | sed -E 's/attention (.*) \(flash\) bf16 B8 /\1 /' | tee -a "$OUT/sweep.txt"
  done
  echo "sweep done (${SECONDS}s)"
fi
PYTHONUNBUFFERED=1 timeout 240 python3 bench/attention_compare.py ./build-gpu/gta --seq-len $COMPARE_T "$@" \
  >"$OUT/compare.md" 2>"$OUT/compare.err"
echo "compare rc=$? (${SECONDS}s)"
cat "$OUT/compare.md"
tail -5 "$OUT/compare.err"
