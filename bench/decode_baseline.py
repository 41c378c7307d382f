#!/usr/bin/env python3
"""PyTorch baseline for `gta bench decode`: the same model shapes (read from `gta info --json`),
the same KV-cache layout and the same (batch, context) points, decoded by plain PyTorch in bf16
with the whole decode step captured once as a CUDA graph and replayed.

    bench/decode_baseline.py GTA CONFIG.yaml --batch 1,16 --context 2048,8192 [--new-tokens 32]

Prints one JSON line per point: decode tokens/s and ms per step of the faster of two ways to run
SDPA over shared key heads (MODES below; both are in the line), or "skipped" and why.

The step, per layer: RMSNorm, q/k/v projections, RoPE (rotate-half) at the position held in a
device tensor, the new k/v written into the cache [B, capacity, heads, width] in place
(index_copy_), attention through F.scaled_dot_product_attention over the cache read in place (a
transposed view, no copy) with a boolean mask of the positions <= the current one (enable_gqa, or
the query heads of a key head folded into query rows), the output projection; then the SwiGLU MLP;
the final norm and the tied or untied head. GTA follows docs/attention.md: SDPA over the shared key
and the latent value cache c, then per map u_i = tile(o_i, e) + o_i Wb_i, the gate
sigmoid(x Wg + bg) and Wo. Types without an SDPA form here (gva, gha, mla) are reported as skipped.

The cache holds random values: a step's time does not depend on them (gta fills its cache by a
real prefill, and reports prefill speed; this script does not). Timing: `warmup` replays, then
`new_tokens` replays between two CUDA events.
"""
import argparse
import json
import subprocess
import sys

import torch
import torch.nn.functional as F


def model_config(gta, config, vocab):
    out = subprocess.run([gta, "info", config, "--json", "--vocab-size", str(vocab)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["config"]


def rms_norm(x, w, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


class Rope:
    """Rotate-half RoPE over the first `rot` features at the position in `pos` (a device tensor)."""

    def __init__(self, rot, theta, dev):
        self.h = rot // 2
        self.inv = theta ** (-torch.arange(0, self.h, device=dev, dtype=torch.float64) * 2 / rot)

    def __call__(self, x, pos):  # x [B, H, D]
        a = (pos.double() * self.inv).float()
        c, s = torch.cos(a).to(x.dtype), torch.sin(a).to(x.dtype)
        x1, x2 = x[..., :self.h], x[..., self.h:2 * self.h]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s, x[..., 2 * self.h:]], dim=-1)


# How SDPA sees shared key heads: "enable_gqa" (one query row per head, SDPA's GQA support) and
# "fold" (a key head's query heads as rows of one query block: no expansion of k and v in any
# backend). Both are measured; a point reports the faster.
MODES = ("enable_gqa", "fold")


def cfg_heads(cfg):
    """(n_q, n_k, n_v) of the attention as this script lays it out."""
    a, h = cfg["attention"], cfg["n_heads"]
    if a["type"] == "gta":
        return a["n_q_heads"], a["n_k_heads"], a["n_v_heads"]
    nk = {"mha": h, "gqa": a.get("n_kv_heads", 0), "mqa": 1}[a["type"]]
    return h, nk, nk


class Decoder:
    def __init__(self, cfg, B, cap, dev, mode):
        a = cfg["attention"]
        self.cfg, self.a, self.B, self.cap, self.mode = cfg, a, B, cap, mode
        self.type = a["type"]
        d, h = cfg["d_model"], cfg["n_heads"]
        self.d, self.h, self.hd = d, h, d // h
        dt = torch.bfloat16

        def w(*shape):
            return torch.randn(*shape, device=dev, dtype=dt) * 0.02

        bias = a.get("qkv_bias", False)
        self.nq, self.nk, self.nv = cfg_heads(cfg)
        if self.type == "gta":
            self.dqk, self.dv = a["d_qk"], a["d_latent"]
            self.e = d // (self.nq * self.dv)
        else:
            self.dqk, self.dv = self.hd, self.hd
        self.rope = Rope(self.dqk, cfg["rope_theta"], dev)
        self.E = w(cfg["vocab_size"], d)
        self.head = self.E if cfg["tie_embeddings"] else w(cfg["vocab_size"], d)
        self.final_norm = torch.ones(d, device=dev, dtype=dt)
        self.layers = []
        for _ in range(cfg["n_layers"]):
            L = {"n1": torch.ones(d, device=dev, dtype=dt), "n2": torch.ones(d, device=dev, dtype=dt),
                 "wq": w(self.nq * self.dqk, d), "wk": w(self.nk * self.dqk, d), "wv": w(self.nv * self.dv, d),
                 "bq": w(self.nq * self.dqk) if bias else None, "bk": w(self.nk * self.dqk) if bias else None,
                 "bv": w(self.nv * self.dv) if bias else None,
                 "gate": w(cfg["d_ff"], d), "up": w(cfg["d_ff"], d), "down": w(d, cfg["d_ff"]),
                 "kc": torch.randn(B, cap, self.nk, self.dqk, device=dev, dtype=dt),
                 "vc": torch.randn(B, cap, self.nv, self.dv, device=dev, dtype=dt)}
            if self.type == "gta":
                L["wo"] = w(d, d)
                L["wg"], L["bg"] = w(d, d), w(d)
                L["wb"] = w(self.nq, self.dv, self.e * self.dv)
            else:
                L["wo"] = w(d, h * self.hd)
            self.layers.append(L)
        self.tokens = torch.zeros(B, dtype=torch.long, device=dev)
        self.pos = torch.zeros(1, dtype=torch.long, device=dev)
        self.slots = torch.arange(cap, device=dev)

    def attention(self, L, x, mask):
        B = self.B
        q = self.rope(F.linear(x, L["wq"], L["bq"]).view(B, self.nq, self.dqk), self.pos)
        k = self.rope(F.linear(x, L["wk"], L["bk"]).view(B, self.nk, self.dqk), self.pos)
        v = F.linear(x, L["wv"], L["bv"]).view(B, self.nv, self.dv)
        L["kc"].index_copy_(1, self.pos, k.unsqueeze(1))
        L["vc"].index_copy_(1, self.pos, v.unsqueeze(1))
        kc, vc = L["kc"].transpose(1, 2), L["vc"].transpose(1, 2)  # [B, heads, cap, width], in place
        if self.mode == "fold":  # a key head's G query heads as G query rows: no GQA expansion
            o = F.scaled_dot_product_attention(q.view(B, self.nk, self.nq // self.nk, self.dqk), kc, vc,
                                               attn_mask=mask)  # [B, nk, G, dv]
        else:
            o = F.scaled_dot_product_attention(q.unsqueeze(2), kc, vc, attn_mask=mask,
                                               enable_gqa=self.nk < self.nq)  # [B, nq, 1, dv]
        if self.type != "gta":
            return F.linear(o.reshape(B, self.nq * self.dv), L["wo"])
        o = o.view(B, self.nq, self.dv)
        dec = torch.bmm(o.transpose(0, 1), L["wb"]).transpose(0, 1).view(B, self.nq, self.e, self.dv)
        u = (dec + o.unsqueeze(2)).reshape(B, self.d)
        g = torch.sigmoid(F.linear(x, L["wg"], L["bg"]))
        return F.linear(g * u, L["wo"])

    def step(self):
        eps = self.cfg["norm_eps"]
        mask = (self.slots <= self.pos).view(1, 1, 1, self.cap)
        x = self.E[self.tokens]
        for L in self.layers:
            x = x + self.attention(L, rms_norm(x, L["n1"], eps), mask)
            hmid = rms_norm(x, L["n2"], eps)
            x = x + F.linear(F.silu(F.linear(hmid, L["gate"])) * F.linear(hmid, L["up"]), L["down"])
        logits = F.linear(rms_norm(x, self.final_norm, eps), self.head)
        self.pos.add_(1)
        return logits


def bench_point(cfg, B, C, new_tokens, warmup, dev, mode):
    cap = C + warmup + new_tokens + 4
    m = Decoder(cfg, B, cap, dev, mode)
    m.tokens.random_(0, cfg["vocab_size"])
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # eager warm-up before capture, as torch.cuda.graph asks
        for _ in range(3):
            m.pos.fill_(C)
            m.step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        m.step()
    m.pos.fill_(C)
    for _ in range(warmup):
        g.replay()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(new_tokens):
        g.replay()
    b.record()
    b.synchronize()
    ms = a.elapsed_time(b) / new_tokens
    return {"decode_tokens_per_s": B * 1e3 / ms, "ms_per_step": ms}


def cache_bytes(cfg, B, cap):
    a, hd = cfg["attention"], cfg["d_model"] // cfg["n_heads"]
    _, nk, nv = cfg_heads(cfg)
    per = nk * a["d_qk"] + nv * a["d_latent"] if a["type"] == "gta" else (nk + nv) * hd
    return 2 * per * cfg["n_layers"] * B * cap


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("gta", help="the gta binary (reads the config through `gta info --json`)")
    p.add_argument("config")
    p.add_argument("--batch", default="1")
    p.add_argument("--context", default="2048")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--vocab-size", type=int, default=32000, help="when the config leaves it to the tokenizer")
    p.add_argument("--max-cache-gb", type=float, default=0, help="skip points whose cache is larger (0: none)")
    o = p.parse_args()
    cfg = model_config(o.gta, o.config, o.vocab_size)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    for B in map(int, o.batch.split(",")):
        for C in map(int, o.context.split(",")):
            row = {"config": o.config, "attention": cfg["attention"]["type"], "batch": B, "context": C,
                   "new_tokens": o.new_tokens, "impl": "pytorch sdpa, cuda graph", "torch": torch.__version__}
            need = cache_bytes(cfg, B, C + o.warmup + o.new_tokens + 4) if row["attention"] in (
                "mha", "gqa", "mqa", "gta") else None
            if need is None:
                row["skipped"] = "no SDPA baseline for this attention type"
            elif o.max_cache_gb > 0 and need > o.max_cache_gb * 1e9:
                row["skipped"] = "a cache of %.1f GB > --max-cache-gb %g" % (need / 1e9, o.max_cache_gb)
            else:
                for mode in MODES:
                    if mode == "fold" and cfg_heads(cfg)[1] != cfg_heads(cfg)[2]:
                        continue  # folding needs one value head per key head
                    try:
                        row[mode] = dict(bench_point(cfg, B, C, o.new_tokens, o.warmup, dev, mode), sdpa=mode)
                    except (torch.OutOfMemoryError, RuntimeError) as e:
                        row[mode] = {"error": str(e).split("\n")[0]}
                    torch.cuda.empty_cache()
                best = [row[m] for m in MODES if "decode_tokens_per_s" in row.get(m, {})]
                if best:
                    row.update(max(best, key=lambda r: r["decode_tokens_per_s"]))
                else:
                    row["skipped"] = "; ".join("%s: %s" % (m, row[m]["error"]) for m in MODES if m in row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
