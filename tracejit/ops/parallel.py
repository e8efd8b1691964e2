"""Intra-op parallelism for large elementwise numpy work.

numpy runs a ufunc on one core; PyTorch splits large ops across threads. Here a large
elementwise op is cut into row blocks of its output and each block runs on a worker thread
(numpy releases the GIL inside ufunc loops). Small ops stay on the calling thread, where a
hand-off would cost more than it saves. The thread count follows `set_num_threads`, else
OMP_NUM_THREADS, else the number of cores.

    >>> import numpy as np
    >>> from tracejit.ops import parallel
    >>> parallel.ufunc(np.add, np.ones(4), 1.0).tolist()
    [2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many output elements one thread is faster: measured on 2 cores, a thread hand-off
# costs ~100 us and arrays under ~4 MB mostly sit in cache, so splitting 512K-element adds or
# tanh was slower, while 1M elements gained 15-30% and 2M elements 35-50%.
MIN_PARALLEL = 1 << 20


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_num_threads = _default_threads()
_pool = None
_pool_lock = threading.Lock()


def set_num_threads(n):
    """Threads used by large ops (at least 1)."""
    global _num_threads, _pool
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads expects a positive number of threads, got {n}")
    with _pool_lock:
        if _pool is not None and n != _num_threads:
            _pool.shutdown(wait=False)
            _pool = None
        _num_threads = n


def get_num_threads():
    return _num_threads


def _get_pool():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=_num_threads, thread_name_prefix="tracejit-op")
    return _pool


def pool():
    """The shared worker pool (created on first use); its threads are named `tracejit-op...`, and work
    already running on one of them should not wait on the pool (run it inline instead)."""
    return _get_pool()


def _block(arr, out_ndim, lo, hi):
    """The rows [lo, hi) of an operand as it broadcasts against an output of `out_ndim` dims."""
    if not isinstance(arr, np.ndarray) or arr.ndim < out_ndim or arr.shape[0] == 1:
        return arr  # a number, or an operand that broadcasts along the split axis
    return arr[lo:hi]


def _dtype_of(a):
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype
    if isinstance(a, bool):
        return np.dtype(bool)
    return type(a)  # a Python int/float: numpy promotes it weakly (NEP 50)


def ufunc(fn, *args, dtype=None):
    """`fn(*args)` for a numpy ufunc, split across threads when the output is large."""
    n = _num_threads
    if n == 1 or threading.current_thread().name.startswith("tracejit-op"):
        return fn(*args) if dtype is None else fn(*args, dtype=dtype)
    shape = np.broadcast_shapes(*(a.shape for a in args if isinstance(a, np.ndarray)))
    size = 1
    for d in shape:
        size *= d
    if size < MIN_PARALLEL or not shape or shape[0] < n:
        return fn(*args) if dtype is None else fn(*args, dtype=dtype)
    res_dtype = dtype if dtype is not None else fn.resolve_dtypes(tuple(_dtype_of(a) for a in args) + (None,))[-1]
    out = np.empty(shape, res_dtype)
    rows = shape[0]
    step = -(-rows // n)
    nd = len(shape)

    def work(lo):
        hi = min(lo + step, rows)
        fn(*(_block(a, nd, lo, hi) for a in args), out=out[lo:hi], dtype=dtype)

    futures = [_get_pool().submit(work, lo) for lo in range(step, rows, step)]
    work(0)
    for f in futures:
        f.result()
    return out


def ufunc_into(fn, out, *args, casting="same_kind"):
    """`fn(out, *args, out=out)` (an in-place update), split across threads when `out` is large."""
    n = _num_threads
    rows = out.shape[0] if out.ndim else 0
    # An operand overlapping `out` (x.add_(x.t())) must not be split: numpy resolves the overlap
    # for a whole call, not across blocks that threads write at the same time.
    if n == 1 or rows < n or threading.current_thread().name.startswith("tracejit-op") or any(
            isinstance(a, np.ndarray) and np.may_share_memory(a, out) for a in args):
        return fn(out, *args, out=out, casting=casting)
    step = -(-rows // n)
    nd = out.ndim

    def work(lo):
        hi = min(lo + step, rows)
        fn(out[lo:hi], *(_block(a, nd, lo, hi) for a in args), out=out[lo:hi], casting=casting)

    futures = [_get_pool().submit(work, lo) for lo in range(step, rows, step)]
    work(0)
    for f in futures:
        f.result()
    return out
