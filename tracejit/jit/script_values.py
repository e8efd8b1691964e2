"""The values scripting works with: run-time numbers (`SymScalar`), markers, control-flow signals and small
helpers on them (see `tracejit.jit.script`)."""

from __future__ import annotations

import ast
import inspect
import typing

import numpy as np

from .._tensor import Tensor
from ..ir.types import BoolType, FloatType, IntType

MAX_UNROLL = 10_000  # iterations of a `while` whose condition is known at compile time
MAX_CALL_DEPTH = 100  # nested scripted calls (each is inlined)
_LOOP_FIXPOINT = 4
_INT_MAX = (1 << 63) - 1


def trace_only(fn):
    """Mark a function or method to be run as it is while scripting (its tensor ops are recorded by tracing,
    so its own Python control flow follows the example inputs, with the usual trace-hazard warnings)."""
    fn.__tracejit_script__ = "trace_only"
    return fn


def ignore(fn):
    """Mark a function or method to be left out of scripted graphs: calls to it are dropped (for logging and
    debugging helpers). It must return None; eager calls run it as usual."""
    fn.__tracejit_script__ = "ignore"
    return fn


def _marker(fn):
    return getattr(inspect.unwrap(getattr(fn, "__func__", fn)), "__tracejit_script__", None)


class SymScalar:
    """A Python number (int, float or bool) known only at run time: an IR value and its example value."""

    __slots__ = ("value", "ir", "kind", "size_of", "nonneg")

    def __init__(self, value, ir_value, kind, size_of=None, nonneg=False):
        self.value, self.ir, self.kind, self.size_of = value, ir_value, kind, size_of
        self.nonneg = nonneg or size_of is not None  # known to be >= 0 (sizes, counters of ranges from 0)

    def __repr__(self):
        return f"<{self.kind.__name__} known at run time: %{self.ir.name}, {self.value!r} in the example>"

    def _now(self, *_):
        raise TypeError(f"%{self.ir.name} is a {self.kind.__name__} known only at run time and cannot be used "
                        "where Python needs its value now")

    __bool__ = __index__ = __int__ = __float__ = __hash__ = _now


class _RunTimeText(str):
    """An f-string with values known only at run time: `template` has a `{}` for each of `values`."""

    def __new__(cls, text, template, values):
        obj = super().__new__(cls, text)
        obj.template, obj.values = template, values
        return obj


_MISSING = object()  # a loop's return value on a path where the loop did not return


class _Undefined:
    def __init__(self, name, why):
        self.name, self.why = name, why


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Raised(Exception):
    """A `raise` reached in a branch or loop body compiled for run time: the rest of that path is dead."""


_KIND_TYPE = {bool: BoolType, int: IntType, float: FloatType}
_RESHAPES = {"view", "reshape"}
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv", ast.FloorDiv: "floordiv",
           ast.Mod: "mod", ast.Pow: "pow", ast.BitAnd: "and_", ast.BitOr: "or_", ast.BitXor: "xor",
           ast.MatMult: "matmul", ast.LShift: "lshift", ast.RShift: "rshift"}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}


def _number(x):
    return isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating)) and not isinstance(x, SymScalar)


def _kind(x):
    if isinstance(x, SymScalar):
        return x.kind
    return bool if isinstance(x, (bool, np.bool_)) else int if isinstance(x, (int, np.integer)) else float


def _is_dynamic(x):
    return isinstance(x, (Tensor, SymScalar))



def _fits(value, want):
    """Whether a scripted value fits a type annotation (unknown annotations fit anything)."""
    if want is typing.Any or want is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(want), typing.get_args(want)
    if origin is typing.Union or (origin is not None and origin.__name__ == "UnionType"):
        return any(_fits(value, a) for a in args)
    if want is type(None):
        return value is None
    if want in (int, float, bool):
        kind = _kind(value) if isinstance(value, SymScalar) or _number(value) else None
        return kind is want or (want is float and kind is int) or (want is int and kind is bool)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if isinstance(want, type):
        return isinstance(value, want)
    return True


def _type_text(want):
    return getattr(want, "__name__", None) if isinstance(want, type) else str(want).replace("typing.", "")


def _has_dynamic(v):
    if isinstance(v, (list, tuple)):
        return any(_has_dynamic(x) for x in v)
    return _is_dynamic(v)


def _hashable(f):
    try:
        hash(f)
    except TypeError:
        return False
    return True


class _Range:
    """`range(...)` whose bounds may be known only at run time."""

    def __init__(self, start, stop, step):
        self.start, self.stop, self.step = start, stop, step
        self.dynamic = any(isinstance(x, SymScalar) for x in (start, stop, step))


