"""Readers for what a gta run writes, shared by the CLI tests' Python checks (tests/cli/*.sh put
this directory on PYTHONPATH through lib/common.sh)."""
import json
import struct


def train_records(run):
    """The 'train' events of RUN/metrics.jsonl, in order."""
    with open(f"{run}/metrics.jsonl") as f:
        return [r for r in map(json.loads, f) if r.get("event") == "train"]


def losses(run):
    """{step: training loss} of a run directory."""
    return {r["step"]: r["loss"] for r in train_records(run)}


def safetensors(path, dtypes=("F32", "F64")):
    """{name: float64 array of the stored shape} of a safetensors file; every tensor's dtype must be
    one of `dtypes`."""
    import numpy as np  # here, so the metrics readers work on a Python without numpy

    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    out = {}
    for k, v in json.loads(b[8:8 + n]).items():
        if k == "__metadata__":
            continue
        assert v["dtype"] in dtypes, (path, k, v["dtype"])
        lo, hi = v["data_offsets"]
        dt = {"F32": np.float32, "F64": np.float64}[v["dtype"]]
        out[k] = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype=dt).astype(np.float64).reshape(v["shape"])
    return out


def safetensors_metadata(path):
    """The __metadata__ object of a safetensors file's header (gta writes the model config there)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})
