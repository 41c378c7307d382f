#!/usr/bin/env bash
# transformers itself (on the CUDA machine, where PyTorch's python3 has it; skipped where no
# python3 imports transformers and torch) against gta, both directions, on the same tokens:
#   - tiny GQA and MLA models trained by gta, exported in f32 (`gta export --hf`), load with
#     AutoModelForCausalLM (LlamaForCausalLM, DeepseekV3ForCausalLM) without missing or unexpected
#     weights, and give the per-token losses of `gta eval --per-token` (each within 1e-5,
#     relative, of gta's; equal per-token losses on every position are equal logits up to a
#     constant per position, which the softmax removes);
#   - a LlamaForCausalLM and a DeepseekV3ForCausalLM initialised by transformers (random, from a
#     small config, saved with save_pretrained) import into gta (`gta import`) and evaluate to
#     transformers' per-token losses.
# The tokens are the first windows of the shipped tinyshakespeare validation shard, written as an
# llm.c .bin shard so that the transformers side needs neither h5py nor gta's reader.
# Run it as: GTA=build-gpu/gta SRC=. bash tests/cli/hf_transformers.sh
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

python_with "transformers, torch"
HF_PY=$MOD_PY
"$HF_PY" -c 'import transformers, torch; print("transformers", transformers.__version__, "torch", torch.__version__)'

ts="$SRC/data/tinyshakespeare"
T=32 BATCHES=2 BS=2  # windows 0..3 of T + 1 tokens
"$PY" - "$ts/val_000000.h5" <<'PY'
import struct, sys, h5py
toks = [int(t) for t in h5py.File(sys.argv[1])["tokens"][:1000]]
with open("val.bin", "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, len(toks), *([0] * 253)))
    f.write(struct.pack(f"<{len(toks)}H", *toks))
PY
V=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["tokenizer"]["vocab_size"])' "$ts/prepare.json")

gta_losses() {  # gta_losses WEIGHTS OUT.jsonl
  "$GTA" eval "$1" --data val.bin --device cpu --batches $BATCHES --batch-size $BS --seq-len $T \
    --eos-id 2 --per-token "$2" > /dev/null
}

# compare.py: transformers' per-token losses of an HF directory on the windows, against a
# --per-token file of gta's (or, with --save, writes them in the same form for a later check).
cat > compare.py <<'PY'
import json, math, struct, sys
import torch
from transformers import AutoModelForCausalLM

hf_dir, gta_file, T, windows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open("val.bin", "rb") as f:
    header = struct.unpack("<256i", f.read(1024))
    toks = list(struct.unpack(f"<{header[2]}H", f.read(2 * header[2])))
model, info = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32, attn_implementation="eager",
                                                   output_loading_info=True)
tied = model.config.tie_word_embeddings
missing = [k for k in info["missing_keys"] if not (tied and k == "lm_head.weight")]
assert not missing and not info["unexpected_keys"] and not info.get("mismatched_keys"), info
model.eval()
ids = torch.tensor([toks[w * T : w * T + T + 1] for w in range(windows)], dtype=torch.long)
with torch.no_grad():
    logits = model(ids[:, :-1]).logits.double()
hf = (-torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]).flatten().tolist()
ours = [json.loads(l) for l in open(gta_file)]
ours = [l for l in ours if l["type"] == "token"]
assert [l["pos"] for l in ours] == [w * T + t + 1 for w in range(windows) for t in range(T)], "positions"
worst = 0.0
for l, h in zip(ours, hf):
    worst = max(worst, abs(l["loss"] - h) / max(1.0, abs(h)))
print(f"{type(model).__name__} {hf_dir}: {len(hf)} tokens, mean loss transformers {sum(hf) / len(hf):.8f} "
      f"gta {sum(l['loss'] for l in ours) / len(ours):.8f}, worst relative difference {worst:.2e}")
assert worst <= 1e-5, f"{hf_dir}: per-token losses differ by up to {worst:.2e} (relative)"
PY
windows=$((BATCHES * BS))

# gta -> transformers: trained GQA (untied, q/k/v biases) and MLA models, exported in f32.
for t in gqa mla; do
  if [[ $t == gqa ]]; then a="{type: gqa, n_kv_heads: 2, qkv_bias: true}"; tie=false
  else a="{type: mla, d_c: 16, d_rope: 8, d_nope: 8, d_v: 8}"; tie=true; fi
  cat > "$t.yaml" <<YAML
model: {vocab_size: 0, d_model: 32, n_layers: 2, d_ff: 64, n_heads: 4, norm_eps: 1.0e-6, rope_theta: 500, tie_embeddings: $tie, attention: $a}
data: {train: $ts/train_000000.h5, val: $ts/val_000000.h5, tokenizer: $ts/tokenizer.model}
train: {steps: 30, batch_size: 4, seq_len: 64, out_dir: run_$t, log_every: 10, seed: 3, device: cpu}
optim: {lr: 1.0e-2, warmup_steps: 5}
checkpoint: {every: 30, keep: 1}
eval: {every: 0, batches: 1}
logging: {tensorboard: false}
YAML
  "$GTA" train "$t.yaml" > "train_$t.log" 2>&1 || { cat "train_$t.log"; fail "training $t failed"; }
  "$GTA" export "run_$t" --hf "hf_$t" --dtype f32
  gta_losses "run_$t" "gta_$t.jsonl"
  "$HF_PY" compare.py "hf_$t" "gta_$t.jsonl" $T $windows || fail "$t: transformers disagrees with gta"
done

# transformers -> gta: randomly initialised Llama (GQA) and DeepSeek-V3 (MLA) models.
"$HF_PY" - "$V" <<'PY'
import sys
import torch
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, LlamaConfig, LlamaForCausalLM

V = int(sys.argv[1])
torch.manual_seed(0)
llama = LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                    max_position_embeddings=256, initializer_range=0.1)
LlamaForCausalLM(llama).save_pretrained("hf_llama_init", safe_serialization=True)
mla = DeepseekV3Config(vocab_size=V, hidden_size=64, intermediate_size=96, moe_intermediate_size=96,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None,
                       kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16,
                       first_k_dense_replace=2, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                       max_position_embeddings=256, initializer_range=0.1)
DeepseekV3ForCausalLM(mla).save_pretrained("hf_mla_init", safe_serialization=True)
PY
for t in llama_init mla_init; do
  "$GTA" import "hf_$t" --out "gta_$t"
  gta_losses "gta_$t" "gta_$t.jsonl"
  "$HF_PY" compare.py "hf_$t" "gta_$t.jsonl" $T $windows || fail "$t: gta's import disagrees with transformers"
done
echo "transformers and gta agree on every token, both directions"
