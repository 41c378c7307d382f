#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (GPU tests skip without a GPU),
# then the CPU suite again under ASan/UBSan (scripts/sanitize.sh) and a short run of each fuzz
# target (scripts/fuzz.sh; GTA_SKIP_SANITIZE=1 skips both).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure --parallel "$(nproc)"
if [ "${GTA_SKIP_SANITIZE:-0}" != 1 ]; then
  scripts/sanitize.sh
  scripts/fuzz.sh --seconds 10
fi
