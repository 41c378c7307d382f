#!/usr/bin/env bash
# A run directory belongs to one run and one trainer: a fresh run refuses an out_dir that holds a
# run (--overwrite replaces it), a second trainer is refused while the first holds the lock,
# data.val is checked before step 1, --resume refuses a changed train.seed or data.mode and names
# the model key that differs, and resuming a finished run says so.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

prepare_tiny data
four_step_run_yaml > run.yaml

"$GTA" train run.yaml 2> /dev/null
cp run/metrics.jsonl metrics.saved

# A fresh run into a directory that holds one: refused, and the old run is untouched.
expect_fail "already holds a run" "$GTA" train run.yaml --set train.steps=2
cmp metrics.saved run/metrics.jsonl
[ -f run/checkpoints/step_000004/model.safetensors ]
# --overwrite replaces it: the old checkpoints go, the new run's last checkpoint exists.
"$GTA" train run.yaml --set train.steps=2 --overwrite > over.out 2> /dev/null
[ ! -e run/checkpoints/step_000004 ] || fail "--overwrite kept the old run's step 4"
ckpt=$(sed -n 's/^checkpoint: //p' over.out)
[ -f "$ckpt/model.safetensors" ] || fail "--overwrite: the printed checkpoint '$ckpt' does not exist"
expect_fail "excludes" "$GTA" train run.yaml --overwrite --resume

# Resuming a finished run: nothing to train, rc 0, and the checkpoint it names exists.
"$GTA" train run.yaml --set train.steps=2 --resume > done.out 2> /dev/null
grep -q "nothing to train" done.out || fail "resuming a finished run: $(cat done.out)"
ckpt=$(sed -n 's/^checkpoint: //p' done.out)
[ -f "$ckpt/model.safetensors" ] || fail "resuming a finished run printed checkpoint '$ckpt'"
expect_fail "past train.steps" "$GTA" train run.yaml --set train.steps=1 --resume
# trainer.json's step must match its directory's name.
cp -r run/checkpoints/step_000002 run/checkpoints/step_000009
expect_fail "named for step 9" "$GTA" train run.yaml --set train.steps=12 --resume
rm -r run/checkpoints/step_000009

# --resume keeps the data order and random stream: a changed seed or mode is refused, by name.
expect_fail "train.seed: 1337 in the checkpoint, 9 in the config" "$GTA" train run.yaml --set train.steps=4 --set train.seed=9 --resume
expect_fail "data.mode" "$GTA" train run.yaml --set train.steps=4 --set data.mode=sequential --resume
# Another model: the differing key is named, not two whole configs.
expect_fail "model.d_ff: 64 in the checkpoint, 32 in the config" "$GTA" train run.yaml --set model.d_ff=32 --resume

# data.val is opened and checked before step 1: nothing is trained, nothing is written.
expect_fail "data.val" "$GTA" train run.yaml --set train.out_dir=val --set data.val=missing.h5
[ ! -e val/checkpoints ] && [ ! -e val/metrics.jsonl ] || fail "a bad data.val still trained"

# One trainer per run directory: a second is refused with the holder named; the first goes on.
"$GTA" train run.yaml --set train.out_dir=busy --set train.steps=100000 2> busy.log &
pid=$!
for _ in $(seq 600); do grep -q "pid $pid" busy/.gta-lock 2> /dev/null && break; sleep 0.1; done
expect_fail "pid $pid" "$GTA" train run.yaml --set train.out_dir=busy --set train.steps=100000 --resume
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" -eq 143 ] || fail "SIGTERM: exit status $rc, expected 143"
# The lock dies with its holder: the directory is free again.
"$GTA" train run.yaml --set train.out_dir=busy --set train.steps=1 --overwrite 2> /dev/null || fail "busy/ still locked"

[ "$fails" -eq 0 ]
echo "run_dir: ok"
