#!/usr/bin/env bash
# `gta analyze` end to end: tiny MHA and GTA models trained a few steps on the shipped
# tinyshakespeare, analysed on its validation shard: analysis.json holds what the header of
# src/analysis/analyze.h promises (maps x maps matrices with diagonal 1, spectra that start at 1
# and fall), the two PNGs are drawn; bad input gets a clear error.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ts="$SRC/data/tinyshakespeare"
for name in mha gta; do
  attn="{type: mha}"
  [[ $name == gta ]] && attn="{type: gta, n_q_heads: 2, n_k_heads: 1, n_v_heads: 1, d_qk: 8, d_latent: 8, qkv_bias: true}"
  cat > "$name.yaml" <<YAML
model: {vocab_size: 0, d_model: 32, n_layers: 2, d_ff: 64, n_heads: 4, attention: $attn}
data: {train: $ts/train_000000.h5, val: $ts/val_000000.h5, tokenizer: $ts/tokenizer.model}
train: {steps: 4, batch_size: 2, seq_len: 32, out_dir: run_$name, log_every: 2, seed: 3}
optim: {lr: 3.0e-3, warmup_steps: 1}
checkpoint: {every: 4, keep: 1}
eval: {every: 0, batches: 1}
YAML
  "$GTA" train "$name.yaml" 2> "train_$name.log" || { cat "train_$name.log"; fail "training $name failed"; }
  "$GTA" analyze "run_$name" --data "$ts/val_000000.h5" --windows 2 --seq-len 64 --device cpu --out "out_$name" \
    > "analyze_$name.log" || { cat "analyze_$name.log"; fail "gta analyze on $name failed"; }
  for png in map_similarity.png value_spectrum.png; do
    [[ $(head -c 8 "out_$name/$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
      fail "out_$name/$png is not a PNG"
    [[ $(stat -c %s "out_$name/$png") -gt 10000 ]] || fail "out_$name/$png is nearly empty"
  done
done

"$PY" - <<'PY'
import json

for name, maps, entry, cols in [("mha", 4, "v", 32), ("gta", 2, "latent", 8)]:
    a = json.load(open(f"out_{name}/analysis.json"))
    assert a["attention"] == name and a["windows"] == 2 and a["seq_len"] == 64 and a["tokens"] == 128, a
    assert a["checkpoint"].endswith("model.safetensors"), a["checkpoint"]
    assert len(a["layers"]) == 2
    for l in a["layers"]:
        m = l["map_cosine"]
        assert l["maps"] == maps and len(m) == maps and all(len(r) == maps for r in m), l
        for i in range(maps):
            assert abs(m[i][i] - 1) < 1e-9 and abs(l["map_js_bits"][i][i]) < 1e-9, (name, l)
            for j in range(maps):
                assert m[i][j] == m[j][i] and 0 <= m[i][j] <= 1 + 1e-12, (name, m)
        off = l["map_cosine_offdiag_mean"]
        assert 0 < off < 1, (name, off)
        v = l["value_cache"]
        assert v["entry"] == entry and v["columns"] == cols and v["rows"] == 128, v
        s = v["singular_values"]
        assert len(s) == cols and s[0] == 1 and all(x >= y for x, y in zip(s, s[1:])), s
        assert 1 <= v["n90"] <= v["n99"] <= cols, v
        c = v["centered"]
        assert len(c["singular_values"]) == cols and c["singular_values"][0] == 1 and 1 <= c["n90"] <= c["n99"], c
    print(f"{name}: map cosine off-diagonal {[round(l['map_cosine_offdiag_mean'], 3) for l in a['layers']]}, "
          f"n90 {[l['value_cache']['n90'] for l in a['layers']]}")
PY
grep -q "wrote out_mha/analysis.json" analyze_mha.log || fail "gta analyze does not say where it wrote"

# --no-plots writes the JSON and prints the command that draws the plots.
"$GTA" analyze run_gta --data "$ts/val_000000.h5" --windows 1 --seq-len 32 --device cpu --out np --no-plots > np.log
[[ -f np/analysis.json && ! -e np/map_similarity.png ]] || fail "--no-plots drew plots or wrote no JSON"
grep -q "plot_analysis.py np/analysis.json" np.log || { cat np.log; fail "--no-plots printed no plot command"; }

# Bad input.
prepare_tiny other 512  # another tokenizer's shards
expect_fail "no such file or directory" "$GTA" analyze "$tmp/missing" --data "$ts/val_000000.h5" --out x
expect_fail "--windows must be >= 1" "$GTA" analyze run_mha --data "$ts/val_000000.h5" --out x --windows 0
expect_fail "--seq-len must be >= 1" "$GTA" analyze run_mha --data "$ts/val_000000.h5" --out x --seq-len 0
expect_fail "but the model's tokenizer is" "$GTA" analyze run_mha --data other/val_000000.h5 --out x
expect_fail "missing.h5" "$GTA" analyze run_mha --data "$tmp/missing.h5" --out x
expect_fail "--out" "$GTA" analyze run_mha --data "$ts/val_000000.h5"
[[ $fails -eq 0 ]] || fail "$fails error check(s) failed"
echo "analyze: ok"
