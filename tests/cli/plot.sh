#!/usr/bin/env bash
# gta plot: two short runs' loss curves drawn into one PNG (a valid PNG whose pixels hold both
# runs' colours), on both x axes; an installed gta runs its installed script; clear errors for a
# bad run directory or a Python without matplotlib.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

"$PY" -c "import matplotlib, PIL" 2>/dev/null || { echo "skip: $PY has no matplotlib and Pillow"; exit 77; }

prepare_tiny data
tiny_run_yaml 1 "{type: gqa, n_kv_heads: 2}" > run.yaml
cat >> run.yaml <<'YAML'
train: {steps: 8, batch_size: 2, seq_len: 32, out_dir: gqa, log_every: 1}
checkpoint: {every: 0, keep: 1}
eval: {every: 4, batches: 1}
YAML
"$GTA" train run.yaml 2> /dev/null
"$GTA" train run.yaml --set train.out_dir=mqa --set model.attention.type=mqa 2> /dev/null

"$GTA" plot gqa mqa/ --out both.png > plot.log
grep -q "wrote both.png (2 runs, x = tokens)" plot.log || { cat plot.log; fail "gta plot did not say what it wrote"; }
"$GTA" plot gqa mqa --out steps.png --x steps > /dev/null
"$PY" - <<'PY'
import struct
from PIL import Image

for name in ["both.png", "steps.png"]:
    with open(name, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", (name, head)
    w, h = struct.unpack(">II", head[16:24])
    assert w >= 400 and h >= 300, (name, w, h)
    img = Image.open(name).convert("RGB")
    img.load()  # decodes every chunk: a truncated or corrupt file raises here
    # matplotlib's first two colours, C0 and C1: each run's curves in its own colour.
    for rgb in [(0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e)]:
        n = sum(1 for p in img.getdata() if sum(abs(a - b) for a, b in zip(p, rgb)) < 40)
        assert n > 200, (name, rgb, n)
    print(f"{name}: {w}x{h} PNG with both runs' curves")
PY

# Installed (cmake --install), gta finds the script beside itself: PREFIX/share/gta/plot_runs.py.
cmake --install "$(dirname "$GTA")" --prefix inst > /dev/null
echo 'print("the installed plot_runs.py ran")' >> inst/share/gta/plot_runs.py
inst/bin/gta plot gqa --out installed.png > installed.log
grep -q "the installed plot_runs.py ran" installed.log || { cat installed.log; fail "installed gta did not run its installed script"; }

mkdir empty
expect_fail "nothere is not a directory" "$GTA" plot gqa nothere --out x.png
expect_fail "empty has no metrics.jsonl" "$GTA" plot empty --out x.png
# A run being written may end in half a line: skipped. A broken line before the last is an error.
mkdir torn && head -n 5 gqa/metrics.jsonl > torn/metrics.jsonl && printf '{"step": 5, "ev' >> torn/metrics.jsonl
"$GTA" plot torn --out torn.png > /dev/null
printf '\n{"step": 6}\n' >> torn/metrics.jsonl
expect_fail "torn/metrics.jsonl:6: not a JSON object" "$GTA" plot torn --out x.png
expect_fail 'needs a python3 that can `import matplotlib` (none of /bin/false can' env GTA_PYTHON=/bin/false "$GTA" plot gqa --out x.png
expect_fail "--x" "$GTA" plot gqa --x epochs
[ ! -e x.png ] || fail "a failed gta plot wrote x.png"
echo "plot: ok"
