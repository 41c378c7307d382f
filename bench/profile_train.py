"""Where a training step's GPU time goes: runs `gta bench train` under Nsight Compute collecting
only each kernel's duration (gpu__time_duration.sum), then sums the durations per kernel name and
prints the kernels sorted by total time (ms per step, share, launches per step).

Usage (on the CUDA machine): python3 bench/profile_train.py GTA_BINARY CONFIG [--dtype bf16]
  [--batch 8] [--seq-len 2048] [--top 40]
One step is profiled after one warm-up step (ncu serialises kernels, so only the per-kernel
times are meaningful, not the step's wall time)."""
import argparse

import ncu_kernels

ap = argparse.ArgumentParser()
ap.add_argument("gta")
ap.add_argument("config")
ap.add_argument("--dtype", default="bf16")
ap.add_argument("--batch", default="8")
ap.add_argument("--seq-len", default="2048")
ap.add_argument("--top", type=int, default=40)
a = ap.parse_args()

ms, calls = ncu_kernels.kernel_times([a.gta, "bench", "train", a.config, "--device", "cuda", "--dtype", a.dtype,
                                      "--batch", a.batch, "--seq-len", a.seq_len, "--steps", "1", "--warmup", "1"])
# Two steps ran (warm-up + timed): halve for per-step figures.
print(f"{a.config} {a.dtype} B{a.batch} T{a.seq_len}: kernel time {sum(ms.values()) / 2:.2f} ms per step, "
      f"{sum(calls.values()) // 2} launches per step")
ncu_kernels.print_table(ms, calls, 2, a.top)
