"""Timing helpers shared by the workloads: best-of-N or interleaved-median wall time per call, and tables."""

from __future__ import annotations

import os
import resource
import statistics
import time


def best_time(fn, *, min_time=0.2, repeat=5):
    """Seconds per call of `fn()`: calibrated loop count, best of `repeat` rounds."""
    n = _loop_count(fn, min_time / repeat)
    best = float("inf")
    for _ in range(repeat):
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


def interleaved_medians(fns, *, rounds=5, min_time=0.15, pause=0.25):
    """Median seconds per call of each `fns[name]()`, all timed in one process, interleaved.

    Each candidate gets a loop count calibrated to last about `min_time`; then every round times every
    candidate once (the starting candidate rotates from round to round), and the median over rounds is
    reported. Before each timed loop the process sleeps `pause` seconds, so the worker threads another
    library left spinning go idle instead of competing for the cores, and makes one untimed call.
    """
    loops = {}
    for name, fn in fns.items():
        time.sleep(pause)
        loops[name] = _loop_count(fn, min_time)
    names = list(fns)
    samples = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            fn, n = fns[name], loops[name]
            time.sleep(pause)
            if n > 1:  # a call that alone lasts min_time needs no warm-up
                fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(s) for name, s in samples.items()}


def _loop_count(fn, min_time):
    """How many calls of `fn()` take at least `min_time` seconds (at least 1)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 24:
            return n
        n = max(n * 2, min(int(n * min_time / max(dt, 1e-9) * 1.1) + 1, n * 64))


def print_grid(title, cases, candidates, base="tracejit", ratio_label="tj/x"):
    """One row per candidate, and per case its time and `base`'s time as a ratio to it (<1: `base` is faster).

    cases: [(case label, {candidate: seconds})]; a candidate missing from a case prints "-".
    """
    print(f"\n== {title}")
    width = max([len(c) for c in candidates] + [9])
    print(f"{'':{width}s}" + "".join(f"  {label:>21s}" for label, _ in cases))
    print(f"{'candidate':{width}s}" + f"  {'time':>12s} {ratio_label:>8s}" * len(cases))
    for cand in candidates:
        line = f"{cand:{width}s}"
        for _, times in cases:
            if cand not in times:
                line += f"  {'-':>12s} {'-':>8s}"
                continue
            ratio = f"{times[base] / times[cand]:7.2f}x" if base in times else "-"
            line += f"  {fmt_time(times[cand]):>12s} {ratio:>8s}"
        print(line)


def cpu_snapshot():
    """(wall, CPU seconds busy on the whole machine, CPU seconds of this process and its children), or None
    where /proc/stat is missing; `others_busy` turns two of them into the load other processes added."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait; steal counts: the host took the core
    own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own


def others_busy(since):
    """How many cores other processes kept busy, on average, since `since = cpu_snapshot()` (None if unknown).

    Timings taken while this is well above 0 are not comparable: on a 2-core machine a library whose two
    threads meet at a barrier waits whenever one of them is descheduled."""
    now = cpu_snapshot()
    if since is None or now is None or now[0] <= since[0]:
        return None
    return max(0.0, (now[1] - since[1]) - (now[2] - since[2])) / (now[0] - since[0])


def others_note(since):
    busy = others_busy(since)
    if busy is None:
        return ""
    return f"other processes kept {busy:.2f} of the {os.cpu_count()} cores busy meanwhile" + (
        " (timings are disturbed; compare only runs on an idle machine)" if busy > 0.1 else "")
