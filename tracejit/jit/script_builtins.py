"""Python builtins as scripted code sees them: `range`, `len`, `min`/`max`, `any`/`all`, ... on run-time
values (see `tracejit.jit.script`)."""

from __future__ import annotations

import builtins
import warnings

import numpy as np

from .._tensor import Tensor
from .script_values import (
    SymScalar,
    _is_dynamic,
    _Range,
)


def _range(s, args, kwargs):
    if kwargs or not 1 <= len(args) <= 3:
        raise s.error("range() takes 1 to 3 positional arguments")
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1) if len(args) == 2 else args
    for x in (start, stop, step):
        if not (isinstance(x, SymScalar) and x.kind is int) and not isinstance(x, (int, np.integer)):
            raise s.error(f"range() of {type(x).__name__}", "range takes ints")
    if not any(isinstance(x, SymScalar) for x in (start, stop, step)):
        return range(start, stop, step)  # known bounds: Python's own range, usable as any value
    return _Range(start, stop, step)


def _len(s, args, kwargs):
    (x,) = args
    if isinstance(x, Tensor):
        if x.ndim == 0:
            raise s.error("len() of a 0-d tensor")
        return s.size_of(x, 0)
    return len(x)


def _minmax(name):
    def f(s, args, kwargs):
        if len(args) == 1 and not kwargs:
            args = tuple(args[0])
        if any(isinstance(a, Tensor) for a in args) and not kwargs:
            acc = args[0]  # Python's max keeps the first of equal items: replace only when strictly better
            for b in args[1:]:
                better = s.binop("gt" if name == "max" else "lt", b, acc)
                c = s.truth(better)
                acc = (b if better else acc) if c is None else s.select(c, b, acc)
            return acc
        if any(isinstance(a, SymScalar) for a in args) and not kwargs:
            acc = args[0]
            for a in args[1:]:
                acc = s.scalar_op(name, acc, a)
            return acc
        return s.library_call(getattr(builtins, name), args, kwargs)

    return f


def _abs(s, args, kwargs):
    (x,) = args
    return s.scalar_op("abs", x) if isinstance(x, SymScalar) else s.library_call(abs, args, kwargs)


def _print(s, args, kwargs):
    if any(_is_dynamic(a) for a in args):
        warnings.warn(f"tracejit.script: print() of run-time values at {s.loc()} is left out of the graph",
                      stacklevel=2)
        return None
    return print(*args, **kwargs)


def _isinstance(s, args, kwargs):
    x, types_ = args
    if isinstance(x, SymScalar):
        return x.kind in (types_ if isinstance(types_, tuple) else (types_,))
    return isinstance(x, types_)


def _getattr(s, args, kwargs):
    return getattr(*args)


def _enumerate(s, args, kwargs):
    it = args[0]
    if isinstance(it, Tensor):
        it = s.unpack_all(it)
    return list(enumerate(it, *args[1:], **kwargs))


def _zip(s, args, kwargs):
    return list(zip(*[s.unpack_all(a) if isinstance(a, Tensor) else a for a in args], **kwargs))


def _anyall(name):
    def f(s, args, kwargs):
        (items,) = args
        items = s.unpack_all(items) if isinstance(items, Tensor) and not s.dim_is_dynamic(items, 0) else items
        if isinstance(items, Tensor):
            raise s.error(f"{name}() over a tensor whose first dim is known only at run time",
                          f"use the tensor method: x.{name}()")
        acc = name == "all"
        for item in items:
            acc = s.logical("and" if name == "all" else "or", acc, s.truth_value(item))
        return acc

    return f


_BUILTINS = {range: _range, any: _anyall("any"), all: _anyall("all"), len: _len, min: _minmax("min"),
             max: _minmax("max"), abs: _abs, print: _print, isinstance: _isinstance, getattr: _getattr,
             enumerate: _enumerate, zip: _zip}

