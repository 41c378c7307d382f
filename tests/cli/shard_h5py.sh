#!/usr/bin/env bash
# Shards written by h5py are read like gta's own: its ordinary fixed-length string attributes are
# null-padded (gta writes null-terminated ones), and every character of them must survive.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

prepare_tiny data
# The same tokens and attributes as gta's shards, rewritten by h5py: strings as numpy bytes, which
# h5py stores as fixed-length, null-padded strings of exactly their length.
"$PY" - <<'PY'
import h5py, numpy as np
with h5py.File("data/train_000000.h5", "r") as src, h5py.File("h5py.h5", "w") as dst:
    dst.create_dataset("tokens", data=src["tokens"][:])
    dst.create_dataset("doc_offsets", data=src["doc_offsets"][:])
    for k, v in src.attrs.items():
        dst.attrs[k] = np.bytes_(v.encode() if isinstance(v, str) else v) if isinstance(v, (str, bytes)) else v
with h5py.File("h5py.h5", "r") as f:
    t = h5py.h5a.open(f.id, b"tokenizer_sha256").get_type()
    assert t.get_strpad() == h5py.h5t.STR_NULLPAD and t.get_size() == 64, (t.get_strpad(), t.get_size())
PY
tiny_run_yaml 1 "{type: gqa, n_kv_heads: 2}" > run.yaml
cat >> run.yaml <<'YAML'
train: {steps: 1, batch_size: 2, seq_len: 16, out_dir: run}
eval: {every: 0, batches: 1}
YAML
"$GTA" train run.yaml --set data.train=h5py.h5 2> train.log || fail "training on an h5py shard: $(cat train.log)"
"$GTA" eval run --data h5py.h5 --seq-len 16 --batches 1 > /dev/null 2> eval.log || fail "eval on an h5py shard: $(cat eval.log)"
echo "shard_h5py: ok"
