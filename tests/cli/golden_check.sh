#!/usr/bin/env bash
# gta golden-check on every shipped golden file; gta info on the ablation configs; bad inputs.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

"$GTA" golden-check "$SRC"/tests/golden/*.safetensors

out=$("$GTA" info "$SRC/configs/models/s/gta.yaml" --seq-len 2048 --json)
echo "$out" | grep -q '"elems_per_token_per_layer": 160'
"$GTA" info "$SRC/configs/models/s/gqa.yaml"

# A golden file whose expected logits were tampered with must fail the check.
"$PY" - "$SRC/tests/golden/gqa.safetensors" "$tmp/bad.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = bytearray(open(src, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
off = 8 + n + h['expected.logits']['data_offsets'][0]
v = struct.unpack('<d', b[off:off + 8])[0]
b[off:off + 8] = struct.pack('<d', v + 1.0)
open(dst, 'wb').write(b)
PY
if "$GTA" golden-check "$tmp/bad.safetensors" > "$tmp/log" 2>&1; then fail "tampered golden file passed"; fi
grep -q FAIL "$tmp/log"

# Truncated file: a clear error naming the file, non-zero exit.
head -c 1000 "$SRC/tests/golden/gta.safetensors" > "$tmp/trunc.safetensors"
expect_fail "trunc.safetensors" "$GTA" golden-check "$tmp/trunc.safetensors"

# Bad model config: the error names the key and the rule.
printf 'model:\n  d_model: 64\n  n_layers: 2\n  d_ff: 96\n  n_heads: 4\n  attention: {type: gqa, n_kv_heads: 3}\n' > "$tmp/bad.yaml"
expect_fail "n_kv_heads" "$GTA" info "$tmp/bad.yaml"
echo "golden_check: ok"
