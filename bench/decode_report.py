#!/usr/bin/env python3
"""Turns the JSON of bench/decode_grid.sh (DIR/gta.jsonl, DIR/torch.jsonl, DIR/gpu.txt,
commit.txt, date.txt) into a Markdown table (gta's decode tokens/s, ms per step and share of the
memory roofline beside PyTorch's tokens/s and the ratio, per config, batch and context) and a
picture of decode tokens/s against context, gta and PyTorch, GTA-1B and GQA-1B, one panel per
batch (matplotlib).

    bench/decode_report.py DIR --md bench/results/decode_h200.md --png bench/results/decode_h200.png
"""
import argparse
import json
import os


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def read_text(path, default="unknown"):
    return open(path).read().strip() if os.path.exists(path) else default


def name_of(config):
    base = os.path.splitext(os.path.basename(config))[0]
    return base.upper() if "-" in base else "%s-S" % base.upper()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir")
    p.add_argument("--md", required=True)
    p.add_argument("--png", required=True)
    o = p.parse_args()
    gta = read_jsonl(os.path.join(o.dir, "gta.jsonl"))
    torch = {(r["config"], r["batch"], r["context"]): r for r in read_jsonl(os.path.join(o.dir, "torch.jsonl"))}
    card = read_text(os.path.join(o.dir, "gpu.txt"))
    lines = ["# Decode speed: gta vs PyTorch (%s)" % card, "",
             "Card: %s. Commit: %s. Date: %s. `bench/decode_grid.sh` (gta bench decode, bf16, random weights, "
             "cache filled by a real prefill; PyTorch: bench/decode_baseline.py, SDPA over the same cache layout, "
             "CUDA-graph replay, the faster of enable_gqa and the query heads folded per key head). Tokens/s = batch x steps / time; roofline = (weight bytes + cache bytes read per "
             "step) / the copy bandwidth measured in the same process." % (
                 card, read_text(os.path.join(o.dir, "commit.txt")), read_text(os.path.join(o.dir, "date.txt"))),
             "",
             "| model | batch | context | gta tokens/s | gta ms/step | of roofline | prefill tokens/s | PyTorch tokens/s (SDPA form) | gta / PyTorch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in gta:
        key = (r["config"], r["batch"], r["context"])
        t = torch.get(key, {})
        if "skipped" in r:
            lines.append("| %s | %d | %d | skipped: %s | | | | | |" % (name_of(r["config"]), r["batch"], r["context"],
                                                                     r["skipped"]))
            continue
        tt = t.get("decode_tokens_per_s")
        lines.append("| %s | %d | %d | %.0f | %.3f | %.0f%% | %.0f | %s | %s |" % (
            name_of(r["config"]), r["batch"], r["context"], r["decode_tokens_per_s"], r["ms_per_step"],
            r["roofline_pct"], r["prefill_tokens_per_s"],
            "%.0f (%s)" % (tt, t.get("sdpa", "?")) if tt else t.get("skipped", "-"),
            "%.2fx" % (r["decode_tokens_per_s"] / tt) if tt else "-"))
    # GTA-1B against GQA-1B: the paper's inference claim, measured.
    by = {(name_of(r["config"]), r["batch"], r["context"]): r for r in gta if "skipped" not in r}
    pairs = [(b, c) for (n, b, c) in by if n == "GTA-1B" and ("GQA-1B", b, c) in by]
    if pairs:
        lines += ["", "GTA-1B over GQA-1B (gta, decode tokens/s):", "", "| batch | context | GTA-1B / GQA-1B |",
                  "|---|---|---|"]
        for b, c in sorted(pairs):
            lines.append("| %d | %d | %.2fx |" % (b, c, by[("GTA-1B", b, c)]["decode_tokens_per_s"] /
                                                   by[("GQA-1B", b, c)]["decode_tokens_per_s"]))
    with open(o.md, "w") as f:
        f.write("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    batches = sorted({r["batch"] for r in gta})
    fig, axes = plt.subplots(1, max(1, len(batches)), figsize=(5 * max(1, len(batches)), 4), squeeze=False)
    for ax, b in zip(axes[0], batches):
        for model, color in (("GTA-1B", "tab:blue"), ("GQA-1B", "tab:orange")):
            for src, style, label in ((gta, "-o", "gta"), (list(torch.values()), "--s", "PyTorch")):
                pts = sorted((r["context"], r["decode_tokens_per_s"]) for r in src
                             if name_of(r["config"]) == model and r["batch"] == b and "decode_tokens_per_s" in r)
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], style, color=color, label="%s %s" % (model, label))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("decode tokens/s")
        ax.set_title("batch %d" % b)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Decode on %s" % card)
    fig.tight_layout()
    fig.savefig(o.png, dpi=120)


if __name__ == "__main__":
    main()
