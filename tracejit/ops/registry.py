"""The op registry: one entry per operation, keyed by its IR name (`tj::add`).

An entry owns what the op means: its schema, its shape and dtype rules, its reference
implementation on an array module `xp` (numpy or cupy), and whether it is pure or a view.
Eager dispatch, the IR and every backend read the same entry.

    >>> from tracejit.ops import get
    >>> get("tj::add").shape_rule([(2, 1), (3,)])
    (2, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Kinds group ops for passes and backends: elementwise ops fuse, views alias their input, ...
KINDS = ("elementwise", "reduction", "view", "movement", "linalg", "factory", "random", "indexing", "scan")


class ShapeError(RuntimeError, ValueError):
    """An op was given inputs whose shapes it cannot combine; the message names them.

    A RuntimeError like PyTorch's shape errors, and a ValueError like numpy's.
    """


@dataclass(slots=True, eq=False)
class OpDef:
    name: str
    inputs: tuple  # input names; a name ending in "[]" is a list of tensors
    attrs: dict  # attribute name -> default value
    kind: str
    impl: Callable  # impl(xp, *arrays, **attrs) -> array or tuple of arrays
    shape_rule: Callable  # shape_rule(shapes, **attrs) -> shape or tuple of shapes
    dtype_rule: Any  # see tracejit.ops.dtype_rules
    pure: bool = True
    view_strides: Callable | None = None  # for views: (shape, strides, **attrs) -> PyTorch's strides
    # Inputs that eager dispatch casts to the compute dtype (indices into `inputs`); None means
    # every input for elementwise ops and none for the rest.
    cast: tuple | None = None
    # Eager in-place form that writes into its first argument instead of allocating, when the
    # op has a cheaper one than "compute, then copy into the target" (setitem, copy_).
    inplace_impl: Callable | None = None
    num_outputs: int = 1
    # grad(F, ctx, *grad_outputs) -> a gradient per input; set by tracejit.ops.grads
    grad: Callable | None = None
    # What the grad rule reads, so autograd keeps nothing else alive: input values, output values.
    # For elementwise ops that are exactly one numpy ufunc on two same-dtype arrays with no
    # attributes: dispatch calls it directly on small inputs (the reference impl stays the definition).
    ufunc: Any = None
    grad_saves_inputs: bool = True
    grad_saves_outputs: bool = False
    doc: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def is_view(self):
        return self.kind == "view"

    def signature(self):
        ins = ", ".join(f"Tensor[] {n[:-2]}" if n.endswith("[]") else f"Tensor {n}" for n in self.inputs)
        ats = ", ".join(f"{k}={v!r}" for k, v in self.attrs.items())
        outs = "Tensor" if self.num_outputs == 1 else "(" + ", ".join(["Tensor"] * self.num_outputs) + ")"
        return f"{self.name}({ins}{', *, ' + ats if ats else ''}) -> {outs}"

    def __repr__(self):
        return f"<op {self.signature()}>"


_REGISTRY: dict[str, OpDef] = {}


def register(name, inputs, impl, shape_rule, dtype_rule, kind="elementwise", attrs=None, **kw):
    """Add one op to the registry; registering a name twice is an error."""
    if name in _REGISTRY:
        raise ValueError(f"op {name} is already registered")
    if not name.startswith("tj::"):
        raise ValueError(f"op names live in the tj:: namespace, got {name!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown op kind {kind!r}; expected one of {KINDS}")
    op = OpDef(name, tuple(inputs), dict(attrs or {}), kind, impl, shape_rule, dtype_rule, **kw)
    if op.cast is None:
        op.cast = tuple(range(len(op.inputs))) if kind == "elementwise" else ()
    _REGISTRY[name] = op
    return op


def get(name):
    """The op registered under `name`; an unknown name raises KeyError listing close names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        near = difflib.get_close_matches(name, list(_REGISTRY), n=5)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise KeyError(f"no op named {name!r} in the registry{hint}") from None


def all_ops():
    """Every registered op, in registration order."""
    return list(_REGISTRY.values())
