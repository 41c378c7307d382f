"""gta's decoder written again in PyTorch, from the math of docs/attention.md and nothing else of
gta's code: the seven attention types, with gta's (Hugging Face Llama-style) parameter names, so
a gta checkpoint's model.safetensors loads into it by name (`load_state_dict`).

It serves two purposes: an independent check of gta's forward pass (tests/cli/torch_reference.sh
compares its loss with `gta eval` on the same windows), and the PyTorch side of the training-step
benchmark (bench/train_compare.py, compiled with torch.compile).

Works with PyTorch 1.13 (Debian 12's python3-torch, CPU) and 2.x; on 2.x attention goes through
F.scaled_dot_product_attention (cuDNN / flash on the GPU).
"""
import json
import math
import subprocess

import torch
import torch.nn as nn
import torch.nn.functional as F

_SDPA = getattr(F, "scaled_dot_product_attention", None)  # PyTorch >= 2.0
_SDPA_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)  # enable_gqa=


def model_config(gta, config, vocab_size=None):
    """The resolved model config (the `config` object of `gta info --json`) of a YAML file."""
    cmd = [gta, "info", config, "--json"] + (["--vocab-size", str(vocab_size)] if vocab_size else [])
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["config"]


def at_least_f32(x):
    """x in f32 when it is stored in 16 bits (softmax, norms and the loss are computed in f32)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def rms_norm(x, weight, eps):
    """x / sqrt(mean(x^2) + eps) * weight, computed in at least f32."""
    xf = at_least_f32(x)
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def rope(x, theta):
    """Rotate-half RoPE over the whole last dimension of x [B, T, heads, rot] at positions 0..T-1:
    y[i] = x[i] cos a - x[i+h] sin a, y[i+h] = x[i+h] cos a + x[i] sin a, a = p theta^(-2i/rot)."""
    T, rot = x.shape[1], x.shape[-1]
    h = rot // 2
    inv = theta ** (-torch.arange(0, h, dtype=torch.float64, device=x.device) * 2 / rot)
    a = torch.arange(T, dtype=torch.float64, device=x.device)[:, None] * inv[None, :]  # [T, h]
    cos = torch.cos(a).to(x.dtype)[None, :, None, :]
    sin = torch.sin(a).to(x.dtype)[None, :, None, :]
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attend(q, k, v, scale):
    """Causal attention with head sharing: q [B, T, n_q, d_qk], k [B, T, n_k, d_qk], v [B, T, n_v,
    d_v], n_k and n_v dividing n_q; query head i reads key head i / (n_q/n_k) and value head
    i / (n_q/n_v). Returns [B, T, n_q, d_v]."""
    nq, nk, nv = q.shape[2], k.shape[2], v.shape[2]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, T, width]
    if _SDPA is not None:
        if _SDPA_GQA and nk == nv and nk != nq:  # shared keys read in place, not repeated
            o = _SDPA(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
        else:
            k, v = k.repeat_interleave(nq // nk, dim=1), v.repeat_interleave(nq // nv, dim=1)
            o = _SDPA(q, k, v, is_causal=True, scale=scale)
    else:
        k, v = k.repeat_interleave(nq // nk, dim=1), v.repeat_interleave(nq // nv, dim=1)
        s = torch.matmul(at_least_f32(q), at_least_f32(k).transpose(-1, -2)) * scale
        T = s.shape[-1]
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
        o = torch.matmul(torch.softmax(s, dim=-1), at_least_f32(v)).to(q.dtype)
    return o.transpose(1, 2)


def linear(d_in, d_out, bias):
    return nn.Linear(d_in, d_out, bias=bias)


class SharedMapAttention(nn.Module):
    """MHA, GQA, MQA (n_q = h) and GVA, GHA (n_q maps shared by groups of the h output heads):
    o_j = softmax(q_i k_{i/(n_q/n_k)}^T / sqrt(hd)) v_{j/(h/n_vh)} with i = j/(h/n_q)."""

    def __init__(self, cfg):
        super().__init__()
        a, d, h = cfg["attention"], cfg["d_model"], cfg["n_heads"]
        t, bias = a["type"], a.get("qkv_bias", False)
        self.h, self.hd, self.theta = h, d // h, cfg["rope_theta"]
        self.nq = {"mha": h, "gqa": h, "mqa": h}.get(t) or a["n_q_heads"]
        self.nk = {"mha": h, "gqa": a.get("n_kv_heads"), "mqa": 1}.get(t) or a["n_k_heads"]
        self.nv = {"mha": h, "gqa": a.get("n_kv_heads"), "mqa": 1, "gva": h}.get(t) or a["n_v_heads"]
        self.q_proj = linear(d, self.nq * self.hd, bias)
        self.k_proj = linear(d, self.nk * self.hd, bias)
        self.v_proj = linear(d, self.nv * self.hd, bias)
        self.o_proj = linear(h * self.hd, d, False)
        # Output head j reads value head j/(h/n_vh); map i's group (heads i g .. i g + g-1,
        # g = h/n_q) reads its value heads laid side by side, one value of width g hd per map.
        self.register_buffer("value_of_head", torch.arange(h) // (h // self.nv), persistent=False)

    def forward(self, x):
        B, T, _ = x.shape
        q = rope(self.q_proj(x).view(B, T, self.nq, self.hd), self.theta)
        k = rope(self.k_proj(x).view(B, T, self.nk, self.hd), self.theta)
        v = self.v_proj(x).view(B, T, self.nv, self.hd)
        if self.nq != self.h or self.nv != self.nk:
            v = v[:, :, self.value_of_head].reshape(B, T, self.nq, (self.h // self.nq) * self.hd)
        o = attend(q, k, v, 1.0 / math.sqrt(self.hd))
        return self.o_proj(o.reshape(B, T, self.h * self.hd))


class GTAAttention(nn.Module):
    """o_i = softmax(q_i k^T / sqrt(d_qk)) c (per map, width d_l), u_i = tile(o_i, e) + o_i Wb_i,
    y = (sigmoid(x Wg + bg) * concat_i u_i) Wo."""

    def __init__(self, cfg):
        super().__init__()
        a, d = cfg["attention"], cfg["d_model"]
        bias = a.get("qkv_bias", False)
        self.nq, self.nk, self.nv = a["n_q_heads"], a["n_k_heads"], a["n_v_heads"]
        self.dqk, self.dl, self.theta = a["d_qk"], a["d_latent"], cfg["rope_theta"]
        self.e = d // (self.nq * self.dl)
        self.q_proj = linear(d, self.nq * self.dqk, bias)
        self.k_proj = linear(d, self.nk * self.dqk, bias)
        self.v_proj = linear(d, self.nv * self.dl, bias)
        self.v_b_proj = linear(self.nq * self.dl, self.e * self.dl, False)  # memory read as [n_q, d_l, e d_l]
        self.g_proj = linear(d, d, True)
        self.o_proj = linear(d, d, False)

    def forward(self, x):
        B, T, d = x.shape
        q = rope(self.q_proj(x).view(B, T, self.nq, self.dqk), self.theta)
        k = rope(self.k_proj(x).view(B, T, self.nk, self.dqk), self.theta)
        c = self.v_proj(x).view(B, T, self.nv, self.dl)
        o = attend(q, k, c, 1.0 / math.sqrt(self.dqk))  # [B, T, n_q, d_l]
        wb = self.v_b_proj.weight.reshape(self.nq, self.dl, self.e * self.dl)
        u = torch.einsum("btil,ilm->btim", o, wb) + o.repeat(1, 1, 1, self.e)
        return self.o_proj(torch.sigmoid(self.g_proj(x)) * u.reshape(B, T, d))


class MLAAttention(nn.Module):
    """DeepSeek-V2 style without query compression, training form: keys and values re-expanded
    from the normalised latent, the RoPE key k_pe one head shared by all heads."""

    def __init__(self, cfg):
        super().__init__()
        a, d, h = cfg["attention"], cfg["d_model"], cfg["n_heads"]
        self.h, self.dc, self.dr, self.dn, self.dv = h, a["d_c"], a["d_rope"], a["d_nope"], a["d_v"]
        self.theta = cfg["rope_theta"]
        self.q_proj = linear(d, h * (self.dn + self.dr), False)
        self.kv_a_proj_with_mqa = linear(d, self.dc + self.dr, False)
        self.kv_a_layernorm = RMSNorm(self.dc, cfg["norm_eps"])
        self.kv_b_proj = linear(self.dc, h * (self.dn + self.dv), False)
        self.o_proj = linear(h * self.dv, d, False)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.dn + self.dr)
        q = torch.cat([q[..., :self.dn], rope(q[..., self.dn:], self.theta)], dim=-1)
        ckv = self.kv_a_proj_with_mqa(x)
        k_pe = rope(ckv[..., self.dc:].view(B, T, 1, self.dr), self.theta)
        kv = self.kv_b_proj(self.kv_a_layernorm(ckv[..., :self.dc])).view(B, T, self.h, self.dn + self.dv)
        k = torch.cat([kv[..., :self.dn], k_pe.expand(B, T, self.h, self.dr)], dim=-1)
        o = attend(q, k, kv[..., self.dn:], 1.0 / math.sqrt(self.dn + self.dr))
        return self.o_proj(o.reshape(B, T, self.h * self.dv))


class MLP(nn.Module):
    def __init__(self, d, d_ff):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = linear(d, d_ff, False), linear(d, d_ff, False), linear(d_ff, d, False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, t = cfg["d_model"], cfg["attention"]["type"]
        self.input_layernorm = RMSNorm(d, cfg["norm_eps"])
        self.self_attn = {"gta": GTAAttention, "mla": MLAAttention}.get(t, SharedMapAttention)(cfg)
        self.post_attention_layernorm = RMSNorm(d, cfg["norm_eps"])
        self.mlp = MLP(d, cfg["d_ff"])

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["d_model"])
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["n_layers"]))
        self.norm = RMSNorm(cfg["d_model"], cfg["norm_eps"])


class Decoder(nn.Module):
    """tokens [B, T+1] -> mean next-token cross-entropy over the B T targets."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Body(cfg)
        if not cfg["tie_embeddings"]:
            self.lm_head = linear(cfg["d_model"], cfg["vocab_size"], False)
        for p in self.parameters():  # a plain N(0, 0.02) start: this model is for checks and timing
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def logits(self, tokens):
        x = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            x = layer(x)
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.cfg["tie_embeddings"] else self.lm_head.weight
        return F.linear(x, head)

    def forward(self, tokens):
        logits = self.logits(tokens[:, :-1])
        return F.cross_entropy(at_least_f32(logits).flatten(0, 1), tokens[:, 1:].flatten())
