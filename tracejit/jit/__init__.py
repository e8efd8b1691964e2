"""Tracing eager code into IR: `tracejit.trace(fn_or_module, example_inputs)`.

    >>> import tracejit as tj
    >>> m = tj.nn.Linear(3, 2)
    >>> traced = tj.trace(m, tj.ones(4, 3))
    >>> [v.name for v in traced.graph.inputs]
    ['input', 'weight', 'bias']
    >>> bool((traced(tj.ones(4, 3)) == m(tj.ones(4, 3))).all())
    True
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from .. import ir
from .._tensor import Tensor, _wrap
from ..autograd.grad_mode import no_grad
from .script import Scripter
from .script_check import ScriptError, check_all, is_user_code
from .script_values import SymScalar, ignore, trace_only
from .tracer import TraceHazardError, TraceHazardWarning, Tracer, TracingError, _Active

__all__ = ["ScriptError", "ScriptedModule", "SymScalar", "TraceHazardError", "TraceHazardWarning", "TracedModule",
           "TracingError", "compile", "freeze", "ignore", "script", "trace", "trace_only"]


_CONSTANT = (bool, int, float, str, type(None))


def _flatten(obj, path, out, numbers=False, constants=True):
    """Tensors of a nested structure in order, and a spec to rebuild it. Python numbers, strings and None
    are part of the spec (constants the graph is specialized to); with `numbers`, numbers count as tensors."""
    if isinstance(obj, Tensor):
        out.append((path, obj))
        return ("t",)
    if isinstance(obj, (list, tuple)):
        return ("l" if isinstance(obj, list) else "u",
                [_flatten(v, f"{path}_{i}", out, numbers, constants) for i, v in enumerate(obj)])
    if isinstance(obj, dict):
        return ("d", [(k, _flatten(v, f"{path}_{k}", out, numbers, constants)) for k, v in obj.items()])
    if numbers and isinstance(obj, (bool, int, float)):
        out.append((path, _wrap(np.asarray(obj))))
        return ("t",)
    if isinstance(obj, _CONSTANT) and (constants or obj is None):  # an output number would be baked in
        return ("c", obj)
    raise TracingError(f"trace inputs and outputs must be tensors, Python numbers or (nested) tuples, lists or "
                       f"dicts of them; got {type(obj).__name__} at {path or 'the top level'}")


def _rebuild(spec, it):
    kind = spec[0]
    if kind == "t":
        return next(it)
    if kind == "c":
        return spec[1]
    if kind in ("l", "u"):
        items = [_rebuild(s, it) for s in spec[1]]
        return items if kind == "l" else tuple(items)
    return {k: _rebuild(s, it) for k, s in spec[1]}


def _arg_names(fn, n):
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else f"input{i}" for i in range(n)]


class TracedModule:
    """A traced function or module: `.graph`, `.code` (its text) and `__call__` (runs the graph)."""

    def __init__(self, graph, in_spec, out_spec, state, hazards, updates=()):
        self.graph = graph
        self._updates = list(updates)  # indices (user inputs, then module state) updated in place
        self._in_spec = in_spec
        self._out_spec = out_spec
        self._state = state  # the module tensors fed as graph inputs after the user's inputs
        self.hazards = hazards
        self._plan = None  # set by compile()

    @property
    def code(self):
        return str(self.graph)

    def compile(self):
        """Run the graph natively from now on (a `tracejit.runtime.plan.Plan`: LLVM kernels for fusion groups
        and elementwise ops, BLAS for matrix products and convolutions, the registry's implementation for
        the rest); returns self. Kernels are compiled on the first call for each input size."""
        from ..runtime.plan import Plan

        self._plan = Plan(self.graph)
        return self

    @property
    def compiled(self):
        return self._plan is not None

    def __call__(self, *args):
        flat = []
        spec = _flatten(tuple(args), "", flat)
        if spec != self._in_spec:
            raise TracingError("the inputs do not have the structure the function was traced with, or Python "
                               f"numbers in them differ from the traced ones (expected {self._in_spec}, got {spec})")
        feeds = []
        bound = {}  # symbol -> size, consistent across inputs
        for (_, t), v in zip(flat, self.graph.inputs):
            want = v.type
            got = ir.TensorType(t.dtype, tuple(t.shape))
            ok = t.dtype is want.dtype and len(t.shape) == len(want.shape)
            for have, dim in zip(t.shape, want.shape) if ok else ():
                if isinstance(dim, str):
                    if bound.setdefault(dim, have) != have:
                        raise TracingError(f"input %{v.name} has {dim}={have}, but an earlier input has "
                                           f"{dim}={bound[dim]}; inputs sharing a symbol must agree")
                elif have != dim:
                    ok = False
            if not ok:
                raise TracingError(f"input %{v.name} was traced as {want}; got {got}")
            feeds.append(t.numpy(force=True) if isinstance(t, Tensor) else np.asarray(t))
        feeds += [t.numpy(force=True) for t in self._state]
        outs = self._plan.run(*feeds) if self._plan is not None else ir.run(self.graph, *feeds)
        n_user = len(outs) - len(self._updates)
        if self._updates:
            targets = [t for _, t in flat] + list(self._state)
            with no_grad():
                for k, value in zip(self._updates, outs[n_user:]):
                    targets[k].copy_(_wrap(np.asarray(value)))
        return _rebuild(self._out_spec, iter(_wrap(np.asarray(o)) for o in outs[:n_user]))


def trace(fn, example_inputs, *, strict=False, check_trace=True, dynamic_dims=None, rtol=1e-5, atol=1e-6,
          _script=False):
    """Record what `fn(*example_inputs)` computes as a Graph; see the module docstring.

    `dynamic_dims={"x": {0: "N"}}` makes dim 0 of input `x` the symbol N: the graph's types
    carry N and the traced module runs for any size there. The trace is then checked at other
    sizes too, so a size baked in by the function (e.g. `view(64, -1)`) is reported, not kept.
    """
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    flat = []
    in_spec = _flatten(args, "", flat)
    module = fn if hasattr(fn, "named_parameters") and hasattr(fn, "forward") else None
    names = _arg_names(module.forward if module is not None else fn, len(args))
    tracer = Tracer(strict=strict)
    dynamic_dims = dict(dynamic_dims or {})
    for (path, t) in flat:
        top = int(path.split("_")[1]) if path.count("_") else 0
        name = names[top] + path[len(f"_{top}"):] if path else names[0]
        tracer.add_input(t, name, dynamic_dims.pop(name, None))
    if dynamic_dims:
        raise TracingError(f"dynamic_dims names unknown inputs {sorted(dynamic_dims)}; inputs are "
                           f"{[v.name for v in tracer.graph.inputs]}")
    state = []
    if module is not None:
        if module.training and any(type(m).__name__.startswith(("Dropout", "BatchNorm")) for m in module.modules()):
            tracer.hazard(None, "tracing a module in training mode (dropout / batch norm)", "training behaviour")
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            tracer.add_input(t, name)
            state.append(t)
    handles = tracer.watch_modules(module) if module is not None else []
    try:
        with no_grad(), _Active(tracer):
            if _script:
                scripter = Scripter(tracer, module)
                out = scripter.run_module(module, args) if module is not None else scripter.run_function(fn, args)
            else:
                out = fn(*args)
    finally:
        for h in handles:
            h.remove()
    out_flat = []
    out_spec = _flatten(out, "", out_flat, constants=False)
    outputs = [tracer.value_of(t) for _, t in out_flat]
    # Inputs or buffers updated in place (e.g. batch-norm running stats) stay in the graph as extra
    # outputs, written back into the tensors on every call: never silently dropped.
    updates = []
    tensors = [t for _, t in flat] + state
    for k, (t, v) in enumerate(zip(tensors, list(tracer.graph.inputs))):
        now = tracer.values[id(t)][1]
        if now is not v:
            tracer.hazard(None, f"in-place update of input %{v.name}", "an extra graph output written back on call")
            updates.append(k)
            outputs.append(now)
    tracer.graph.set_outputs(outputs)
    ir.verify(tracer.graph)
    traced = TracedModule(tracer.graph, in_spec, out_spec, state, tracer.hazards, updates)
    # The checks re-run the function and the graph; state they update in place is restored after.
    saved = [(tensors[k], tensors[k].clone()) for k in updates]
    try:
        if check_trace:
            # An unbounded loop (`while` on a tensor) may never end on other inputs, in eager as in the graph:
            # such graphs are checked on the example only.
            unbounded = any(n.op == "prim::Loop" and n.inputs[0].node is not None
                            and n.inputs[0].node.attrs.get("value") == (1 << 63) - 1 for n in tracer.graph.nodes())
            _check(traced, fn, args, rtol, atol, perturb=not unbounded)
        if any(isinstance(d, str) for v in tracer.graph.inputs if isinstance(v.type, ir.TensorType)
               for d in v.type.shape or ()):
            _check_sizes(traced, fn, args, rtol, atol)
    finally:
        with no_grad():
            for t, value in saved:
                t.copy_(value)
    return traced


def freeze(traced, *, passes=None):
    """An inference copy of a traced module: parameters and buffers become constants of the graph,
    then the passes run (constant folding, simplification, BatchNorm folded into the preceding
    conv/linear, CSE, DCE). The result keeps the same call signature.

        >>> import tracejit as tj
        >>> m = tj.nn.Sequential(tj.nn.Linear(3, 2), tj.nn.BatchNorm1d(2)).eval()
        >>> frozen = tj.freeze(tj.trace(m, tj.randn(4, 3)))
        >>> [n.op for n in frozen.graph.nodes()]
        ['prim::Constant', 'prim::Constant', 'tj::linear']
    """
    if traced._updates:
        raise TracingError("freeze: the traced module updates buffers in place (training mode?); trace it in "
                           "eval mode to freeze it")
    graph = ir.parse(traced.code, constants=traced.graph.constants)
    n_user = len(graph.inputs) - len(traced._state)
    values = {v.name: t.numpy(force=True) for v, t in zip(graph.inputs[n_user:], traced._state)}
    ir.passes.freeze_inputs(graph, values)
    ir.run_passes(graph, passes)
    ir.verify(graph)
    return TracedModule(graph, traced._in_spec, traced._out_spec, [], traced.hazards)


def _is_module(fn):
    return hasattr(fn, "named_parameters") and hasattr(fn, "forward")


def compile(fn, example_inputs, *, dynamic_dims=None, strict=False):  # noqa: A001 - tracejit.compile
    """`fn` (a function or module) as a natively compiled callable: compiled from its source as `script` does
    (so Python control flow on tensors is kept; code that cannot be scripted is traced on `example_inputs`
    instead, with a warning naming why), frozen when it is a module in eval mode (weights become constants,
    inference passes run), then run by a native Plan. Takes and returns tensors like `fn`.

        >>> import tracejit as tj
        >>> m = tj.nn.Sequential(tj.nn.Linear(3, 4), tj.nn.ReLU()).eval()
        >>> fast = tj.compile(m, tj.ones(2, 3))
        >>> bool(tj.allclose(fast(tj.ones(2, 3)), m(tj.ones(2, 3))))
        True
    """
    try:
        _check_source(fn)
        traced = trace(fn, example_inputs, strict=strict, dynamic_dims=dynamic_dims, _script=True)
    except ScriptError as e:
        warnings.warn(f"tracejit.compile traces this code instead of scripting it, so its Python control flow "
                      f"follows the example inputs:\n{e}", TraceHazardWarning, stacklevel=2)
        traced = trace(fn, example_inputs, strict=strict, dynamic_dims=dynamic_dims)
    if _is_module(fn) and not fn.training:
        traced = freeze(traced)
    else:
        ir.run_passes(traced.graph)
    return traced.compile()


class ScriptedModule(TracedModule):
    """An exported model: frozen, optimized and compiled graph, `.graph`, `.code`, `__call__`, `.save(path)`."""

    def save(self, path, *, cuda_archs=(), cuda_inputs=None):
        """Write the model to a `.tj` file (atomically); returns a SaveInfo (file size, planned peak memory).

        `cuda_archs=("compute_90", ...)` with `cuda_inputs` (example inputs: the kernels are specialized to
        their sizes) also ships the PTX of every CUDA kernel the model runs for such inputs, compiled by
        NVRTC (no GPU needed); `load(path, device="cuda")` then skips compiling the kernels it finds there."""
        from ..runtime import tjfile

        extra = None
        if cuda_archs:
            if cuda_inputs is None:
                raise ValueError("save(cuda_archs=...) needs cuda_inputs: example inputs whose sizes the CUDA "
                                 "kernels are compiled for")
            from ..runtime.cuda_plan import ptx_members

            flat = []
            _flatten(cuda_inputs if isinstance(cuda_inputs, tuple) else (cuda_inputs,), "", flat)
            extra = ptx_members(self.graph, [t.numpy(force=True) for _, t in flat], tuple(cuda_archs))
        return tjfile.save_graph(path, self.graph, extra_members=extra)


def script(model, *example_inputs, dynamic_dims=None, strict=False):
    """Export `model` (a module or a function) for the runtime: compile its Python source into IR, control
    flow included (`if` on tensors -> prim::If, loops of data-dependent length -> prim::Loop; see
    `tracejit.jit.script`), then freeze, optimize and compile it.

    Every construct the frontend cannot compile is reported at once (ScriptError, with file:line:column
    and a hint) before anything runs. With `example_inputs` the graph is built for their dtypes and shapes
    (`dynamic_dims` as in `trace`) and checked against eager on them; without, it is built on the first
    call. The result runs natively, and `.save("model.tj")` writes the file `tracejit.load` and
    `tracejit-run` run. Functions marked `@tracejit.trace_only` are traced instead, `@tracejit.ignore` ones
    left out.

        >>> import tracejit as tj
        >>> def f(x):
        ...     if x.sum() > 0:
        ...         return x * 2
        ...     return -x
        >>> s = tj.script(f, tj.ones(3))
        >>> s(tj.ones(3)).tolist(), s(-tj.ones(3)).tolist()
        ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    """
    if _is_module(model) and model.training:
        raise TracingError("tracejit.script: the model is in training mode; call model.eval() first so dropout and "
                           "batch norm export their inference behaviour")
    _check_source(model)
    if not example_inputs:
        return LazyScriptedModule(model, dynamic_dims, strict)
    traced = trace(model, tuple(example_inputs), strict=strict, dynamic_dims=dynamic_dims, _script=True)
    frozen = freeze(traced) if _is_module(model) else traced
    if frozen is traced:
        ir.run_passes(frozen.graph)
    scripted = ScriptedModule(frozen.graph, frozen._in_spec, frozen._out_spec, [], frozen.hazards)
    return scripted.compile()


def _check_source(model):
    """Raise one ScriptError listing every unsupported construct in the code `model` runs."""
    from .script_values import _marker

    if _is_module(model):
        roots = [(type(m).forward, m) for m in model.modules()
                 if is_user_code(type(m).forward) and _marker(type(m).forward) is None]
    else:
        roots = [(model, None)] if is_user_code(model) and _marker(model) is None else []
    check_all(roots)


class LazyScriptedModule:
    """`tracejit.script(model)` without example inputs: the source is checked at once, and the graph is
    compiled on the first call, for the dtypes and shapes of that call's inputs (dims named in `dynamic_dims`
    stay symbolic). Calls with other shapes compile again (at most 8 kept); `.graph`, `.code` and `.save`
    refer to the latest."""

    _MAX = 8

    def __init__(self, model, dynamic_dims, strict):
        self._model, self._dynamic, self._strict = model, dynamic_dims, strict
        self._compiled = {}
        self._last = None

    def _key(self, args):
        flat = []
        spec = _flatten(tuple(args), "", flat)
        fn = self._model.forward if _is_module(self._model) else self._model
        names = _arg_names(fn, len(args))
        dyn = self._dynamic or {}
        key = [repr(spec)]
        for path, t in flat:
            top = int(path.split("_")[1]) if path.count("_") else 0
            name = names[top] + path[len(f"_{top}"):] if path else names[0]
            shape = list(t.shape)
            for d in dyn.get(name, {}):
                if -len(shape) <= d < len(shape):
                    shape[d] = None
            key.append((str(t.dtype), tuple(shape)))
        return tuple(key)

    def __call__(self, *args):
        key = self._key(args)
        s = self._compiled.get(key)
        if s is None:
            s = script(self._model, *args, dynamic_dims=self._dynamic, strict=self._strict)
            if len(self._compiled) >= self._MAX:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[key] = s
        self._last = s
        return s(*args)

    def _latest(self):
        if self._last is None:
            raise TracingError("this scripted model has no graph yet: call it once on example inputs, or pass them "
                               "to tracejit.script(model, x, ...)")
        return self._last

    @property
    def graph(self):
        return self._latest().graph

    @property
    def code(self):
        return self._latest().code

    def save(self, path):
        return self._latest().save(path)


def _check(traced, fn, args, rtol, atol, perturb=True):
    """The graph must reproduce eager on the example and (with `perturb`) on a perturbed copy of it."""
    with no_grad():
        for k, inputs in enumerate((args, _perturbed(args)) if perturb else (args,)):
            want = []
            _flatten(fn(*inputs), "", want, numbers=True)
            got = []
            _flatten(traced(*inputs), "", got, numbers=True)
            for i, ((_, w), (_, g)) in enumerate(zip(want, got)):
                if not np.allclose(g.numpy(), w.numpy(), rtol=rtol, atol=atol, equal_nan=True):
                    which = "the example inputs" if k == 0 else "perturbed inputs"
                    raise TracingError(f"check_trace: output {i} of the graph differs from eager on {which}; the "
                                       "trace does not represent the function (see the hazards warned above)")


def _check_sizes(traced, fn, args, rtol, atol):
    """With symbolic dims, the graph must also reproduce eager at other sizes (1 and 7)."""
    symbols = {}
    flat = []
    _flatten(args, "", flat)
    for (_, t), v in zip(flat, traced.graph.inputs):
        for d, dim in enumerate(v.type.shape):
            if isinstance(dim, str):
                symbols.setdefault(dim, []).append((id(t), d))
    for size in (1, 7):
        resized = {}
        for dims in symbols.values():
            for tid, d in dims:
                resized.setdefault(tid, {})[d] = size

        def resize(x, resized=resized):
            if isinstance(x, Tensor) and id(x) in resized:
                shape = [resized[id(x)].get(d, n) for d, n in enumerate(x.shape)]
                idx = tuple(np.arange(n) % max(x.shape[d], 1) for d, n in enumerate(shape))
                return _wrap(np.array(x.numpy(force=True)[np.ix_(*idx)]))
            if isinstance(x, (list, tuple)):
                return type(x)(resize(v, resized) for v in x)
            if isinstance(x, dict):
                return {k: resize(v, resized) for k, v in x.items()}
            return x

        inputs = tuple(resize(a) for a in args)
        try:
            with no_grad():
                want = []
                _flatten(fn(*inputs), "", want, numbers=True)
        except Exception as eager_error:  # the function refuses this size: so must the graph
            try:
                traced(*inputs)
            except Exception:
                continue
            raise TracingError(f"dynamic_dims: eager raises at size {size} ({type(eager_error).__name__}: "
                               f"{eager_error}) but the graph runs: the graph bakes in a size, or drops the "
                               "function's check") from None
        try:
            with no_grad():
                got = []
                _flatten(traced(*inputs), "", got, numbers=True)
        except Exception as e:
            raise TracingError(f"dynamic_dims: the trace does not run at size {size} ({type(e).__name__}: {e}); "
                               "the function bakes in a size (e.g. view with fixed sizes)") from e
        for i, ((_, w), (_, g)) in enumerate(zip(want, got)):
            if tuple(w.shape) != tuple(g.shape) or not np.allclose(g.numpy(), w.numpy(), rtol=rtol, atol=atol):
                raise TracingError(f"dynamic_dims: output {i} differs from eager at size {size}; the function "
                                   "bakes in a size")


def _perturbed(args):
    def perturb(x):
        if isinstance(x, Tensor):
            if x.is_floating_point():
                arr = x.numpy(force=True)
                noise = np.random.default_rng(0).standard_normal(arr.shape).astype(arr.dtype)
                return _wrap(arr + noise * 0.1)
            return x
        if isinstance(x, (list, tuple)):
            return type(x)(perturb(v) for v in x)
        if isinstance(x, dict):
            return {k: perturb(v) for k, v in x.items()}
        return x

    return tuple(perturb(a) for a in args)
