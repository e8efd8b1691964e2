"""Ops that create tensors from attributes alone: constants, ranges and random draws.

`device` attributes pick the array module; random ops draw from a numpy Generator passed as
the `generator` attribute (then move to the device), so a seed gives the same values on CPU
and CUDA.
"""

from __future__ import annotations

import math

from . import rules as R
from .registry import ShapeError, register


def _size(shapes, size=(), **_):
    return tuple(size)


def _given(args, attrs):
    d = attrs["dtype"]
    return d, d


def _full(xp, size, fill_value, dtype, device=None):
    return xp.full(size, fill_value, dtype=dtype.np)


def _empty(xp, size, dtype, device=None):
    return xp.empty(size, dtype=dtype.np)


def arange_length(start, end, step):
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound and lower bound inconsistent with step sign "
                         f"(start={start}, end={end}, step={step})")
    return max(0, math.ceil((end - start) / step))


def _arange(xp, start, end, step, dtype, device=None):
    n = arange_length(start, end, step)
    if dtype.is_floating_point:
        # PyTorch computes start + i*step in double, then rounds to the dtype.
        return (start + xp.arange(n, dtype=xp.float64) * step).astype(dtype.np)
    return xp.arange(start, start + n * step, step, dtype=xp.int64)[:n].astype(dtype.np)


def _linspace(xp, start, end, steps, dtype, device=None):
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    return xp.linspace(start, end, steps, dtype=xp.float64).astype(dtype.np)


def _eye(xp, n, m, dtype, device=None):
    return xp.eye(n, m, dtype=dtype.np)


def _on(xp, arr):
    return arr if xp.__name__ == "numpy" else xp.asarray(arr)


def _rand(xp, size, dtype, generator, device=None):
    return _on(xp, generator.random(size, dtype="float64").astype(dtype.np))


def _randn(xp, size, dtype, generator, device=None):
    return _on(xp, generator.standard_normal(size, dtype="float64").astype(dtype.np))


def _randint(xp, low, high, size, dtype, generator, device=None):
    if low >= high:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    return _on(xp, generator.integers(low, high, size=size, dtype="int64").astype(dtype.np))


def _randperm(xp, n, dtype, generator, device=None):
    return _on(xp, generator.permutation(n).astype(dtype.np))


def _nonneg(shape):
    if any(d < 0 for d in shape if isinstance(d, int)):
        raise ShapeError(f"trying to create tensor with negative dimension: {R.fmt_shape(shape)}")
    return tuple(shape)


D = {"dtype": None, "device": None}
register("tj::full", (), _full, lambda shapes, size, **_: _nonneg(size), _given, kind="factory",
         attrs={"size": (), "fill_value": 0, **D})
register("tj::empty", (), _empty, lambda shapes, size, **_: _nonneg(size), _given, kind="factory",
         attrs={"size": (), **D}, pure=False)
register("tj::arange", (), _arange,
         lambda shapes, start, end, step, **_: (arange_length(start, end, step),), _given, kind="factory",
         attrs={"start": 0, "end": 0, "step": 1, **D})
register("tj::linspace", (), _linspace, lambda shapes, steps, **_: (steps,), _given, kind="factory",
         attrs={"start": 0, "end": 0, "steps": 0, **D})
register("tj::eye", (), _eye, lambda shapes, n, m, **_: (n, m), _given, kind="factory", attrs={"n": 0, "m": 0, **D})
G = {**D, "generator": None}
register("tj::rand", (), _rand, lambda shapes, size, **_: _nonneg(size), _given, kind="random",
         attrs={"size": (), **G}, pure=False)
register("tj::randn", (), _randn, lambda shapes, size, **_: _nonneg(size), _given, kind="random",
         attrs={"size": (), **G}, pure=False)
register("tj::randint", (), _randint, lambda shapes, size, **_: _nonneg(size), _given, kind="random",
         attrs={"low": 0, "high": 1, "size": (), **G}, pure=False)
register("tj::randperm", (), _randperm, lambda shapes, n, **_: (n,), _given, kind="random",
         attrs={"n": 0, **G}, pure=False)
