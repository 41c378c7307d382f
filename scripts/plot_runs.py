#!/usr/bin/env python3
"""Training and validation loss curves of gta runs on one picture; `gta plot` runs this script.

    plot_runs.py [--out FILE.png] [--x tokens|steps] RUN [RUN ...]

Each RUN is a directory written by `gta train`. From its metrics.jsonl, the training loss of the
"train" records is a solid line and the validation loss of the "eval" records a dashed line with
markers, both in the run's colour. On the tokens axis an eval record sits at its step times the
run's tokens per step (from its train records).
"""
import argparse
import json
import os
import sys


def read_run(run):
    """(train [(step, tokens, loss)], eval [(step, val_loss)]) of a run directory."""
    path = os.path.join(run, "metrics.jsonl")
    train, evals = [], []
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit(f"plot_runs: cannot read {path}: {e.strerror}")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):
                break  # the line a running gta train is writing
            sys.exit(f"plot_runs: {path}:{n}: not a JSON object ({e.msg})")
        if r.get("event") == "train":
            train.append((r["step"], r["tokens"], r["loss"]))
        elif r.get("event") == "eval" and r.get("val_loss") is not None:
            evals.append((r["step"], r["val_loss"]))
    if not train and not evals:
        sys.exit(f"plot_runs: {path} holds no train or eval records yet")
    return train, evals


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories (train.out_dir of gta train)")
    ap.add_argument("--out", default="loss_curves.png", help="the picture to write")
    ap.add_argument("--x", choices=["tokens", "steps"], default="tokens", help="the x axis")
    args = ap.parse_args()

    try:
        import matplotlib
    except ImportError:
        sys.exit("plot_runs: needs matplotlib (Debian/Ubuntu: apt-get install python3-matplotlib)")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for i, run in enumerate(args.runs):
        train, evals = read_run(run)
        colour = f"C{i % 10}"
        name = os.path.normpath(run)
        # Tokens per optimizer step is constant within a run: the last train record's ratio.
        per_step = train[-1][1] / train[-1][0] if train else None
        if train:
            xs = [t if args.x == "tokens" else s for s, t, _ in train]
            ax.plot(xs, [loss for _, _, loss in train], color=colour, lw=1.2, label=f"{name} train")
        if evals and (args.x == "steps" or per_step):
            xs = [s * per_step if args.x == "tokens" else s for s, _ in evals]
            ax.plot(xs, [v for _, v in evals], color=colour, ls="--", marker="o", ms=4, label=f"{name} val")
    ax.set_xlabel("tokens seen" if args.x == "tokens" else "optimizer step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title("training and validation loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(args.out)
    except (OSError, ValueError) as e:
        sys.exit(f"plot_runs: cannot write {args.out}: {e}")
    print(f"gta plot: wrote {args.out} ({len(args.runs)} run{'s' if len(args.runs) > 1 else ''}, x = {args.x})")


if __name__ == "__main__":
    main()
