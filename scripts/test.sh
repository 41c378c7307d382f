#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (GPU tests skip without a GPU),
# then the CPU suite again under ASan/UBSan (scripts/sanitize.sh; GTA_SKIP_SANITIZE=1 skips it).
# --ci (what .ci/run passes) builds with the ci preset instead: build-ci/, warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = --ci ]; then
  cmake --preset ci > /dev/null
  cmake --build --preset ci --parallel "$(nproc)"
  ctest --preset ci --parallel "$(nproc)"
else
  scripts/build.sh "$@"
  ctest --test-dir build --output-on-failure --parallel "$(nproc)"
fi
[ "${GTA_SKIP_SANITIZE:-0}" = 1 ] || scripts/sanitize.sh
