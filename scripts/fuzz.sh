#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) in the asan preset's build (./build-asan: clang with
# ASan/UBSan and libFuzzer's coverage, the same objects the sanitizer suite runs) and runs each
# from its committed seeds (tests/fuzz/seeds/<target>; configs/models/{tiny,xs} for the YAML
# loader) for a budget; a target stops at the first limit it reaches:
#   scripts/fuzz.sh --runs N [--seconds S]    at most N executions (and S seconds) each
#   scripts/fuzz.sh --seconds S               S seconds each (CI: scripts/test.sh runs 20 s each)
#   scripts/fuzz.sh ... fuzz_bin_shard ...    only the targets named
# bench/results/fuzz.md records long runs.
# Prints one line per target: executions, seconds and the corpus it grew. A crash, a sanitizer
# report, a leak, a timeout or an exception other than gta::Error stops the run with libFuzzer's
# report, the input saved as build-asan/<target>-crash-* (or -oom-, -timeout-, -leak-), and a
# non-zero exit. The one exception is a report inside libhdf5 itself (below).
set -euo pipefail
cd "$(dirname "$0")/.."
max_runs=
max_seconds=
targets=()
usage() { echo "usage: scripts/fuzz.sh --runs N | --seconds S [TARGET...]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) max_runs=$2; shift 2 ;;
    --seconds) max_seconds=$2; shift 2 ;;
    fuzz_*) targets+=("$1"); shift ;;
    *) usage ;;
  esac
done
[ -n "$max_runs$max_seconds" ] || usage
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_config_yaml fuzz_safetensors fuzz_hdf5_shard fuzz_bin_shard fuzz_trainer_json)
cmake --preset asan > /dev/null
cmake --build --preset asan --parallel "$(nproc)" --target "${targets[@]}"

# The suite's leak suppressions (HDF5's failed-open leaks; Open MPI is linked in but never started
# here), matched on full malloc stacks: libhdf5 has no frame pointers to unwind by. A corrupt HDF5
# header can make HDF5 malloc terabytes: malloc returns NULL then, as it would without ASan, and
# HDF5 fails the open (tests/fuzz/seeds/hdf5_shard/h5fopen_huge_malloc.h5); operator new still
# reports such a size, so gta's own allocations stay checked.
export ASAN_OPTIONS="fast_unwind_on_malloc=0:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Whether the report in log $1 is one of HDF5 1.10's own memory errors on a crafted file
# (bench/results/fuzz.md, "Open"): the first frame of its first stack outside the sanitizer
# runtime, libFuzzer and libc is in libhdf5. gta cannot fix those (a newer HDF5 can); failing on
# them would make a short fuzz run fail at random, so such an input is set aside (kept, named)
# and fuzzing goes on. A bad access by gta's own code has a gta frame first and still fails.
hdf5_own() {
  awk '/^ *#[0-9]+ 0x/ {
         if ($0 ~ /in (__asan|__interceptor_|__sanitizer|__lsan|__ubsan|fuzzer::|operator new|operator delete)|in (malloc|calloc|realloc|free) |libc\.so/) next
         found = 1; exit !($0 ~ /libhdf5/)
       }
       END { if (!found) exit 1 }' "$1"
}

work=build-asan
for t in "${targets[@]}"; do
  seeds=tests/fuzz/seeds/${t#fuzz_}
  [ "$t" = fuzz_config_yaml ] && seeds="configs/models/tiny configs/models/xs"
  corpus=$work/corpus/$t  # first directory: libFuzzer adds the inputs it finds here
  mkdir -p "$corpus"
  log=$work/$t.log
  start=$SECONDS
  runs=0
  set_aside=()
  while :; do
    budget=()
    if [ -n "$max_runs" ]; then budget+=(-runs=$((max_runs - runs))); fi
    if [ -n "$max_seconds" ]; then budget+=(-max_total_time=$((max_seconds - (SECONDS - start)))); fi
    # shellcheck disable=SC2086  # $seeds is a list of paths
    if "$work/$t" "${budget[@]}" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
         -artifact_prefix="$work/$t-" -print_final_stats=1 "$corpus" $seeds > "$log" 2>&1; then
      n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
      runs=$((runs + n))
      break
    fi
    artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
    if [ -z "$artifact" ] || ! hdf5_own "$log"; then
      tail -n 60 "$log"
      echo "fuzz: $t FAILED (log $log, input saved as ${artifact:-?})" >&2
      exit 1
    fi
    kept=$work/$t-hdf5-own-${artifact##*-}
    mv "$artifact" "$kept"
    cp "$log" "$kept.log"
    set_aside+=("$kept")
    # An input that passed once and crashed on a later run (HDF5's state differs) may have been
    # kept in the corpus: libFuzzer names both by the input's SHA-1. The next run must not load it.
    rm -f "$corpus/${artifact##*-}"
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    runs=$((runs + ${n:-0}))
    [ -z "$max_runs" ] || [ "$runs" -lt "$max_runs" ] || break
    [ -z "$max_seconds" ] || [ $((SECONDS - start)) -lt "$max_seconds" ] || break
  done
  echo "fuzz: $t: $runs executions in $((SECONDS - start)) s, 0 crashes, corpus $(ls "$corpus" | wc -l) inputs"
  for k in "${set_aside[@]}"; do
    echo "fuzz: $t: set aside, inside libhdf5 itself: $(grep -m1 -E '^==[0-9]+== ?ERROR|runtime error' "$k.log"), input $k"
  done
done
