#!/usr/bin/env bash
# Multi-GPU data parallelism (NCCL) on one CUDA machine: build, check, then measure weak scaling.
#
#   bench/scaling_gpu.sh                          # every step; logs and scaling.md in $OUT (default scaling-gpu)
#   STEPS=build bench/scaling_gpu.sh              # a subset (run in this order: build tests check comm train scaling),
#   STEPS="tests check train scaling" bench/scaling_gpu.sh   e.g. to split the work over two shorter calls
# Knobs: BUILD_DIR (build-gpu), CONFIG (configs/models/s/gta.yaml), BENCH_STEPS (20), BENCH_WARMUP (5),
# BENCH_BATCH (8 sequences of 2048 per GPU), BENCH_ARGS (more `gta bench train` flags, e.g. --zero1),
# RUN_TIMEOUT (540 s per mpirun), NCCL_DEBUG (WARN).
#
# Steps (each one's output is tee'd to $OUT/<step>.log and its verdict to $OUT/summary.log; a failed
# step is reported and the script goes on, exiting non-zero at the end):
#   build    configure $BUILD_DIR for sm_90 with Ninja; build gta (and gta_tests when `tests` is in STEPS)
#   tests    the NCCL unit test on 2 ranks: mpirun -np 2 $BUILD_DIR/gta_tests --gtest_filter='DistNccl*'
#            (collectives on CUDA tensors, GradSync on GPU gradients); fails if the tests skipped
#   check    correctness smoke run: `gta bench train` on 2 GPUs in f32 (3 steps, small batch) must
#            finish without error (NCCL set-up, GPU gradient buckets, all-reduce every step)
#   comm     all-reduce bandwidth on 2 and 4 GPUs (up to what nvidia-smi lists), 1/25/200 MB of bf16:
#            `gta bench allreduce` (gta's NCCL communicator, NCCL_DEBUG=INFO so the log names the
#            transport NCCL chose) beside bench/allreduce_torch.py (PyTorch's NCCL) -> $OUT/comm.md
#   train    `gta train configs/quickstart.yaml` in f32 for 30 steps, global batch 4096 tokens: on 1 GPU
#            (2 accumulation micro-steps) and with mpirun -np 2 (1 each) the logged losses agree to
#            1e-4 relative; then the 2-rank run's step-15 checkpoint resumes on 1 GPU and matches too
#   scaling  `gta bench train $CONFIG`, bf16, per-GPU batch $BENCH_BATCH x 2048 fixed (weak scaling), on
#            N = 1, 2, 4 GPUs (up to what nvidia-smi lists): global tokens/s, per-GPU tokens/s and
#            efficiency against 1 GPU, written to $OUT/scaling.md with the card, date and commit.
# NVLink multicast (NVLS) stays off (-x NCCL_NVLS_ENABLE=0, and gta sets it too): on shared
# multi-GPU hosts a program that sets up NVLink multicast can put every GPU of the host out of service.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-scaling-gpu}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STEPS=${STEPS:-build tests check comm train scaling}
CONFIG=${CONFIG:-configs/models/s/gta.yaml}
BENCH_STEPS=${BENCH_STEPS:-20}
BENCH_WARMUP=${BENCH_WARMUP:-5}
BENCH_BATCH=${BENCH_BATCH:-8}
read -r -a bench_args <<< "${BENCH_ARGS:-}"
RUN_TIMEOUT=${RUN_TIMEOUT:-540}  # seconds for one mpirun; a hang is reported, not waited out
export OMPI_MCA_btl_vader_single_copy_mechanism=none  # containers forbid cross-process memory attach
failed=()

log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/summary.log"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
# step NAME COMMAND...: runs COMMAND with its output tee'd to $OUT/NAME.log; records a failure.
step() {
  local name=$1
  shift
  log "$name: $*"
  local rc=0
  "$@" 2>&1 | tee "$OUT/$name.log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    local why="exit status $rc"
    [ "$rc" -eq 124 ] && why="timed out after $RUN_TIMEOUT s"
    log "$name: FAILED ($why); see $OUT/$name.log"
    failed+=("$name")
    return 1
  fi
  log "$name: exit status 0"
}

ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
[ "$dirty" -gt 0 ] && commit="$commit + $dirty uncommitted file(s)"
log "machine: $ngpu GPU(s) (${card:-none found}), commit $commit, OUT=$OUT, steps: $STEPS"
if [ "$ngpu" -lt 1 ]; then
  log "nvidia-smi lists no GPU: this script needs a CUDA machine"
  exit 1
fi

mpi=(mpirun -x NCCL_NVLS_ENABLE=0 -x "NCCL_DEBUG=${NCCL_DEBUG:-WARN}" --bind-to none)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
BUILD_DIR=${BUILD_DIR:-build-gpu}
gta=$BUILD_DIR/gta

if want build; then
  targets=(gta)
  want tests && targets+=(gta_tests)
  step build bash -c "cmake --preset gpu -B $BUILD_DIR && ninja -C $BUILD_DIR ${targets[*]}" ||
    { log "build failed: nothing else can run"; exit 1; }
fi
[ -x "$gta" ] || { log "$gta is missing: run the build step first (STEPS=build)"; exit 1; }

if want tests; then
  if [ "$ngpu" -lt 2 ]; then
    log "tests: skipped (needs 2 GPUs, $ngpu listed)"
  elif [ ! -x "$BUILD_DIR/gta_tests" ]; then
    log "tests: $BUILD_DIR/gta_tests is missing (run the build step with tests in STEPS)"
    failed+=(tests)
  else
    # The test binary skips these tests unless it runs as exactly 2 ranks on 2 GPUs; check that
    # they really ran (gtest prints SKIPPED otherwise).
    step tests timeout "$RUN_TIMEOUT" "${mpi[@]}" -np 2 "$BUILD_DIR/gta_tests" --gtest_filter='DistNccl*' &&
      if grep -q "SKIPPED" "$OUT/tests.log"; then
        log "tests: FAILED: the NCCL tests skipped instead of running (see $OUT/tests.log)"
        failed+=(tests)
      fi
  fi
fi

if want check; then
  if [ "$ngpu" -lt 2 ]; then
    log "check: skipped (needs 2 GPUs, $ngpu listed)"
  else
    step check timeout "$RUN_TIMEOUT" "${mpi[@]}" -np 2 "$gta" bench train "$CONFIG" --device cuda --dtype f32 \
      --batch 2 --seq-len 128 --steps 3 --warmup 0 --timeout 120 --json &&
      if ! grep -q '"world_size":2' "$OUT/check.log"; then
        log "check: FAILED: no 2-rank result line in $OUT/check.log"
        failed+=(check)
      fi
  fi
fi

if want comm; then
  work=$(mktemp -d)
  sizes=1,25,200
  for n in 2 4; do
    [ "$n" -le "$ngpu" ] || { log "comm: N=$n skipped ($ngpu GPU(s) listed)"; continue; }
    step "comm_gta_$n" timeout "$RUN_TIMEOUT" "${mpi[@]}" -x NCCL_DEBUG=INFO -np "$n" "$gta" bench allreduce \
      --device cuda --sizes-mb "$sizes" --json && grep '^{' "$OUT/comm_gta_$n.log" > "$work/gta_$n.json"
    step "comm_torch_$n" timeout "$RUN_TIMEOUT" env NCCL_NVLS_ENABLE=0 NCCL_DEBUG=INFO python3 -m torch.distributed.run \
      --standalone --nproc_per_node="$n" bench/allreduce_torch.py --sizes-mb "$sizes" &&
      grep '^{' "$OUT/comm_torch_$n.log" > "$work/torch_$n.json"
  done
  {
    echo "# All-reduce bandwidth, gta's communicator vs PyTorch, same host and call"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M') UTC, $ngpu x ${card:-unknown}, commit $commit. In-place bf16 all-reduce, 20 timed calls"
    echo "queued back to back after 5 warm-up calls; time = the slowest rank's. busbw = algbw * 2 (N-1) / N."
    echo "gta links $(ldd "$gta" | awk '/libnccl/ {print $3}'); transports NCCL reported for gta (NCCL_DEBUG=INFO):"
    echo
    for n in 2 4; do
      [ -f "$OUT/comm_gta_$n.log" ] || continue
      echo "- $n GPUs: $(grep -m1 -o 'NCCL version [^ ]*' "$OUT/comm_gta_$n.log"); $(grep -o 'via [A-Za-z0-9/_]*' "$OUT/comm_gta_$n.log" | sort | uniq -c | tr '\n' ';')"
    done
    echo
    /usr/bin/env python3 - "$work" <<'PY'
import glob, json, os, sys
rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    who, n = os.path.basename(f)[:-5].split("_")
    for line in open(f):
        r = json.loads(line)
        rows.setdefault((int(n), round(r["mb"])), {})[who] = r
print("| GPUs | MB | gta ms | gta busbw GB/s | PyTorch ms | PyTorch busbw GB/s |")
print("|---|---|---|---|---|---|")
for (n, mb), r in sorted(rows.items()):
    g, t = r.get("gta"), r.get("torch")
    cell = lambda x, k, f: f.format(x[k]) if x else "-"
    print(f"| {n} | {mb} | {cell(g, 'ms', '{:.3f}')} | {cell(g, 'busbw_gbs', '{:.1f}')} | "
          f"{cell(t, 'ms', '{:.3f}')} | {cell(t, 'busbw_gbs', '{:.1f}')} |")
torch_name = next((r["torch"]["communicator"] for r in rows.values() if "torch" in r), "not run")
print()
print(f"PyTorch: {torch_name}.")
PY
  } | tee "$OUT/comm.md"
fi

# Data-parallel training through the real trainer: 1 GPU with accumulation == 2 GPUs, and a
# 2-rank checkpoint resumed on 1 rank continues the same run.
dp_train() {
  local d
  d=$(mktemp -d)
  local common=(configs/quickstart.yaml --set train.device=cuda --set train.dtype=f32 --set train.steps=30
    --set train.global_batch_tokens=4096 --set train.log_every=1 --set eval.every=0 --set eval.batches=2
    --set checkpoint.every=15 --set checkpoint.keep=0 --set dist.timeout_s=120)
  "$gta" train "${common[@]}" --set train.out_dir="$d/one" || return 1
  "${mpi[@]}" -np 2 "$gta" train "${common[@]}" --set train.out_dir="$d/two" || return 1
  mkdir -p "$d/resumed" && cp -r "$d/two/checkpoints" "$d/resumed/" && rm -rf "$d/resumed/checkpoints/step_000030"
  "$gta" train "${common[@]}" --set train.out_dir="$d/resumed" --resume || return 1
  PYTHONPATH=tests/cli/lib python3 - "$d" <<'PY'
import sys
from gta_runs import losses
d = sys.argv[1]
one, two, res = losses(f"{d}/one"), losses(f"{d}/two"), losses(f"{d}/resumed")
assert len(one) == 30 and one.keys() == two.keys(), (len(one), len(two))
worst = max(abs(one[s] - two[s]) / one[s] for s in one)
print(f"1 GPU (2 micro-steps) vs 2 GPUs (NCCL): worst relative loss difference {worst:.2e} (limit 1e-4)")
worst_r = max(abs(one[s] - res[s]) / one[s] for s in res)
print(f"2-rank checkpoint resumed on 1 GPU, steps {min(res)}-{max(res)}: worst {worst_r:.2e} (limit 1e-4)")
assert worst <= 1e-4 and worst_r <= 1e-4 and sorted(res) == list(range(16, 31)), (worst, worst_r, sorted(res)[:3])
PY
}
if want train; then
  if [ "$ngpu" -lt 2 ]; then
    log "train: skipped (needs 2 GPUs, $ngpu listed)"
  else
    step train timeout "$RUN_TIMEOUT" bash -c "$(declare -f dp_train); gta=$gta; mpi=(${mpi[*]}); dp_train"
  fi
fi

if want scaling; then
  results=()
  work=$(mktemp -d)  # the JSON lines (only the logs and scaling.md go to $OUT)
  for n in 1 2 4; do
    [ "$n" -le "$ngpu" ] || { log "scaling: N=$n skipped ($ngpu GPU(s) listed)"; continue; }
    if step "scaling_$n" timeout "$RUN_TIMEOUT" "${mpi[@]}" -np "$n" "$gta" bench train "$CONFIG" --device cuda \
      --dtype bf16 --batch "$BENCH_BATCH" --seq-len 2048 --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" --timeout 300 \
      "${bench_args[@]}" --json; then
      line=$(grep '^{' "$OUT/scaling_$n.log" | tail -n 1)
      if [ -n "$line" ]; then
        echo "$line" > "$work/scaling_$n.json"
        results+=("$n")
      else
        log "scaling: N=$n printed no JSON line (see $OUT/scaling_$n.log)"
        failed+=("scaling_$n")
      fi
    fi
  done
  /usr/bin/env python3 - "$work" "${card:-unknown}" "$commit" "$CONFIG" "$BENCH_STEPS" "$BENCH_WARMUP" \
    "$BENCH_BATCH" "${BENCH_ARGS:-}" "${failed[*]:-}" "${results[@]}" <<'PY' | tee "$OUT/scaling.md"
import datetime, json, sys
out, card, commit, config, steps, warmup, batch, extra, failed, *ns = sys.argv[1:]
rows = {int(n): json.load(open(f"{out}/scaling_{n}.json")) for n in ns}
print(f"# Data-parallel weak scaling, {config}")
print()
print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {card}, commit {commit}. "
      f"`mpirun -np N gta bench train {config} --device cuda --dtype bf16 --batch {batch} --seq-len 2048 "
      f"--steps {steps} --warmup {warmup}{' ' + extra if extra else ''}` (NCCL, NCCL_NVLS_ENABLE=0): per-GPU "
      f"batch fixed at {batch} x 2048 random tokens; "
      + ("ZeRO-1: gradients reduce-scattered after backward, each rank updates the parameters it owns, "
         "which are then all-gathered" if "--zero1" in extra else
         "gradients all-reduced every step in 25 MB buckets started during backward")
      + "; time = the slowest rank's. Efficiency = per-GPU tokens/s over the 1-GPU run's.")
print()
print("| GPUs | tokens/s | per-GPU tokens/s | efficiency vs 1 GPU | model TFLOP/s | peak GPU memory (alloc / reserved) | last loss |")
print("|---|---|---|---|---|---|---|")
base = rows[1]["tokens_per_s"] if 1 in rows else None
for n in sorted(rows):
    r = rows[n]
    tps = r["tokens_per_s"]
    per = tps / n
    eff = f"{100 * per / base:.1f}%" if base else "n/a (no 1-GPU run)"
    print(f"| {n} | {tps:,.0f} | {per:,.0f} | {eff} | {r['model_tflops']:.1f} | "
          f"{r.get('peak_allocated_gb', 0):.2f} / {r.get('peak_reserved_gb', 0):.2f} GB | {r['last_loss']:.4f} |")
if not rows:
    print("| - | no run succeeded | | | | | |")
if failed:
    print()
    print(f"Failed steps: {failed} (logs beside this file).")
PY
fi

if [ "${#failed[@]}" -gt 0 ]; then
  log "FAILED steps: ${failed[*]} (logs in $OUT)"
  exit 1
fi
log "all steps ok (logs in $OUT)"
