#!/usr/bin/env bash
# Builds the CPU-only suite with AddressSanitizer + UndefinedBehaviorSanitizer (the asan preset,
# into ./build-asan) and runs all of it: any memory error, undefined behaviour or leak in gta's
# code fails a test. Open MPI's own leaks are suppressed by tests/sanitizers/lsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
cmake --preset asan > /dev/null
cmake --build --preset asan --parallel "$(nproc)"
ctest --preset asan --parallel "$(nproc)"
echo "sanitize: built and ran the CPU suite under ASan/UBSan in $((SECONDS - start)) s"
