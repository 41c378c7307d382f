#!/usr/bin/env bash
# gta bench decode and its PyTorch baseline (bench/decode_baseline.py) over a grid of
# (batch, context) points for GTA-1B, GQA-1B and the S models, on one GPU, in one call:
#
#     bench/decode_grid.sh OUTDIR        (GTA=build-gpu/gta by default)
#
# Writes OUTDIR/gta.jsonl and OUTDIR/torch.jsonl (one line per point; points whose cache would
# pass MAX_CACHE_GB are lines marked "skipped"), OUTDIR/gpu.txt, commit.txt and date.txt, then
# runs bench/decode_report.py to write OUTDIR/decode.md and OUTDIR/decode.png (copy them to
# bench/results/decode_h200.md to keep them). Knobs (environment): BATCHES, CONTEXTS (comma
# lists), NEW_TOKENS, MAX_CACHE_GB, CONFIGS (space-separated YAML paths, run in that order),
# TIMEOUT_S per process, BUDGET_S for the whole grid (no process runs past it by more than 30 s
# or TIMEOUT_S; configs not started by then are skipped, and the report is still written).
set -uo pipefail
OUT=${1:?usage: bench/decode_grid.sh OUTDIR}
GTA=${GTA:-build-gpu/gta}
BATCHES=${BATCHES:-1,16,64}
CONTEXTS=${CONTEXTS:-2048,8192,32768}
NEW_TOKENS=${NEW_TOKENS:-32}
MAX_CACHE_GB=${MAX_CACHE_GB:-80}   # of the H200's 141 GB: room for the weights and the prefill's activations
TIMEOUT_S=${TIMEOUT_S:-300}
BUDGET_S=${BUDGET_S:-1800}
CONFIGS=${CONFIGS:-"configs/models/gta-1b.yaml configs/models/gqa-1b.yaml $(ls configs/models/s/*.yaml | grep -v base.yaml | tr '\n' ' ')"}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader | head -1 > "$OUT/gpu.txt"
git rev-parse --short HEAD > "$OUT/commit.txt" 2>/dev/null || echo unknown > "$OUT/commit.txt"
date -u +%Y-%m-%d > "$OUT/date.txt"
: > "$OUT/gta.jsonl"
: > "$OUT/torch.jsonl"
SECONDS=0
# Seconds the next process may run: TIMEOUT_S, or what is left of BUDGET_S (at least 30).
time_left() {
  local left=$((BUDGET_S - SECONDS))
  ((left < 30)) && left=30
  echo $((left < TIMEOUT_S ? left : TIMEOUT_S))
}
for cfg in $CONFIGS; do
  if ((SECONDS > BUDGET_S)); then
    echo "== $cfg skipped: the grid's budget of ${BUDGET_S}s is spent" | tee -a "$OUT/gta.err"
    continue
  fi
  echo "== $cfg (${SECONDS}s)"
  timeout "$(time_left)" "$GTA" bench decode "$cfg" --device cuda --batch "$BATCHES" --context "$CONTEXTS" \
    --new-tokens "$NEW_TOKENS" --max-cache-gb "$MAX_CACHE_GB" --json >> "$OUT/gta.jsonl" 2>> "$OUT/gta.err" ||
    echo "gta bench decode $cfg: exit $?" | tee -a "$OUT/gta.err"
  timeout "$(time_left)" python3 bench/decode_baseline.py "$GTA" "$cfg" --batch "$BATCHES" --context "$CONTEXTS" \
    --new-tokens "$NEW_TOKENS" --max-cache-gb "$MAX_CACHE_GB" >> "$OUT/torch.jsonl" 2>> "$OUT/torch.err" ||
    echo "decode_baseline.py $cfg: exit $?" | tee -a "$OUT/torch.err"
done
echo "grid done (${SECONDS}s)"
python3 bench/decode_report.py "$OUT" --md "$OUT/decode.md" --png "$OUT/decode.png"
cat "$OUT/decode.md"
