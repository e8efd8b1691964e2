"""`tracejit.trace`: run a function or module eagerly and record every dispatched op as IR.

While tracing, `dispatch` hands each op to the active `Tracer`, which maps tensors to IR
values: the example inputs and a module's parameters and buffers are graph inputs (named
`%x`, `%fc1.weight`), tensors created inside the function become constants, Python numbers
are baked in as constants. In-place ops are recorded as their out-of-place form and the
tensor then stands for the new value. Reading a traced value back into Python (`bool`,
`.item()`, `.tolist()`, iterating) is a trace hazard: it warns with the source line and the
value baked in, or raises with `strict=True`.

    >>> import tracejit as tj
    >>> traced = tj.trace(lambda x: (x * 2).relu(), tj.ones(3))
    >>> [n.op for n in traced.graph.nodes()]
    ['prim::Constant', 'tj::mul', 'tj::relu']
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from .. import ir
from .._dispatch import _TRACE
from .._tensor import Tensor

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUMBER = (bool, int, float)


class TraceHazardWarning(UserWarning):
    """The trace baked in a value read from a traced tensor, or recorded something that may not generalize."""


class TraceHazardError(RuntimeError):
    """A trace hazard under `strict=True`."""


class TracingError(TypeError):
    """The function cannot be traced as written (unsupported input or output, unknown op)."""


def source_line():
    """`file:line` of the innermost caller outside the tracejit package."""
    f = sys._getframe(1)
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if not path.startswith(_PKG + os.sep):
            name = f.f_code.co_filename
            try:
                rel = os.path.relpath(path)
                name = rel if not rel.startswith("..") else name
            except ValueError:
                pass
            return f"{name}:{f.f_lineno}"
        f = f.f_back
    return ""


def _zeros(dims, dtype):
    from .._dispatch import _wrap

    return _wrap(np.zeros(dims, dtype.np))


def _type_of(t):
    return ir.TensorType(t.dtype, tuple(t.shape))


class Tracer:
    """Builds a Graph from the ops dispatched while it is active."""

    def __init__(self, strict=False):
        self.graph = ir.Graph()
        self.strict = strict
        self.values = {}  # id(tensor) -> (tensor, Value); the tensor is kept alive with its id
        self.scope = []
        self.hazards = []
        self._consts = 0
        self.symbolic = False
        self.rebound = []  # ids of tensors an in-place op made stand for a new value, in order
        self.block = self.graph.body  # where new nodes go: the body, or a branch / loop body while scripting
        self.open_nodes = []  # the prim::If / prim::Loop nodes whose blocks are being filled, outermost first
        self.scripting = False  # set by the scripting frontend: unknown shapes instead of the example's
        self.loc = None  # the scripted statement being run ("file:line"), else found from the Python stack

    # ---- values -------------------------------------------------------------------------

    def add_input(self, t, name, dims=None):
        """A graph input for tensor `t`; `dims` maps dim index -> symbol name for dynamic sizes."""
        shape = list(t.shape)
        for d, sym in (dims or {}).items():
            if not -len(shape) <= d < len(shape):
                raise TracingError(f"dynamic_dims: input {name!r} has {len(shape)} dims; dim {d} does not exist")
            shape[d] = sym
        v = self.graph.add_input(ir.TensorType(t.dtype, tuple(shape)), name)
        self.values[id(t)] = (t, v)
        self.symbolic = self.symbolic or bool(dims)
        return v

    def _shape_of(self, a):
        if isinstance(a, Tensor):
            entry = self.values.get(id(a))
            if entry is not None and entry[0] is a:
                if entry[1].type.shape is None:
                    raise TracingError("unknown shape")  # caught by _out_types: the result's shape is unknown too
                return entry[1].type.shape
            return tuple(a.shape)
        if isinstance(a, (list, tuple)) and a and any(isinstance(t, Tensor) for t in a):
            return [self._shape_of(t) for t in a]
        return ()

    def _out_types(self, op, args, attrs, results):
        """Output types: the eager shapes, or with symbolic inputs the op's shape rule on symbols."""
        concrete = [_type_of(r) for r in results]
        if not self.symbolic:
            return concrete
        try:
            shapes = op.shape_rule([self._shape_of(a) for a in args], **attrs)
        except Exception:  # the rule cannot judge (value-dependent shapes): keep the example's sizes
            if self.scripting and self._has_symbols(args):  # inside scripted loops sizes may vary: fresh symbols
                return [ir.TensorType(r.dtype, tuple(self.fresh_symbol() for _ in r.shape)) for r in results]
            return concrete
        shapes = shapes if len(results) > 1 else (shapes,)
        out = []
        for r, sh in zip(results, shapes):
            dims = []
            for d, c in zip(sh, r.shape):
                if isinstance(d, str) and not d.isidentifier():  # a size expression such as `N+1`
                    d = self.fresh_symbol() if self.scripting else c
                dims.append(d)
            out.append(ir.TensorType(r.dtype, tuple(dims)))
        return out

    def _has_symbols(self, args):
        for a in args:
            try:
                shape = self._shape_of(a)
            except TracingError:
                return True
            items = shape if isinstance(a, (list, tuple)) else [shape]
            if any(not isinstance(d, int) for sh in items if sh for d in sh):
                return True
        return False

    def placeholder(self, op, args, attrs):
        """Zeros of the type `op` would give, for an op the example's data does not suit on a path the example
        inputs do not take (only while scripting such a path, `probing`); None otherwise."""
        if not getattr(self, "probing", 0) or op.num_outputs != 1 or op.kind == "random":
            return None
        from ..ir.verify import _Meta

        try:
            shape = op.shape_rule([self._shape_of(a) for a in args], **attrs)
            metas = tuple(_Meta(a.dtype, a.ndim) if isinstance(a, Tensor) else a for a in args)
            _, dtype = op.dtype_rule(metas, attrs)
        except Exception:
            return None
        if dtype is None or isinstance(dtype, tuple):
            return None
        dims = [d if isinstance(d, int) else 1 for d in shape]
        return _zeros(dims, dtype)

    def fresh_symbol(self):
        """A symbol for a size nothing else determines (set by the scripting frontend)."""
        raise TracingError("no symbols outside scripting")

    def value_of(self, a):
        if isinstance(a, Tensor):
            entry = self.values.get(id(a))
            if entry is not None and entry[0] is a:
                return entry[1]
            return self._tensor_constant(a)
        if isinstance(a, (list, tuple)):
            items = [self.value_of(x) for x in a]
            elem = items[0].type if items else ir.NoneType()
            return self._append("prim::ListConstruct", items, [ir.ListType(elem)])
        if a is None or isinstance(a, _NUMBER):
            t = ir.NoneType() if a is None else ir.BoolType() if isinstance(a, bool) else \
                ir.IntType() if isinstance(a, int) else ir.FloatType()
            return self._append("prim::Constant", (), [t], attrs={"value": a})
        raise TracingError(f"cannot trace an op argument of type {type(a).__name__} at {source_line()}")

    def _tensor_constant(self, t):
        """A tensor made outside the traced inputs: its current value becomes a graph constant."""
        name = f"c{self._consts}"
        self._consts += 1
        self.graph.constants[name] = np.array(t.numpy(force=True))
        node = self.graph.create("prim::Constant", (), [_type_of(t)], attrs={"value": ir.ConstRef(name)},
                                 scope=self.current_scope())
        # The tensor may be used again after the branch or loop being built: define it before all of them.
        if self.open_nodes:
            self.open_nodes[0].insert_before(node)
        else:
            self.graph.body.append(node)
        v = node.outputs[0]
        self.values[id(t)] = (t, v)
        return v

    def _append(self, op, inputs, types, attrs=None, loc=""):
        return self.graph.append(op, inputs, types, attrs=attrs, loc=loc, scope=self.current_scope(),
                                 block=self.block)

    def current_scope(self):
        """The dotted name of the innermost submodule running now ("" outside any)."""
        return self.scope[-1] if self.scope else ""

    def _leave(self, module, args, out):
        self.scope.pop()  # returns None: a forward hook's return value would replace the output

    def watch_modules(self, module):
        """Hooks that keep `scope` naming the submodule whose forward is running; returns their handles."""
        handles = []
        for name, sub in module.named_modules():
            if not name:
                continue
            handles.append(sub.register_forward_pre_hook(lambda m, args, name=name: self.scope.append(name)))
            handles.append(sub.register_forward_hook(self._leave))
        return handles

    # ---- recording (called by dispatch) ---------------------------------------------------

    def record(self, op, args, attrs, result, out=None):
        loc = self.loc or source_line()
        if op.kind == "random":
            self.hazard(None, f"random op {op.name}", "its sample", loc)
            results = result if isinstance(result, tuple) else (result,)
            for r in results:
                self._tensor_constant(r)
            return
        ins = [self.value_of(a) for a in args]
        results = result if isinstance(result, tuple) else (result,)
        if self.symbolic and op.name in ("tj::view", "tj::reshape"):
            attrs = self._symbolic_reshape(args[0], attrs, results[0])
        node = self.graph.create(op.name, ins, self._out_types(op, args, attrs, results),
                                 attrs={k: (str(v) if k == "device" and v is not None else v)
                                        for k, v in attrs.items() if k != "device" or v is not None},
                                 loc=loc, scope=self.current_scope())
        self.block.append(node)
        for r, v in zip(results, node.outputs):
            self.values[id(r)] = (r, v)
        if out is not None:  # in place: from now on the target stands for the new value
            self.values[id(out)] = (out, node.outputs[0])
            self.rebound.append(id(out))

    def _symbolic_reshape(self, x, attrs, result):
        """A reshape of a tensor with one symbolic dim keeps the symbol: the output dim that carries it (its
        example size, with the other dims accounting for the rest) is recorded as -1, as `flatten(1)` or
        `view(x.size(0), -1)` mean it. Anything else keeps the example's sizes (and check_trace judges it)."""
        try:
            shape, concrete = self._shape_of(x), tuple(x.shape)
        except TracingError:
            return attrs
        syms = [i for i, d in enumerate(shape) if isinstance(d, str)]
        if len(syms) != 1:
            return attrs
        n = concrete[syms[0]]
        fixed = 1
        for i, d in enumerate(concrete):
            if i != syms[0]:
                fixed *= d
        out = tuple(result.shape)
        candidates = []
        for j, d in enumerate(out):
            rest = 1
            for i, e in enumerate(out):
                if i != j:
                    rest *= e
            if d == n and rest == fixed:
                candidates.append(j)
        if not candidates:
            return attrs
        j = syms[0] if syms[0] in candidates else candidates[0]
        return {**attrs, "shape_attr": out[:j] + (-1,) + out[j + 1:]}

    def hazard(self, tensor, what, value, loc=None):
        if tensor is not None:
            entry = self.values.get(id(tensor))
            if entry is None or entry[0] is not tensor:
                return  # not derived from the traced inputs: nothing is baked in
        loc = loc or self.loc or source_line()
        msg = (f"trace hazard at {loc}: {what} reads a traced value; the trace bakes in {value!r} and will not "
               "follow other inputs")
        self.hazards.append(msg)
        if self.strict:
            raise TraceHazardError(msg)
        warnings.warn(msg, TraceHazardWarning, stacklevel=4)


class _Active:
    """Makes a tracer the one dispatch reports to, for the duration of a `with` block."""

    def __init__(self, tracer):
        self.tracer = tracer

    def __enter__(self):
        if _TRACE["tracer"] is not None:
            raise RuntimeError("tracejit.trace cannot be nested")
        _TRACE["tracer"] = self.tracer
        return self.tracer

    def __exit__(self, *exc):
        _TRACE["tracer"] = None
        return False
