"""Timing helpers shared by the workloads: best-of-N wall time per call, and a ratio table."""

from __future__ import annotations

import time


def best_time(fn, *, min_time=0.2, repeat=5):
    """Seconds per call of `fn()`: calibrated loop count, best of `repeat` rounds."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / repeat or n >= 1 << 24:
            break
        n *= 4
    best = dt / n
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:9.2f} us"
    if s < 1:
        return f"{s * 1e3:9.2f} ms"
    return f"{s:9.2f} s "


def print_table(title, rows, peers):
    """rows: (case name, {impl: seconds}); prints times and tracejit's ratio to each peer (<1 is faster)."""
    print(f"\n== {title}")
    head = f"{'case':34s}" + "".join(f"{p:>13s}" for p in ["tracejit", *peers])
    head += "".join(f"{'tj/' + p:>12s}" for p in peers)
    print(head)
    for name, times in rows:
        shown = (fmt_time(times[p]) if p in times else "-" for p in ["tracejit", *peers])
        line = f"{name:34s}" + "".join(f"{s:>13s}" for s in shown)
        for p in peers:
            line += f"{times['tracejit'] / times[p]:11.2f}x" if p in times else f"{'-':>12s}"
        print(line)
