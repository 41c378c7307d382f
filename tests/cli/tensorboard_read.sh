#!/usr/bin/env bash
# TensorBoard's own reader (the `tensorboard` Python package, on the CUDA machine; skipped where it
# is not installed) opens a short run's event files, checks every record's CRC, and finds the same
# values as metrics.jsonl, also after a crash past the last checkpoint and a --resume.
# (On every machine, tests/test_tensorboard.cpp reads them with gta's own protobuf messages.)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

python_with "tensorboard"

prepare_tiny data
tiny_run_yaml 1 "{type: gta, n_q_heads: 2, n_k_heads: 1, n_v_heads: 1, d_qk: 8, d_latent: 8}" > run.yaml
cat >> run.yaml <<'YAML'
train: {steps: 10, batch_size: 2, seq_len: 32, out_dir: run, log_every: 1, seed: 5}
optim: {lr: 3.0e-3, warmup_steps: 2, decay_steps: 10}
checkpoint: {every: 4, keep: 0}
eval: {every: 4, batches: 2}
logging: {peak_tflops: 989}
YAML
# To step 6, a crash that loses step 6's checkpoint, then --resume from step 4 to 10.
"$GTA" train run.yaml --set train.steps=6 2> /dev/null
rm -r run/checkpoints/step_000006
"$GTA" train run.yaml --resume 2> resume.log
grep -q "resuming from step 4" resume.log || { cat resume.log; fail "did not resume from step 4"; }

"$MOD_PY" - <<'PY'
import glob, json, struct
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from gta_runs import train_records

files = glob.glob("run/tb/*tfevents*")
assert len(files) == 1, files
# The raw loader reads every record through TensorBoard's TFRecord reader, which checks the CRCs.
events = list(event_file_loader.LegacyEventFileLoader(files[0]).Load())
assert events[0].file_version == "brain.Event:2", events[0]
steps = [e.step for e in events[1:]]
assert steps == sorted(steps), steps

acc = EventAccumulator("run/tb", size_guidance={"scalars": 0})
acc.Reload()
tags = {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm", "tokens_per_s": "train/tokens_per_s",
        "mfu": "train/mfu", "peak_mem_gb": "train/peak_mem_gb",
        "val_loss": "val/loss", "val_ppl": "val/perplexity", "val_bpb": "val/bits_per_byte"}
want = {}  # tag -> [(step, value rounded to float32, as TensorBoard stores it)]
for r in map(json.loads, open("run/metrics.jsonl")):
    for key, tag in tags.items():
        if r.get(key) is not None:
            want.setdefault(tag, []).append((r["step"], struct.unpack("f", struct.pack("f", r[key]))[0]))
assert set(acc.Tags()["scalars"]) == set(want), (acc.Tags()["scalars"], sorted(want))
for tag, rows in want.items():
    got = [(s.step, s.value) for s in acc.Scalars(tag)]
    assert got == rows, (tag, got, rows)
assert [s for s, _ in want["train/loss"]] == list(range(1, 11)), want["train/loss"]
assert len(train_records("run")) == 10
print(f"tensorboard reads {len(want)} scalar tags, {sum(map(len, want.values()))} values, equal to metrics.jsonl")
PY
echo "tensorboard_read: ok"
