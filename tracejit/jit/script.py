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
import builtins
import inspect
import operator
import typing
import warnings

import numpy as np

from .. import ir
from .._dispatch import _wrap
from .._tensor import Tensor
from ..ir.interpreter import SCALAR_OPS, ScriptException, run_node
from ..ir.types import BoolType, FloatType, IntType, TensorType
from .script_check import Problem, ScriptError, check_all, is_user_code, problem, source_of
from .tracer import TracingError

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


def _assigned_names(stmts):
    """Names a statement list binds (not inside nested scopes), in first-assignment order."""
    names = []
    stack = list(reversed(stmts))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) and node.id not in names:
            names.append(node.id)
        if isinstance(node, (ast.FunctionDef, ast.Lambda, ast.ListComp, ast.GeneratorExp)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return names


_MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "reverse", "sort", "update", "setdefault",
             "popitem", "__setitem__", "__delitem__"}


def _mutated_names(stmts):
    """Variables whose list or dict a statement list changes in place (`a.append(x)`, `a[i] = x`, `del a[i]`)."""
    names = []
    for s in stmts:
        for node in ast.walk(s):
            base = None
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
                base = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
                base = node.func.value
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Subscript):
                base = node.target.value
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name) and base.id not in names:
                names.append(base.id)
    return names


def _copy_containers(v):
    if isinstance(v, list):
        return [_copy_containers(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy_containers(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return tuple(_copy_containers(x) for x in v)
    return v


def _loop_exits(stmts):
    """Whether `break` or `continue` of this loop appear in `stmts` (not those of nested loops)."""
    stack = list(stmts)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Break, ast.Continue)):
            return True
        if isinstance(n, (ast.For, ast.While, ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _flag(name, value, at):
    return ast.fix_missing_locations(ast.copy_location(
        ast.Assign([ast.Name(name, ast.Store())], ast.Constant(value)), at))


def _without_exits(stmts, brk, cont):
    """`stmts` with `break` / `continue` turned into flag assignments and what follows them guarded by
    `if not (brk or cont):`, so a loop can stop on a condition known only at run time."""
    out = []
    for i, s in enumerate(stmts):
        if isinstance(s, (ast.Break, ast.Continue)):
            out.append(_flag(brk if isinstance(s, ast.Break) else cont, True, s))
            return out  # the rest of this block is dead
        if isinstance(s, (ast.If, ast.With)) and _loop_exits([s]):
            if isinstance(s, ast.If):
                new = ast.If(s.test, _without_exits(s.body, brk, cont), _without_exits(s.orelse, brk, cont))
            else:
                new = ast.With(s.items, _without_exits(s.body, brk, cont))
            out.append(ast.copy_location(new, s))
            rest = stmts[i + 1:]
            if rest:
                test = ast.UnaryOp(ast.Not(), ast.BoolOp(ast.Or(), [ast.Name(brk, ast.Load()),
                                                                    ast.Name(cont, ast.Load())]))
                guard = ast.copy_location(ast.If(test, _without_exits(rest, brk, cont), []), rest[0])
                out.append(ast.fix_missing_locations(guard))
            return out
        out.append(s)
    return out


def _has_return(stmts):
    stack = list(stmts)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Return):
            return True
        if not isinstance(n, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(n))
    return False


def _without_returns(stmts, ret, val):
    """A loop body with `return v` turned into `val = v; ret = True; break` (nested loops stop too)."""
    out = []
    for s in stmts:
        if isinstance(s, ast.Return):
            value = s.value if s.value is not None else ast.Constant(None)
            for new in (ast.Assign([ast.Name(val, ast.Store())], value), _flag(ret, True, s), ast.Break()):
                out.append(ast.fix_missing_locations(ast.copy_location(new, s)))
            return out
        if not _has_return([s]):
            out.append(s)
        elif isinstance(s, ast.If):
            out.append(ast.copy_location(ast.If(s.test, _without_returns(s.body, ret, val),
                                                _without_returns(s.orelse, ret, val)), s))
        elif isinstance(s, ast.With):
            out.append(ast.copy_location(ast.With(s.items, _without_returns(s.body, ret, val)), s))
        elif isinstance(s, (ast.For, ast.While)):
            loop = ast.copy_location(ast.For(s.target, s.iter, _without_returns(s.body, ret, val), s.orelse)
                                     if isinstance(s, ast.For) else
                                     ast.While(s.test, _without_returns(s.body, ret, val), s.orelse), s)
            out.append(loop)
            stop = ast.If(ast.Name(ret, ast.Load()), [ast.Break()], [])
            out.append(ast.fix_missing_locations(ast.copy_location(stop, s)))
        else:
            out.append(s)
    return out


def _always_returns(stmts):
    for s in stmts:
        if isinstance(s, (ast.Return, ast.Raise)):
            return True
        if isinstance(s, ast.If) and _always_returns(s.body) and _always_returns(s.orelse):
            return True
    return False


def _contains_return(stmts):
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Return):
                return True
    return False


class _Ctx:
    """One scripted function call: its variables, globals, source file and whether its body runs to the end."""

    def __init__(self, fn, env, src, owner):
        self.fn, self.env, self.src, self.owner = fn, env, src, owner
        self.globals = fn.__globals__
        self.closure = inspect.getclosurevars(fn).nonlocals if fn.__closure__ else {}
        self.tail = True  # the statements being run go on to the end of the function (returns are final)
        self.loop_depth = 0  # > 0 inside the body of a loop


class Scripter:
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

    def call_module(self, module, args, kwargs):
        from ..nn.container import Sequential

        fwd = getattr(type(module), "forward", None)
        if isinstance(module, Sequential) and type(module).forward is Sequential.forward and not kwargs:
            (x,) = args
            for m in module:
                x = self.call_value(m, (x,), {})
            return x
        if fwd is None or not is_user_code(fwd) or _marker(fwd) == "trace_only":
            return self.library_call(module, args, kwargs)
        if _marker(fwd) == "ignore":
            return None
        name = self.names.get(id(module))
        if name:
            self.tracer.scope.append(name)
        try:
            return self.call(fwd, (module, *args), kwargs, owner=module)
        finally:
            if name:
                self.tracer.scope.pop()

    def call(self, fn, args, kwargs, owner=None):
        """Compile a call of user function `fn` inline; returns what it returns."""
        fn = inspect.unwrap(getattr(fn, "__func__", fn))
        src = source_of(fn)
        if src.problems:
            raise ScriptError(src.problems)
        if self.depth >= MAX_CALL_DEPTH:
            raise self.error(f"calls nested more than {MAX_CALL_DEPTH} deep (recursion?) compiling {fn.__qualname__}",
                             "scripted functions are inlined, so recursion must end at compile time")
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as e:
            raise self.error(f"calling {fn.__qualname__}: {e}") from None
        bound.apply_defaults()
        env = dict(bound.arguments)
        self.check_annotations(fn, src, env)
        outer, outer_node = self.ctx, self.node
        self.ctx = _Ctx(fn, env, src, owner)
        self.depth += 1
        try:
            try:
                self.exec_block(src.fndef.body)
            except _Return as r:
                return r.value
            return None
        finally:
            self.ctx, self.node = outer, outer_node
            self.depth -= 1

    def check_annotations(self, fn, src, env):
        """Arguments must fit their annotations (`x: Tensor`, `n: int`, `Optional[Tensor]`, `List[Tensor]`)."""
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # annotations that do not evaluate here (forward references): not checked
            return
        for arg in src.fndef.args.args + src.fndef.args.kwonlyargs:
            want = hints.get(arg.arg)
            if want is None or arg.arg not in env:
                continue
            if not _fits(env[arg.arg], want):
                got = env[arg.arg]
                got_text = f"a {got.kind.__name__} known at run time" if isinstance(got, SymScalar) else \
                    type(got).__name__
                raise self.error(f"argument `{arg.arg}` of {fn.__qualname__} is annotated {_type_text(want)} but "
                                 f"gets {got_text}", node=arg)

    def call_value(self, f, args, kwargs):
        """Call whatever `f` is, as scripted code would."""
        from ..nn.module import Module

        if isinstance(f, Module):
            return self.call_module(f, args, kwargs)
        special = _BUILTINS.get(f) if _hashable(f) else None
        if special is not None:
            return special(self, args, kwargs)
        if isinstance(f, type) and f in (int, float, bool):
            return self.convert(f, args)
        if f is super and not args and "__class__" in self.ctx.closure:  # zero-argument super()
            first = self.ctx.src.fndef.args.args[0].arg
            return super(self.ctx.closure["__class__"], self.ctx.env[first])
        marker = _marker(f) if callable(f) else None
        if marker == "ignore":
            return None
        if marker is None and is_user_code(f):
            owner = getattr(f, "__self__", None)
            if owner is not None:
                return self.call(f.__func__, (owner, *args), kwargs, owner=owner)
            return self.call(f, args, kwargs)
        if getattr(f, "__self__", None) is not None and isinstance(f.__self__, Tensor):
            handled = self.tensor_method(f.__self__, f.__name__, args, kwargs)
            if handled is not NotImplemented:
                return handled
        return self.library_call(f, args, kwargs)

    def library_call(self, f, args, kwargs):
        """Run tracejit (or other library) code as it is: its tensor ops are recorded by the tracer."""
        args = tuple(self.now(a, f) for a in args)
        kwargs = {k: self.now(v, f) for k, v in kwargs.items()}
        self.tracer.loc = self.loc()
        try:
            return f(*args, **kwargs)
        finally:
            self.tracer.loc = None

    def now(self, x, f):
        """`x` as a library function may take it: a run-time number that is a dim's size becomes the example's
        size (the tracer keeps reshapes to it symbolic, and scripting checks other sizes); any other run-time
        number cannot be given to Python code."""
        if isinstance(x, SymScalar):
            if x.size_of is not None and getattr(f, "__name__", "") in _RESHAPES:
                return x.value  # the tracer keeps a reshape to a symbolic size symbolic
            name = f if isinstance(f, str) else (
                getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__)
            raise self.error(f"{name} is given %{x.ir.name}, a {x.kind.__name__} known only at run time",
                             "pass tensors or numbers known at compile time; for sizes that vary use view/reshape, "
                             "zeros_like/new_zeros or expand_as")
        if isinstance(x, (list, tuple)) and any(isinstance(v, (SymScalar, list, tuple)) for v in x):
            return type(x)(self.now(v, f) for v in x)
        return x

    def tensor_method(self, t, name, args, kwargs):
        if name == "size":
            if not args and not kwargs:
                return self.shape_of(t)
            (d,) = args or (kwargs["dim"],)
            return self.size_of(t, d)
        if name == "item":
            return self.scalar_of(t)
        if name == "numel":
            total = 1
            for d in self.shape_of(t):
                total = self.binop("mul", total, d)
            return total
        if name == "dim":
            return t.ndim
        if name in ("tolist", "numpy", "__array__", "data_ptr"):
            raise self.error(f"`.{name}()` reads a tensor's values into Python, which a compiled graph cannot do "
                             "at run time", "keep computing with tensor ops (or .item() for one number)")
        return NotImplemented

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

    def run_branch(self, block, stmts, names, returns, taken=True, copy=()):
        """Compile `stmts` into `block`; returns ("raise", None) or ("ok", values) where values are the
        variables `names` (or the returned value) at the end of the branch. `taken`: whether the example
        inputs take this branch (if not, a Python error while compiling it is reported as such)."""
        tracer = self.tracer
        saved_env = self.ctx.env
        self.ctx.env = {k: (_copy_containers(v) if k in copy else v) for k, v in saved_env.items()}
        tracer.block = block
        tracer.probing += 0 if taken else 1
        try:
            try:
                self.exec_block(stmts)
                result = None
                if returns:
                    result = ("ok", None)  # fell off the end of the function: returns None
                else:
                    result = ("ok", [self.ctx.env.get(n, _Undefined(n, "")) for n in names])
            except _Return as r:
                if not returns:
                    raise self.error("`return` inside a loop compiled for run time") from None
                result = ("ok", r.value)
            except _Raised:
                result = ("raise", None)
            except (_Break, _Continue):
                raise self.error("`break` / `continue` under a condition known only at run time",
                                 "use a `while` loop whose condition carries the stop") from None
            except (ScriptError, TracingError, ScriptException):
                raise
            except Exception as e:
                if taken:
                    raise
                raise self.not_reached(e, "branch") from e
        finally:
            self.ctx.env = saved_env
            tracer.probing -= 0 if taken else 1
        return result

    def not_reached(self, e, what):
        return self.error(f"compiling a {what} the example inputs do not reach failed on their values "
                          f"({type(e).__name__}: {e})",
                          f"script with example inputs that reach this {what} (the compiler runs every path on "
                          "the examples' data)")

    def emit_if(self, cond, then_stmts, else_stmts, stmt, returns=False):
        tracer = self.tracer
        node = self.graph.create("prim::If", [cond.ir], [], loc=self.loc(stmt), scope=tracer.current_scope())
        tracer.block.append(node)
        env = self.ctx.env
        mutated = [n for n in _mutated_names(then_stmts + else_stmts) if isinstance(env.get(n), (list, dict))]
        names = [] if returns else list(dict.fromkeys(_assigned_names(then_stmts + else_stmts) + mutated))
        outer_block = tracer.block
        snapshot = dict(tracer.values)
        mark = len(tracer.rebound)
        containers = self.container_snapshot(names)
        tracer.open_nodes.append(node)
        results = []
        try:
            for k, stmts in enumerate((then_stmts, else_stmts)):
                b = node.add_block()
                res = self.run_branch(b, stmts, names, returns, taken=bool(cond.value) == (k == 0),
                                      copy=set(names) | set(mutated))
                self.check_no_outer_writes(snapshot, stmt, mark)
                self.check_containers(containers, stmt)
                values = tracer.values
                tracer.values = dict(snapshot)
                results.append((b, res, values))
        finally:
            tracer.open_nodes.pop()
            tracer.block = outer_block
            self.node = stmt
        outs = self.join_branches(node, results, names, returns, stmt)
        if returns:
            raise _Return(outs)
        for n, v in zip(names, outs):
            self.ctx.env[n] = v

    def container_snapshot(self, skip):
        """The leaves of every list and dict variable not in `skip`, to check a branch or loop leaves them be."""
        snap = {}
        for n, v in self.ctx.env.items():
            if n not in skip and isinstance(v, (list, dict)):
                spec, leaves = self.flatten(v)
                snap[n] = (v, spec, [id(x) for x in leaves])
        return snap

    def check_containers(self, snap, stmt):
        for n, (v, spec, ids) in snap.items():
            now_spec, leaves = self.flatten(v)
            if now_spec != spec or [id(x) for x in leaves] != ids:
                raise self.error(f"`{n}` is changed in place under a condition known only at run time (through "
                                 "another name)", "change the list or dict through the variable that holds it",
                                 node=stmt)

    def check_no_outer_writes(self, snapshot, stmt, since=0):
        for k in self.tracer.rebound[since:]:
            entry = snapshot.get(k)
            if entry is None:
                continue
            now = self.tracer.values.get(k)
            if now is not None and now is not entry and now[0] is entry[0]:
                raise self.error(f"an in-place update of %{entry[1].name}, a tensor from outside this branch or "
                                 "loop", "assign a new tensor instead (`x = x + y`, not `x += y` on an alias or "
                                 "`x.add_(y)`)", node=stmt)

    def join_branches(self, node, results, names, returns, stmt):
        """Make the If's outputs from what each branch left in `names` (or returned)."""
        live = [(b, res[1], vals) for b, res, vals in results if res[0] == "ok"]
        if not live:  # both branches raise: nothing after this runs
            raise _Raised()
        if not returns:  # a loop's return value is read only where its flag is set: absent elsewhere is fine
            for k, n in enumerate(names):
                if not n.startswith("__retval"):
                    continue
                have = [v[k] for _, v, _ in live if not isinstance(v[k], _Undefined)]
                if have and len(have) < len(live):
                    spec, leaves = self.flatten(have[0])
                    for _, v, _ in live:
                        if isinstance(v[k], _Undefined):
                            v[k] = self.unflatten(spec, iter([_MISSING] * len(leaves)))
        structures = [self.flatten(v if returns else list(v)) for _, v, _ in live]
        spec0 = structures[0][0]
        for spec, _ in structures[1:]:
            if spec != spec0:
                raise self.error(self.mismatch_message(names, live, returns), node=stmt)
        leaves_per_branch = [leaves for _, leaves in structures]
        out_leaves = []
        fallback = []  # example values if running the node on the example raises (inside a loop probe)
        returns_per_block = {id(b): [] for b, _, _ in results}
        env_for = {id(b): vals for b, _, vals in live}
        for k in range(len(leaves_per_branch[0])):
            column = [leaves[k] for leaves in leaves_per_branch]
            present = [c for c in column if c is not _MISSING]
            if len(present) < len(column):
                out_type = self.missing_join(present, stmt)
                out = ir.Value(out_type, self.graph.fresh_name(), node=node)
                node.outputs.append(out)
                fallback.append(self.example_data(present[0]))
                for (b, _, _), c in zip(live, column):
                    if c is _MISSING:
                        u = self.graph.create("prim::Uninitialized", [], [out_type])
                        b.append(u)
                        returns_per_block[id(b)].append(u.outputs[0])
                    elif isinstance(c, Tensor):
                        returns_per_block[id(b)].append(self.tensor_ir(b, env_for[id(b)], c))
                    else:
                        returns_per_block[id(b)].append(self.ir_in_block(b, c))
                for b, res, _ in results:
                    if res[0] == "raise":
                        u = self.graph.create("prim::Uninitialized", [], [out_type])
                        b.append(u)
                        returns_per_block[id(b)].append(u.outputs[0])
                out_leaves.append(out)
                continue
            first = column[0]
            if all(c is first for c in column) and not _is_dynamic(first) or (
                    all(_number(c) for c in column) and len({(type(c), c) for c in column}) == 1):
                out_leaves.append(first)
                continue
            if all(isinstance(c, Tensor) for c in column):
                ir_vals = [self.tensor_ir(b, env_for[id(b)], c) for (b, _, _), c in zip(live, column)]
                types = [v.type for v in ir_vals]
                out_type = types[0]
                for t in types[1:]:
                    out_type = self.join_type(out_type, t, self.leaf_name(names, k, returns), stmt)
            elif all(_number(c) or isinstance(c, SymScalar) for c in column):
                kinds = {_kind(c) for c in column}
                if len(kinds) != 1:
                    kinds_text = " on one path and a ".join(sorted(t.__name__ for t in kinds))
                    raise self.error(f"{self.leaf_name(names, k, returns)} is a {kinds_text} on another",
                                     "give it one type on every path", node=stmt)
                out_type = _KIND_TYPE[kinds.pop()]()
                ir_vals = None
            elif any(isinstance(c, _Undefined) for c in column):
                why = next((c.why for c in column if isinstance(c, _Undefined) and c.why), "defined on some paths only")
                out_leaves.append(_Undefined(self.leaf_name(names, k, returns), why))
                continue
            else:
                kinds = " and ".join(sorted({type(c).__name__ for c in column}))
                if not returns:  # an error only if it is read after this point
                    out_leaves.append(_Undefined(
                        self.leaf_name(names, k, returns).strip("`"),
                        f"a different {kinds} on each path of a condition known only at run time"))
                    continue
                raise self.error(f"{self.leaf_name(names, k, returns)} is {kinds} depending on a condition known "
                                 "only at run time", "give it one type on every path (a tensor, or a number)",
                                 node=stmt)
            out = ir.Value(out_type, self.graph.fresh_name(), node=node)
            node.outputs.append(out)
            fallback.append(self.example_data(column[0]))
            for j, ((b, _, _), c) in enumerate(zip(live, column)):
                if ir_vals is not None:
                    returns_per_block[id(b)].append(ir_vals[j])
                else:
                    returns_per_block[id(b)].append(self.ir_in_block(b, c))
            for b, res, _ in results:
                if res[0] == "raise":
                    u = self.graph.create("prim::Uninitialized", [], [out_type])
                    b.append(u)
                    returns_per_block[id(b)].append(u.outputs[0])
            out_leaves.append(out)
        for b, _, _ in results:
            b.set_returns(returns_per_block[id(b)])
        concrete = self.evaluate(node, fallback)
        final = []
        it = iter(concrete)
        for leaf in out_leaves:
            final.append(self.wrap_output(leaf, next(it)) if isinstance(leaf, ir.Value) else leaf)
        return self.unflatten(spec0, iter(final))

    def missing_join(self, present, stmt):
        """The type of a return value set on some paths only (all present ones must agree)."""
        if all(isinstance(c, Tensor) for c in present):
            out_type = self.type_of(present[0])
            for c in present[1:]:
                out_type = self.join_type(out_type, self.type_of(c), "the returned value", stmt)
            return out_type
        kinds = {_kind(c) for c in present if _number(c) or isinstance(c, SymScalar)}
        if len(kinds) == 1 and all(_number(c) or isinstance(c, SymScalar) for c in present):
            return _KIND_TYPE[kinds.pop()]()
        raise self.error("a loop returns values of different types", "return one type (a tensor, or a number)",
                         node=stmt)

    def tensor_ir(self, block, values, t):
        entry = values.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else self.ir_in_block(block, t)

    def ir_in_block(self, block, x):
        if isinstance(x, SymScalar):
            return x.ir
        saved = self.tracer.block
        self.tracer.block = block
        try:
            return self.ir_of(x)
        finally:
            self.tracer.block = saved

    def leaf_name(self, names, k, returns):
        if returns:
            return "the returned value"
        if k < len(names) and names[k].startswith("__"):
            return "this expression"
        return f"`{names[k]}`" if k < len(names) else "a value"

    def mismatch_message(self, names, live, returns):
        what = "the returned value" if returns else "the variables " + ", ".join(names)
        return f"{what} have different structures on the two paths of a condition known only at run time"

    def flatten(self, value):
        """(spec, leaves) of nested lists/tuples; tensors, numbers and anything else are leaves."""
        leaves = []

        def walk(v):
            if isinstance(v, (list, tuple)) and not isinstance(v, str):
                return (type(v).__name__, tuple(walk(x) for x in v))
            if isinstance(v, dict):
                return ("dict", tuple((k, walk(x)) for k, x in v.items()))
            leaves.append(v)
            return "leaf"

        return walk(value), leaves

    def unflatten(self, spec, it):
        if spec == "leaf":
            return next(it)
        kind, items = spec
        if kind == "dict":
            return {k: self.unflatten(s, it) for k, s in items}
        vals = [self.unflatten(s, it) for s in items]
        return vals if kind == "list" else tuple(vals) if kind == "tuple" else type(kind)(vals)

    def join_type(self, a, b, what, stmt, keep_symbols=False):
        if isinstance(a, TensorType) and isinstance(b, TensorType):
            if a.dtype is not b.dtype:
                raise self.error(f"{what} is {a} on one path and {b} on another",
                                 "convert it to one dtype on every path", node=stmt)
            if a.shape is None or b.shape is None:
                return TensorType(a.dtype, None, a.device)
            if len(a.shape) != len(b.shape):
                raise self.error(f"{what} has {len(a.shape)} dims on one path and {len(b.shape)} on another",
                                 "give it one rank on every path", node=stmt)
            dims = tuple(x if x == y else (x if keep_symbols and isinstance(x, str) else self.fresh_symbol())
                         for x, y in zip(a.shape, b.shape))
            return TensorType(a.dtype, dims, a.device)
        if type(a) is type(b):
            return a
        raise self.error(f"{what} is {a} on one path and {b} on another", node=stmt)

    def fresh_symbol(self):
        taken = {d for v in self.graph.inputs if isinstance(v.type, TensorType) and v.type.shape
                 for d in v.type.shape if isinstance(d, str)}
        while True:
            self._symbols += 1
            name = f"S{self._symbols}"
            if name not in taken:
                return name

    def wrap_output(self, v, data):
        """A Python value standing for IR value `v` whose example value is `data`."""
        if data is None:  # prim::Uninitialized on the example's path: a stand-in of the right type
            t = v.type
            if isinstance(t, TensorType):
                data = np.zeros([d if isinstance(d, int) else 1 for d in t.shape or ()], t.dtype.np)
            else:
                data = 0
        if isinstance(v.type, TensorType):
            t = _wrap(np.asarray(data))
            self.tracer.values[id(t)] = (t, v)
            return t
        kind = {BoolType: bool, IntType: int, FloatType: float}[type(v.type)]
        self.scalars[v] = kind(data)
        return SymScalar(kind(data), v, kind)

    def evaluate(self, node, fallback):
        """What `node` computes on the example: the interpreter runs it on the example values it reads. Inside a
        branch or loop being compiled the example may reach a `raise` that real inputs never reach: then
        `fallback` stands in."""
        if self.tracer.probing:  # a path the example does not take: running it on the example proves nothing
            return fallback  # (and a loop there may never end on the example's values)
        try:
            return self._evaluate(node)
        except ScriptException:
            if not self.tracer.open_nodes:
                raise
            return fallback

    def _evaluate(self, node):
        defined = set()
        free = []
        stack = [node]
        reads = []
        while stack:
            n = stack.pop()
            reads.extend(n.inputs)
            for b in n.blocks:
                defined.update(b.params)
                reads.extend(b.returns)
                for m in b.nodes:
                    defined.update(m.outputs)
                    stack.append(m)
        by_value = {v: t for t, v in self.tracer.values.values()}
        env = {}
        for v in reads:
            if v in defined or v in env:
                continue
            env[v] = self.example_of(v, by_value)
            free.append(v)
        return run_node(self.graph, node, env)

    def example_of(self, v, by_value):
        if v in by_value:
            return by_value[v]._data
        if v in self.scalars:
            return self.scalars[v]
        n = v.node
        if n is not None and n.op == "prim::Constant":
            value = n.attrs.get("value")
            return np.asarray(self.graph.constants[value.name]) if isinstance(value, ir.ConstRef) else value
        if n is not None and n.op in ("prim::ListConstruct", "prim::TupleConstruct"):
            items = [self.example_of(x, by_value) for x in n.inputs]
            return items if n.op == "prim::ListConstruct" else tuple(items)
        raise TracingError(f"scripting: no example value for %{v.name}")

    # ---- loops ----------------------------------------------------------------------------

    def exec_for(self, stmt):
        it = self.eval(stmt.iter)
        if (isinstance(it, _Range) and it.dynamic) or (isinstance(it, Tensor) and self.dim_is_dynamic(it, 0)):
            rng, over = (it, None) if isinstance(it, _Range) else (None, it)
            if not _loop_exits(stmt.body):
                return self.emit_loop(stmt, stmt.body, rng=rng, over=over)
            brk, body = self.exit_flags(stmt)
            try:
                return self.emit_loop(stmt, body, rng=rng, over=over, brk=brk)
            finally:
                self.drop_flags()
        if isinstance(it, Tensor):
            it = [self.getitem(it, i) for i in range(it.shape[0])]
        if isinstance(it, _Range):
            it = range(it.start, it.stop, it.step)
        if isinstance(it, (SymScalar, _Undefined)) or not hasattr(it, "__iter__"):
            raise self.error(f"iterating over {type(it).__name__}",
                             "iterate over range(...), a tensor, a list, a tuple or an nn.ModuleList")
        self.ctx.loop_depth += 1
        try:
            if not _loop_exits(stmt.body):
                for k, item in enumerate(it):
                    if k >= MAX_UNROLL:
                        raise self.error(f"a loop unrolled more than {MAX_UNROLL} times")
                    self.assign(stmt.target, item)
                    self.exec_block(stmt.body)
                return
            brk, body = self.exit_flags(stmt)
            try:
                for k, item in enumerate(it):
                    if k >= MAX_UNROLL:
                        raise self.error(f"a loop unrolled more than {MAX_UNROLL} times")
                    stop = self.ctx.env[brk]
                    if not _is_dynamic(stop) and stop:
                        break
                    if not _is_dynamic(stop):
                        self.assign(stmt.target, item)
                        self.exec_block(body)
                        continue
                    # After a run-time `break` the rest, the loop variable included, runs only if it did not.
                    self.ctx.env["__loop_item"] = item
                    take = ast.fix_missing_locations(ast.copy_location(
                        ast.Assign([stmt.target], ast.Name("__loop_item", ast.Load())), stmt))
                    try:
                        self.exec_block([self.guard(brk, [take] + body, stmt)])
                    finally:
                        self.ctx.env.pop("__loop_item", None)
            finally:
                self.drop_flags()
        finally:
            self.ctx.loop_depth -= 1

    def exit_flags(self, stmt, keep=False):
        """Flag variables standing for this loop's `break` / `continue`, and its body rewritten to set them."""
        self._flags = getattr(self, "_flags", 0) + 1
        brk, cont = f"__break{self._flags}", f"__continue{self._flags}"
        self.ctx.env[brk] = False
        self.ctx.env[cont] = False
        self._open_flags = getattr(self, "_open_flags", []) + [(brk, cont)]
        return brk, [_flag(cont, False, stmt)] + _without_exits(stmt.body, brk, cont)

    def drop_flags(self):
        brk, cont = self._open_flags.pop()
        self.ctx.env.pop(brk, None)
        self.ctx.env.pop(cont, None)

    def guard(self, brk, body, at):
        test = ast.UnaryOp(ast.Not(), ast.Name(brk, ast.Load()))
        return ast.fix_missing_locations(ast.copy_location(ast.If(test, body, []), at))

    def exec_while(self, stmt):
        self.ctx.loop_depth += 1
        try:
            self._exec_while(stmt)
        finally:
            self.ctx.loop_depth -= 1

    def _exec_while(self, stmt):
        brk, body = self.exit_flags(stmt) if _loop_exits(stmt.body) else (None, stmt.body)
        try:
            for k in range(MAX_UNROLL + 1):
                self.node = stmt
                cond = self.eval_test(stmt.test)
                if brk is not None:
                    cond = self.logical("and", self.negate(self.ctx.env[brk]), self.truth_value(cond))
                c = self.truth(cond)
                if c is not None:
                    return self.emit_loop(stmt, body, cond=c, brk=brk)
                if not cond:
                    return
                if k == MAX_UNROLL:
                    raise self.error(f"a `while` loop whose condition is known at compile time ran {MAX_UNROLL} "
                                     "times", "make the condition depend on a tensor, or bound the loop")
                self.exec_block(body)
        finally:
            if brk is not None:
                self.drop_flags()

    def dim_is_dynamic(self, t, d):
        shape = self.type_of(t).shape
        return shape is None or not isinstance(shape[d], int)

    def type_of(self, t):
        entry = self.tracer.values.get(id(t))
        if entry is not None and entry[0] is t:
            return entry[1].type
        return TensorType(t.dtype, tuple(t.shape))

    def emit_loop(self, stmt, body, rng=None, over=None, cond=None, brk=None):
        """A prim::Loop for `for` over a run-time range or tensor, or `while` on a run-time condition."""
        tracer = self.tracer
        env = self.ctx.env
        is_for = rng is not None or over is not None
        assigned = _assigned_names(body + ([ast.Assign([stmt.target], ast.Constant(0))] if is_for else []))
        loop_var = [n.id for n in ast.walk(stmt.target) if isinstance(n, ast.Name)] if is_for else []
        mutated = [n for n in _mutated_names(body) if isinstance(env.get(n), (list, dict)) and n not in assigned]
        carried = [n for n in assigned + mutated
                   if n in env and n not in loop_var and not isinstance(env[n], _Undefined)]
        if over is not None:
            rng = _Range(0, self.size_of(over, 0), 1)
        if rng is not None:
            trip = self.trip_count(rng)
            cond0 = True
        else:
            trip = _INT_MAX
            cond0 = cond
        init = [env[n] for n in carried]
        spec, init_leaves = self.flatten(init)
        # Tensors and numbers are carried; static objects (modules, strings, None) must not change in the loop.
        dyn = [k for k, leaf in enumerate(init_leaves) if isinstance(leaf, (Tensor, SymScalar)) or _number(leaf)]
        init_ir = [self.ir_of(init_leaves[k]) for k in dyn]
        types = [self.leaf_type(init_leaves[k]) for k in dyn]
        node = self.graph.create("prim::Loop", [self.ir_of(trip), self.ir_of(cond0), *init_ir], [],
                                 loc=self.loc(stmt), scope=tracer.current_scope())
        tracer.block.append(node)
        outer_block = tracer.block
        snapshot = dict(tracer.values)
        mark = len(tracer.rebound)
        containers = self.container_snapshot(carried)
        tracer.open_nodes.append(node)
        self.ctx.loop_depth += 1
        try:
            for _attempt in range(_LOOP_FIXPOINT):
                block = node.add_block()
                runs = bool(cond.value) if cond is not None else \
                    (trip.value if isinstance(trip, SymScalar) else trip) > 0
                tracer.probing += 0 if runs else 1
                try:
                    out_leaves, body_vals = self.loop_body(block, stmt, body, carried, spec, init_leaves, dyn,
                                                           types, rng, over, cond, brk)
                except (ScriptError, TracingError, ScriptException):
                    raise
                except Exception as e:
                    if runs:
                        raise
                    raise self.not_reached(e, "loop body") from e
                finally:
                    tracer.probing -= 0 if runs else 1
                self.check_no_outer_writes(snapshot, stmt, mark)
                self.check_containers(containers, stmt)
                new_types = []
                for k, t in zip(dyn, types):
                    leaf = out_leaves[k]
                    new_types.append(self.join_type(t, self.leaf_type_in(leaf, body_vals),
                                                    f"`{self.carried_name(carried, spec, k)}`", stmt,
                                                    keep_symbols=True))
                tracer.values = dict(snapshot)
                if new_types == types:
                    break
                types = new_types
                self.drop_block(node)
            else:
                raise self.error("the types of the loop's variables do not settle", node=stmt)
        finally:
            tracer.open_nodes.pop()
            tracer.block = outer_block
            self.ctx.loop_depth -= 1
            self.node = stmt
        for t in types:
            node.outputs.append(ir.Value(t, self.graph.fresh_name(), node=node))
        concrete = self.evaluate(node, [self.example_data(init_leaves[k]) for k in dyn])
        leaves = list(init_leaves)
        for k, v, data in zip(dyn, node.outputs, concrete):
            leaves[k] = self.wrap_output(v, data)
        final = self.unflatten(spec, iter(leaves))
        for n, v in zip(carried, final):
            env[n] = v
        for n in assigned:
            if n not in carried:
                env[n] = _Undefined(n, "assigned only inside a loop compiled for run time")

    def loop_body(self, block, stmt, body, carried, spec, init_leaves, dyn, types, rng, over, cond, brk=None):
        tracer = self.tracer
        tracer.block = block
        i_param = self.graph.add_param(block, IntType(), "i")
        self.scalars[i_param] = 0
        leaves = list(init_leaves)
        for k, t in zip(dyn, types):
            p = self.graph.add_param(block, t)
            leaves[k] = self.wrap_output(p, self.example_data(init_leaves[k]))
        saved_env = self.ctx.env
        env = dict(saved_env)
        for n, v in zip(carried, self.unflatten(spec, iter(leaves))):
            env[n] = v
        self.ctx.env = env
        i = SymScalar(0, i_param, int, nonneg=True)
        try:
            if rng is not None:
                value = i
                if not (isinstance(rng.step, int) and rng.step == 1):
                    value = self.binop("mul", value, rng.step)
                if not (isinstance(rng.start, int) and rng.start == 0):
                    value = self.binop("add", rng.start, value)
                if isinstance(value, SymScalar):  # counting up from a start >= 0
                    value.nonneg = isinstance(rng.step, int) and rng.step > 0 and (
                        rng.start.nonneg if isinstance(rng.start, SymScalar) else rng.start >= 0)
                if over is not None:
                    value = self.dynamic_index(over, (value,))
                self.assign(stmt.target, value)
            raised = False
            try:
                self.exec_block(body)
            except (_Break, _Continue):
                raise self.error("`break` / `continue` in a loop that runs a data-dependent number of times",
                                 "use a `while` loop whose condition carries the stop") from None
            except _Return:
                raise self.error("`return` inside a loop that runs a data-dependent number of times",
                                 "assign the result to a variable, stop the loop, and return after it") from None
            except _Raised:
                raised = True
            next_cond = True
            if cond is not None and not raised:
                self.node = stmt
                next_cond = self.truth_value(self.eval_test(stmt.test))
            if brk is not None and not raised:  # the loop also stops once a `break` ran
                next_cond = self.logical("and", self.negate(env[brk]), next_cond)
            c = self.truth(next_cond)
            next_ir = c.ir if c is not None else self.ir_of(bool(next_cond))
            for n, init_value in zip(carried, self.unflatten(spec, iter(init_leaves))):
                if self.flatten(env.get(n))[0] != self.flatten(init_value)[0]:
                    what = "list or dict" if isinstance(init_value, (list, dict)) else "tuple"
                    raise self.error(f"{what} `{n}` changes length inside a loop that runs a data-dependent number "
                                     "of times", "collect results in a tensor carried by the loop "
                                     "(e.g. `out = torch.cat([out, y])`) instead of a list", node=stmt)
            _, out = self.flatten([env.get(n, _Undefined(n, "")) for n in carried])
            body_vals = tracer.values
            rets = []
            for k in dyn:
                leaf = out[k]
                if isinstance(leaf, _Undefined):
                    raise self.error(f"`{leaf.name}` is deleted inside the loop", node=stmt)
                if raised:
                    u = self.graph.create("prim::Uninitialized", [], [self.leaf_type(init_leaves[k])])
                    block.append(u)
                    rets.append(u.outputs[0])
                elif isinstance(leaf, Tensor):
                    entry = body_vals.get(id(leaf))
                    rets.append(entry[1] if entry is not None and entry[0] is leaf else self.ir_of(leaf))
                else:
                    rets.append(self.ir_of(leaf))
            for k, (a, b) in enumerate(zip(init_leaves, out)):
                if k not in dyn and a is not b:
                    raise self.error(f"`{self.carried_name(carried, spec, k)}` changes inside a loop that runs a "
                                     "data-dependent number of times", "only tensors and numbers may change in it",
                                     node=stmt)
            block.set_returns([next_ir, *rets])
            return out, body_vals
        finally:
            self.ctx.env = saved_env

    def carried_name(self, carried, spec, k):
        return carried[k] if k < len(carried) and len(carried) == len(spec[1]) else "a loop variable"

    def leaf_type(self, leaf):
        if isinstance(leaf, Tensor):
            return self.type_of(leaf)
        return _KIND_TYPE[_kind(leaf)]()

    def leaf_type_in(self, leaf, values):
        if isinstance(leaf, Tensor):
            entry = values.get(id(leaf))
            if entry is not None and entry[0] is leaf:
                return entry[1].type
            return TensorType(leaf.dtype, tuple(leaf.shape))
        if isinstance(leaf, SymScalar) or _number(leaf):
            return _KIND_TYPE[_kind(leaf)]()
        raise self.error(f"a loop variable became {type(leaf).__name__}")

    def example_data(self, leaf):
        if isinstance(leaf, Tensor):
            return leaf._data
        return leaf.value if isinstance(leaf, SymScalar) else leaf

    def drop_block(self, node):
        block = node.blocks.pop()
        block.set_returns([])
        for n in reversed(list(block.nodes)):
            for out in n.outputs:
                out.uses.clear()  # only later nodes of this (discarded) block use them
            n.erase()

    def trip_count(self, rng):
        start, stop, step = rng.start, rng.stop, rng.step
        if isinstance(step, SymScalar):
            raise self.error("range() with a step known only at run time", "use a step known at compile time")
        if step == 0:
            raise self.error("range() step must not be zero")
        if step > 0:
            span = stop if isinstance(start, int) and start == 0 else self.binop("sub", stop, start)
            return span if step == 1 else self.binop("floordiv", self.binop("add", span, step - 1), step)
        span = self.binop("sub", start, stop)
        return self.binop("floordiv", self.binop("add", span, -step - 1), -step)

    # ---- expressions --------------------------------------------------------------------

    def eval(self, node):
        saved = self.node
        self.node = node if hasattr(node, "lineno") else saved
        try:
            return self._eval(node)
        finally:
            self.node = saved

    def _eval(self, node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            obj = self.eval(node.value)
            if isinstance(obj, Tensor) and node.attr == "shape":
                return self.shape_of(obj)
            if isinstance(obj, SymScalar):
                raise self.error(f"attribute `{node.attr}` of a number known only at run time")
            try:
                return getattr(obj, node.attr)
            except AttributeError as e:
                raise self.error(str(e)) from None
        if isinstance(node, ast.Call):
            f = self.eval(node.func)
            args = []
            for a in node.args:
                if isinstance(a, ast.Starred):
                    args.extend(self.unpack_all(self.eval(a.value)))
                else:
                    args.append(self.eval(a))
            kwargs = {}
            for kw in node.keywords:
                if kw.arg is None:
                    kwargs.update(self.eval(kw.value))
                else:
                    kwargs[kw.arg] = self.eval(kw.value)
            self.node = node
            return self.call_value(f, tuple(args), kwargs)
        if isinstance(node, ast.BinOp):
            return self.binop(_BINOPS[type(node.op)], self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.UnaryOp):
            x = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                c = self.truth(x)
                return (not x) if c is None else self.scalar_op("not_", c)
            if isinstance(x, SymScalar):
                if isinstance(node.op, ast.USub):
                    return self.scalar_op("neg", x)
                if isinstance(node.op, ast.UAdd):
                    return x
                raise self.error("`~` on a number known only at run time")
            fn = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}[type(node.op)]
            return self.library_call(fn, (x,), {}) if isinstance(x, Tensor) else fn(x)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.IfExp):
            return self.ifexp(node)
        if isinstance(node, (ast.Tuple, ast.List)):
            items = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    items.extend(self.unpack_all(self.eval(e.value)))
                else:
                    items.append(self.eval(e))
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Subscript):
            return self.getitem(self.eval(node.value), self.eval_index(node.slice))
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            return self.comprehension(node)
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node)
        if isinstance(node, ast.Slice):
            return self.eval_index(node)
        raise self.error(f"{type(node).__name__} expressions")

    def fstring(self, node):
        """An f-string; run-time values in it are formatted when the message is raised (`_RunTimeText`)."""
        text, template, values = [], [], []
        for v in node.values:
            if isinstance(v, ast.Constant):
                text.append(str(v.value))
                template.append(str(v.value).replace("{", "{{").replace("}", "}}"))
                continue
            value = self.eval(v.value)
            spec = self.fstring(v.format_spec) if v.format_spec else ""
            if _is_dynamic(value):
                if isinstance(spec, _RunTimeText):
                    raise self.error("a format spec known only at run time")
                conv_text = {115: "!s", 114: "!r", 97: "!a"}.get(v.conversion, "")
                text.append("{" + ast.unparse(v.value) + "}")
                template.append("{" + conv_text + (":" + spec if spec else "") + "}")
                values.append(value)
                continue
            conv = {115: str, 114: repr, 97: ascii}.get(v.conversion)
            part = format(conv(value) if conv else value, str(spec))
            text.append(part)
            template.append(part.replace("{", "{{").replace("}", "}}"))
        if not values:
            return "".join(text)
        return _RunTimeText("".join(text), "".join(template), values)

    def unpack_all(self, value):
        if isinstance(value, Tensor):
            return self.unpack(value, value.shape[0], self.node)
        return list(value)

    def eval_index(self, node):
        if isinstance(node, ast.Slice):
            return slice(*(self.eval(p) if p is not None else None for p in (node.lower, node.upper, node.step)))
        if isinstance(node, ast.Tuple):
            return tuple(self.eval_index(e) for e in node.elts)
        return self.eval(node)

    def lookup(self, name):
        env = self.ctx.env
        if name in env:
            v = env[name]
            if isinstance(v, _Undefined):
                if name.startswith("__retval"):
                    raise self.error("`return` inside a loop that runs a data-dependent number of times",
                                     "assign the result to a variable, stop the loop, and return after it")
                raise self.error(f"`{name}` is {v.why or 'not defined on every path that reaches here'}",
                                 "assign it before the branch or loop, or on every path")
            return v
        if name in self.ctx.closure:
            return self.ctx.closure[name]
        if name in self.ctx.globals:
            return self.ctx.globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise self.error(f"`{name}` is not defined")

    def compare(self, node):
        left = self.eval(node.left)
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            right = self.eval(right_node)
            if isinstance(op, (ast.Is, ast.IsNot)):
                r = (left is right) if isinstance(op, ast.Is) else (left is not right)
            elif isinstance(op, (ast.In, ast.NotIn)):
                if _has_dynamic(left) or (isinstance(right, (list, tuple)) and _has_dynamic(right)):
                    if not isinstance(right, (list, tuple)):
                        raise self.error("`in` with values known only at run time",
                                         "test membership in a list or tuple")
                    r = False
                    for item in right:
                        r = self.logical("or", r, self.equal(left, item))
                    if isinstance(op, ast.NotIn):
                        r = self.negate(r)
                else:
                    r = (left in right) if isinstance(op, ast.In) else (left not in right)
            elif isinstance(op, (ast.Eq, ast.NotEq)) and isinstance(left, (list, tuple)) and \
                    isinstance(right, (list, tuple)) and (_has_dynamic(left) or _has_dynamic(right)):
                r = self.equal(left, right)
                if isinstance(op, ast.NotEq):
                    r = self.negate(r)
            else:
                r = self.binop(_CMPOPS[type(op)], left, right)
            result = r if result is None else self.logical("and", result, r)
            left = right
        return result

    def equal(self, a, b):
        """`a == b` as Python means it, for sequences holding run-time numbers too."""
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            if len(a) != len(b):
                return False
            r = True
            for x, y in zip(a, b):
                r = self.logical("and", r, self.equal(x, y))
            return r
        if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            return False
        r = self.binop("eq", a, b)
        return self.truth(r) if isinstance(r, Tensor) else r

    def negate(self, r):
        c = self.truth(r)
        return (not r) if c is None else self.scalar_op("not_", c)

    def logical(self, op, a, b):
        """Python's `a and b` / `a or b`: the deciding operand itself, not just its truth."""
        ca = self.truth(a)
        if ca is None:  # known now: `False and x` is False, `True and x` is x
            if op == "and":
                return b if a else a
            return a if a else b
        # Truth values (Python bools, run-time bools, one-element bool tensors) combine into a run-time bool;
        # other operands are selected as Python does (`n or 10` is n when n is true).
        is_bool = all(isinstance(x, bool) or isinstance(x, SymScalar) and x.kind is bool or
                      isinstance(x, Tensor) and x.dtype.name == "bool" and x.numel() == 1 for x in (a, b))
        if is_bool:
            cb = self.truth(b)
            if cb is None:
                if op == "and":
                    return ca if b else False
                return True if b else ca
            return self.scalar_op(f"{op}_", ca, cb)
        return self.select(ca, b, a) if op == "and" else self.select(ca, a, b)

    def select(self, cond, then_value, else_value):
        """`then_value if cond else else_value` for a run-time `cond` (a prim::If of the two values)."""
        env = self.ctx.env
        names = ("__select_then", "__select_else", "__select_value")
        saved = {n: env[n] for n in names if n in env}
        env[names[0]], env[names[1]] = then_value, else_value
        node = self.node
        stmts = [ast.Assign([ast.Name(names[2], ast.Store())], ast.Name(src, ast.Load())) for src in names[:2]]
        for st in stmts:
            ast.copy_location(st, node)
            ast.fix_missing_locations(st)
        try:
            self.emit_if(cond, [stmts[0]], [stmts[1]], node)
            return env.pop(names[2])
        finally:
            for n in names:
                env.pop(n, None)
            env.update(saved)

    def boolop(self, node):
        op = "and" if isinstance(node.op, ast.And) else "or"
        value = self.eval(node.values[0])
        for v in node.values[1:]:
            if self.truth(value) is None:  # Python's short circuit while the value is known now
                if (op == "and" and not value) or (op == "or" and value):
                    return value
                value = self.eval(v)
                continue
            value = self.logical(op, value, self.eval(v))
        return value

    def ifexp(self, node):
        cond = self.eval_test(node.test)
        c = self.truth(cond)
        if c is None:
            return self.eval(node.body if cond else node.orelse)
        tmp = "__ifexp_value"
        then_s = [ast.copy_location(ast.Assign([ast.Name(tmp, ast.Store())], node.body), node)]
        else_s = [ast.copy_location(ast.Assign([ast.Name(tmp, ast.Store())], node.orelse), node)]
        for s in then_s + else_s:
            ast.fix_missing_locations(s)
        had = self.ctx.env.pop(tmp, None)
        self.emit_if(c, then_s, else_s, node)
        value = self.ctx.env.pop(tmp)
        if had is not None:
            self.ctx.env[tmp] = had
        return value

    def comprehension(self, node):
        if len(node.generators) != 1 or node.generators[0].is_async:
            raise self.error("comprehensions with more than one `for`", "write the loops out")
        gen = node.generators[0]
        it = self.eval(gen.iter)
        if isinstance(it, _Range):
            if it.dynamic:
                raise self.error("a comprehension over a range known only at run time", "write a for loop")
            it = range(it.start, it.stop, it.step)
        if isinstance(it, Tensor):
            it = self.unpack_all(it)
        env = self.ctx.env
        saved = dict(env)
        out = []
        try:
            for item in it:
                self.assign(gen.target, item)
                if all(self.static_truth(self.eval(c)) for c in gen.ifs):
                    out.append(self.eval(node.elt))
        finally:
            env.clear()
            env.update(saved)
        return out

    def static_truth(self, x):
        if self.truth(x) is not None:
            raise self.error("a comprehension filter known only at run time")
        return bool(x)


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
