#!/usr/bin/env bash
# Configures and builds gta into ./build (CUDA sources too when nvcc is found).
# Extra arguments go to cmake, e.g. scripts/build.sh -DGTA_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
else
  cmake -S . -B build "$@" >/dev/null
fi
cmake --build build --parallel "$(nproc)"
