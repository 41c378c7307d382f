#!/usr/bin/env python3
"""Draws the plots of `gta analyze` from its analysis.json (gta analyze runs this itself):

  map_similarity.png  per layer, the maps x maps matrix of mean cosine similarity between the
                      attention maps' rows (1 = identical maps), one panel per layer
  value_spectrum.png  per layer, the singular values of the value cache X divided by the largest
                      (log scale), of X and of X minus its mean row, and the share of sum s_i^2
                      held by the first k components

The definitions are in analysis.json ("definitions") and src/analysis/*.h.
Usage: plot_analysis.py DIR/analysis.json [--out DIR]   (default: the JSON's directory)
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)


def title_of(a):
    """'GTA: run/checkpoints/step_000100 (8 windows x 1024 tokens)': the checkpoint's last directories."""
    where = "/".join(os.path.dirname(os.path.abspath(a["checkpoint"])).split(os.sep)[-3:])
    return f"{a['attention'].upper()}: {where} ({a['windows']} windows x {a['seq_len']} tokens)"


def plot_maps(a, path):
    layers = a["layers"]
    n = len(layers)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1, 3.2 * rows + 0.6), squeeze=False)
    image = None
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, layer in zip(axes.flat, layers):
        m = layer["map_cosine"]
        maps = layer["maps"]
        image = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        off = layer["map_cosine_offdiag_mean"]
        ax.set_title(f"layer {layer['layer']}" + (f": off-diag {off:.3f}" if off is not None else ""), fontsize=9)
        ticks = range(maps) if maps <= 16 else range(0, maps, max(1, maps // 8))
        ax.set_xticks(list(ticks))
        ax.set_yticks(list(ticks))
        ax.tick_params(labelsize=7)
        if maps <= 8:
            for i in range(maps):
                for j in range(maps):
                    ax.text(j, i, f"{m[i][j]:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if m[i][j] > 0.6 else "white")
    fig.suptitle(f"Attention-map cosine similarity, map x map — {title_of(a)}", fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="mean cos(P_a[t,:], P_b[t,:])")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cumulative_energy(s):
    """Share of sum s_i^2 held by the first k values, k = 1..len(s)."""
    total = sum(x * x for x in s)
    run, out = 0.0, []
    for x in s:
        run += x * x
        out.append(run / total if total > 0 else 0.0)
    return out


def plot_spectra(a, path):
    fig, (ax_s, ax_c, ax_e) = plt.subplots(1, 3, figsize=(16, 4.6))
    cmap = plt.get_cmap("viridis")
    n = len(a["layers"])
    for layer in a["layers"]:
        v = layer["value_cache"]
        color = cmap(layer["layer"] / max(1, n - 1))
        for ax, spec in ((ax_s, v), (ax_c, v["centered"])):
            s = spec["singular_values"]
            # Zeros cannot be drawn on a log axis: clip at the precision floor (definitions).
            ax.semilogy(range(1, len(s) + 1), [max(x, 1e-8) for x in s], color=color, lw=1.2,
                        label=f"layer {layer['layer']} (n90 {spec['n90']}, n99 {spec['n99']})")
        for spec, style in ((v, "-"), (v["centered"], "--")):
            e = cumulative_energy(spec["singular_values"])
            ax_e.plot(range(1, len(e) + 1), e, style, color=color, lw=1.2)
    v0 = a["layers"][0]["value_cache"] if n else {"entry": "?", "columns": 0}
    for ax, what in ((ax_s, "X"), (ax_c, "X - mean row")):
        ax.set_xlabel("component i")
        ax.set_ylabel("s_i / s_1")
        ax.set_title(f"Singular values of {what}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for frac in (0.9, 0.99):
        ax_e.axhline(frac, color="gray", ls=":", lw=0.8)
    ax_e.set_xlabel("components k")
    ax_e.set_ylabel("share of sum s_i^2 in the first k")
    ax_e.set_title("Cumulative energy (solid: X, dashed: centered)", fontsize=10)
    ax_e.grid(True, alpha=0.3)
    fig.suptitle(f"Value cache X: '{v0['entry']}', {v0['columns']} columns per token — {title_of(a)}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("analysis", help="analysis.json written by gta analyze")
    p.add_argument("--out", help="directory for the PNGs (default: the JSON's directory)")
    args = p.parse_args()
    try:
        with open(args.analysis) as f:
            a = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot_analysis.py: cannot read {args.analysis}: {e}")
    for key in ("attention", "checkpoint", "windows", "seq_len", "layers"):
        if key not in a:
            sys.exit(f"plot_analysis.py: {args.analysis} has no '{key}' (not written by gta analyze?)")
    out = args.out or os.path.dirname(os.path.abspath(args.analysis))
    os.makedirs(out, exist_ok=True)
    plot_maps(a, os.path.join(out, "map_similarity.png"))
    plot_spectra(a, os.path.join(out, "value_spectrum.png"))
    print(f"wrote {os.path.join(out, 'map_similarity.png')} and {os.path.join(out, 'value_spectrum.png')}")


if __name__ == "__main__":
    main()
