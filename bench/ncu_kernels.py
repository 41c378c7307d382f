"""Per-kernel GPU time of a command under Nsight Compute, shared by bench/profile_train.py and
bench/profile_decode.py.

ncu runs the command with only each kernel's duration collected (gpu__time_duration.sum, one
replay pass, --clock-control none so the clocks are the ones a normal run gets) and prints one
CSV row per kernel launch; kernel_times() sums them per kernel name. ncu serialises kernels, so
only the per-kernel durations mean anything, not the command's wall time."""
import collections
import csv
import io
import os
import subprocess
import sys

UNIT_MS = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0}


def parse(text):
    """ncu --csv --page raw output -> (ms per kernel name, launches per kernel name)."""
    text = text[text.index('"ID"'):] if '"ID"' in text else text
    rows = list(csv.reader(io.StringIO(text)))
    head = rows[0]
    name_col, t_col = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
    scale = UNIT_MS.get(rows[1][t_col], 1e-6)  # the second row holds the units
    ms, calls = collections.Counter(), collections.Counter()
    for r in rows[2:]:
        if len(r) <= t_col or not r[t_col]:
            continue
        name = r[name_col].split("(")[0]  # templates and arguments left out
        ms[name] += float(r[t_col].replace(",", "")) * scale
        calls[name] += 1
    return ms, calls


def kernel_times(cmd, env=None):
    """Runs cmd under ncu; exits with ncu's output when it fails."""
    full = ["ncu", "--csv", "--page", "raw", "--clock-control", "none", "--metrics", "gpu__time_duration.sum"] + cmd
    res = subprocess.run(full, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if res.returncode != 0:
        sys.exit(f"ncu failed ({res.returncode}):\n{res.stderr[-3000:]}\n{res.stdout[-3000:]}")
    return parse(res.stdout)


def print_table(ms, calls, per, top):
    """The kernels by total time, divided by `per` (steps): ms per step, share, launches per step."""
    total = sum(ms.values())
    print(f"{'ms/step':>9} {'share':>6} {'calls':>6}  kernel")
    for name, t in ms.most_common(top):
        if t <= 0:
            break
        print(f"{t / per:9.4f} {100 * t / total:5.1f}% {calls[name] / per:6.1f}  {name[:110]}")
