"""Scripting: compile a model's Python source, control flow included, into IR.

`Scripter` runs the `ast` of `forward` (and of the user functions, methods and submodules it calls)
statement by statement while a `Tracer` records every tensor op, so each op, module and function of
tracejit is compiled by the same registry path as tracing. What tracing cannot see is decided here:

- `if`/`elif`/`else` and conditional expressions on a tensor or a run-time number become `prim::If`
  with both branches compiled; variables assigned in the branches become the node's outputs, with
  types joined (a dim that differs becomes a fresh symbol). A `return` inside a branch makes the
  rest of the function part of both branches.
- `for i in range(n)` with `n` known only at run time (`x.size(0)` of a dynamic dim, `int(t)`), `for`
  over such a tensor and `while` on a run-time condition become `prim::Loop` with the variables the
  body assigns carried; the body is compiled until the carried types stop changing.
- `for` over lists, tuples, `nn.ModuleList`/`Sequential`, `range` of known bounds and `enumerate`/`zip`
  of those is unrolled; `while` is unrolled while its condition is known now.
- Python numbers computed from run-time values (`x.size(0) // 2`, `i < n`, `t.item()`) are `SymScalar`s
  whose arithmetic becomes `prim::` scalar ops; numbers known now are folded as Python does.
- `assert` and `raise` reached on a run-time condition become `prim::RaiseException` with the message.
- `@tracejit.trace_only` functions and methods are called as they are (traced); `@tracejit.ignore` ones
  are left out of the graph (they must return None).

The example inputs drive the compile: every value carries the data the example gives it, so branch
conditions known now are decided as Python would, and the graph after each `prim::If`/`prim::Loop`
continues from what the node computes on the example.
"""

from __future__ import annotations

import ast
import operator

import numpy as np

from .._dispatch import _wrap
from .._tensor import Tensor
from ..ir.interpreter import SCALAR_OPS
from ..ir.types import TensorType
from .script_ast import (
    _contains_return,
    _has_return,
    _loop_exits,
    _without_returns,
)
from .script_branches import BranchMixin
from .script_calls import CallMixin
from .script_check import Problem, ScriptError, check_all, is_user_code, problem
from .script_exprs import ExprMixin
from .script_loops import LoopMixin
from .script_values import (
    _BINOPS,
    _INT_MAX,
    _KIND_TYPE,
    SymScalar,
    _Break,
    _Continue,
    _is_dynamic,
    _kind,
    _marker,
    _number,
    _Raised,
    _Return,
    _RunTimeText,
)


class Scripter(CallMixin, ExprMixin, BranchMixin, LoopMixin):
    """Compiles Python source into the graph of `tracer` (see the module docstring)."""

    def __init__(self, tracer, root=None):
        self.tracer = tracer
        self.graph = tracer.graph
        self.scalars = {}  # IR value -> example value of run-time Python numbers
        self.names = {id(m): n for n, m in root.named_modules()} if root is not None else {}
        self.ctx = None
        self.node = None  # the AST node being compiled (for error locations)
        self._symbols = 0
        self.depth = 0  # nested scripted calls
        tracer.scripting = True
        tracer.probing = 0  # > 0 while compiling a path the example inputs do not take
        tracer.symbolic = True
        tracer.fresh_symbol = self.fresh_symbol

    # ---- entry points -------------------------------------------------------------------

    def check(self, fn, obj=None):
        """Report every unsupported construct reachable from `fn` at once (ScriptError)."""
        roots = [(fn, obj)]
        if obj is not None:
            for m in obj.modules():
                fwd = getattr(type(m), "forward", None)
                if fwd is not None and is_user_code(fwd) and _marker(fwd) is None:
                    roots.append((fwd, m))
        check_all(roots)

    def run_module(self, module, args):
        return self.outputs(self.call_module(module, args, {}))

    def run_function(self, fn, args):
        return self.outputs(self.call_value(fn, args, {}))

    def outputs(self, out):
        """Run-time numbers among the results become 0-dim tensors (graph outputs are tensors)."""
        if isinstance(out, SymScalar):
            return self.tensor_of(out)
        if _number(out):  # a number known at compile time: a constant 0-dim tensor
            return _wrap(np.asarray(out))
        if isinstance(out, (list, tuple)):
            return type(out)(self.outputs(v) for v in out)
        if isinstance(out, dict):
            return {k: self.outputs(v) for k, v in out.items()}
        return out

    # ---- errors -------------------------------------------------------------------------

    def error(self, what, hint="", node=None):
        node = node or self.node
        file = self.ctx.src.file if self.ctx else "<unknown>"
        p = problem(file, node, what, hint)
        if self.ctx is not None and node is not None:
            p = Problem(p.file, p.line + self.ctx.src.line_offset, p.col, p.what, p.hint)
        return ScriptError([p], header="tracejit.script cannot compile this code:")

    def loc(self, node=None):
        node = node or self.node
        if self.ctx is None or node is None or not hasattr(node, "lineno"):
            return ""
        return f"{self.ctx.src.file}:{node.lineno + self.ctx.src.line_offset}"

    # ---- calls --------------------------------------------------------------------------

    # ---- run-time numbers -----------------------------------------------------------------

    def sym(self, op, inputs, kind, value, attrs=None, size_of=None):
        v = self.tracer._append(op, inputs, [_KIND_TYPE[kind]()], attrs=attrs, loc=self.loc())
        self.scalars[v] = value
        return SymScalar(value, v, kind, size_of)

    def ir_of(self, x):
        """The IR value of a tensor, a run-time number or a number known now (as a constant)."""
        if isinstance(x, SymScalar):
            return x.ir
        if isinstance(x, (np.bool_, np.integer, np.floating)):
            x = x.item()
        return self.tracer.value_of(x)

    def size_of(self, t, d):
        shape = self.type_of(t).shape
        n = t.ndim
        if not isinstance(d, int) or not -n <= d < n:
            raise self.error(f"size({d}) of a {n}-dim tensor")
        d %= n
        if shape is not None and isinstance(shape[d], int):
            return shape[d]
        return self.sym("prim::size", [self.ir_of(t)], int, int(t.shape[d]), attrs={"dim": d}, size_of=(t, d))

    def shape_of(self, t):
        return tuple(self.size_of(t, d) for d in range(t.ndim))

    def scalar_of(self, t, kind=None):
        if kind is None:
            kind = bool if t.dtype.name == "bool" else float if t.dtype.is_floating_point else int
        op = {bool: "prim::Bool", int: "prim::Int", float: "prim::Float"}[kind]
        if t.numel() != 1:
            raise self.error(f"converting a tensor of shape {list(t.shape)} to a Python {kind.__name__}",
                             "only one-element tensors convert to Python numbers")
        return self.sym(op, [self.ir_of(t)], kind, kind(t._data.reshape(-1)[0]))

    def convert(self, kind, args):
        (x,) = args
        if isinstance(x, Tensor):
            return self.scalar_of(x, kind)
        if isinstance(x, SymScalar):
            if x.kind is kind:
                return x
            op = {bool: "prim::Bool", int: "prim::Int", float: "prim::Float"}[kind]
            return self.sym(op, [x.ir], kind, kind(x.value))
        return kind(x)

    def tensor_of(self, s, like=None):
        """A 0-dim tensor holding run-time number `s` (for arithmetic with tensors)."""
        from .. import dtypes

        dtype = {bool: dtypes.bool_, int: dtypes.int64, float: dtypes.float32}[s.kind]
        if s.kind is float and like is not None and like.dtype is dtypes.float64:
            dtype = dtypes.float64
        v = self.tracer._append("prim::NumToTensor", [s.ir], [TensorType(dtype, ())], loc=self.loc())
        t = _wrap(np.asarray(s.value, dtype=dtype.np))
        self.tracer.values[id(t)] = (t, v)
        return t

    def binop(self, name, a, b):
        if isinstance(a, SymScalar) or isinstance(b, SymScalar):
            if isinstance(a, Tensor) or isinstance(b, Tensor):
                a = self.tensor_of(a, b) if isinstance(a, SymScalar) else a
                b = self.tensor_of(b, a) if isinstance(b, SymScalar) else b
            elif _number(a) or _number(b) or (isinstance(a, SymScalar) and isinstance(b, SymScalar)):
                return self.scalar_op(name, a, b)
            else:
                raise self.error(f"`{name}` of {type(a).__name__} and {type(b).__name__}")
        fn = getattr(operator, name)
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            self.tracer.loc = self.loc()
            try:
                return fn(a, b)
            finally:
                self.tracer.loc = None
        return fn(a, b)

    def scalar_op(self, name, *xs):
        op = {"and_": "and", "or_": "or", "not_": "not"}.get(name, name)
        if f"prim::{op}" not in SCALAR_OPS:
            raise self.error(f"the operator `{name}` on numbers known only at run time",
                             "use + - * / // % ** comparisons, and/or/not, min, max or abs")
        if op == "pow" and all(_kind(x) in (int, bool) for x in xs) and not (
                isinstance(xs[1], int) and not isinstance(xs[1], SymScalar) and xs[1] >= 0):
            xs = (self.convert(float, (xs[0],)), xs[1])  # int ** int is a float unless the power is >= 0
        kinds = [_kind(x) for x in xs]
        values = [x.value if isinstance(x, SymScalar) else x for x in xs]
        try:
            value = SCALAR_OPS[f"prim::{op}"](*values)
        except ArithmeticError:
            if not self.tracer.open_nodes:
                raise
            value = 0  # a path the example may not take: the graph computes it at run time
        if op in ("lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not"):
            kind = bool
        elif op == "truediv" or float in kinds:
            kind = float
        elif op in ("min", "max", "abs", "neg") and kinds[0] is bool and all(k is bool for k in kinds):
            kind = int if op in ("neg", "abs") else bool
        else:
            kind = int
        value = kind(value)
        out = self.sym(f"prim::{op}", [self.ir_of(x) for x in xs], kind, value)
        out.nonneg = op in ("add", "mul", "floordiv", "abs") and all(
            x.nonneg if isinstance(x, SymScalar) else x >= 0 for x in xs)
        return out

    def truth_value(self, x):
        """`bool(x)`: a Python bool when known now, else a run-time bool."""
        c = self.truth(x)
        return bool(x) if c is None else c

    def eval_test(self, node):
        """A condition (if / while / assert / conditional expression): only its truth matters, so `and`,
        `or` and `not` combine truth values (`if n and x.sum() > 0` with n an int and the other a tensor)."""
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            acc = self.truth_value(self.eval_test(node.values[0]))
            for v in node.values[1:]:
                if not _is_dynamic(acc) and ((op == "and" and not acc) or (op == "or" and acc)):
                    return acc  # Python's short circuit while the value is known now
                acc = self.logical(op, acc, self.truth_value(self.eval_test(v)))
            return acc
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self.negate(self.truth_value(self.eval_test(node.operand)))
        saved = self.node
        self.node = node if hasattr(node, "lineno") else saved
        try:
            return self.eval(node)
        finally:
            self.node = saved

    def truth(self, x):
        """The IR bool of a run-time condition (a tensor or SymScalar), or None when `x` is known now."""
        if isinstance(x, Tensor):
            if x.numel() != 1:
                raise self.error(f"the truth value of a tensor of shape {list(x.shape)} is ambiguous",
                                 "reduce it first, e.g. `(x > 0).any()` or `x.sum() > 0`")
            return self.scalar_of(x, bool)
        if isinstance(x, SymScalar):
            return x if x.kind is bool else self.convert(bool, (x,))
        return None

    # ---- statements ---------------------------------------------------------------------

    def exec_block(self, stmts):
        i = 0
        while i < len(stmts):
            stmt = stmts[i]
            self.node = stmt
            if isinstance(stmt, ast.If):
                cond = self.eval_test(stmt.test)
                c = self.truth(cond)
                if c is None:  # known now: the chosen branch and what follows it, as one statement list
                    self.exec_block((stmt.body if cond else stmt.orelse) + stmts[i + 1:])
                    return
                if _contains_return(stmt.body) or _contains_return(stmt.orelse):
                    if self.ctx.loop_depth:
                        raise self.error("`return` under a condition known only at run time, inside a loop",
                                         "assign the result to a variable, stop the loop, and return after it")
                    rest = stmts[i + 1:]
                    self.emit_if(c, stmt.body + rest, stmt.orelse + rest, stmt, returns=True)
                else:
                    self.emit_if(c, stmt.body, stmt.orelse, stmt)
            elif isinstance(stmt, (ast.For, ast.While)) and _has_return(stmt.body):
                # `return` in a loop: a flag and the value leave the loop; a `return` after it reads them
                self._flags = getattr(self, "_flags", 0) + 1
                ret, val = f"__returned{self._flags}", f"__retval{self._flags}"
                self.ctx.env[ret] = False
                body = _without_returns(stmt.body, ret, val)
                loop = ast.copy_location(ast.For(stmt.target, stmt.iter, body, stmt.orelse)
                                         if isinstance(stmt, ast.For) else ast.While(stmt.test, body, stmt.orelse),
                                         stmt)
                after = ast.If(ast.Name(ret, ast.Load()), [ast.Return(ast.Name(val, ast.Load()))], [])
                forever = isinstance(stmt, ast.While) and isinstance(stmt.test, ast.Constant) and \
                    bool(stmt.test.value) and not _loop_exits(stmt.body)
                if forever:  # `while True` left only by `return`: nothing after it runs
                    after = ast.Return(ast.Name(val, ast.Load()))
                self.exec_block([loop, ast.fix_missing_locations(ast.copy_location(after, stmt))] + stmts[i + 1:])
                return
            elif isinstance(stmt, ast.With):  # grad modes only (see script_check): the body runs inline
                from ..autograd.grad_mode import _Mode

                for item in stmt.items:
                    if not isinstance(self.eval(item.context_expr), _Mode):
                        raise self.error("`with` on something other than a grad mode (no_grad, enable_grad, ...)")
                self.exec_block(stmt.body + stmts[i + 1:])
                return
            else:
                self.exec_stmt(stmt)
            i += 1

    def exec_stmt(self, stmt):
        env = self.ctx.env
        if isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Constant):
                return  # a docstring
            self.eval(stmt.value)
        elif isinstance(stmt, ast.Assign):
            value = self.eval(stmt.value)
            for t in stmt.targets:
                self.assign(t, value)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.assign(stmt.target, self.eval(stmt.value))
        elif isinstance(stmt, ast.AugAssign):
            op = _BINOPS.get(type(stmt.op))
            if isinstance(stmt.target, ast.Name):
                # `x += y` rebinds x to x + y (out of place), so branches and loops carry the new value.
                self.assign(stmt.target, self.binop(op, self.eval(stmt.target), self.eval(stmt.value)))
            elif isinstance(stmt.target, ast.Subscript):
                base = self.eval(stmt.target.value)
                idx = self.eval_index(stmt.target.slice)
                current = self.getitem(base, idx)
                self.setitem(base, idx, self.binop(op, current, self.eval(stmt.value)))
            else:
                raise self.error("augmented assignment to this target")
        elif isinstance(stmt, ast.Return):
            raise _Return(self.eval(stmt.value) if stmt.value is not None else None)
        elif isinstance(stmt, ast.Pass):
            pass
        elif isinstance(stmt, ast.For):
            self.exec_for(stmt)
        elif isinstance(stmt, ast.While):
            self.exec_while(stmt)
        elif isinstance(stmt, ast.Break):
            raise _Break()
        elif isinstance(stmt, ast.Continue):
            raise _Continue()
        elif isinstance(stmt, ast.Raise):
            self.exec_raise(stmt)
        elif isinstance(stmt, ast.Assert):
            self.exec_assert(stmt)
        elif isinstance(stmt, ast.Delete):
            for t in stmt.targets:
                if not isinstance(t, ast.Name):
                    raise self.error("`del` of anything but a variable")
                env.pop(t.id, None)
        else:
            raise self.error(f"{type(stmt).__name__} statements")

    def assign(self, target, value):
        if isinstance(target, ast.Name):
            self.ctx.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = self.unpack(value, len(target.elts), target)
            for t, v in zip(target.elts, items):
                self.assign(t, v)
        elif isinstance(target, ast.Subscript):
            base = self.eval(target.value)
            self.setitem(base, self.eval_index(target.slice), value)
        else:
            raise self.error(f"assigning to {type(target).__name__}")

    def unpack(self, value, n, node):
        if isinstance(value, Tensor):
            if self.dim_is_dynamic(value, 0):
                raise self.error("unpacking a tensor whose first dim is known only at run time", node=node)
            value = [self.getitem(value, i) for i in range(value.shape[0])]
        if isinstance(value, SymScalar) or not hasattr(value, "__iter__"):
            raise self.error(f"cannot unpack {type(value).__name__}", node=node)
        items = list(value)
        if len(items) != n:
            raise self.error(f"unpacking {len(items)} values into {n} targets", node=node)
        return items

    def getitem(self, base, idx):
        if isinstance(base, Tensor):
            parts = idx if isinstance(idx, tuple) else (idx,)
            if any(isinstance(p, SymScalar) for p in parts):
                return self.dynamic_index(base, parts)
            shape = self.type_of(base).shape
            if (shape is None or any(not isinstance(d, int) for d in shape)) and all(
                    p is None or p is Ellipsis or isinstance(p, (int, slice)) and not isinstance(p, bool)
                    for p in parts):
                return self.symbolic_index(base, parts)
            parts = tuple(slice(*(self.now(v, "slicing") for v in (p.start, p.stop, p.step)))
                          if isinstance(p, slice) else p for p in parts)
            return self.library_call(operator.getitem, (base, parts if isinstance(idx, tuple) else parts[0]), {})
        if isinstance(idx, SymScalar):
            raise self.error(f"indexing a {type(base).__name__} with a number known only at run time",
                             "index tensors instead (stack the items into one tensor first)")
        return base[idx]

    def symbolic_index(self, x, parts):
        """Basic indexing (ints, slices, None, ...) of a tensor with dims known only at run time: negative
        indices and open slice ends are kept as Python's (`x[-1]`, `x[1:]`), resolved against the size at
        run time, instead of against the example's size."""
        from .. import ops
        from .._dispatch import dispatch

        n_ell = sum(p is Ellipsis for p in parts)
        consumed = sum(p is not None and p is not Ellipsis for p in parts)
        if n_ell > 1 or consumed > x.ndim:
            return self.library_call(operator.getitem, (x, parts), {})
        items = []
        for p in parts:
            items.extend([slice(None)] * (x.ndim - consumed) if p is Ellipsis else [p])
        view, dim = x, 0
        self.tracer.loc = self.loc()
        try:
            for p in items:
                if p is None:
                    view = view.unsqueeze(dim)
                    dim += 1
                elif isinstance(p, int):
                    view = dispatch(ops.get("tj::select"), (view,), {"dim": dim, "index": p})
                else:
                    if any(isinstance(v, SymScalar) for v in (p.start, p.stop, p.step)):
                        raise self.error("slicing with bounds known only at run time",
                                         "slice with constants (negative ones count from the end), or use "
                                         "narrow/index_select")
                    step = 1 if p.step is None else p.step
                    if step <= 0:
                        raise self.error("slice steps must be positive")
                    if p != slice(None):
                        start = 0 if p.start is None else p.start
                        end = _INT_MAX if p.stop is None else p.stop
                        view = dispatch(ops.get("tj::slice"), (view,), {"dim": dim, "start": start, "end": end,
                                                                        "step": step})
                    dim += 1
        finally:
            self.tracer.loc = None
        return view

    def dynamic_index(self, x, parts):
        """`x[i]` with `i` known only at run time: index_select of a one-element index, then the dim dropped."""
        if len(parts) != 1 or not isinstance(parts[0], SymScalar) or parts[0].kind is not int:
            raise self.error("indexing with a run-time number mixed with other index items",
                             "index one dim at a time: `x[i]`, then slice the result")
        i = parts[0]
        if not i.nonneg:  # Python's x[-1]: a negative index counts from the end
            size = self.size_of(x, 0)
            i = self.binop("add", i, self.binop("mul", size, self.scalar_op("lt", i, 0)))
        idx = self.tensor_of(i)
        self.tracer.loc = self.loc()
        try:
            return x.index_select(0, idx.reshape(1)).squeeze(0)
        finally:
            self.tracer.loc = None

    def setitem(self, base, idx, value):
        if isinstance(base, Tensor):
            if isinstance(value, SymScalar):
                value = self.tensor_of(value, base)
            self.library_call(operator.setitem, (base, idx, value), {})
        elif isinstance(base, (list, dict)):
            base[idx] = value
        else:
            raise self.error(f"item assignment on {type(base).__name__}")

    def exec_raise(self, stmt):
        exc = self.eval(stmt.exc) if stmt.exc is not None else RuntimeError("re-raised")
        if isinstance(exc, type):
            exc = exc()
        if not isinstance(exc, BaseException):
            raise self.error("raising something that is not an exception")
        if not self.tracer.open_nodes:  # reached unconditionally on the example inputs: raise it now
            raise exc
        name = type(exc).__name__
        text = exc.args[0] if len(exc.args) == 1 else None
        if isinstance(text, _RunTimeText):  # formatted with the run-time values when raised
            msg, inputs = f"{name}: {text.template}", [self.ir_of(v) for v in text.values]
        else:
            msg, inputs = (f"{name}: {exc}" if str(exc) else name).replace("{", "{{").replace("}", "}}"), []
        self.tracer._append("prim::RaiseException", inputs, [], attrs={"message": msg}, loc=self.loc(stmt))
        raise _Raised()

    def exec_assert(self, stmt):
        cond = self.eval_test(stmt.test)
        c = self.truth(cond)
        if c is None and cond:
            return  # holds at compile time: the message is never built
        msg = self.eval(stmt.msg) if stmt.msg is not None else None
        if c is None:
            raise AssertionError(msg) if msg is not None else AssertionError()
        self.ctx.env["__assert_message"] = msg
        raise_stmt = ast.Raise(exc=ast.Call(func=ast.Name("AssertionError", ast.Load()),
                                            args=[ast.Name("__assert_message", ast.Load())] if msg is not None else [],
                                            keywords=[]), cause=None)
        ast.copy_location(raise_stmt, stmt)
        ast.fix_missing_locations(raise_stmt)
        try:
            self.emit_if(c, [], [raise_stmt], stmt)
        finally:
            self.ctx.env.pop("__assert_message", None)

    # ---- branches -------------------------------------------------------------------------

