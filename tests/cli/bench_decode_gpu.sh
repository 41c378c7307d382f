#!/usr/bin/env bash
# gta bench decode on the GPU (skipped, exit 77, where gta sees no GPU): GTA-S and GQA-S at two
# batches, bf16, every point decoded through the decode kernels replayed as a CUDA graph, with a
# measured copy bandwidth and a plausible share of the roofline; and the same points eager
# (GTA_DECODE_GRAPH=0) for the comparison.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

for cfg in gta gqa; do
  for graph in 1 0; do
    if ! GTA_DECODE_GRAPH=$graph "$GTA" bench decode "$SRC/configs/models/s/$cfg.yaml" --device cuda --batch 1,8 \
      --context 300 --new-tokens 16 --json > "$cfg$graph.json" 2> err.log; then
      if grep -q "no usable GPU" err.log; then echo "skip: $(tail -n 1 err.log)"; exit 77; fi
      cat err.log
      fail "gta bench decode $cfg on the GPU"
    fi
    "$PY" - "$cfg$graph.json" "$graph" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
want = "decode kernels, CUDA graph" if sys.argv[2] == "1" else "decode kernels"
assert len(rows) == 2, rows
for r in rows:
    assert r["dtype"] == "bf16" and r["decode_path"] == want, r
    assert r["bandwidth_measured"] and r["bandwidth_gbs"] > 100, r
    assert 0 < r["roofline_pct"] < 150, r  # reads alone may run a little faster than a copy
    print("%s B%d: %.0f tokens/s, %.3f ms/step, %.0f%% of the roofline (%s)" % (
        r["attention"], r["batch"], r["decode_tokens_per_s"], r["ms_per_step"], r["roofline_pct"], r["decode_path"]))
PY
  done
done
echo "bench_decode_gpu: ok"
