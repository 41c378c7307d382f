#!/usr/bin/env python3
"""A whole training step, gta against PyTorch's best, in one call: for each model config,
`gta bench train` and the same model in PyTorch (bench/torch_model.py, the same shapes and
parameter names) compiled with torch.compile, on random tokens at the same batch and length.

    bench/train_compare.py --gta build-gpu/gta configs/models/s/{gta,gqa,mla,mha}.yaml \
        [--batch 8] [--seq-len 2048] [--steps 10] [--warmup 3] [--vocab-size 32000] [--out FILE.jsonl]

The PyTorch step: f32 master weights under torch.autocast(bf16) (gta's bf16 mode keeps f32
master weights and Adam moments too), the compiled model's forward and loss, backward, gradient
clipping to norm 1, fused AdamW (lr 3e-4, weight decay 0.1), gradients set to None. Timed with CUDA
events over --steps after --warmup untimed steps (the compilation happens there); peak memory
is torch.cuda.max_memory_allocated over the timed steps. On a machine without a GPU,
`--device cpu --dtype f32 --no-compile` runs both sides in f32 (a smoke test of the script).

Prints a table (tokens/s of each, the ratio gta / PyTorch, peak GB of each) and, with --out,
one JSON object per config.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import Decoder, model_config  # noqa: E402


def gta_bench(a, config):
    cmd = [a.gta, "bench", "train", config, "--device", a.device, "--dtype", a.dtype, "--batch", str(a.batch),
           "--seq-len", str(a.seq_len), "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--vocab-size", str(a.vocab_size), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def torch_bench(a, config):
    cfg = model_config(a.gta, config, a.vocab_size)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = Decoder(cfg).to(dev)
    fused = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, **fused)
    forward = model if a.no_compile else torch.compile(model)
    autocast = a.dtype == "bf16"
    tokens = torch.randint(0, cfg["vocab_size"], (a.batch, a.seq_len + 1), device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            loss = forward(tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(a.steps):
            loss = step()
        stop.record()
        torch.cuda.synchronize()
        secs = start.elapsed_time(stop) / 1e3
        peak = torch.cuda.max_memory_allocated() / 1e9
    else:
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        secs, peak = time.perf_counter() - t0, None
    return {"tokens_per_s": a.batch * a.seq_len * a.steps / secs, "peak_allocated_gb": peak,
            "last_loss": loss.item(), "compiled": not a.no_compile, "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--gta", required=True, help="the gta binary")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--no-compile", action="store_true", help="eager PyTorch (a smoke test, not a baseline)")
    ap.add_argument("--out", help="append one JSON object per config to this file")
    a = ap.parse_args()

    rows = []
    print(f"B{a.batch} T{a.seq_len} {a.dtype} on {a.device}"
          + (f" ({torch.cuda.get_device_name()})" if a.device.startswith("cuda") else ""), flush=True)
    print("| config | gta tokens/s | PyTorch tokens/s | gta / PyTorch | gta peak GB | PyTorch peak GB |")
    print("|---|---|---|---|---|---|", flush=True)
    for config in a.configs:
        g = gta_bench(a, config)
        t = torch_bench(a, config)
        ratio = g["tokens_per_s"] / t["tokens_per_s"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"| {config} | {g['tokens_per_s']:,.0f} | {t['tokens_per_s']:,.0f} | {ratio:.2f}x | "
              f"{fmt(g.get('peak_allocated_gb'))} | {fmt(t['peak_allocated_gb'])} |", flush=True)
        rows.append({"config": config, "batch": a.batch, "seq_len": a.seq_len, "dtype": a.dtype, "gta": g,
                     "pytorch": t, "ratio": ratio})
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    if a.out:
        with open(a.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
