#!/usr/bin/env bash
# One time-limited GPU job of an ablation suite: builds gta (build-gpu/, sm_90), prepares the
# suite's corpus when its recipe can run here (python-src; english-docs is prepared on the CPU
# machine and carried), runs scripts/ablate.py until SECONDS have passed, and packs the suite's
# logs into $OUT/<suite>-logs.tgz when OUT is set. Call it again in the next job: finished runs
# are skipped, a stopped one resumes from its checkpoint when runs/ is still there.
#
#   scripts/ablate_job.sh experiments/ablations/xs.yaml 570
#
# The logs (experiments/ablations/<suite>/runs/) must be back in the tree the next job starts
# from (unpack the .tgz there): the runner reads which runs are complete from them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/ablate_job.sh SUITE.yaml SECONDS" >&2; exit 2; }
suite=$1 budget=$2 start=$(date +%s)
name=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$suite")
corpus=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get("corpus", ""))' "$suite")
export PYTHONUNBUFFERED=1

# protoc: from protobuf-compiler, or a protoc unpacked beside the tree (GTA_PROTOC).
protoc=()
[ -n "${GTA_PROTOC:-}" ] && protoc=(-DProtobuf_PROTOC_EXECUTABLE="$GTA_PROTOC")
cmake --preset gpu -DGTA_BUILD_TESTS=OFF "${protoc[@]}" > /dev/null
cmake --build build-gpu --target gta --parallel "$(nproc)" > build-gpu/job_build.log 2>&1 ||
  { tail -30 build-gpu/job_build.log; exit 1; }
echo "ablate_job: gta built ($(( $(date +%s) - start )) s)"
case $corpus in
  python-src) scripts/corpus/python_src.sh --gta build-gpu/gta ;;
esac
left=$(( budget - ($(date +%s) - start) ))
rc=0
scripts/ablate.py "$suite" --gta build-gpu/gta --deadline-s "$left" --reserve-s 30 || rc=$?
if [ -n "${OUT:-}" ]; then tar czf "$OUT/$name-logs.tgz" "experiments/ablations/$name"; fi
echo "ablate_job: $(( $(date +%s) - start )) s"
exit $rc
