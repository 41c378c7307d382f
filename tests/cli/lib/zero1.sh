# shellcheck shell=bash
# The ZeRO-1 equivalence check shared by the CPU (MPI) and GPU (NCCL) tests; sourced after
# common.sh and dist.sh, with `mpi` set by mpi_launcher.
#
# zero1_equivalence DEVICE DTYPE BACKEND TOL: on the tiny corpus, trains 8 steps on 2 ranks
# unsharded (plain) and with dist.zero1 (zero1), runs ZeRO-1 on 2 ranks for 4 steps and resumes
# that on 1 process without ZeRO-1 (mixed), and resumes plain's unsharded step-4 checkpoint with
# ZeRO-1 on 2 ranks (back). Every run's losses and gradient norms, and its step-8 model and
# optimizer tensors (the same names: checkpoints have the unsharded format), must equal plain's
# within TOL relative. grad_clip 0.5 is below the gradient norm, so the sharded clip (owned squared
# sums added over ranks) is exercised, not only computed.
zero1_equivalence() {
  local device=$1 dtype=$2 backend=$3 tol=$4
  prepare_tiny data
  tiny_run_yaml 2 "{type: gva, n_q_heads: 2, n_k_heads: 1}" > run.yaml
  cat >> run.yaml <<YAML
train: {device: $device, dtype: $dtype, steps: 8, batch_size: 2, seq_len: 32, global_batch_tokens: 256, out_dir: plain, log_every: 1, seed: 7}
optim: {lr: 3.0e-3, warmup_steps: 2, decay_steps: 8, grad_clip: 0.5}
checkpoint: {every: 4, keep: 3}
eval: {every: 0, batches: 2}
dist: {bucket_mb: 0.01}
YAML
  "${mpi[@]}" "$GTA" train run.yaml 2> plain.log || { cat plain.log; fail "the unsharded 2-rank run failed"; }
  "${mpi[@]}" "$GTA" train run.yaml --set dist.zero1=true --set train.out_dir=zero1 2> zero1.log ||
    { cat zero1.log; fail "the ZeRO-1 run failed"; }
  grep -q "x 2 ranks, $backend, ZeRO-1" zero1.log || { cat zero1.log; fail "the ZeRO-1 run does not say it shards over $backend"; }
  "${mpi[@]}" "$GTA" train run.yaml --set dist.zero1=true --set train.out_dir=mixed --set train.steps=4 2> /dev/null
  "$GTA" train run.yaml --set train.out_dir=mixed --resume 2> mixed.log
  grep -q "resuming from step 4" mixed.log
  mkdir -p back/checkpoints && cp -r plain/checkpoints/step_000004 back/checkpoints/
  "${mpi[@]}" "$GTA" train run.yaml --set dist.zero1=true --set train.out_dir=back --resume 2> back.log
  grep -q "resuming from step 4" back.log
  local st_dtype=F64
  [ "$dtype" = f32 ] && st_dtype=F32
  TOL=$tol ST_DTYPE=$st_dtype "$PY" - <<'PY'
import os
import numpy as np
from gta_runs import safetensors as read_safetensors, train_records as train_rows

tol = float(os.environ["TOL"])

def safetensors(path):
    return read_safetensors(path, dtypes=(os.environ["ST_DTYPE"],))

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
    assert dl < tol and dn < tol, (run, dl, dn)
    for f in ["model", "optimizer"]:
        a = safetensors(f"plain/checkpoints/step_000008/{f}.safetensors")
        b = safetensors(f"{run}/checkpoints/step_000008/{f}.safetensors")
        assert a.keys() == b.keys(), (run, f, sorted(set(a) ^ set(b)))
        worst = max(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-300) for k in a)
        print(f"{run}: {f}.safetensors: {len(a)} tensors, worst relative difference {worst:.2e}")
        assert worst < tol, (run, f, worst)
# The 4-step ZeRO-1 checkpoint that was resumed has the unsharded tensor names too.
assert safetensors("mixed/checkpoints/step_000004/optimizer.safetensors").keys() == \
    safetensors("plain/checkpoints/step_000004/optimizer.safetensors").keys()
PY
}
