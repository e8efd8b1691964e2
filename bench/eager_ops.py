"""Eager per-op overhead (1-element tensors) and large-tensor throughput (1M elements)."""

from __future__ import annotations

import numpy as np

import tracejit as tj

from .harness import best_time, print_table


def run(torch=None):
    peers = ["numpy"] + (["torch"] if torch is not None else [])
    rows = []
    rng = np.random.default_rng(0)
    for n, label in ((1, "1 elem"), (1_000_000, "1M elem")):
        a_np, b_np, c_np = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
        a, b, c = tj.from_numpy(a_np), tj.from_numpy(b_np), tj.from_numpy(c_np)
        impls = {"tracejit": (a, b, c), "numpy": (a_np, b_np, c_np)}
        if torch is not None:
            impls["torch"] = tuple(torch.from_numpy(x) for x in (a_np, b_np, c_np))
        relu = {"tracejit": lambda x: x.relu(), "numpy": lambda x: np.maximum(x, np.float32(0)),
                "torch": lambda x: x.relu()}
        cases = {
            "a + b": lambda x, y, z, k: x + y,
            "relu(a)": lambda x, y, z, k, relu=relu: relu[k](x),
            "sum(a)": lambda x, y, z, k: x.sum(),
            "a * b + c": lambda x, y, z, k: x * y + z,
        }
        for cname, f in cases.items():
            times = {}
            for k, (x, y, z) in impls.items():
                times[k] = best_time(lambda f=f, x=x, y=y, z=z, k=k: f(x, y, z, k))
            rows.append((f"{cname} ({label})", times))
    print_table("eager ops: per-op overhead and throughput (float32, CPU)", rows, peers)
    return rows
