#!/usr/bin/env bash
# `gta export --hf` and `gta import` end to end, for each of the seven attention types: a model
# trained a few steps, exported (f32) and imported back, evaluates to the identical loss. The f32
# exports of MHA (q/k/v biases), GQA, MQA and MLA give the per-token losses of a numpy
# transcription of transformers' Llama and DeepSeek-V3 forward (tests/cli/lib/hf_reference.py;
# tests/cli/hf_transformers.sh checks against transformers itself, where it is installed). A bf16
# export says so in config.json; the import carries the tokenizer, so `gta generate --json` runs
# on it; `train.init_from` starts a run from it (at a negligible lr its validation loss is the
# import's); `gta eval --config` reads weights without gta metadata; `gta eval --per-token` writes
# losses whose mean is the reported loss; a .bin shard's eval says what it lacks; bad input is
# refused with a clear message.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ts="$SRC/data/tinyshakespeare"
val="$ts/val_000000.h5"
declare -A arch=([mha]=LlamaForCausalLM [gqa]=LlamaForCausalLM [mqa]=LlamaForCausalLM
  [gva]=GTAForCausalLM [gha]=GTAForCausalLM [gta]=GTAForCausalLM [mla]=DeepseekV3ForCausalLM)

eval_loss() {  # eval_loss WEIGHTS [ARGS]: the exact loss (JSON) of the first 2 batches of the validation shard
  "$GTA" eval "$@" --data "$val" --device cpu --batches 2 --batch-size 2 --seq-len 32 --json |
    "$PY" -c 'import json, sys; print(repr(json.load(sys.stdin)["loss"]))'
}

for t in mha gqa mqa gva gha gta mla; do
  cat > "$t.yaml" <<YAML
model: {vocab_size: 0, d_model: 32, n_layers: 2, d_ff: 64, n_heads: 4, norm_eps: 1.0e-6, tie_embeddings: $([[ $t == gqa ]] && echo false || echo true), attention: ${TINY_ATTENTION[$t]}}
data: {train: $ts/train_000000.h5, val: $val, tokenizer: $ts/tokenizer.model}
train: {steps: 2, batch_size: 2, seq_len: 32, out_dir: run_$t, log_every: 1, seed: 3, device: cpu}
optim: {lr: 3.0e-3, warmup_steps: 1}
checkpoint: {every: 2, keep: 1}
eval: {every: 0, batches: 1}
logging: {tensorboard: false}
YAML
  "$GTA" train "$t.yaml" > "train_$t.log" 2>&1 || { cat "train_$t.log"; fail "training $t failed"; }
  "$GTA" export "run_$t" --hf "hf_$t" > "export_$t.log" || fail "export $t failed"
  grep -q "as ${arch[$t]}" "export_$t.log" || { cat "export_$t.log"; fail "$t: not exported as ${arch[$t]}"; }
  [[ -f hf_$t/tokenizer.model && -f hf_$t/config.json && -f hf_$t/model.safetensors ]] || fail "hf_$t is incomplete"
  "$GTA" import "hf_$t" --out "back_$t" > "import_$t.log" || fail "import $t failed"
  want=$(eval_loss "run_$t")
  got=$(eval_loss "back_$t")
  [[ $want == "$got" ]] || fail "$t: eval loss $want before the round trip, $got after"
  echo "ok: $t exports as ${arch[$t]} and imports back to the same loss ($got)"
done

"$PY" - <<'PY'
import json
c = json.load(open("hf_gqa/config.json"))
assert c["architectures"] == ["LlamaForCausalLM"] and c["model_type"] == "llama", c
assert c["num_key_value_heads"] == 2 and c["head_dim"] == 8 and c["tie_word_embeddings"] is False, c
assert c["max_position_embeddings"] == 32 and c["torch_dtype"] == "float32", c  # the run's seq_len
assert c["bos_token_id"] == 1 and c["eos_token_id"] == 2, c
c = json.load(open("hf_mha/config.json"))
assert c["attention_bias"] is True and c["num_key_value_heads"] == 4, c
c = json.load(open("hf_mla/config.json"))
assert c["architectures"] == ["DeepseekV3ForCausalLM"] and c["q_lora_rank"] is None, c
assert (c["kv_lora_rank"], c["qk_rope_head_dim"], c["qk_nope_head_dim"], c["v_head_dim"]) == (12, 4, 6, 10), c
c = json.load(open("hf_gta/config.json"))
assert c["model_type"] == "gta" and c["gta_config"]["attention"]["d_latent"] == 8, c
PY

# What transformers computes on the exports, in numpy (tests/cli/lib/hf_reference.py, written
# from its modeling code), against gta's per-token losses: Llama with q/k/v biases (MHA), untied
# GQA, MQA and DeepSeek-V3 (MLA, interleaved RoPE rows), on O(1)-scale random weights.
"$PY" - "$val" <<'PY'
import json, sys, h5py
toks = [int(t) for t in h5py.File(sys.argv[1])["tokens"][:65]]
json.dump([toks[0:33], toks[32:65]], open("windows.json", "w"))
PY
for t in mha gqa mqa mla; do
  "$PY" "$SRC/tests/cli/lib/hf_reference.py" randomize "run_$t/checkpoints/step_000002/model.safetensors"     "random_$t.safetensors" 5
  "$GTA" export "random_$t.safetensors" --hf "hf_random_$t" > /dev/null
  "$GTA" eval "random_$t.safetensors" --data "$val" --device cpu --batches 1 --batch-size 2 --seq-len 32     --per-token "random_$t.jsonl" > /dev/null
  "$PY" "$SRC/tests/cli/lib/hf_reference.py" "hf_random_$t" windows.json "random_$t.jsonl" 32 ||
    fail "$t: gta's losses differ from transformers' computation (numpy reference) on the export"
done

# bf16: config.json and the tensors say so; the import evaluates (to the rounded weights' loss).
"$GTA" export run_gqa --hf hf_bf16 --dtype bf16 > /dev/null
grep -q '"torch_dtype": "bfloat16"' hf_bf16/config.json || fail "bf16 export: torch_dtype is not bfloat16"
grep -q '"dtype":"BF16"' <(head -c 4000 hf_bf16/model.safetensors) || fail "bf16 export: tensors are not BF16"
"$GTA" import hf_bf16 --out back_bf16 > /dev/null
eval_loss back_bf16 > /dev/null

# --config: the exported file itself (no gta metadata; the untied GQA has no tensor gta lacks), its
# vocabulary taken from its embedding because the YAML says 0.
got=$(eval_loss hf_gqa --config gqa.yaml)
[[ $got == "$(eval_loss run_gqa)" ]] || fail "eval --config on the exported weights: loss $got"
expect_fail "no model config in its metadata" "$GTA" eval hf_gqa --data "$val"

# generate --json on the import (its tokenizer came along).
"$GTA" generate back_gqa --prompt "ROMEO:" --max-new-tokens 5 --temperature 0 --json > gen.json 2> /dev/null
"$PY" - <<'PY'
import json, math
g = json.load(open("gen.json"))
s = g["samples"][0]
assert len(g["prompt_ids"]) >= 2 and g["prompt_ids"][0] == 2, g["prompt_ids"]  # EOS, then the prompt
assert 1 <= len(s["ids"]) <= 5 and len(s["ids"]) == len(s["pieces"]) == len(s["logprobs"]), s
assert all(lp <= 0 and math.isfinite(lp) for lp in s["logprobs"]), s
assert isinstance(s["text"], str) and "stats" in g, g
PY

# train.init_from: a fresh run from the imported weights; at lr 1e-30 (no change to f32 weights
# of their size) its validation loss is theirs.
"$GTA" train gqa.yaml --set train.out_dir=run_init --set train.init_from=back_gqa --set optim.lr=1e-30 \
  --set train.steps=1 --set eval.batches=2 > init.log 2>&1 || { cat init.log; fail "train.init_from failed"; }
grep -q "initialised from back_gqa" init.log || { cat init.log; fail "train.init_from: not reported"; }
want=$(eval_loss back_gqa)
got=$("$PY" -c 'import json
print(repr([r for r in map(json.loads, open("run_init/metrics.jsonl")) if r["event"] == "eval"][-1]["val_loss"]))')
[[ $want == "$got" ]] || fail "train.init_from: validation loss $got, the imported weights' $want"
expect_fail "holds a different model than the config" \
  "$GTA" train mha.yaml --set train.out_dir=run_bad --set train.init_from=back_gqa
expect_fail "train.init_from: nowhere: no such file or directory" \
  "$GTA" train gqa.yaml --set train.out_dir=run_bad2 --set train.init_from=nowhere

# eval --per-token: token lines average to the reported loss; documents partition the tokens.
"$GTA" eval back_gqa --data "$val" --device cpu --batches 2 --batch-size 2 --seq-len 32 --json \
  --per-token tokens.jsonl > per_token_eval.json
"$PY" - <<'PY'
import json
r = json.load(open("per_token_eval.json"))
lines = [json.loads(l) for l in open("tokens.jsonl")]
assert lines[0]["type"] == "shards" and lines[0]["eos_id"] == 2, lines[0]
toks = [l for l in lines if l["type"] == "token"]
docs = [l for l in lines if l["type"] == "document"]
assert len(toks) == r["tokens"] == 2 * 2 * 32, (len(toks), r["tokens"])
assert [t["pos"] for t in toks] == list(range(1, 129)), "positions"
mean = sum(t["loss"] for t in toks) / len(toks)
assert abs(mean - r["loss"]) <= 1e-12 * abs(mean), (mean, r["loss"])
assert sum(d["tokens"] for d in docs) == len(toks), "documents do not partition the tokens"
for d in docs:
    mine = [t for t in toks if t["doc"] == d["doc"]]
    assert len(mine) == d["tokens"] and mine[0]["pos"] == d["first"] and mine[-1]["pos"] == d["last"], d
    assert d["complete"] == (mine[-1]["token"] == 2), d
assert any(d["complete"] for d in docs), "no document ended inside 128 tokens"
PY

# A .bin shard (llm.c) of the same tokens: eval says what it lacks instead of printing nan.
"$PY" - "$val" <<'PY'
import struct, sys, h5py
toks = h5py.File(sys.argv[1])["tokens"][:2000]
with open("val.bin", "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, len(toks), *([0] * 253)))
    f.write(struct.pack(f"<{len(toks)}H", *toks))
PY
"$GTA" eval back_gqa --data val.bin --device cpu --batches 1 --batch-size 2 --seq-len 32 > bin_eval.txt
grep -q "bits per byte   n/a (the shards record no byte count" bin_eval.txt || { cat bin_eval.txt; fail ".bin: bits per byte"; }
grep -q "tokenizer       not checked" bin_eval.txt || { cat bin_eval.txt; fail ".bin: tokenizer hash"; }
if grep -qi nan bin_eval.txt; then cat bin_eval.txt; fail ".bin eval prints nan"; fi

# Bad input.
set +e
expect_fail "not empty; pass --overwrite" "$GTA" export run_gqa --hf hf_gqa
expect_fail "not empty; pass --overwrite" "$GTA" import hf_gqa --out back_gqa
expect_fail "nowhere: no such directory" "$GTA" import nowhere --out x
expect_fail "no config.json" "$GTA" import run_gqa --out x
expect_fail "--dtype must be f32 or bf16" "$GTA" export run_gqa --hf x --dtype f16
"$GTA" train mla.yaml --set model.norm_eps=1e-5 --set train.out_dir=run_mla5 > /dev/null 2>&1
expect_fail "kv_a_layernorm" "$GTA" export run_mla5 --hf x
sed 's/LlamaForCausalLM/Qwen2ForCausalLM/' hf_gqa/config.json > cfg.json && mkdir -p qwen &&
  cp cfg.json qwen/config.json && cp hf_gqa/model.safetensors qwen/
expect_fail "architecture 'Qwen2ForCausalLM' cannot be imported" "$GTA" import qwen --out x
[[ ! -e x ]] || { echo "FAIL: a refused command left x behind"; fails=$((fails + 1)); }
"$GTA" export run_gqa --hf hf_gqa --overwrite > /dev/null || { echo "FAIL: --overwrite"; fails=$((fails + 1)); }

if [[ $fails -ne 0 ]]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all Hugging Face round-trip checks passed"
