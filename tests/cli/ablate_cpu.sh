#!/usr/bin/env bash
# The ablation runner and report builder on the CPU suite (experiments/ablations/tiny.yaml):
# every run completes and is skipped when the runner is called again; a run left with a
# checkpoint part-way is resumed with --resume and ends bit-identical to the same run trained
# straight through; a run whose log directory was lost is restored from its run directory; gta
# analyze runs on the runs the suite names; the report builds its tables, JSON and plots from the
# logs alone and rebuilds them identically; a broken suite file is refused with its name and key.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$PY" -c "import yaml, matplotlib" 2>/dev/null || { echo "skip: python3 lacks yaml or matplotlib"; exit 77; }
suite=$SRC/experiments/ablations/tiny.yaml
ablate() { "$PY" "$SRC/scripts/ablate.py" "$suite" --gta "$GTA" "$@"; }

# Straight through: every run of the suite.
ablate --results A --runs RA > a1.log
grep -c ': complete$' a1.log | grep -qx 4 || fail "expected 4 completed runs: $(cat a1.log)"
cp A/runs/gqa-s1/run.json gqa-before.json
ablate --results A --runs RA > a2.log
grep -c 'complete, skipped' a2.log | grep -qx 4 || fail "a second call should skip every run: $(cat a2.log)"
cmp -s gqa-before.json A/runs/gqa-s1/run.json || fail "a skipped run's record changed"
# A call whose tree lost the log directory while the run directory survived (a warm device
# machine keeps runs/, the copied-in tree replaces experiments/): the record comes back whole.
cp -r A/runs/gqa-s1 gqa-logs-before
rm -rf A/runs/gqa-s1
ablate --results A --runs RA --only gqa-s1 > a3.log
grep -q 'gqa-s1: log directory restored from' a3.log && grep -q 'gqa-s1: complete, skipped' a3.log ||
  fail "the lost log directory was not restored: $(cat a3.log)"
diff -r gqa-logs-before A/runs/gqa-s1 > /dev/null || fail "the restored log directory differs from the lost one"

# Part-way: the plan writes mha-s1's config; gta trains it to step 12 of the same 24-step
# schedule (checkpoint at 12), as a run stopped by the deadline would leave it, its metrics.jsonl
# cut in the middle of a line; the runner resumes.
ablate --results B --runs RB --only mha-s1 --plan > plan.log
grep -q 'mha-s1: start, logged step 0/24' plan.log || fail "plan: $(cat plan.log)"
(cd "$SRC" && "$GTA" train "$tmp/RB/mha-s1.yaml" --set train.steps=12 --set optim.decay_steps=24) 2> partial.log ||
  fail "gta train to step 12: $(tail -3 partial.log)"
printf '{"step": 13, "ev' >> RB/mha-s1/metrics.jsonl  # as a kill in the middle of a write leaves it
ablate --results B --runs RB --only mha-s1 > b.log
grep -q 'mha-s1: resuming' b.log || fail "mha-s1 was not resumed: $(cat b.log)"
grep -q -- '--resume' B/runs/mha-s1/run.json || fail "run.json does not record the --resume command"
"$PY" - A/runs/mha-s1 B/runs/mha-s1 <<'PY'
import json, sys
a, b = sys.argv[1:]
ea, eb = (json.load(open(f"{d}/eval.json")) for d in (a, b))
assert ea["loss"] == eb["loss"], ("resumed run differs from the straight one", ea["loss"], eb["loss"])
ta = [r for r in map(json.loads, open(f"{a}/metrics.jsonl")) if r["event"] == "train"]
tb = [r for r in map(json.loads, open(f"{b}/metrics.jsonl")) if r["event"] == "train"]
assert [(r["step"], r["loss"]) for r in ta] == [(r["step"], r["loss"]) for r in tb], "logged losses differ"
PY

# The report, from the logs alone (the checkpoints are removed first), twice: identical.
rm -rf RA
"$PY" "$SRC/scripts/ablate_report.py" "$suite" --results A > r1.log
cp A/results.md md1; cp A/results.json json1
"$PY" "$SRC/scripts/ablate_report.py" "$suite" --results A > r2.log
cmp -s md1 A/results.md && cmp -s json1 A/results.json || fail "the report is not reproducible from the logs"
"$PY" - A <<'PY'
import json, sys
d = sys.argv[1]
r = json.load(open(f"{d}/results.json"))
assert len(r["runs"]) == 4 and all(x["complete"] for x in r["runs"]), r["runs"]
g = {(x["type"], x["lr"]): x for x in r["groups"]}
assert set(g) == {("gta", 3e-3), ("gqa", 3e-3), ("mha", 3e-3)}, set(g)
assert g[("gta", 3e-3)]["seeds"] == [1, 2] and g[("gta", 3e-3)]["val_loss_spread"] is not None
# KV cache per token (gta info): GQA caches half of MHA's (k, v of 2 heads of 16 against 4), tiny GTA
# (one key head of 16 + one latent of 16 per layer) a quarter.
assert g[("gqa", 3e-3)]["kv_bytes_per_token"] * 2 == g[("mha", 3e-3)]["kv_bytes_per_token"]
assert g[("gta", 3e-3)]["kv_bytes_per_token"] * 4 == g[("mha", 3e-3)]["kv_bytes_per_token"]
for x in r["runs"]:
    assert 0 < x["val_loss"] < 10 and x["val_bpb"] > 0 and x["tokens"] == 24 * 8 * 64, x
md = open(f"{d}/results.md").read()
for t in ("| gta |", "| gqa |", "| mha |", "## Commands", "mha-s1.yaml", "### gta-s1 (gta, 2 windows of 64 tokens)",
          "### mha-s1 (mha, 2 windows", "runs/gta-s1/analysis/map_similarity.png"):
    assert t in md, t
# gta analyze ran on the runs the suite names, and only those: 2 layers each, 2 maps for tiny GTA, 4 for MHA.
import os
assert not os.path.exists(f"{d}/runs/gqa-s1/analysis")
for run, maps in (("gta-s1", 2), ("mha-s1", 4)):
    a = json.load(open(f"{d}/runs/{run}/analysis/analysis.json"))
    assert a["windows"] == 2 and [l["maps"] for l in a["layers"]] == [maps, maps], (run, a["layers"])
    assert os.path.getsize(f"{d}/runs/{run}/analysis/map_similarity.png") > 10000
for png in ("val_loss_vs_tokens.png", "val_loss_vs_kv.png", "val_loss_vs_attn_flops.png"):
    data = open(f"{d}/{png}", "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000, png
PY

# A broken suite: the file and the key are named, nothing runs.
sed 's/^final_eval:/final_evl:/' "$suite" > bad.yaml
expect_fail "bad.yaml: unknown key 'final_evl'" "$PY" "$SRC/scripts/ablate.py" bad.yaml --gta "$GTA"
echo "ablate_cpu: ok"
