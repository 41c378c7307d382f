#!/usr/bin/env bash
# gta bench decode on the CPU with the tiny configs: the JSON fields and the table, a chunked
# prefill, a given bandwidth, lists of points, points skipped by --max-cache-gb, bad options.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

for type in gqa gta mha; do
  "$GTA" bench decode "$SRC/configs/models/tiny/$type.yaml" --device cpu --batch 2 --context 40 --new-tokens 5 \
    --prefill-chunk 16 --vocab-size 128 --json > "$tmp/$type.json"
  "$PY" - "$tmp/$type.json" "$type" <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert j["attention"] == sys.argv[2], j
assert (j["batch"], j["context"], j["new_tokens"], j["dtype"]) == (2, 40, 5, "f32"), j
for k in ("prefill_tokens_per_s", "prefill_first_tokens_per_s", "decode_tokens_per_s", "ms_per_step", "bandwidth_gbs", "roofline_ms_per_step", "roofline_pct"):
    assert j[k] > 0, (k, j)
# tiny: 2 layers, cache per token per layer = k + v (gqa/mha) or k + latent (gta), f32
per_layer = {"gqa": 2 * 2 * 16, "mha": 2 * 4 * 16, "gta": 16 + 16}[sys.argv[2]]
assert j["cache_bytes"] == 2 * 40 * 2 * per_layer * 4, (j["cache_bytes"], per_layer)
assert j["bytes_per_step"] > j["weight_bytes"] > 0, j
assert j["decode_path"] == "general attention", j
PY
done

out=$("$GTA" bench decode "$SRC/configs/models/tiny/gta.yaml" --device cpu --context 9 --new-tokens 3 --vocab-size 64 \
  --bandwidth-gbs 10)
echo "$out" | grep -q "copy bandwidth 10.0 GB/s (given)"
echo "$out" | grep -qE "decode tok/s +ms/step +KV cache bytes +roofline ms +of roofline"
echo "$out" | grep -qE "^ +1 +9 .*%$"

# Lists: every (batch, context) pair is a point, one JSON line each.
"$GTA" bench decode "$SRC/configs/models/tiny/gqa.yaml" --device cpu --batch 1,3 --context 5,17 --new-tokens 2 \
  --vocab-size 64 --json > "$tmp/grid.json"
"$PY" - "$tmp/grid.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [(r["batch"], r["context"]) for r in rows] == [(1, 5), (1, 17), (3, 5), (3, 17)], rows
PY

# A point whose cache would pass --max-cache-gb is reported, not run.
"$GTA" bench decode "$SRC/configs/models/tiny/gqa.yaml" --device cpu --batch 1 --context 4,100000 --new-tokens 2 \
  --vocab-size 64 --max-cache-gb 0.01 --json > "$tmp/skip.json"
"$PY" - "$tmp/skip.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert "skipped" not in rows[0] and rows[0]["decode_tokens_per_s"] > 0, rows
assert rows[1]["context"] == 100000 and "max-cache-gb" in rows[1]["skipped"], rows
PY

expect_fail "--batch: must be > 0, got 0" "$GTA" bench decode "$SRC/configs/models/tiny/gta.yaml" --device cpu --batch 0
echo "bench_decode: ok"
