#!/usr/bin/env bash
# Installs what gta needs to build and test on Debian 12 / Ubuntu 24.04, skipping what is
# already there. Works as root or through sudo. Safe to run again.
set -euo pipefail

# libopenblas-dev brings LAPACK too (gta analyze's eigenvalues); python3-matplotlib draws the plots.
packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev libhdf5-dev libssl-dev libyaml-cpp-dev libsentencepiece-dev
  libopenmpi-dev openmpi-bin libgtest-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libprotobuf-dev protobuf-compiler libboost-dev
  python3 python3-numpy python3-h5py python3-matplotlib python3-yaml python3-html2text
  # The asan preset (sanitize.sh, fuzz.sh): clang, its sanitizer and libFuzzer runtimes, its OpenMP.
  clang libclang-rt-dev libomp-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "setup: missing packages (${missing[*]}) and neither root nor sudo is available" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
