#!/usr/bin/env python3
"""Runs an ablation suite (experiments/ablations/<suite>.yaml) with `gta`, resumably.

    scripts/ablate.py experiments/ablations/xs.yaml [--deadline-s 540] [--gta build/gta]

Each run of the suite is one `gta train` of a model family's attention type
(`<models>/<type>.yaml`) with the suite's shared data, schedule and optimizer, and its own
seed (and learning rate where the run sets one). Runs go in the suite's order:

  * a run whose log directory holds run.json with "complete": true is skipped;
  * a run with a checkpoint in its run directory is resumed (`gta train --resume`);
  * otherwise it starts fresh (a run directory without a checkpoint is started over).

With --deadline-s the runner stops a training before the budget ends (SIGTERM: gta saves a
checkpoint and exits) and starts nothing it cannot begin; calling it again carries on. After a
run's last step it evaluates the newest checkpoint on the held-out split (a fixed number of
windows, `final_eval`) and records the model's sizes and costs (`gta info`).

Outputs per run, in <results>/runs/<name>/ (small, meant to be committed): config.yaml and
metrics.jsonl (from the run directory), eval.json, info.json and run.json (status, commands,
card, commit, wall time); for the runs the suite's `analyze` names, analysis/ (`gta analyze`
of the final checkpoint: head-map similarity and value-cache spectra, JSON and PNGs). Checkpoints stay in <runs>/<name>/ (large, not committed).
scripts/ablate_report.py builds the suite's tables and plots from these logs alone.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def fail(msg):
    sys.exit(f"ablate: {msg}")


def load_suite(path):
    """The suite file, checked: every key the runner reads, with the file named in errors."""
    try:
        suite = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        fail(f"{path}: cannot read the suite: {e}")
    if not isinstance(suite, dict):
        fail(f"{path}: expected a mapping at the top level")
    known = {"name", "corpus", "models", "data", "config", "final_eval", "runs", "description", "analyze"}
    for key in suite:
        if key not in known:
            fail(f"{path}: unknown key '{key}' (expected one of {', '.join(sorted(known))})")
    for key in ("name", "models", "data", "config", "final_eval", "runs"):
        if key not in suite:
            fail(f"{path}: missing key '{key}'")
    if not isinstance(suite["runs"], list) or not suite["runs"]:
        fail(f"{path}: runs: expected a non-empty list of {{type, seed[, lr]}}")
    names = set()
    for i, run in enumerate(suite["runs"]):
        if not isinstance(run, dict) or "type" not in run or "seed" not in run:
            fail(f"{path}: runs[{i}]: expected a mapping with 'type' and 'seed', got {run!r}")
        extra = set(run) - {"type", "seed", "lr"}
        if extra:
            fail(f"{path}: runs[{i}]: unknown key(s) {', '.join(sorted(extra))} (type, seed, lr)")
        model = ROOT / suite["models"] / f"{run['type']}.yaml"
        if not model.is_file():
            fail(f"{path}: runs[{i}]: no model config {model.relative_to(ROOT)} for type '{run['type']}'")
        name = run_name(run)
        if name in names:
            fail(f"{path}: runs[{i}]: run {name} is listed twice")
        names.add(name)
    for key in ("windows", "batch_size"):
        if not isinstance(suite["final_eval"].get(key), int) or suite["final_eval"][key] < 1:
            fail(f"{path}: final_eval.{key}: expected a positive integer")
    analyze = suite.get("analyze", {"runs": [], "windows": 1})
    if (not isinstance(analyze, dict) or set(analyze) != {"runs", "windows"} or not isinstance(analyze["windows"], int)
            or analyze["windows"] < 1 or not set(analyze["runs"]) <= names):
        fail(f"{path}: analyze: expected {{runs: [names of this suite's runs], windows: N >= 1}}, got {analyze!r}")
    if "seed" in suite["config"].get("train", {}):
        fail(f"{path}: config.train.seed: the seed is set per run (runs[].seed)")
    if "out_dir" in suite["config"].get("train", {}) or "data" in suite["config"]:
        fail(f"{path}: config: train.out_dir and data are set by the runner (data: is a top-level key)")
    for key in ("steps", "seq_len"):
        if not isinstance(suite["config"].get("train", {}).get(key), int):
            fail(f"{path}: config.train.{key}: expected an integer")
    return suite


def run_name(run):
    """gta-s1, or gta-s1-lr2e-03 for a run with its own learning rate."""
    name = f"{run['type']}-s{run['seed']}"
    return name + (f"-lr{float(run['lr']):.0e}" if "lr" in run else "")


def run_config(suite, run, out_dir, cfg_path):
    """The run's gta config: the model family's file as base, the suite's sections, the run's seed/lr."""
    model = (ROOT / suite["models"] / f"{run['type']}.yaml").resolve()
    cfg = {"base": os.path.relpath(model, cfg_path.parent.resolve())}
    for section, values in suite["config"].items():
        cfg[section] = dict(values)
    cfg["data"] = dict(suite["data"])
    cfg.setdefault("train", {})["seed"] = run["seed"]
    cfg["train"]["out_dir"] = str(out_dir)
    if "lr" in run:
        cfg.setdefault("optim", {})["lr"] = float(run["lr"])
    return cfg


def has_checkpoint(run_dir):
    """A complete checkpoints/step_N/ directory (gta writes it under a temporary name, then renames)."""
    return any((d / "trainer.json").is_file() for d in (run_dir / "checkpoints").glob("step_*") if d.is_dir())


def read_metrics(path):
    """A run directory's metrics.jsonl. A run killed while writing can end in half a line (gta drops
    it on --resume): skipped. A broken line before the last is an error naming it."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i < len(lines):
                fail(f"{path}:{i}: not a JSON line ({e})")
    return records


def last_train_step(records):
    steps = [r["step"] for r in records if r.get("event") == "train"]
    return max(steps) if steps else 0


def card_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "cpu"


def commit_id():
    if os.environ.get("GTA_COMMIT"):
        return os.environ["GTA_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=30)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown"


class Clock:
    """The runner's time budget (--deadline-s); unlimited when none is given."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds if seconds else None

    def left(self):
        return float("inf") if self.end is None else self.end - time.monotonic()


def train(gta, cfg_path, resume, clock, reserve_s, log_path):
    """Runs gta train until it ends or the budget (less reserve_s) is spent; returns its exit code."""
    cmd = [gta, "train", str(cfg_path)] + (["--resume"] if resume else [])
    with open(log_path, "a") as log:
        log.write(f"$ {shown(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        signalled = False
        try:
            while proc.poll() is None:
                if not signalled and clock.left() < reserve_s:
                    proc.send_signal(signal.SIGTERM)  # gta saves a checkpoint after the step in flight
                    signalled = True
                time.sleep(0.2)
        except KeyboardInterrupt:  # Ctrl-C reached gta too: let it save, then record the run
            proc.wait()
    return cmd, proc.returncode


def shown(cmd):
    """A command as recorded in the logs: paths inside the repository relative to its root."""
    out = []
    for arg in cmd:
        p = Path(arg)
        out.append(os.path.relpath(p, ROOT) if p.is_absolute() and p.resolve().is_relative_to(ROOT) else str(arg))
    return " ".join(out)


def gta_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        fail(f"{shown(cmd)} failed (exit {out.returncode}):\n{out.stderr.strip()}")
    return json.loads(out.stdout)


def finish(suite, gta, run, run_dir, log_dir, cfg_path, seq_len, vocab):
    """Final evaluation on the held-out split and the model's sizes and costs."""
    fe = suite["final_eval"]
    batches = -(-fe["windows"] // fe["batch_size"])
    eval_cmd = [gta, "eval", str(run_dir), "--data", suite["data"]["val"], "--batches", str(batches),
                "--batch-size", str(fe["batch_size"]), "--seq-len", str(seq_len), "--json"]
    ev = gta_json(eval_cmd)
    ev["command"] = shown(eval_cmd)
    (log_dir / "eval.json").write_text(json.dumps(ev, indent=2) + "\n")
    info_cmd = [gta, "info", str(cfg_path), "--seq-len", str(seq_len), "--vocab-size", str(vocab), "--json"]
    info = gta_json(info_cmd)
    info["command"] = shown(info_cmd)
    (log_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n")


def analyze(suite, gta, run_dir, log_dir, seq_len):
    """gta analyze on the trained model (head-map similarity, value-cache spectra) into the logs."""
    cmd = [gta, "analyze", str(run_dir), "--data", suite["data"]["val"], "--windows", str(suite["analyze"]["windows"]),
           "--seq-len", str(seq_len), "--out", str(log_dir / "analysis")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        fail(f"{shown(cmd)} failed (exit {out.returncode}):\n{out.stderr.strip()}")
    (log_dir / "analysis" / "command.txt").write_text(shown(cmd) + "\n")


def copy_logs(run_dir, log_dir):
    for f in ("config.yaml", "metrics.jsonl"):
        if (run_dir / f).is_file():
            shutil.copyfile(run_dir / f, log_dir / f)


# A run's log directory (run.json: commands, cards, commits, wall time; train.log, eval.json,
# info.json, analysis/) travels back from a device call; a copy of it also sits in the run
# directory (record/), which stays with the checkpoints. When the log directory is lost between
# calls while the run directory survives (a warm machine keeps runs/, a copied-in tree replaces
# experiments/), the log directory is restored from the copy, history included.
def write_state(state, log_dir, run_dir):
    (log_dir / "run.json").write_text(json.dumps(state, indent=2) + "\n")
    if run_dir.is_dir():
        shutil.copytree(log_dir, run_dir / "record", dirs_exist_ok=True)


def read_state(name, log_dir, run_dir):
    if not (log_dir / "run.json").is_file() and (run_dir / "record" / "run.json").is_file():
        shutil.copytree(run_dir / "record", log_dir, dirs_exist_ok=True)
        print(f"{name}: log directory restored from {run_dir / 'record'}")
    path = log_dir / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", help="experiments/ablations/<suite>.yaml")
    ap.add_argument("--gta", default=str(ROOT / "build" / "gta"), help="the gta executable")
    ap.add_argument("--deadline-s", type=float, default=0, help="stop within this many seconds (0: no limit)")
    ap.add_argument("--reserve-s", type=float, default=45,
                    help="time kept back from training for the final evaluation and the last checkpoint")
    ap.add_argument("--results", help="log directory (default: experiments/ablations/<name>)")
    ap.add_argument("--runs", help="checkpoint directory (default: runs/ablations/<name>)")
    ap.add_argument("--only", nargs="+", metavar="RUN", help="only these runs (names as gta-s1)")
    ap.add_argument("--plan", action="store_true",
                    help="print each run's state (complete, resume, start), write the run configs, train nothing")
    args = ap.parse_args()

    suite = load_suite(args.suite)
    gta = str(Path(args.gta).resolve())
    if not os.access(gta, os.X_OK):
        fail(f"--gta {args.gta}: not an executable (build gta first: scripts/build.sh)")
    for key in ("train", "val", "tokenizer"):
        if key not in suite["data"]:
            fail(f"{args.suite}: data.{key} is missing")
    tok = ROOT / suite["data"]["tokenizer"]
    if not tok.is_file():
        fail(f"{args.suite}: data.tokenizer {suite['data']['tokenizer']} does not exist "
             f"(prepare the '{suite.get('corpus', suite['name'])}' corpus first: see scripts/corpus/)")
    # Absolute: gta runs from the repository root (the suite's data paths are relative to it).
    results = Path(args.results).resolve() if args.results else ROOT / "experiments" / "ablations" / suite["name"]
    runs_root = Path(args.runs).resolve() if args.runs else ROOT / "runs" / "ablations" / suite["name"]
    results.mkdir(parents=True, exist_ok=True)
    runs_root.mkdir(parents=True, exist_ok=True)
    manifest = tok.parent / "manifest.json"
    if manifest.is_file():  # the corpus recipe's manifest travels with the results
        shutil.copyfile(manifest, results / "corpus.json")
    prep = tok.parent / "prepare.json"
    if not prep.is_file():
        fail(f"{prep}: missing (the vocabulary size of the prepared corpus is read from it)")
    vocab = json.loads(prep.read_text())["tokenizer"]["vocab_size"]
    seq_len = suite["config"]["train"]["seq_len"]
    steps = suite["config"]["train"]["steps"]
    clock = Clock(args.deadline_s)
    card, commit = card_name(), commit_id()
    wanted = set(args.only or [])
    unknown = wanted - {run_name(r) for r in suite["runs"]}
    if unknown:
        fail(f"--only: no run named {', '.join(sorted(unknown))} in {args.suite}")

    for run in suite["runs"]:
        name = run_name(run)
        if wanted and name not in wanted:
            continue
        log_dir, run_dir = results / "runs" / name, runs_root / name
        state = read_state(name, log_dir, run_dir)
        wants_analysis = name in suite.get("analyze", {}).get("runs", [])
        if state.get("complete"):
            if wants_analysis and not (log_dir / "analysis" / "analysis.json").is_file() and has_checkpoint(run_dir):
                analyze(suite, gta, run_dir, log_dir, seq_len)
                print(f"{name}: analysed")
            print(f"{name}: complete, skipped")
            continue
        if args.plan:
            cfg_path = runs_root / f"{name}.yaml"
            cfg_path.write_text(yaml.safe_dump(run_config(suite, run, run_dir, cfg_path), sort_keys=False))
            at = last_train_step(read_metrics(run_dir / "metrics.jsonl"))
            print(f"{name}: {'resume from a checkpoint, ' if has_checkpoint(run_dir) else 'start, '}"
                  f"logged step {at}/{steps}; config {shown([cfg_path])}")
            continue
        if clock.left() < 2 * args.reserve_s:
            print(f"{name}: not started ({clock.left():.0f} s left)")
            break
        log_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = runs_root / f"{name}.yaml"
        cfg_path.write_text(yaml.safe_dump(run_config(suite, run, run_dir, cfg_path), sort_keys=False))
        done = last_train_step(read_metrics(run_dir / "metrics.jsonl")) >= steps and has_checkpoint(run_dir)
        if not done:
            resume = has_checkpoint(run_dir)
            if not resume:
                # A start that never reached a checkpoint (or whose checkpoints went with another
                # machine): begin again, with a fresh record.
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                state = {"restarts": state.get("restarts", -1) + 1}
            print(f"{name}: {'resuming' if resume else 'starting'} ({clock.left():.0f} s left)", flush=True)
            t0 = time.monotonic()
            cmd, rc = train(gta, cfg_path, resume, clock, args.reserve_s, log_dir / "train.log")
            state.setdefault("train_commands", []).append(shown(cmd))
            state["wall_s"] = state.get("wall_s", 0) + time.monotonic() - t0
            state.setdefault("cards", [])
            if card not in state["cards"]:
                state["cards"].append(card)
            state.setdefault("commits", [])
            if commit not in state["commits"]:
                state["commits"].append(commit)
            copy_logs(run_dir, log_dir)
            at = last_train_step(read_metrics(run_dir / "metrics.jsonl"))
            state.update(name=name, type=run["type"], seed=run["seed"], lr=run.get("lr"), step=at, steps=steps)
            write_state(state, log_dir, run_dir)
            # 0: finished or stopped (older gta); 130/143: stopped by SIGINT/SIGTERM after saving.
            if rc not in (0, 130, 143):
                tail = (log_dir / "train.log").read_text().splitlines()[-5:]
                fail(f"{name}: gta train exited {rc} at step {at}; see {log_dir / 'train.log'}:\n" + "\n".join(tail))
            done = at >= steps
            if not done:
                print(f"{name}: stopped at step {at}/{steps}; run again to resume")
                if rc == 130:
                    sys.exit(130)
                break
        if clock.left() < args.reserve_s / 3:
            print(f"{name}: trained; evaluation left for the next call")
            break
        finish(suite, gta, run, run_dir, log_dir, cfg_path, seq_len, vocab)
        if wants_analysis:
            analyze(suite, gta, run_dir, log_dir, seq_len)
        copy_logs(run_dir, log_dir)
        state.update(name=name, type=run["type"], seed=run["seed"], lr=run.get("lr"), step=steps, steps=steps,
                     complete=True)
        write_state(state, log_dir, run_dir)
        print(f"{name}: complete")


if __name__ == "__main__":
    main()
