#!/usr/bin/env python3
"""Builds an ablation suite's tables and plots from its runs' logs alone.

    scripts/ablate_report.py                                  # every suite under experiments/ablations/
    scripts/ablate_report.py experiments/ablations/xs.yaml [--results DIR]

Reads <results>/runs/<name>/{run.json, metrics.jsonl, eval.json, info.json} (written by
scripts/ablate.py) and <results>/corpus.json, and writes into <results>:

  results.json               every run's numbers and the per-(type, lr) seed statistics
  results.md                 the tables, the commands, card, commits and corpus manifest
  val_loss_vs_tokens.png     validation loss during training, every type (suite learning rate)
  val_loss_vs_kv.png         final validation loss against KV-cache bytes per token (bf16)
  val_loss_vs_attn_flops.png final validation loss against attention FLOPs per token

Definitions (also printed in results.md):
  * val loss, perplexity, bits per byte: `gta eval` of the final checkpoint on the held-out
    split, the suite's fixed number of windows (final_eval), read from the start of the split;
  * train loss: the mean of the last five logged training losses;
  * tokens/s: the median over the run's logged windows (each window is log_every steps; the
    few that include a periodic evaluation are slower, the median leaves them out);
  * attention FLOPs per token: 2 x `gta info`'s attention multiply-adds per token at the
    suite's T (forward; QK^T and the value product over the causal average context), all layers;
  * seed spread: max - min of the final validation loss over the seeds of a (type, lr);
  * the curves of val_loss_vs_tokens.png: gta train's periodic evaluation (eval.every), over
    the first eval.batches x batch_size windows of the held-out split, fewer windows than the
    final evaluation, so their last point is not the table's value.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["mha", "gqa", "mqa", "gva", "gha", "gta", "mla"]
COLORS = {"mha": "#1f77b4", "gqa": "#ff7f0e", "mqa": "#2ca02c", "gva": "#9467bd", "gha": "#8c564b",
          "gta": "#d62728", "mla": "#17becf"}


def fail(msg):
    sys.exit(f"ablate_report: {msg}")


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: {e}")


def read_metrics(path):
    records = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                fail(f"{path}:{i}: {e}")
    return records


def run_record(log_dir, tokens_per_step):
    """One run's numbers from its logs; None fields where the run is not complete."""
    state = read_json(log_dir / "run.json")
    rec = {k: state.get(k) for k in ("name", "type", "seed", "lr", "step", "steps")}
    rec["complete"] = bool(state.get("complete"))
    rec["cards"], rec["commits"] = state.get("cards", []), state.get("commits", [])
    rec["train_commands"] = state.get("train_commands", [])
    metrics = read_metrics(log_dir / "metrics.jsonl") if (log_dir / "metrics.jsonl").is_file() else []
    train = [r for r in metrics if r.get("event") == "train"]
    evals = [r for r in metrics if r.get("event") == "eval"]
    rec["val_curve"] = [[r["step"] * tokens_per_step, r["val_loss"]] for r in evals]
    rec["train_curve"] = [[r["tokens"], r["loss"]] for r in train]
    if not rec["complete"]:
        return rec
    info, ev = read_json(log_dir / "info.json"), read_json(log_dir / "eval.json")
    windows = [r["tokens_per_s"] for r in train if r["step"] > 1]
    rec.update(
        params=info["params"]["total"],
        non_embedding_params=info["params"]["non_embedding"],
        kv_bytes_per_token=info["kv_cache"]["bytes_per_token_bf16"],
        kv_elems_per_token_per_layer=info["kv_cache"]["elems_per_token_per_layer"],
        attn_flops_per_token=2 * info["attention_madds_per_token"]["total"],
        train_flops_per_token=info["train_flops_per_token"],
        tokens_per_s=statistics.median(windows) if windows else None,
        peak_mem_gb=max((r.get("peak_mem_gb", 0) for r in train), default=None) or None,
        train_loss=statistics.fmean(r["loss"] for r in train[-5:]),
        tokens=train[-1]["tokens"],
        val_loss=ev["loss"], val_ppl=ev["perplexity"], val_bpb=ev.get("bits_per_byte"),
        val_tokens=ev["tokens"], eval_command=ev.get("command"), info_command=info.get("command"))
    return rec


def group(records, default_lr):
    """Seed statistics per (type, lr) over the complete runs."""
    groups = {}
    for r in records:
        if r["complete"]:
            lr = r["lr"] if r["lr"] is not None else default_lr
            groups.setdefault((r["type"], lr), []).append(r)
    out = []
    for (typ, lr), runs in groups.items():
        losses = [r["val_loss"] for r in runs]
        first = runs[0]
        out.append({
            "type": typ, "lr": lr, "seeds": [r["seed"] for r in runs], "val_losses": losses,
            "val_loss_mean": statistics.fmean(losses),
            "val_loss_spread": max(losses) - min(losses) if len(losses) > 1 else None,
            "val_bpb_mean": statistics.fmean(r["val_bpb"] for r in runs) if all(r["val_bpb"] for r in runs) else None,
            "val_ppl_mean": statistics.fmean(r["val_ppl"] for r in runs),
            "train_loss_mean": statistics.fmean(r["train_loss"] for r in runs),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs if r["tokens_per_s"]),
            "peak_mem_gb": max((r["peak_mem_gb"] or 0) for r in runs) or None,
            **{k: first[k] for k in ("params", "non_embedding_params", "kv_bytes_per_token",
                                     "kv_elems_per_token_per_layer", "attn_flops_per_token", "tokens")},
        })
    out.sort(key=lambda g: (ORDER.index(g["type"]) if g["type"] in ORDER else 99, g["lr"]))
    return out


def fmt_count(v):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}"


def main_table(groups, default_lr):
    rows = [g for g in groups if g["lr"] == default_lr]
    ref = next((g for g in rows if g["type"] == "gqa"), None)
    lines = ["| type | params | KV bytes/token (bf16) | KV vs GQA | attn FLOPs/token | attn vs GQA | tokens/s | "
             "peak mem (GB) | train loss | val loss | seed spread | val ppl | val bits/byte | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in rows:
        kv = f"{100 * g['kv_bytes_per_token'] / ref['kv_bytes_per_token']:.0f}%" if ref else "-"
        fl = f"{100 * g['attn_flops_per_token'] / ref['attn_flops_per_token']:.0f}%" if ref else "-"
        spread = f"{g['val_loss_spread']:.4f}" if g["val_loss_spread"] is not None else "-"
        bpb = f"{g['val_bpb_mean']:.4f}" if g["val_bpb_mean"] else "-"
        mem = f"{g['peak_mem_gb']:.1f}" if g["peak_mem_gb"] else "-"
        lines.append(f"| {g['type']} | {fmt_count(g['params'])} | {g['kv_bytes_per_token']} | {kv} | "
                     f"{fmt_count(g['attn_flops_per_token'])} | {fl} | {fmt_count(g['tokens_per_s'])} | {mem} | "
                     f"{g['train_loss_mean']:.4f} | {g['val_loss_mean']:.4f} | {spread} | {g['val_ppl_mean']:.3f} | "
                     f"{bpb} | {', '.join(map(str, g['seeds']))} |")
    return lines


def lr_table(groups):
    lrs = sorted({g["lr"] for g in groups})
    types = [t for t in ORDER if sum(1 for g in groups if g["type"] == t) > 1]
    if len(lrs) < 2 or not types:
        return []
    lines = ["| type | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
    for t in types:
        cells = []
        for lr in lrs:
            g = next((g for g in groups if g["type"] == t and g["lr"] == lr), None)
            cells.append(f"{g['val_loss_mean']:.4f}" if g else "-")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def analysis_section(results, records):
    """Per analysed run and layer: mean off-diagonal cosine of the attention maps, and how many
    singular directions hold 90% / 99% of the value cache's energy (gta analyze's definitions)."""
    lines = []
    for r in records:
        path = results / "runs" / r["name"] / "analysis" / "analysis.json"
        if not path.is_file():
            continue
        a = read_json(path)
        lines += ["", f"### {r['name']} ({a['attention']}, {a['windows']} windows of {a['seq_len']} tokens)", "",
                  "| layer | maps | mean cosine between maps | value-cache width | n90 | n99 | n90 centered |",
                  "|---|---|---|---|---|---|---|"]
        for layer in a["layers"]:
            v = layer["value_cache"]
            cos = layer["map_cosine_offdiag_mean"]
            lines.append(f"| {layer['layer']} | {layer['maps']} | {'-' if cos is None else f'{cos:.3f}'} | "
                         f"{v['columns']} ({v['entry']}) | {v['n90']} | {v['n99']} | {v['centered']['n90']} |")
        lines += ["", f"![{r['name']} map similarity](runs/{r['name']}/analysis/map_similarity.png)",
                  f"![{r['name']} value spectrum](runs/{r['name']}/analysis/value_spectrum.png)"]
    if lines:
        lines = ["", "## Attention-map similarity and value-cache spectra (`gta analyze`)"] + lines
    return lines


def plots(records, groups, default_lr, results, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in records:
        if (r["lr"] is None) and r["val_curve"]:
            xs, ys = zip(*r["val_curve"])
            ax.plot([x / 1e6 for x in xs], ys, color=COLORS.get(r["type"]), marker=".",
                    linestyle="-" if r["seed"] == min(q["seed"] for q in records) else "--",
                    label=f"{r['type']} seed {r['seed']}" + ("" if r["complete"] else " (incomplete)"))
    ax.set_xlabel("training tokens (M)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(f"{title}: validation loss during training (lr {default_lr:g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    lo = [y for r in records if r["lr"] is None for _, y in r["val_curve"][len(r["val_curve"]) // 2:]]
    if lo:
        ax.set_ylim(min(lo) - 0.05, max(lo) + 0.3)
    fig.tight_layout()
    fig.savefig(results / "val_loss_vs_tokens.png", dpi=120)
    plt.close(fig)

    rows = [g for g in groups if g["lr"] == default_lr]
    for key, fname, label in (("kv_bytes_per_token", "val_loss_vs_kv.png", "KV-cache bytes per token (bf16, all layers)"),
                              ("attn_flops_per_token", "val_loss_vs_attn_flops.png",
                               "attention FLOPs per token (forward, all layers)")):
        fig, ax = plt.subplots(figsize=(7, 5))
        for g in rows:
            x = g[key] / (1e6 if key == "attn_flops_per_token" else 1)
            lo, hi = min(g["val_losses"]), max(g["val_losses"])
            ax.errorbar([x], [g["val_loss_mean"]], yerr=[[g["val_loss_mean"] - lo], [hi - g["val_loss_mean"]]],
                        fmt="o", color=COLORS.get(g["type"]), capsize=3)
            ax.annotate(g["type"].upper(), (x, g["val_loss_mean"]), textcoords="offset points", xytext=(6, 4))
        ax.set_xscale("log")
        ax.set_xlabel(label + (" (M)" if key == "attn_flops_per_token" else ""))
        ax.set_ylabel("final validation loss (nats/token)")
        ax.set_title(f"{title}: quality against {'cache size' if key.startswith('kv') else 'attention cost'}")
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(results / fname, dpi=120)
        plt.close(fig)


def report(suite_path, results):
    suite = yaml.safe_load(Path(suite_path).read_text())
    results = Path(results) if results else ROOT / "experiments" / "ablations" / suite["name"]
    if not (results / "runs").is_dir():
        fail(f"{results}/runs: no run logs (run scripts/ablate.py {suite_path} first)")
    tcfg = suite["config"]["train"]
    # One process per suite run (the runner starts no mpirun): a step is one micro-batch unless
    # global_batch_tokens asks for accumulation.
    tokens_per_step = tcfg.get("global_batch_tokens") or tcfg["batch_size"] * tcfg["seq_len"]
    default_lr = float(suite["config"]["optim"]["lr"])
    order = {f"{r['type']}-s{r['seed']}" + (f"-lr{float(r['lr']):.0e}" if "lr" in r else ""): i
             for i, r in enumerate(suite["runs"])}
    dirs = sorted((d for d in (results / "runs").iterdir() if (d / "run.json").is_file()),
                  key=lambda d: order.get(d.name, len(order)))
    records = [run_record(d, tokens_per_step) for d in dirs]
    groups = group(records, default_lr)
    corpus = read_json(results / "corpus.json") if (results / "corpus.json").is_file() else None
    out = {"suite": suite["name"], "suite_file": str(Path(suite_path)), "corpus": corpus, "config": suite["config"],
           "final_eval": suite["final_eval"], "default_lr": default_lr, "runs": records, "groups": groups}
    (results / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    plots(records, groups, default_lr, results, f"suite {suite['name']}")

    done = [r for r in records if r["complete"]]
    pending = [n for n in order if n not in {r["name"] for r in done}]
    cards = sorted({c for r in records for c in r["cards"]})
    commits = sorted({c for r in records for c in r["commits"]})
    md = [f"# Ablation suite `{suite['name']}`", "",
          f"Generated by `scripts/ablate_report.py {suite_path}` from the run logs in `runs/`; do not edit by hand.", "",
          *([suite["description"].strip(), ""] if suite.get("description") else []),
          f"- suite file: `{suite_path}`; models: `{suite['models']}/<type>.yaml`; corpus: `{suite.get('corpus')}`",
          f"- training (identical for every run): `{json.dumps(suite['config'])}`",
          f"- tokens per run: {fmt_count(tcfg['steps'] * tokens_per_step)} "
          f"({tcfg['steps']} steps x {tokens_per_step} tokens); final evaluation: {suite['final_eval']['windows']} "
          f"windows of {tcfg['seq_len']} tokens from the start of the held-out split",
          f"- card(s): {', '.join(cards) or '-'}; commit(s): {', '.join(commits) or '-'}",
          f"- complete runs: {len(done)} of {len(order)}" + (f"; not yet run or incomplete: {', '.join(pending)}"
                                                           if pending else ""), "",
          f"## Attention types at the suite's learning rate ({default_lr:g})", ""]
    md += main_table(groups, default_lr)
    sweep = lr_table(groups)
    if sweep:
        md += ["", "## Learning-rate sweep (final validation loss)", ""] + sweep
    md += ["", "## Plots", "", "![val loss vs tokens](val_loss_vs_tokens.png)",
           "![val loss vs KV bytes](val_loss_vs_kv.png)", "![val loss vs attention FLOPs](val_loss_vs_attn_flops.png)"]
    md += analysis_section(results, records)
    md += ["", "## Definitions", ""]
    md += [line.strip() for line in __doc__.split("Definitions (also printed in results.md):")[1].strip().splitlines()]
    md += ["", "## Commands", "", "Each run (from its run.json and eval/info records):", "", "```"]
    for r in done:
        md += r["train_commands"] + [r["eval_command"], r["info_command"]]
    md += ["```"]
    if corpus:
        md += ["", "## Corpus manifest", "", "```json", json.dumps(corpus, indent=2), "```"]
    (results / "results.md").write_text("\n".join(md) + "\n")
    print(f"{results}/results.md: {len(done)} complete runs, {len(groups)} (type, lr) groups")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", nargs="?", help="experiments/ablations/<suite>.yaml (default: every suite with logs)")
    ap.add_argument("--results", help="the suite's log directory (default: experiments/ablations/<name>)")
    args = ap.parse_args()
    if args.suite:
        report(args.suite, args.results)
        return
    if args.results:
        fail("--results needs a suite file")
    suites = sorted((ROOT / "experiments" / "ablations").glob("*.yaml"))
    built = 0
    for s in suites:
        name = yaml.safe_load(s.read_text())["name"]
        if (ROOT / "experiments" / "ablations" / name / "runs").is_dir():
            report(str(s.relative_to(ROOT)), None)
            built += 1
    if not built:
        fail("no suite under experiments/ablations/ has run logs yet")


if __name__ == "__main__":
    main()
