#!/usr/bin/env bash
# Bad inputs to gta train / eval: a clear message naming the file or key, exit status 1 (never a
# crash), and existing checkpoints untouched.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

prepare_tiny data
prepare_tiny other 480
four_step_run_yaml > run.yaml

"$GTA" train run.yaml 2> /dev/null
cp -r run/checkpoints saved

expect_fail "nope.h5" "$GTA" train run.yaml --set data.train=nope.h5  # missing shard
head -c 3000 /dev/urandom > corrupt.h5
expect_fail "corrupt.h5" "$GTA" train run.yaml --set data.train=corrupt.h5  # corrupt shard
"$PY" - <<'PY'
import h5py, numpy as np
with h5py.File("float.h5", "w") as f:
    f.create_dataset("tokens", data=np.zeros(1000, dtype=np.float32))
PY
expect_fail "float.h5" "$GTA" train run.yaml --set data.train=float.h5  # wrong shard dtype
expect_fail "stpes" "$GTA" train run.yaml --set train.stpes=3  # unknown YAML key
printf 'train:\n  steps: abc\n' > badtype.yaml
expect_fail "train.steps" "$GTA" train badtype.yaml  # wrong YAML type
expect_fail "optim.schedule" "$GTA" train run.yaml --set optim.schedule=sometimes  # bad value
printf 'model:\n  d_model: [1\n' > broken.yaml
expect_fail "broken.yaml" "$GTA" train broken.yaml  # malformed YAML
expect_fail "vocab" "$GTA" train run.yaml --set model.vocab_size=100  # model vocab smaller than tokenizer's
expect_fail "tokenizer" "$GTA" train run.yaml --set data.tokenizer=other/tokenizer.model  # tokenizer of other shards
expect_fail "bogus" "$GTA" train run.yaml --bogus  # unknown flag
expect_fail "bf16 needs a GPU" "$GTA" train run.yaml --set train.device=cpu --set train.dtype=bf16  # bf16 on the CPU
expect_fail "missing.yaml" "$GTA" train missing.yaml  # missing config

expect_fail "different model" "$GTA" train run.yaml --set model.d_ff=32 --resume  # resume another model
cmp saved/step_000004/model.safetensors run/checkpoints/step_000004/model.safetensors

# A truncated checkpoint: --resume names the file; the older checkpoints are untouched.
truncate -s 100 run/checkpoints/step_000004/model.safetensors
expect_fail "model.safetensors" "$GTA" train run.yaml --resume  # truncated checkpoint
cmp saved/step_000002/model.safetensors run/checkpoints/step_000002/model.safetensors
expect_fail "model.safetensors" "$GTA" eval run/checkpoints/step_000004 --data data/val_000000.h5  # eval of truncated checkpoint
echo "train_errors: ok"
