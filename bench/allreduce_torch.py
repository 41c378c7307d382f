"""PyTorch's all-reduce (torch.distributed over its own NCCL) timed the way `gta bench allreduce`
times gta's: per size, a checked sum of rank+1, `warmup` untimed calls, then `iters` in-place
all-reduces queued back to back and waited for at the end, after a barrier; the time is the
slowest rank's. One JSON line per size on rank 0, with the same fields as gta's --json.

  python3 -m torch.distributed.run --standalone --nproc_per_node=N bench/allreduce_torch.py --sizes-mb 1,25,200
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off on shared hosts
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mb", default="1,25,200")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    rank, world = dist.get_rank(), dist.get_world_size()
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    for mb in (float(s) for s in a.sizes_mb.split(",")):
        n = int(mb * 1e6) // torch.empty((), dtype=dtype).element_size()
        t = torch.full((n,), rank + 1.0, dtype=dtype, device="cuda")
        dist.all_reduce(t)
        want = world * (world + 1) / 2
        assert t[0].item() == want and t[-1].item() == want, (t[0].item(), want)
        t.zero_()
        for _ in range(a.warmup):
            dist.all_reduce(t)
        torch.cuda.synchronize()
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            dist.all_reduce(t)
        torch.cuda.synchronize()
        secs = torch.tensor([time.perf_counter() - t0], dtype=torch.float64, device="cuda")
        dist.all_reduce(secs, op=dist.ReduceOp.MAX)
        per = secs.item() / a.iters
        nbytes = t.numel() * t.element_size()
        algbw = nbytes / per / 1e9
        if rank == 0:
            print(json.dumps({"communicator": f"torch {torch.__version__} nccl {'.'.join(map(str, torch.cuda.nccl.version()))}",
                              "world_size": world, "dtype": a.dtype, "mb": nbytes / 1e6, "ms": per * 1e3,
                              "algbw_gbs": algbw, "busbw_gbs": algbw * 2 * (world - 1) / world}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
