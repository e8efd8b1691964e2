"""A chain of 8 elementwise ops on 1M float32 elements: tracejit eager, tracejit traced and
compiled (one fused LLVM loop), numpy, and torch eager; interleaved rounds, medians
(`bench.harness.interleaved_medians`), so one library's idle worker threads do not slow the next."""

from __future__ import annotations

import numpy as np

import tracejit as tj

from .harness import cpu_snapshot, interleaved_medians, others_note, print_table


def chain(x, y, lib):
    if lib is np:
        return np.sqrt(np.abs(np.maximum(x * 2 + y, 0) - y / 3)) * 0.5 + x
    return ((x * 2 + y).relu() - y / 3).abs().sqrt() * 0.5 + x


def run(torch=None):
    rng = np.random.default_rng(0)
    xn, yn = (rng.standard_normal(1 << 20).astype(np.float32) for _ in range(2))
    x, y = tj.from_numpy(xn), tj.from_numpy(yn)
    compiled = tj.freeze(tj.trace(lambda a, b: chain(a, b, tj), (x, y))).compile()
    np.testing.assert_allclose(compiled(x, y).numpy(), chain(xn, yn, np), rtol=1e-5)
    fns = {
        "tracejit": lambda: compiled(x, y),
        "tj eager": lambda: chain(x, y, tj),
        "numpy": lambda: chain(xn, yn, np),
    }
    if torch is not None:
        xt, yt = torch.from_numpy(xn), torch.from_numpy(yn)
        fns["torch"] = lambda: chain(xt, yt, torch)
    since = cpu_snapshot()
    times = interleaved_medians(fns)
    print_table("fused elementwise chain, 1M float32 (tracejit = traced, frozen, compiled)",
                [("8-op chain", times)], [p for p in fns if p != "tracejit"])
    note = others_note(since)
    if note:
        print(f"  {note}")
