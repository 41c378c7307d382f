#!/usr/bin/env bash
# ZeRO-1 (dist.zero1: true) on the CPU over MPI, in f64: with 2 ranks it trains like the unsharded
# 2-rank run (losses, gradient norms and weights within 1e-12 relative: only the order of the
# norm's additions differs), its checkpoints have the unsharded format, and a ZeRO-1 checkpoint
# of 2 ranks resumes on 1 process without ZeRO-1 and continues like the uninterrupted run
# (zero1_equivalence in lib/zero1.sh).
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/dist.sh
source "$SRC/tests/cli/lib/dist.sh"
# shellcheck source=lib/zero1.sh
source "$SRC/tests/cli/lib/zero1.sh"
command -v mpirun >/dev/null || fail "mpirun not found (apt install openmpi-bin)"
mpi_launcher --oversubscribe

zero1_equivalence cpu f64 mpi 1e-12
expect_fail "dist.zero1" "$GTA" train run.yaml --set dist.zero1=maybe
echo "dist_zero1: ok"
