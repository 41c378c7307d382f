#!/usr/bin/env bash
# kill -9 while an old checkpoint is being pruned: no half-deleted step_<n> is left behind (a
# checkpoint is renamed before it is deleted), and the next save removes what remains.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

prepare_tiny data
tiny_run_yaml 1 "{type: gqa, n_kv_heads: 2}" > run.yaml
cat >> run.yaml <<'YAML'
train: {steps: 2, batch_size: 2, seq_len: 16, out_dir: run}
checkpoint: {every: 2, keep: 1}
eval: {every: 0, batches: 1}
YAML
"$GTA" train run.yaml 2> /dev/null

# Step 2 made slow to delete (many files), then a resumed run saves step 4 and prunes step 2: it
# is killed once the deletion is under way.
"$PY" - "$GTA" <<'PY'
import os, signal, subprocess, sys, time
root, n = "run/checkpoints", 60000
junk = f"{root}/step_000002/junk"
os.mkdir(junk)
for i in range(n):
    open(f"{junk}/{i}", "w").close()

def remaining():
    """Files left in the junk of step 2, wherever it is (None when it is gone)."""
    for d in os.listdir(root):
        if d.startswith("step_000002") and os.path.isdir(f"{root}/{d}/junk"):
            return sum(1 for _ in os.scandir(f"{root}/{d}/junk"))
    return None

p = subprocess.Popen([sys.argv[1], "train", "run.yaml", "--set", "train.steps=4", "--resume"],
                     stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
while p.poll() is None:
    left = remaining()
    if left is not None and left < n:
        p.send_signal(signal.SIGKILL)
        break
p.wait()
assert p.returncode == -signal.SIGKILL, f"the deletion finished before it could be killed (rc {p.returncode})"
if os.path.exists(f"{root}/step_000002"):
    left = remaining()
    assert left == n, f"step_000002 is half-deleted ({left} of {n} files left) and keeps its checkpoint name"
PY

# The next save cleans up; the newest checkpoint is intact and resumes.
"$GTA" train run.yaml --set train.steps=6 --resume 2> resume.log
grep -q "resuming from step 4" resume.log || fail "did not resume from step 4: $(cat resume.log)"
left=$(find run/checkpoints -maxdepth 1 -name 'step_000002*' | wc -l)
[ "$left" -eq 0 ] || fail "the interrupted deletion of step 2 was not finished: $(ls run/checkpoints)"
echo "prune_killed: ok"
