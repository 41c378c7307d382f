#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (GPU tests skip without a GPU),
# then the CPU suite again under ASan/UBSan (scripts/sanitize.sh; GTA_SKIP_SANITIZE=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure --parallel "$(nproc)"
[ "${GTA_SKIP_SANITIZE:-0}" = 1 ] || scripts/sanitize.sh
