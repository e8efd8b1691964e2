"""Calls in scripted code: user functions and methods compiled inline, submodules (with their scope
names), annotations checked, and library code run as it is while the tracer records it
(see `tracejit.jit.script`)."""

from __future__ import annotations

import inspect
import typing

from .._tensor import Tensor
from .script_builtins import _BUILTINS
from .script_check import ScriptError, is_user_code, source_of
from .script_values import _RESHAPES, MAX_CALL_DEPTH, SymScalar, _fits, _hashable, _marker, _Return, _type_text


class _Ctx:
    """One scripted function call: its variables, globals, source file and whether its body runs to the end."""

    def __init__(self, fn, env, src, owner):
        self.fn, self.env, self.src, self.owner = fn, env, src, owner
        self.globals = fn.__globals__
        self.closure = inspect.getclosurevars(fn).nonlocals if fn.__closure__ else {}
        self.tail = True  # the statements being run go on to the end of the function (returns are final)
        self.loop_depth = 0  # > 0 inside the body of a loop


class CallMixin:
    """The call half of `Scripter`."""

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
