#!/usr/bin/env bash
# End to end through the CLI: prepare -> train -> eval -> generate on a tiny corpus; the loss
# falls; 2N steps == N steps + --resume + N steps, bit for bit (weights and logged losses).
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

prepare_tiny data
tiny_run_yaml 2 "{type: gta, n_q_heads: 2, n_k_heads: 1, n_v_heads: 1, d_qk: 8, d_latent: 8, qkv_bias: true}" > run.yaml
cat >> run.yaml <<'YAML'
train: {steps: 16, batch_size: 4, seq_len: 32, global_batch_tokens: 256, out_dir: full, log_every: 1, seed: 7}
optim: {lr: 3.0e-3, warmup_steps: 4}
checkpoint: {every: 8, keep: 2}
eval: {every: 8, batches: 2}
YAML

"$GTA" train run.yaml --set optim.decay_steps=16 2> full.log
# The loss falls: last logged training loss well below the first.
"$PY" - full/metrics.jsonl <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in recs if r["event"] == "train"]
first, last = rows[0]["loss"], rows[-1]["loss"]
assert last < first - 0.5, (first, last)
evals = [r for r in recs if r["event"] == "eval"]
assert len(evals) == 2 and evals[-1]["val_bpb"] > 0, evals
PY

# N steps of the same 16-step schedule, then --resume to 16, in another out_dir.
"$GTA" train run.yaml --set train.out_dir=split --set train.steps=8 --set optim.decay_steps=16 2> /dev/null
"$GTA" train run.yaml --set train.out_dir=split --set optim.decay_steps=16 --resume 2> split.log
grep -q "resuming from step 8" split.log
cmp full/checkpoints/step_000016/model.safetensors split/checkpoints/step_000016/model.safetensors
cmp full/checkpoints/step_000016/optimizer.safetensors split/checkpoints/step_000016/optimizer.safetensors
"$PY" - <<'PY'
from gta_runs import losses
a, b = losses("full"), losses("split")
assert a == b, (a, b)
PY

# keep: 2 -> only the two newest checkpoints remain.
[ "$(ls full/checkpoints | wc -l)" -eq 2 ]

# eval and generate on the result.
"$GTA" eval full --data data/val_000000.h5 --seq-len 32 --batch-size 4 --json > eval.json
"$PY" -c "import json; r = json.load(open('eval.json')); assert r['perplexity'] > 1 and r['bits_per_byte'] > 0, r"
"$GTA" generate full --prompt "The " --max-new-tokens 20 --seed 3 > gen1.txt 2>/dev/null
"$GTA" generate full --prompt "The " --max-new-tokens 20 --seed 3 > gen2.txt 2>/dev/null
cmp gen1.txt gen2.txt
[ "$(wc -c < gen1.txt)" -gt 5 ]
# SIGTERM: the run saves a checkpoint after its current step and exits 143; --resume goes on (and
# exits 130 on SIGINT).
"$GTA" train run.yaml --set train.out_dir=sig --set train.steps=100000 --set checkpoint.every=4 2> sig.log &
pid=$!
for _ in $(seq 600); do [ -d sig/checkpoints/step_000004 ] && break; sleep 0.1; done
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" -eq 143 ] || fail "a run stopped by SIGTERM exited $rc, expected 143 (128 + 15)"
grep -q "resume with --resume" sig.log
n=$(ls sig/checkpoints | wc -l); [ "$n" -ge 1 ]
"$GTA" train run.yaml --set train.out_dir=sig --set train.steps=100000 --resume 2> sig2.log &
pid=$!
for _ in $(seq 600); do grep -q "resuming from step" sig2.log && break; sleep 0.1; done
kill -INT $pid
rc=0; wait $pid || rc=$?
[ "$rc" -eq 130 ] || fail "a run stopped by SIGINT exited $rc, expected 130 (128 + 2)"
echo "train_e2e: ok"
