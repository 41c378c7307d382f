#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz; the fuzz preset: clang + ASan/UBSan, into ./build-fuzz)
# and runs each from its committed seeds (tests/fuzz/seeds/<target>; configs/models/{tiny,xs}
# for the YAML loader) for a budget; a target stops at the first limit it reaches:
#   scripts/fuzz.sh --runs N [--seconds S]    at most N executions (and S seconds) each
#   scripts/fuzz.sh --seconds S               S seconds each
#   scripts/fuzz.sh ... fuzz_bin_shard ...    only the targets named
# bench/results/fuzz.md records long runs.
# Prints one line per target: executions, seconds and the corpus it grew. A crash, a sanitizer
# report, a leak, a timeout or an exception other than gta::Error stops the run with libFuzzer's
# report, the input saved as build-fuzz/crash-<target>-*, and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=()
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) budget+=(-runs="$2"); shift 2 ;;
    --seconds) budget+=(-max_total_time="$2"); shift 2 ;;
    fuzz_*) targets+=("$1"); shift ;;
    *) echo "usage: scripts/fuzz.sh --runs N | --seconds S [TARGET...]" >&2; exit 2 ;;
  esac
done
[ ${#budget[@]} -gt 0 ] || { echo "usage: scripts/fuzz.sh --runs N | --seconds S [TARGET...]" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_config_yaml fuzz_safetensors fuzz_hdf5_shard fuzz_bin_shard fuzz_trainer_json)
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz --parallel "$(nproc)" --target "${targets[@]}"

# The suite's leak suppressions (HDF5's failed-open leaks; Open MPI is linked in but never started
# here), matched on full malloc stacks: libhdf5 has no frame pointers to unwind by. A corrupt HDF5
# header can make HDF5 malloc terabytes: malloc returns NULL then, as it would without ASan, and
# HDF5 fails the open (tests/fuzz/seeds/hdf5_shard/h5fopen_huge_malloc.h5); operator new still
# reports such a size, so gta's own allocations stay checked.
export ASAN_OPTIONS="fast_unwind_on_malloc=0:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
work=build-fuzz
for t in "${targets[@]}"; do
  seeds=tests/fuzz/seeds/${t#fuzz_}
  [ "$t" = fuzz_config_yaml ] && seeds="configs/models/tiny configs/models/xs"
  corpus=$work/corpus/$t  # first directory: libFuzzer adds the inputs it finds here
  mkdir -p "$corpus"
  log=$work/$t.log
  start=$SECONDS
  # shellcheck disable=SC2086  # $seeds is a list of paths
  if ! "build-fuzz/$t" "${budget[@]}" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$work/crash-$t-" -print_final_stats=1 "$corpus" $seeds > "$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t FAILED (log $log, input saved as $work/crash-$t-*)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: $t: $runs executions in $((SECONDS - start)) s, 0 crashes, corpus $(ls "$corpus" | wc -l) inputs"
done
