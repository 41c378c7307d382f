#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (GPU tests skip without a GPU),
# then the CPU suite again under ASan/UBSan (scripts/sanitize.sh) and each libFuzzer target for
# 20 s from its seeds on that same build (scripts/fuzz.sh): a crash fails the run.
# GTA_SKIP_SANITIZE=1 skips both.
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
if [ "${GTA_SKIP_SANITIZE:-0}" != 1 ]; then
  scripts/sanitize.sh
  scripts/fuzz.sh --seconds 20
fi
