"""Where a decode step's GPU time goes, and how much of the step is not kernel time.

    python3 bench/profile_decode.py GTA_BINARY CONFIG [--batch 1] [--context 2048] [--top 30]

Runs `gta bench decode` twice under Nsight Compute (bench/ncu_kernels.py), with 1 and with 1 + N
timed steps and the same prefill, warm-up and bandwidth copy, so that the difference of the two
runs' per-kernel times divided by N is one decode step's, with everything outside the steps
cancelled. The steps run eagerly (GTA_DECODE_GRAPH=0: each kernel is a launch ncu can name; the
kernels are the ones the graph replays). Then the step is timed without ncu, graph-replayed as
the benchmark reports it, and the script prints the step's kernel time against its wall time:
the difference is what the GPU spends between kernels (launch latency and dependencies in the
graph), the part that fusing kernels can recover; the kernel time is what faster kernels can."""
import argparse
import json
import subprocess
import sys

import ncu_kernels

ap = argparse.ArgumentParser()
ap.add_argument("gta")
ap.add_argument("config")
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--context", type=int, default=2048)
ap.add_argument("--steps", type=int, default=4, help="N: the decode steps the difference counts")
ap.add_argument("--top", type=int, default=30)
a = ap.parse_args()


def bench(new_tokens):
    return [a.gta, "bench", "decode", a.config, "--device", "cuda", "--batch", str(a.batch), "--context",
            str(a.context), "--new-tokens", str(new_tokens), "--warmup", "1", "--json"]


eager = {"GTA_DECODE_GRAPH": "0"}
ms1, calls1 = ncu_kernels.kernel_times(bench(1), eager)
msn, callsn = ncu_kernels.kernel_times(bench(1 + a.steps), eager)
ms, calls = msn.copy(), callsn.copy()
ms.subtract(ms1)
calls.subtract(calls1)
kernel_ms = sum(ms.values()) / a.steps

res = subprocess.run(bench(32), capture_output=True, text=True)
if res.returncode != 0:
    sys.exit(f"gta bench decode failed ({res.returncode}):\n{res.stderr[-3000:]}")
point = json.loads(res.stdout.strip().splitlines()[-1])
wall = point["ms_per_step"]
print(f"{a.config} B{a.batch} context {a.context}: {point['decode_path']}, {wall:.3f} ms per step; "
      f"kernel time {kernel_ms:.3f} ms ({100 * kernel_ms / wall:.0f}%), between kernels {wall - kernel_ms:.3f} ms; "
      f"{sum(calls.values()) / a.steps:.0f} launches per step; roofline {point['roofline_ms_per_step']:.3f} ms")
ncu_kernels.print_table(ms, calls, a.steps, a.top)
