#!/usr/bin/env bash
# Data parallelism on the CPU over MPI: `mpirun -np 2 gta train` equals one process with the same
# global batch (losses and weights within 1e-6 relative), and a 2-rank checkpoint resumes on 1 rank.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/dist.sh
source "$SRC/tests/cli/lib/dist.sh"
command -v mpirun >/dev/null || fail "mpirun not found (apt install openmpi-bin)"
mpi_launcher --oversubscribe

prepare_tiny data
# No q/k biases here: the key bias gets a gradient near zero (attention is nearly invariant to
# it), which Adam normalises into float-rounding noise that differs with summation order.
tiny_run_yaml 2 "{type: gva, n_q_heads: 2, n_k_heads: 1}" > run.yaml
cat >> run.yaml <<'YAML'
train: {device: cpu, steps: 8, batch_size: 2, seq_len: 32, global_batch_tokens: 256, out_dir: one, log_every: 1, seed: 7}
optim: {lr: 3.0e-3, warmup_steps: 2, decay_steps: 8}
checkpoint: {every: 4, keep: 3}
eval: {every: 0, batches: 2}
dist: {bucket_mb: 0.01}
YAML

# In f64, so that only communication can make the runs differ (f32 rounding noise is amplified by
# Adam where gradients nearly cancel); one f32 pair checks the losses too.
f64=(--set train.dtype=f64)
# One process accumulating 4 micro-batches of 2 sequences; 2 ranks accumulating 2 each.
"$GTA" train run.yaml "${f64[@]}" 2> one.log
"${mpi[@]}" "$GTA" train run.yaml "${f64[@]}" --set train.out_dir=two 2> two.log
grep -q "x 2 ranks, mpi" two.log
# 2 ranks for 4 steps, then resume on 1 process to 8.
"${mpi[@]}" "$GTA" train run.yaml "${f64[@]}" --set train.out_dir=mixed --set train.steps=4 2> /dev/null
"$GTA" train run.yaml "${f64[@]}" --set train.out_dir=mixed --resume 2> mixed.log
grep -q "resuming from step 4" mixed.log
"$GTA" train run.yaml --set train.out_dir=one32 2> /dev/null
"${mpi[@]}" "$GTA" train run.yaml --set train.out_dir=two32 2> /dev/null

"$PY" - <<'PY'
import numpy as np
from gta_runs import losses, safetensors

def loss_list(run):
    return list(losses(run).values())

la, lb = loss_list("one32"), loss_list("two32")
d = max(abs(a - b) / abs(a) for a, b in zip(la, lb))
print(f"f32: worst loss relative difference {d:.2e}")
assert len(la) == len(lb) == 8 and d < 1e-6, (la, lb)

ref = safetensors("one/checkpoints/step_000008/model.safetensors")
for run in ["two", "mixed"]:
    got = safetensors(run + "/checkpoints/step_000008/model.safetensors")
    assert got.keys() == ref.keys()
    worst = max(np.abs(got[k] - ref[k]).max() / max(np.abs(ref[k]).max(), 1e-12) for k in ref)
    print(f"{run}: worst weight relative difference {worst:.2e}")
    assert worst < 1e-6, (run, worst)
    la, lb = loss_list("one"), loss_list(run)
    assert len(la) == len(lb) == 8, (la, lb)
    d = max(abs(a - b) / abs(a) for a, b in zip(la, lb))
    print(f"{run}: worst loss relative difference {d:.2e}")
    assert d < 1e-6, (run, la, lb)
PY
echo "dist_mpi: ok"

# `gta bench train` under mpirun (CPU: MPI): every rank trains on its own tokens with gradients
# averaged each step; rank 0 alone prints the global rate, timed by the slowest rank.
"${mpi[@]}" "$GTA" bench train run.yaml --vocab-size 512 --batch 2 --seq-len 16 --steps 2 --warmup 1 --json \
  > bench.json 2> bench.err || { cat bench.err; fail "mpirun gta bench train failed"; }
# --zero1 shards the optimizer: the same weights every step, so the same last loss (up to the
# order of the clip norm's additions; gradients of other ranks' parameters left uncleared between
# steps made it differ by 2.8e-6).
"${mpi[@]}" "$GTA" bench train run.yaml --vocab-size 512 --batch 2 --seq-len 16 --steps 2 --warmup 1 --json \
  --zero1 > bench_zero1.json 2> bench.err || { cat bench.err; fail "mpirun gta bench train --zero1 failed"; }
expect_fail "excludes" "$GTA" bench train run.yaml --zero1 --no-grad-sync
"$PY" - <<'PY'
import json
def result(path):
    lines = [l for l in open(path) if l.strip()]
    assert len(lines) == 1, lines  # rank 0 only
    return json.loads(lines[0])
r, z = result("bench.json"), result("bench_zero1.json")
assert r["world_size"] == 2 and r["communicator"] == "mpi" and r["device"] == "cpu", r
assert r["tokens_per_s"] > 0 and "peak_allocated_gb" not in r, r
assert not r["zero1"] and z["zero1"], (r, z)
d = abs(z["last_loss"] - r["last_loss"]) / r["last_loss"]
print(f"bench train, 2 ranks: {r['tokens_per_s']:.0f} tokens/s; --zero1: last loss differs by {d:.1e} relative")
assert d < 1e-7, (r["last_loss"], z["last_loss"])
PY
echo "dist_mpi bench: ok"

# `gta bench allreduce`: checks each sum (rank+1 summed over ranks) before timing it; one JSON
# line per size from rank 0. Outside mpirun it is an error, not a meaningless number.
"${mpi[@]}" "$GTA" bench allreduce --device cpu --sizes-mb 0.01,0.5 --iters 3 --warmup 1 --json \
  > allreduce.json 2> allreduce.err || { cat allreduce.err; fail "mpirun gta bench allreduce failed"; }
"$PY" - <<'PY'
import json
rows = [json.loads(l) for l in open("allreduce.json") if l.strip()]
assert [r["mb"] for r in rows] == [0.01, 0.5], rows
assert all(r["world_size"] == 2 and r["communicator"] == "mpi" and r["dtype"] == "f32" for r in rows), rows
assert all(r["ms"] > 0 and r["busbw_gbs"] == r["algbw_gbs"] > 0 for r in rows), rows  # 2 ranks: busbw = algbw
PY
expect_fail "mpirun -np N" "$GTA" bench allreduce --device cpu
echo "dist_mpi allreduce: ok"

# Rank 0's own work (here an evaluation of several seconds, after each of two steps) is waited for
# within dist.rank0_timeout_s, not dist.timeout_s: a healthy job with a short collective timeout
# finishes; a rank-0 budget too short ends the job naming what was waited for.
cat > slow_eval.yaml <<'YAML'
model: {vocab_size: 0, d_model: 256, n_layers: 2, d_ff: 512, n_heads: 4, attention: {type: gqa, n_kv_heads: 2}}
data: {train: data/train_000000.h5, val: data/train_000000.h5, tokenizer: data/tokenizer.model}
train: {device: cpu, steps: 2, batch_size: 2, seq_len: 64, out_dir: slow, log_every: 1}
eval: {every: 1, batches: 1000}
dist: {timeout_s: 1.5}
YAML
"${mpi[@]}" "$GTA" train slow_eval.yaml > /dev/null 2> slow.log || fail "a slow rank-0 evaluation killed a healthy job: $(tail -5 slow.log)"
expect_fail "waiting for rank 0's evaluation after step 1 did not complete within 0.2 s" \
  "${mpi[@]}" "$GTA" train slow_eval.yaml --set train.out_dir=slow2 --set dist.rank0_timeout_s=0.2
echo "dist_mpi rank-0 work: ok"

# Faults: a stalled rank (SIGSTOP) makes the other abort the job within dist.timeout_s; a crashed
# rank (SIGKILL) ends the job. Never a silent hang.
faulty=("${mpi[@]}" "$GTA" train run.yaml --set train.steps=1000000 --set checkpoint.every=2 --set dist.timeout_s=3)
inject_fault STOP stalled "${faulty[@]}" --set train.out_dir=stalled
grep -q "did not complete within 3 s" stalled.log
inject_fault KILL crashed "${faulty[@]}" --set train.out_dir=crashed
echo "dist_mpi faults: ok"
