#!/usr/bin/env bash
# Builds the CPU-only suite with AddressSanitizer + UndefinedBehaviorSanitizer (the asan preset:
# clang, into ./build-asan) and runs all of it: any memory error, undefined behaviour or leak in
# gta's code fails a test. Open MPI's own leaks are suppressed by tests/sanitizers/lsan.supp.
# The same build carries libFuzzer's coverage and the fuzz targets, so scripts/fuzz.sh after it
# compiles nothing more (scripts/test.sh runs both: one sanitizer build, not two).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
# A build-asan/ configured before the preset moved from gcc to clang cannot be reconfigured in
# place (CMake drops the cache and the package searches then fail): configure that one afresh.
fresh=()
if [ -f build-asan/CMakeCache.txt ] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++' build-asan/CMakeCache.txt; then
  echo "sanitize.sh: build-asan/ was configured with another compiler; configuring it afresh with clang"
  fresh=(--fresh)
fi
cmake --preset asan "${fresh[@]}" > /dev/null
cmake --build --preset asan --parallel "$(nproc)"
ctest --preset asan --parallel "$(nproc)"
echo "sanitize: built and ran the CPU suite under ASan/UBSan in $((SECONDS - start)) s"
