#!/usr/bin/env bash
# An independent implementation agrees with gta's forward pass: for each of the seven attention
# types, a tiny model trained a few steps by gta (so biases and norms are no longer at their
# initial values) is evaluated by `gta eval` and by bench/torch_model.py (gta's model written
# again in PyTorch from docs/attention.md) on the same validation windows, in f32 on the CPU;
# the two mean losses must agree to 2e-5 relative. Needs a Python with torch, numpy and h5py
# (Debian's python3-torch, or the CUDA machine's PyTorch); skipped where there is none.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

python_with "torch, numpy, h5py"

prepare_tiny data
# Three layers (TINY_ATTENTION: odd sizes), an untied head for MLA.
for t in mha gqa mqa gva gha gta mla; do
  tiny_run_yaml 3 "${TINY_ATTENTION[$t]}" > "$t.yaml"
  cat >> "$t.yaml" <<YAML
train: {steps: 6, batch_size: 4, seq_len: 24, out_dir: $t, log_every: 1, seed: 3}
optim: {lr: 1.0e-2, warmup_steps: 1}
checkpoint: {every: 6, keep: 1}
eval: {every: 0, batches: 1}
YAML
  [ "$t" = mla ] && sed -i 's/^model:/model:\n  tie_embeddings: false/' "$t.yaml"
  "$GTA" train "$t.yaml" > /dev/null 2>&1 || { "$GTA" train "$t.yaml"; fail "$t: training failed"; }
  "$GTA" eval "$t" --data data/val_000000.h5 --batches 3 --batch-size 2 --seq-len 24 --json > "$t.eval.json"
  "$MOD_PY" - "$SRC" "$t" <<'PY'
import json, sys

import h5py
import numpy as np
import torch

from gta_runs import safetensors, safetensors_metadata

src, name = sys.argv[1:]
sys.path.insert(0, f"{src}/bench")
from torch_model import Decoder

ev = json.load(open(f"{name}.eval.json"))
weights = ev["checkpoint"]
cfg = json.loads(safetensors_metadata(weights)["config"])
model = Decoder(cfg).double()
state = {k: torch.from_numpy(v) for k, v in safetensors(weights).items()}
missing, unexpected = model.load_state_dict(state, strict=False)
assert not missing and not unexpected, (missing, unexpected)

# gta eval's windows: window w of a shard is tokens[w T : w T + T + 1], in order from window 0.
T, n = ev["seq_len"], ev["windows"]
tokens = np.asarray(h5py.File("data/val_000000.h5", "r")["tokens"][: n * T + 1], dtype=np.int64)
windows = torch.from_numpy(np.stack([tokens[w * T: w * T + T + 1] for w in range(n)]))
with torch.no_grad():
    loss = model(windows).item()
rel = abs(loss - ev["loss"]) / abs(ev["loss"])
print(f"{name}: gta eval {ev['loss']:.7f}, PyTorch (f64) {loss:.7f}, relative difference {rel:.1e}")
assert rel < 2e-5, f"{name}: gta's loss and the PyTorch model's differ by {rel:.2e} (limit 2e-5)"
PY
done
echo "torch_reference: ok"
