"""The forward pass of transformers' LlamaForCausalLM and DeepseekV3ForCausalLM (dense layers,
q_lora_rank null), written from their modeling code in numpy (float64), for checking `gta export
--hf` on a machine without PyTorch: tests/cli/hf_roundtrip.sh compares its per-token losses with
`gta eval --per-token`. tests/cli/hf_transformers.sh checks the same against transformers itself.

    python3 hf_reference.py HF_DIR TOKENS.json PER_TOKEN.jsonl T
    python3 hf_reference.py randomize GTA_WEIGHTS OUT SEED

TOKENS.json holds the windows ([[T + 1 ids], ...]); PER_TOKEN.jsonl is gta's --per-token file of
the same windows. `randomize` writes OUT, gta weights (a .safetensors with gta's metadata) of the
same model with O(1)-scale random values (matrices N(0, 1/fan_in), norms 1 + N(0, 0.1^2), biases
N(0, 0.1^2), embeddings N(0, 1)), so that attention maps are far from uniform and a wrong RoPE
layout or a missing bias shows in the losses. What the modeling code does, step by step:
  - RMSNorm: w * x / sqrt(mean(x^2) + eps); eps = rms_norm_eps, except DeepSeek's kv_a_layernorm,
    built without an eps argument: 1e-6.
  - RoPE: inv_freq = theta^(-2i/dim), cos/sin of cat(freqs, freqs), x cos + rotate_half(x) sin
    with rotate_half(x) = cat(-x2, x1) (halves). DeepSeek with rope_interleave first regroups the
    features: view(dim/2, 2).transpose -> [x0, x2, x4, ..., x1, x3, ...]; dim = qk_rope_head_dim.
  - Attention: causal softmax(q k^T * scaling) v, scaling = head_dim^-0.5 (Llama),
    (qk_nope_head_dim + qk_rope_head_dim)^-0.5 (DeepSeek); kv heads repeated num_heads/num_kv times.
  - MLP: down(silu(gate(x)) * up(x)); logits = norm(x) @ lm_head^T (the embedding when tied).
"""
import json
import struct
import sys

import numpy as np

from gta_runs import safetensors


def rms(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def rope(x, theta):  # x [heads, T, dim]
    dim, T = x.shape[-1], x.shape[-2]
    inv = 1.0 / theta ** (np.arange(0, dim, 2) / dim)
    emb = np.concatenate([np.outer(np.arange(T), inv)] * 2, axis=-1)
    half = dim // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * np.cos(emb) + rot * np.sin(emb)


def deinterleave(x):  # view(dim/2, 2).transpose(-1, -2).reshape(dim)
    s = x.shape
    return x.reshape(*s[:-1], s[-1] // 2, 2).swapaxes(-1, -2).reshape(s)


def attention(q, k, v, scaling):  # [H, T, d]
    s = q @ k.swapaxes(-1, -2) * scaling
    T = s.shape[-1]
    s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def llama_attn(c, W, p, x):
    T, H = x.shape[0], c["num_attention_heads"]
    kv, hd = c["num_key_value_heads"], c["head_dim"]
    q = linear(x, W[p + "q_proj.weight"], W.get(p + "q_proj.bias")).reshape(T, H, hd).transpose(1, 0, 2)
    k = linear(x, W[p + "k_proj.weight"], W.get(p + "k_proj.bias")).reshape(T, kv, hd).transpose(1, 0, 2)
    v = linear(x, W[p + "v_proj.weight"], W.get(p + "v_proj.bias")).reshape(T, kv, hd).transpose(1, 0, 2)
    q, k = rope(q, c["rope_theta"]), rope(k, c["rope_theta"])
    k, v = np.repeat(k, H // kv, axis=0), np.repeat(v, H // kv, axis=0)
    o = attention(q, k, v, hd ** -0.5).transpose(1, 0, 2).reshape(T, H * hd)
    return linear(o, W[p + "o_proj.weight"], W.get(p + "o_proj.bias"))


def deepseek_attn(c, W, p, x):
    T, H = x.shape[0], c["num_attention_heads"]
    dn, dr, dv, dc = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
    q = linear(x, W[p + "q_proj.weight"]).reshape(T, H, dn + dr).transpose(1, 0, 2)
    q_pass, q_rot = q[..., :dn], q[..., dn:]
    ckv = linear(x, W[p + "kv_a_proj_with_mqa.weight"])
    k_pass, k_rot = ckv[:, :dc], ckv[:, dc:]
    kv = linear(rms(k_pass, W[p + "kv_a_layernorm.weight"], 1e-6), W[p + "kv_b_proj.weight"])
    kv = kv.reshape(T, H, dn + dv).transpose(1, 0, 2)
    k_pass, v = kv[..., :dn], kv[..., dn:]
    k_rot = k_rot.reshape(1, T, dr)
    if c.get("rope_interleave", True):
        q_rot, k_rot = deinterleave(q_rot), deinterleave(k_rot)
    q_rot, k_rot = rope(q_rot, c["rope_theta"]), rope(k_rot, c["rope_theta"])
    q = np.concatenate([q_pass, q_rot], -1)
    k = np.concatenate([k_pass, np.repeat(k_rot, H, axis=0)], -1)
    o = attention(q, k, v, (dn + dr) ** -0.5).transpose(1, 0, 2).reshape(T, H * dv)
    return linear(o, W[p + "o_proj.weight"])


def logits(c, W, ids):
    eps = c["rms_norm_eps"]
    attn = deepseek_attn if c["model_type"] == "deepseek_v3" else llama_attn
    x = W["model.embed_tokens.weight"][ids]
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        x = x + attn(c, W, p + "self_attn.", rms(x, W[p + "input_layernorm.weight"], eps))
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        g = linear(h, W[p + "mlp.gate_proj.weight"])
        x = x + linear(g / (1 + np.exp(-g)) * linear(h, W[p + "mlp.up_proj.weight"]), W[p + "mlp.down_proj.weight"])
    head = W["model.embed_tokens.weight"] if c["tie_word_embeddings"] else W["lm_head.weight"]
    return rms(x, W["model.norm.weight"], eps) @ head.T


def randomize(src, dst, seed):
    with open(src, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    rng = np.random.default_rng(seed)
    data, offset, out = [], 0, {"__metadata__": header["__metadata__"]}
    for k in sorted(k for k in header if k != "__metadata__"):
        shape = header[k]["shape"]
        if "norm" in k:
            v = 1 + 0.1 * rng.standard_normal(shape)
        elif k.endswith(".bias"):
            v = 0.1 * rng.standard_normal(shape)
        elif k == "model.embed_tokens.weight":
            v = rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape) / np.sqrt(shape[1])
        raw = v.astype("<f4").tobytes()
        out[k] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        offset += len(raw)
    text = json.dumps(out).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(data))


def main():
    if sys.argv[1] == "randomize":
        randomize(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    hf_dir, tokens_file, per_token_file, T = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = json.load(open(f"{hf_dir}/config.json"))
    W = safetensors(f"{hf_dir}/model.safetensors", dtypes=("F32",))
    windows = json.load(open(tokens_file))
    ours = [l for l in map(json.loads, open(per_token_file)) if l["type"] == "token"]
    assert len(ours) == len(windows) * T, (len(ours), len(windows))
    worst = 0.0
    for w, ids in enumerate(windows):
        z = logits(c, W, np.array(ids[:-1]))
        lse = z.max(-1) + np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1))
        ref = lse - z[np.arange(T), ids[1:]]
        for t in range(T):
            mine = ours[w * T + t]
            assert mine["pos"] == w * T + t + 1 and mine["token"] == ids[t + 1], mine
            worst = max(worst, abs(mine["loss"] - ref[t]) / max(1.0, abs(ref[t])))
    print(f"{hf_dir} ({c['architectures'][0]}): {len(ours)} tokens, worst relative difference {worst:.2e}")
    assert worst <= 1e-5, f"{hf_dir}: gta's per-token losses differ from the reference by up to {worst:.2e}"


if __name__ == "__main__":
    main()
