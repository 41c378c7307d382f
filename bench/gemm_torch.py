"""PyTorch baseline for gta's bf16 linear (kernels/gemm.cu): y = x W^T, n x n x n, and the
forward+backward of the same layer (three GEMMs), timed the same way as the CudaBench.LinearBf16
test: uniform(-1, 1) bf16 data, 3 warm-up calls, then 7 trials of `reps` calls between two CUDA
events, median per call. Usage: python3 bench/gemm_torch.py [n]"""
import sys

import torch

from torch_timing import time_ms

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = False
x = (torch.rand(n, n, device=dev) * 2 - 1).to(torch.bfloat16)
w = (torch.rand(n, n, device=dev) * 2 - 1).to(torch.bfloat16)
g = (torch.rand(n, n, device=dev) * 2 - 1).to(torch.bfloat16)
flop = 2.0 * n * n * n


with torch.no_grad():
    fwd = time_ms(lambda: torch.nn.functional.linear(x, w), trials=7, reps=20, warmup=3)
    mm = time_ms(lambda: x @ w.t(), trials=7, reps=20, warmup=3)
xg = x.clone().requires_grad_(True)
wg = w.clone().requires_grad_(True)


def step():
    y = torch.nn.functional.linear(xg, wg)
    y.backward(g)
    xg.grad = None
    wg.grad = None


both = time_ms(step, trials=7, reps=10, warmup=3)
print(f"TORCH_BENCH {torch.__version__} {torch.cuda.get_device_name()} n={n} "
      f"linear fwd {fwd:.4f} ms {flop / fwd / 1e9:.1f} TFLOP/s | x@w.t() {mm:.4f} ms {flop / mm / 1e9:.1f} TFLOP/s | "
      f"fwd+bwd {both:.4f} ms {3 * flop / both / 1e9:.1f} TFLOP/s")
