#!/usr/bin/env bash
# Faults in NCCL data parallelism (skipped, exit 77, without mpirun or 2 GPUs): on 2 GPUs, a
# stalled rank (SIGSTOP) makes the other end the job within dist.timeout_s with a clear error
# (its host polls the collective against the deadline, then aborts the NCCL communicator and the
# MPI job); a crashed rank (SIGKILL) ends the job too. Never a silent hang.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/dist.sh
source "$SRC/tests/cli/lib/dist.sh"
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
gpus=$(nvidia-smi -L 2>/dev/null | wc -l || true)
[ "${gpus:-0}" -ge 2 ] || { echo "skip: needs 2 GPUs, nvidia-smi lists ${gpus:-0}"; exit 77; }
mpi_launcher -x NCCL_NVLS_ENABLE=0 --bind-to none

prepare_tiny data
tiny_run_yaml 2 "{type: gva, n_q_heads: 2, n_k_heads: 1}" > run.yaml
cat >> run.yaml <<'YAML'
train: {device: cuda, steps: 1000000, batch_size: 2, seq_len: 32, global_batch_tokens: 128, log_every: 1, seed: 7}
checkpoint: {every: 2, keep: 2}
eval: {every: 0, batches: 1}
dist: {timeout_s: 5}
YAML
inject_fault STOP stalled "${mpi[@]}" "$GTA" train run.yaml --set train.out_dir=stalled
grep -q "did not complete within 5 s" stalled.log || { cat stalled.log; fail "no timeout error after a stalled rank"; }
grep -m1 "did not complete" stalled.log
inject_fault KILL crashed "${mpi[@]}" "$GTA" train run.yaml --set train.out_dir=crashed
echo "dist_faults_gpu: ok"
