# shellcheck shell=bash
# Helpers of the data-parallel CLI tests (sourced after common.sh, by absolute path:
# source "$SRC/tests/cli/lib/dist.sh", since common.sh has changed directory).
#
# mpi_launcher OPTIONS...: sets the array `mpi` to `mpirun -np 2 OPTIONS...`, with
# --allow-run-as-root when the tests run as root (containers), and exports what containers need.
mpi_launcher() {
  mpi=(mpirun -np 2 "$@")
  if [ "$(id -u)" -eq 0 ]; then mpi+=(--allow-run-as-root); fi
  export OMPI_MCA_btl_vader_single_copy_mechanism=none  # containers forbid cross-process memory attach
}

# inject_fault SIGNAL OUT COMMAND...: starts COMMAND in the background (an mpirun of `gta train`
# with `--set train.out_dir=OUT` and a checkpoint every 2 steps; its output goes to OUT.log), waits
# for its first checkpoint, sends SIGNAL to rank 1 (STOP: a stalled rank, KILL: a crashed one) and requires the whole job to end with a non-zero status within 60 s: never a
# silent hang.
inject_fault() {
  local signal=$1 out=$2
  shift 2
  "$@" > "$out.log" 2>&1 &
  local launcher=$! victim=""
  # Any checkpoint: a fast run may already have pruned step 2's (checkpoint.keep).
  saved() { compgen -G "$out/checkpoints/step_*" > /dev/null; }
  for _ in $(seq 600); do saved && break; sleep 0.1; done
  saved || { echo "no checkpoint within 60 s"; tail -n 20 "$out.log"; kill "$launcher"; return 1; }
  # A rank is a process whose program (argv[0]) is gta itself, not the launcher (nor a wrapper
  # script around it) whose arguments also hold "gta train". The victim is the rank whose
  # environment says OMPI_COMM_WORLD_RANK=1, not the newest process: ranks start in either order,
  # and a stalled rank 0 is waited for up to dist.rank0_timeout_s (its checkpoint or evaluation
  # may be what stalled), not dist.timeout_s.
  local pid
  for pid in $(pgrep -f "^[^ ]*gta train .*train.out_dir=$out( |\$)"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
  done
  [ -n "$victim" ] || { echo "no process of rank 1 found"; tail -n 20 "$out.log"; kill "$launcher"; return 1; }
  kill "-$signal" "$victim"
  local rc=0
  for _ in $(seq 600); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$launcher" 2>/dev/null; then echo "job still running 60 s after SIG$signal"; kill -9 "$launcher"; return 1; fi
  wait "$launcher" || rc=$?
  kill -CONT "$victim" 2>/dev/null || true
  [ "$rc" -ne 0 ] || { echo "job exited 0 after SIG$signal"; return 1; }
}
