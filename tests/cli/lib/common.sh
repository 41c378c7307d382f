# shellcheck shell=bash
# Shared prelude of the CLI tests (tests/cli/*.sh), sourced first thing:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# It lives in lib/ so that CMake (which globs tests/cli/*.sh) does not register it as a test.
#
# Needs GTA (the gta binary) and SRC (the source directory), as ctest sets them. Leaves the shell
# in strict mode (set -euo pipefail) inside a fresh temporary directory, $tmp, removed on exit.
set -euo pipefail
: "${GTA:?set GTA to the gta binary}" "${SRC:?set SRC to the source directory}"
SRC=$(cd "$SRC" && pwd)
[[ $GTA != */* ]] || GTA="$(cd "$(dirname "$GTA")" && pwd)/$(basename "$GTA")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# A Python with numpy and h5py: Debian's (/usr/bin/python3, installed by scripts/setup.sh) on the
# CI machine; on the CUDA machine the python3 on PATH (PyTorch's) has them instead.
PY=/usr/bin/python3
if ! "$PY" -c "import numpy, h5py" 2>/dev/null; then PY=$(command -v python3); fi
export PYTHONPATH="$SRC/tests/cli/lib${PYTHONPATH:+:$PYTHONPATH}"  # gta_runs.py: metrics and safetensors readers

# python_with MODULES: sets MOD_PY (exported, for the caller) to the first of $PY and python3 that imports MODULES (a
# comma-separated list, as in an import statement), or skips the test (exit 77) naming them.
python_with() {
  export MOD_PY=""
  local py
  for py in "$PY" python3; do
    if "$py" -c "import $1" 2>/dev/null; then MOD_PY=$py; return 0; fi
  done
  echo "skip: no python3 here imports $1"
  exit 77
}

fails=0  # checks failed so far (expect_fail); a script that runs with `set +e` reports them at the end

fail() { echo "FAIL: $*" >&2; exit 1; }

# prepare_tiny OUT [VOCAB]: the tiny test corpus (tests/data/tiny.txt) prepared into OUT: a
# tokenizer of VOCAB pieces (512 by default) and its shards.
prepare_tiny() {
  "$GTA" prepare --input "$SRC/tests/data/tiny.txt" --out "$1" --vocab-size "${2:-512}" --quiet
}

# tiny_run_yaml N_LAYERS ATTENTION: prints the model: and data: sections of a run config, a model
# 32 wide with 4 heads (vocabulary from the tokenizer) on the tiny corpus prepared into data/; the
# caller appends the train, optim, ... sections.
tiny_run_yaml() {
  cat <<YAML
model:
  vocab_size: 0
  d_model: 32
  n_layers: $1
  d_ff: 64
  n_heads: 4
  attention: $2
data: {train: data/train_000000.h5, val: data/val_000000.h5, tokenizer: data/tokenizer.model}
YAML
}

# TINY_ATTENTION[type]: one attention: section per type for a model 32 wide with 4 heads, in odd
# sizes (groups of unequal head counts, d_qk != d_latent, MLA widths that differ), biases on MHA
# and GTA: what the tests that go through all seven types build.
# shellcheck disable=SC2034  # read by the scripts that source this file
declare -A TINY_ATTENTION=(
  [mha]="{type: mha, qkv_bias: true}"
  [gqa]="{type: gqa, n_kv_heads: 2}"
  [mqa]="{type: mqa}"
  [gva]="{type: gva, n_q_heads: 2, n_k_heads: 1}"
  [gha]="{type: gha, n_q_heads: 2, n_k_heads: 1, n_v_heads: 1}"
  [gta]="{type: gta, n_q_heads: 2, n_k_heads: 1, n_v_heads: 2, d_qk: 6, d_latent: 8, qkv_bias: true}"
  [mla]="{type: mla, d_c: 12, d_rope: 4, d_nope: 6, d_v: 10}"
)

# four_step_run_yaml: prints a whole run config: a 1-layer GQA model (tiny_run_yaml) trained for 4
# steps into run/, a checkpoint every 2 steps (all kept), evaluation only at the end.
four_step_run_yaml() {
  tiny_run_yaml 1 "{type: gqa, n_kv_heads: 2}"
  cat <<'YAML'
train: {steps: 4, batch_size: 2, seq_len: 16, out_dir: run, log_every: 1}
checkpoint: {every: 2, keep: 5}
eval: {every: 0, batches: 1}
YAML
}

# expect_fail WANT COMMAND...: COMMAND exits non-zero, without a crash (gta's own errors exit 1,
# CLI11's command-line errors 100 and up, a signal 128 and up), and its stderr contains WANT (a
# fixed string). A failed check is counted in $fails and returns 1, which ends a `set -e` script.
expect_fail() {
  local want=$1
  shift
  local rc=0
  "$@" >"$tmp/expect_fail.out" 2>"$tmp/expect_fail.err" || rc=$?
  local err
  err=$(<"$tmp/expect_fail.err")
  if [[ $rc -eq 0 || $rc -ge 128 ]]; then
    echo "FAIL (exit status $rc): $*"
  elif [[ $err != *"$want"* ]]; then
    echo "FAIL (message lacks '$want'): $*"
  else
    echo "ok: $* -> ${err%%$'\n'*}"
    return 0
  fi
  echo "  stderr: $err"
  fails=$((fails + 1))
  return 1
}
