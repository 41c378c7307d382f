"""Where a training step's GPU time goes: runs `gta bench train` under Nsight Compute collecting
only each kernel's duration (gpu__time_duration.sum), then sums the durations per kernel name and
prints the kernels sorted by total time (ms per step, share, launches per step).

Usage (on the CUDA machine): python3 bench/profile_train.py GTA_BINARY CONFIG [--dtype bf16]
  [--batch 8] [--seq-len 2048] [--steps 1]
One step is profiled after one warm-up step (ncu serialises kernels, so only the per-kernel
times are meaningful, not the step's wall time)."""
import argparse
import collections
import csv
import io
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("gta")
ap.add_argument("config")
ap.add_argument("--dtype", default="bf16")
ap.add_argument("--batch", default="8")
ap.add_argument("--seq-len", default="2048")
ap.add_argument("--top", type=int, default=40)
a = ap.parse_args()

cmd = ["ncu", "--csv", "--page", "raw", "--metrics", "gpu__time_duration.sum", a.gta, "bench", "train", a.config,
       "--device", "cuda", "--dtype", a.dtype, "--batch", a.batch, "--seq-len", a.seq_len, "--steps", "1",
       "--warmup", "1"]
res = subprocess.run(cmd, capture_output=True, text=True)
if res.returncode != 0:
    sys.exit(f"ncu failed ({res.returncode}):\n{res.stderr[-3000:]}\n{res.stdout[-3000:]}")
text = res.stdout[res.stdout.index('"ID"'):] if '"ID"' in res.stdout else res.stdout
rows = list(csv.reader(io.StringIO(text)))
head = rows[0]
name_col, t_col = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
unit = rows[1][t_col]  # the units row
scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0}.get(unit, 1e-6)
tot, cnt = collections.Counter(), collections.Counter()
for r in rows[2:]:
    if len(r) <= t_col or not r[t_col]:
        continue
    name = r[name_col].split("(")[0]
    tot[name] += float(r[t_col].replace(",", "")) * scale
    cnt[name] += 1
# Two steps ran (warm-up + timed): halve for per-step figures.
all_ms = sum(tot.values()) / 2
print(f"{a.config} {a.dtype} B{a.batch} T{a.seq_len}: kernel time {all_ms:.2f} ms per step, "
      f"{sum(cnt.values()) // 2} launches per step")
print(f"{'ms/step':>9} {'share':>6} {'calls':>6}  kernel")
for name, t in tot.most_common(a.top):
    print(f"{t / 2:9.3f} {100 * t / 2 / all_ms:5.1f}% {cnt[name] // 2:6d}  {name[:110]}")
