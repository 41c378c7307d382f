#!/usr/bin/env bash
# Bad inputs to gta train / eval: a clear message naming the file or key, exit status 1 (never a
# crash), and existing checkpoints untouched.
set -euo pipefail
: "${GTA:?}" "${SRC:?}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

"$GTA" prepare --input "$SRC/tests/data/tiny.txt" --out data --vocab-size 512 --quiet
"$GTA" prepare --input "$SRC/tests/data/tiny.txt" --out other --vocab-size 480 --quiet

cat > run.yaml <<'YAML'
model:
  vocab_size: 0
  d_model: 32
  n_layers: 1
  d_ff: 64
  n_heads: 4
  attention: {type: gqa, n_kv_heads: 2}
data: {train: data/train_000000.h5, val: data/val_000000.h5, tokenizer: data/tokenizer.model}
train: {steps: 4, batch_size: 2, seq_len: 16, out_dir: run, log_every: 1}
checkpoint: {every: 2, keep: 5}
eval: {every: 0, batches: 1}
YAML

# expect_fail DESCRIPTION PATTERN -- command...: a non-zero, non-crash exit and PATTERN in the output.
expect_fail() {
  local what=$1 pattern=$2; shift 3
  set +e
  "$@" > out.txt 2> err.txt
  local rc=$?
  set -e
  # 1 for gta's own errors, CLI11's codes (100+) for command-line errors; >= 128 is a crash.
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
    echo "FAIL ($what): exit status $rc"; cat err.txt; exit 1
  fi
  if ! grep -qiE -- "$pattern" err.txt out.txt; then
    echo "FAIL ($what): message does not match '$pattern':"; cat err.txt out.txt; exit 1
  fi
  echo "ok: $what -> $(head -c 200 err.txt | tr '\n' ' ')"
}

"$GTA" train run.yaml 2> /dev/null
cp -r run/checkpoints saved

expect_fail "missing shard" "nope.h5" -- "$GTA" train run.yaml --set data.train=nope.h5
head -c 3000 /dev/urandom > corrupt.h5
expect_fail "corrupt shard" "corrupt.h5" -- "$GTA" train run.yaml --set data.train=corrupt.h5
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
with h5py.File("float.h5", "w") as f:
    f.create_dataset("tokens", data=np.zeros(1000, dtype=np.float32))
PY
expect_fail "wrong shard dtype" "float.h5" -- "$GTA" train run.yaml --set data.train=float.h5
expect_fail "unknown YAML key" "stpes" -- "$GTA" train run.yaml --set train.stpes=3
printf 'train:\n  steps: abc\n' > badtype.yaml
expect_fail "wrong YAML type" "train.steps" -- "$GTA" train badtype.yaml
expect_fail "bad value" "optim.schedule" -- "$GTA" train run.yaml --set optim.schedule=sometimes
printf 'model:\n  d_model: [1\n' > broken.yaml
expect_fail "malformed YAML" "broken.yaml" -- "$GTA" train broken.yaml
expect_fail "model vocab smaller than tokenizer's" "vocab" -- "$GTA" train run.yaml --set model.vocab_size=100
expect_fail "tokenizer of other shards" "tokenizer" -- "$GTA" train run.yaml --set data.tokenizer=other/tokenizer.model
expect_fail "unknown flag" "bogus" -- "$GTA" train run.yaml --bogus
expect_fail "missing config" "missing.yaml" -- "$GTA" train missing.yaml

expect_fail "resume another model" "different model" -- "$GTA" train run.yaml --set model.d_ff=32 --resume
cmp saved/step_000004/model.safetensors run/checkpoints/step_000004/model.safetensors

# A truncated checkpoint: --resume names the file; the older checkpoints are untouched.
truncate -s 100 run/checkpoints/step_000004/model.safetensors
expect_fail "truncated checkpoint" "model.safetensors" -- "$GTA" train run.yaml --resume
cmp saved/step_000002/model.safetensors run/checkpoints/step_000002/model.safetensors
expect_fail "eval of truncated checkpoint" "model.safetensors" -- "$GTA" eval run/checkpoints/step_000004 --data data/val_000000.h5
echo "train_errors: ok"
