"""PyTorch SDPA baseline for gta's attention kernels (kernels/attention_ref.cu now, the fast kernels
later): causal bf16 attention at B8 T2048, forward and forward+backward, timed like the
CudaModelBench.DISABLED_AttentionRefBench test (uniform(-1, 1) bf16 data, warm-up, 5 trials of
`reps` calls between CUDA events, median per call). Shapes: MHA 12x64, and GTA-S (n_q 4, n_k 1,
n_v 1, d_qk 64, d_v 96; SDPA gets enable_gqa with q and k zero-padded to 96, as in docs/gpu.md).
Backends: FlashAttention-2 and cuDNN where available. Usage: python3 bench/attention_sdpa.py"""
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, T = 8, 2048
dev = "cuda"


def time_ms(f, reps):
    f()
    torch.cuda.synchronize()
    out = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            f()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / reps)
    return statistics.median(out)


def u(*shape):
    return (torch.rand(*shape, device=dev) * 2 - 1).to(torch.bfloat16)


for name, nq, nk, nv, dqk, dv in [("MHA 12x64", 12, 12, 12, 64, 64), ("GTA-S nq4 nk1 nv1 dqk64 dv96", 4, 1, 1, 64, 96)]:
    assert nk == nv
    d = max(dqk, dv)
    q = torch.zeros(B, nq, T, d, device=dev, dtype=torch.bfloat16)
    k = torch.zeros(B, nk, T, d, device=dev, dtype=torch.bfloat16)
    q[..., :dqk] = u(B, nq, T, dqk)
    k[..., :dqk] = u(B, nk, T, dqk)
    v = u(B, nv, T, dv)
    g = u(B, nq, T, dv)
    flop_f = 2.0 * B * nq * T * T / 2 * (dqk + dv)
    for backend in [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]:
        try:
            with sdpa_kernel(backend):
                qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
                kw = dict(is_causal=True, scale=dqk ** -0.5, enable_gqa=nq != nk)

                def fwd():
                    with torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, **kw)

                def fb():
                    qq.grad = kk.grad = vv.grad = None
                    F.scaled_dot_product_attention(qq, kk, vv, **kw).backward(g)

                f_ms, fb_ms = time_ms(fwd, 20), time_ms(fb, 10)
            print(f"BENCH sdpa {backend.name} bf16 B{B} T{T} {name}: fwd {f_ms:.3f} ms ({flop_f / f_ms * 1e-9:.1f} TFLOP/s), "
                  f"fwd+bwd {fb_ms:.3f} ms ({3.5 * flop_f / fb_ms * 1e-9:.1f} TFLOP/s)", flush=True)
        except Exception as e:  # a backend may refuse a shape
            print(f"BENCH sdpa {backend.name} {name}: unavailable ({type(e).__name__}: {str(e)[:120]})", flush=True)
print(torch.cuda.get_device_name(), torch.__version__)
