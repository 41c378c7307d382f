#!/usr/bin/env bash
# ZeRO-1 (dist.zero1: true) on the CPU over MPI, in f64: with 2 ranks it trains like the unsharded
# 2-rank run (losses, gradient norms and weights within 1e-12 relative: only the order of the
# norm's additions differs), its checkpoints have the unsharded format (the same optimizer tensor
# names, values within 1e-12), and a ZeRO-1 checkpoint of 2 ranks resumes on 1 process without
# ZeRO-1 and continues like the uninterrupted run.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/dist.sh
source "$SRC/tests/cli/lib/dist.sh"
command -v mpirun >/dev/null || fail "mpirun not found (apt install openmpi-bin)"
mpi_launcher --oversubscribe

prepare_tiny data
tiny_run_yaml 2 "{type: gva, n_q_heads: 2, n_k_heads: 1}" > run.yaml
# grad_clip 0.5: the norm exceeds it, so the sharded clip (owned squared sums added over ranks)
# is exercised, not only computed.
cat >> run.yaml <<'YAML'
train: {device: cpu, dtype: f64, steps: 8, batch_size: 2, seq_len: 32, global_batch_tokens: 256, out_dir: plain, log_every: 1, seed: 7}
optim: {lr: 3.0e-3, warmup_steps: 2, decay_steps: 8, grad_clip: 0.5}
checkpoint: {every: 4, keep: 3}
eval: {every: 0, batches: 2}
dist: {bucket_mb: 0.01}
YAML

expect_fail "dist.zero1" "$GTA" train run.yaml --set dist.zero1=maybe

"${mpi[@]}" "$GTA" train run.yaml 2> plain.log
"${mpi[@]}" "$GTA" train run.yaml --set dist.zero1=true --set train.out_dir=zero1 2> zero1.log
grep -q "x 2 ranks, mpi, ZeRO-1" zero1.log || { cat zero1.log; fail "the ZeRO-1 run does not say it shards"; }
# ZeRO-1 on 2 ranks for 4 steps, then resumed on 1 process (no ZeRO-1) to 8.
"${mpi[@]}" "$GTA" train run.yaml --set dist.zero1=true --set train.out_dir=mixed --set train.steps=4 2> /dev/null
"$GTA" train run.yaml --set train.out_dir=mixed --resume 2> mixed.log
grep -q "resuming from step 4" mixed.log
# An unsharded checkpoint resumed with ZeRO-1 on 2 ranks (each rank takes its own parameters' state).
mkdir -p back/checkpoints && cp -r plain/checkpoints/step_000004 back/checkpoints/
"${mpi[@]}" "$GTA" train run.yaml --set dist.zero1=true --set train.out_dir=back --resume 2> back.log
grep -q "resuming from step 4" back.log

"$PY" - <<'PY'
import numpy as np
from gta_runs import safetensors as read_safetensors, train_records as train_rows

def safetensors(path):
    return read_safetensors(path, dtypes=("F64",))

def rel(a, b):
    return abs(a - b) / max(abs(a), 1e-300)

ref = train_rows("plain")
assert len(ref) == 8
clipped = sum(r["grad_norm"] > 0.5 for r in ref)
assert clipped > 0, [r["grad_norm"] for r in ref]
for run, first in [("zero1", 1), ("mixed", 1), ("back", 5)]:
    got = train_rows(run)
    want = [r for r in ref if r["step"] >= first]
    assert [r["step"] for r in got] == [r["step"] for r in want], (run, got)
    dl = max(rel(a["loss"], b["loss"]) for a, b in zip(want, got))
    dn = max(rel(a["grad_norm"], b["grad_norm"]) for a, b in zip(want, got))
    print(f"{run}: worst loss relative difference {dl:.2e}, gradient norm {dn:.2e} ({clipped} of 8 steps clipped)")
    assert dl < 1e-12 and dn < 1e-12, (run, dl, dn)
    for f in ["model", "optimizer"]:
        a = safetensors(f"plain/checkpoints/step_000008/{f}.safetensors")
        b = safetensors(f"{run}/checkpoints/step_000008/{f}.safetensors")
        assert a.keys() == b.keys(), (run, f, sorted(set(a) ^ set(b)))
        worst = max(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-300) for k in a)
        print(f"{run}: {f}.safetensors: {len(a)} tensors, worst relative difference {worst:.2e}")
        assert worst < 1e-12, (run, f, worst)
# The 4-step ZeRO-1 checkpoint that was resumed has the unsharded tensor names too.
assert safetensors("mixed/checkpoints/step_000004/optimizer.safetensors").keys() == \
    safetensors("plain/checkpoints/step_000004/optimizer.safetensors").keys()
PY
echo "dist_zero1: ok"
