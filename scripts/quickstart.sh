#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a trained model: installs what is missing, builds,
# trains the quickstart GTA model on tinyshakespeare (CPU is fine), evaluates it on the
# held-out speeches, prints samples and draws the loss curves. About 10-15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== build"
if [ ! -f build/CMakeCache.txt ]; then
  generator=(); command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  # Without a GPU the CUDA sources are not needed to train: skip them for a faster first build.
  cuda=(); nvidia-smi -L >/dev/null 2>&1 || cuda=(-DGTA_CUDA=OFF)
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${cuda[@]}" > /dev/null
fi
cmake --build build --target gta --parallel "$(nproc)"
gta=build/gta

echo "== the model"
"$gta" info configs/quickstart.yaml --seq-len 128 --vocab-size 1024

echo "== train (configs/quickstart.yaml -> runs/quickstart)"
# Continue an earlier run; a run directory without a checkpoint holds nothing worth keeping.
resume=()
if [ -d runs/quickstart/checkpoints ]; then resume=(--resume); elif [ -d runs/quickstart ]; then resume=(--overwrite); fi
"$gta" train configs/quickstart.yaml "${resume[@]}" "$@"

echo "== evaluate on the held-out speeches"
"$gta" eval runs/quickstart --data data/tinyshakespeare/val_000000.h5 --seq-len 128

echo "== samples"
for prompt in "ROMEO:" "First Citizen:"; do
  "$gta" generate runs/quickstart --prompt "$prompt" --max-new-tokens 150 --temperature 0.8 --top-k 50 --seed 1 --across-documents
  echo "----"
done

echo "== loss curves"
"$gta" plot runs/quickstart --out runs/quickstart/loss_curves.png
echo "The loss curves are in runs/quickstart/loss_curves.png; to watch a run live: tensorboard --logdir runs/"
