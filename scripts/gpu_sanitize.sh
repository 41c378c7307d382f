#!/usr/bin/env bash
# On a CUDA machine: the GPU tests under NVIDIA's compute-sanitizer. memcheck (out-of-bounds and
# misaligned device accesses, device-memory leaks) runs over every GPU test; racecheck
# (shared-memory hazards between threads) and synccheck (barriers reached by part of a block)
# over the attention and fused-op tests, whose kernels share memory across warps. Each tool's
# log and an ERROR SUMMARY table go to ${OUT:-gpu-sanitize}/ (summary.md, with card, commit,
# date). Exit status: non-zero when any tool reports an error or a test fails under it.
#   scripts/gpu_sanitize.sh [MINUTES_PER_TOOL]     (default 3; a tool past it counts as failed)
#   GPU_SANITIZE_TOOLS=racecheck scripts/gpu_sanitize.sh 9    (one tool per time-limited call:
#   racecheck over the attention tests needs more than 3 minutes on an H200)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-sanitize}
limit=$(( ${1:-3} * 60 ))
mkdir -p "$out"
# protoc: from protobuf-compiler, or a protoc unpacked beside the tree (GTA_PROTOC).
protoc=()
[ -n "${GTA_PROTOC:-}" ] && protoc=(-DProtobuf_PROTOC_EXECUTABLE="$GTA_PROTOC")
cmake --preset gpu -DGTA_BUILD_TESTS=ON "${protoc[@]}" > "$out/configure.log"
cmake --build build-gpu --target gta_tests --parallel "$(nproc)" > "$out/build.log" 2>&1 ||
  { tail -50 "$out/build.log"; exit 1; }
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
[ -x "$cs" ] || { echo "gpu_sanitize: compute-sanitizer not found (CUDA toolkit's bin/)" >&2; exit 1; }

gpu_tests='Cuda*'                       # every GPU test suite (tests/test_cuda_*.cpp)
shared_memory_tests='CudaFlashAttention*:CudaModelOps*'
status=0
rows=()
# sanitize TOOL FILTER [TOOL OPTIONS...]: one tool over the tests FILTER selects.
sanitize() {
  local tool=$1 filter=$2 rc=0
  shift 2
  timeout "$limit" "$cs" --tool "$tool" --error-exitcode 99 "$@" build-gpu/gta_tests --gtest_filter="$filter" \
    > "$out/$tool.log" 2>&1 || rc=$?
  local summary tests
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/$tool.log" | tail -n 1 || true)
  tests=$(grep -E "^\[  (PASSED|FAILED)  \]" "$out/$tool.log" | tr '\n' ' ' || true)
  case $rc in
    0) ;;
    124) summary="stopped after $limit s"; status=1 ;;
    *) status=1 ;;
  esac
  rows+=("| $tool | \`$filter\` | ${summary:-none printed} | ${tests:-none} | $rc |")
}
for tool in ${GPU_SANITIZE_TOOLS:-memcheck racecheck synccheck}; do
  case $tool in
    # --print-limit 0: every error printed, not the first 100, so the log accounts for the summary.
    memcheck) sanitize memcheck "$gpu_tests" --leak-check full --print-limit 0 ;;
    racecheck | synccheck) sanitize "$tool" "$shared_memory_tests" ;;
    *) echo "gpu_sanitize: unknown tool '$tool' in GPU_SANITIZE_TOOLS (memcheck, racecheck, synccheck)" >&2; exit 2 ;;
  esac
done

card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n 1)
{
  echo "# compute-sanitizer over the GPU tests, $(date -u +%Y-%m-%d), ${card:-unknown GPU}, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  "$cs" --version | tail -n 1
  echo
  echo "| tool | tests | summary | gtest | exit status |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/summary.md"
exit $status
