#!/usr/bin/env bash
# Inference and data errors that name their cause: `gta eval` of weights that are NaN fails and
# says so (not blaming the shards), a .bin shard's out-of-vocabulary token is named with its shard
# and position, `gta generate` refuses a request past the model's context or a KV cache that
# cannot fit (and grows it as it fills), and `gta info` rejects a negative --seq-len plainly.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

prepare_tiny data
tiny_run_yaml 1 "{type: gqa, n_kv_heads: 2}" > run.yaml
cat >> run.yaml <<'YAML'
train: {steps: 1, batch_size: 2, seq_len: 16, out_dir: run}
eval: {every: 0, batches: 1}
YAML
"$GTA" train run.yaml 2> /dev/null

# The trained weights with one tensor set to NaN, as a bare file (no checkpoint digest to trip).
"$PY" - run/checkpoints/step_000001/model.safetensors <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
lo, hi = h["model.norm.weight"]["data_offsets"]
b[8 + n + lo:8 + n + hi] = struct.pack("<f", float("nan")) * ((hi - lo) // 4)
open("nan.safetensors", "wb").write(b)
PY
expect_fail "NaN or Inf" "$GTA" eval nan.safetensors --data data/val_000000.h5 --seq-len 16 --batches 1

# A .bin shard (llm.c layout: 256 int32 header, uint16 tokens) holding id 60000 at position 10.
"$PY" - <<'PY'
import numpy as np
header = np.zeros(256, dtype=np.int32)
header[:3] = [20240520, 1, 100]
tokens = np.full(100, 5, dtype=np.uint16)
tokens[10] = 60000
with open("oov.bin", "wb") as f:
    f.write(header.tobytes()); f.write(tokens.tobytes())
PY
expect_fail "oov.bin: token id 60000 at position 10" "$GTA" train run.yaml --set train.out_dir=oov \
  --set data.train=oov.bin --set data.mode=sequential --set data.val=
expect_fail "oov.bin: token id 60000 at position 10 (byte offset 1044)" "$GTA" eval run --data oov.bin --seq-len 16

# generate: prompt and new tokens must fit in the context the model was trained with (seq_len 16,
# from the checkpoint's trainer.json). "The " is EOS + at most 5 tokens: 10 new tokens fit, 16 never.
"$GTA" generate run --prompt "The " -n 10 --across-documents > fits.txt 2> /dev/null || fail "generate -n 10"
expect_fail "exceed the model's context of 16 tokens" "$GTA" generate run --prompt "The " -n 16
# The bare weights carry no context: the KV cache grows as it fills past its first 256 + prompt
# tokens; a request that could never fit is refused, in bytes.
cp run/checkpoints/step_000001/model.safetensors bare.safetensors
expect_fail "would need a KV cache of" "$GTA" generate bare.safetensors --tokenizer data/tokenizer.model \
  --prompt "The " -n 100000000000
"$GTA" generate bare.safetensors --tokenizer data/tokenizer.model --prompt "The " -n 700 --across-documents \
  > long.txt 2> /dev/null || fail "generate -n 700"

expect_fail "--seq-len must be >= 1, got -5" "$GTA" info run/config.yaml --seq-len -5
[ "$(wc -c < expect_fail.err)" -lt 200 ] || fail "gta info --seq-len -5: $(cat expect_fail.err)"
echo "infer_bad_weights: ok"
