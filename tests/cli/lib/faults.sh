# shellcheck shell=bash
# Fault injection for the data-parallel CLI tests (sourced after common.sh).
#
# inject_fault SIGNAL OUT COMMAND...: starts COMMAND in the background (an mpirun of `gta train`
# with train.out_dir=OUT and a checkpoint every 2 steps; its output goes to OUT.log), waits for
# the step-2 checkpoint, sends SIGNAL to the job's last rank (STOP: a stalled rank, KILL: a
# crashed one) and requires the whole job to end with a non-zero status within 60 s: never a
# silent hang.
inject_fault() {
  local signal=$1 out=$2
  shift 2
  "$@" > "$out.log" 2>&1 &
  local launcher=$! victim=""
  for _ in $(seq 600); do [ -d "$out/checkpoints/step_000002" ] && break; sleep 0.1; done
  victim=$(pgrep -P "$launcher" -f "gta train" | tail -n 1)
  [ -n "$victim" ] || { echo "no rank process found"; cat "$out.log"; kill "$launcher"; return 1; }
  kill "-$signal" "$victim"
  local rc=0
  for _ in $(seq 600); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$launcher" 2>/dev/null; then echo "job still running 60 s after SIG$signal"; kill -9 "$launcher"; return 1; fi
  wait "$launcher" || rc=$?
  kill -CONT "$victim" 2>/dev/null || true
  [ "$rc" -ne 0 ] || { echo "job exited 0 after SIG$signal"; return 1; }
}
