#!/usr/bin/env bash
# ZeRO-1 over NCCL (skipped, exit 77, without mpirun or 2 GPUs): the check of dist_zero1.sh on
# 2 GPUs in f32 (reduce-scatter, sharded AdamW and clip, all-gather of the updated parameters):
# it trains like the unsharded 2-GPU run, and its checkpoints resume on 1 GPU and the other way
# round (zero1_equivalence in lib/zero1.sh). Tolerance 1e-5: f32 norms summed in another order.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/dist.sh
source "$SRC/tests/cli/lib/dist.sh"
# shellcheck source=lib/zero1.sh
source "$SRC/tests/cli/lib/zero1.sh"
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
gpus=$(nvidia-smi -L 2>/dev/null | wc -l || true)
[ "${gpus:-0}" -ge 2 ] || { echo "skip: needs 2 GPUs, nvidia-smi lists ${gpus:-0}"; exit 77; }
mpi_launcher -x NCCL_NVLS_ENABLE=0 --bind-to none

zero1_equivalence cuda f32 nccl 1e-5
echo "dist_zero1_gpu: ok"
