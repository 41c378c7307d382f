"""Timing shared by the PyTorch baselines (bench/*.py): the same method as gta's own benchmarks,
so the two sides of a comparison are measured alike."""
import statistics

import torch


def time_ms(f, trials=5, reps=None, warmup=1):
    """Median milliseconds per call of f(): `warmup` untimed calls, then `trials` timings of `reps`
    back-to-back calls between two CUDA events. reps=None: as many calls as fill about 20 ms
    (1 to 100), from one timed probe call."""
    for _ in range(warmup):
        f()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    if reps is None:
        a.record()
        f()
        b.record()
        b.synchronize()
        reps = max(1, min(100, int(20.0 / max(a.elapsed_time(b), 1e-3))))
    out = []
    for _ in range(trials):
        a.record()
        for _ in range(reps):
            f()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / reps)
    return statistics.median(out)
