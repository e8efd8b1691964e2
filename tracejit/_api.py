"""The public front-end namespace: every `tracejit.<name>` a PyTorch user expects.

Importing this module loads the eager front end and attaches the Tensor methods; the
package's `__init__` imports it lazily on first attribute access, so `tracejit.runtime`
never pays for (or depends on) it.
"""

from __future__ import annotations

from . import _creation, _math, _movement, _reduce, _shape_ops, autograd, serialization
from . import dtypes as D
from ._creation import Generator, default_generator
from ._tensor import Size, Storage, Tensor, UntypedStorage, dispatch
from ._tensor_str import get_printoptions, set_printoptions
from .devices import device

# Functions that are not methods: creation, and those whose first argument is not `self`.
_NOT_METHODS = {"cat", "concat", "concatenate", "stack", "hstack", "vstack", "where"}


def is_tensor(obj):
    return isinstance(obj, Tensor)


def is_floating_point(input):
    return input.is_floating_point()


def numel(input):
    return input.numel()


def result_type(tensor1, tensor2):
    from .ops.rules import result_type as rt

    return rt([tensor1, tensor2])


def can_cast(from_, to):
    return D.can_cast(from_, to)


def _requires_grad_(self, requires_grad=True):
    if requires_grad and not self.dtype.is_floating_point:
        raise RuntimeError(f"only tensors of floating point dtype can require gradients, got {self.dtype}")
    self.requires_grad = bool(requires_grad)
    return self


def _new(factory):
    def method(self, *args, dtype=None, device=None, requires_grad=False, **kw):
        return factory(*args, dtype=dtype or self.dtype, device=device or self.device,
                       requires_grad=requires_grad, **kw)

    method.__name__ = "new_" + factory.__name__
    return method


def _backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(self)/d(leaf) into the `.grad` of every leaf that requires grad."""
    from .autograd import backward

    backward(self, gradient, retain_graph, create_graph, inputs)


def _detach(self):
    """A tensor sharing self's data (and version counter) that is cut from the graph."""
    from ._tensor import _wrap

    d = _wrap(self._data)
    d._base = self._base if self._base is not None else self
    return d


def _detach_(self):
    if self._base is not None and self._base.requires_grad:
        raise RuntimeError("can't detach_() a view of a tensor that requires grad; use detach()")
    self.requires_grad = False
    self.grad_fn = None
    return self


def _register_hook(self, hook):
    """Call `hook(grad)` when this leaf's gradient is computed (it may return a replacement)."""
    if not self.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if self.grad_fn is not None:
        raise NotImplementedError("hooks on non-leaf tensors are not supported yet; register them on leaves")
    if self._grad_hooks is None:
        self._grad_hooks = []
    self._grad_hooks.append(hook)
    return _HookHandle(self._grad_hooks, hook)


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _get_data(self):
    return _detach(self)


def _set_data(self, value):
    if tuple(value.shape) != tuple(self.shape) or value.dtype is not self.dtype:
        self._data = value._data
        self.dtype = value.dtype
    else:
        self._data = value._data


def _trace(fn, example_inputs, **kwargs):
    """Record what fn(*example_inputs) computes as IR (see tracejit.jit)."""
    from .jit import trace

    return trace(fn, example_inputs, **kwargs)


def _freeze(traced, **kwargs):
    """Parameters become constants and inference passes run (see tracejit.jit.freeze)."""
    from .jit import freeze

    return freeze(traced, **kwargs)


def _compile(fn, example_inputs, **kwargs):
    """A natively compiled callable for fn (see tracejit.jit.compile)."""
    from .jit import compile

    return compile(fn, example_inputs, **kwargs)


def _script(model, *example_inputs, **kwargs):
    """Export model for the runtime (see tracejit.jit.script)."""
    from .jit import script

    return script(model, *example_inputs, **kwargs)


def _trace_only(fn):
    """Trace this function or method instead of compiling its source when scripting (see tracejit.jit.script)."""
    from .jit import trace_only

    return trace_only(fn)


def _ignore(fn):
    """Leave calls to this function or method out of scripted graphs (see tracejit.jit.script)."""
    from .jit import ignore

    return ignore(fn)


def _save(obj, path):
    """A scripted model to a `.tj` file; tensors and state dicts to safetensors (see tracejit.serialization)."""
    from .jit import LazyScriptedModule, ScriptedModule

    if isinstance(obj, (ScriptedModule, LazyScriptedModule)):
        return obj.save(path)
    return serialization.save(obj, path)


def _load(path, *args, **kwargs):
    """A `.tj` model file as a runnable model (tracejit.runtime.load); anything else as saved tensors."""
    import os

    magic = b""
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        with open(path, "rb") as f:
            magic = f.read(4)
    if magic == b"PK\x03\x04":  # a zip archive: a model file
        from .runtime import load

        return load(path, **kwargs)
    return serialization.load(path, *args, **kwargs)


def set_num_threads(n):
    """Threads used by large ops, native kernels and BLAS."""
    from .ops import parallel

    parallel.set_num_threads(n)
    try:
        from .codegen import blas
    except ImportError:
        return
    blas.set_num_threads(n)


def get_num_threads():
    from .ops import parallel

    return parallel.get_num_threads()


def _tensor_where(self, condition, other):
    return _math.where(condition, self, other)


FUNCTIONS = {}
for _table in (_math.FUNCTIONS, _reduce.FUNCTIONS, _movement.FUNCTIONS, _creation.FUNCTIONS):
    FUNCTIONS.update(_table)
FUNCTIONS.update({f.__name__: f for f in _shape_ops.FUNCTIONS})

_methods = {k: v for k, v in FUNCTIONS.items() if k not in _NOT_METHODS and k not in _creation.FUNCTIONS}
for _table in (_math.METHODS, _movement.METHODS):
    _methods.update(_table)
_methods.update({f.__name__: f for f in _shape_ops.METHODS})
_methods.update(
    where=_tensor_where, requires_grad_=_requires_grad_, backward=_backward, detach=_detach, detach_=_detach_,
    register_hook=_register_hook, new_zeros=_new(_creation.zeros),
    new_ones=_new(_creation.ones), new_empty=_new(_creation.empty), new_full=_new(_creation.full),
    new_tensor=_new(_creation.tensor),
)
for _name, _fn in _methods.items():
    if _name not in Tensor.__dict__:
        setattr(Tensor, _name, _fn)
Tensor.data = property(_get_data, _set_data)

PUBLIC = dict(FUNCTIONS)
PUBLIC.update(
    Tensor=Tensor, Size=Size, Storage=Storage, TypedStorage=Storage,
    UntypedStorage=UntypedStorage, dtype=D.dtype, device=device,
    Generator=Generator, default_generator=default_generator, is_tensor=is_tensor,
    is_floating_point=is_floating_point, numel=numel, result_type=result_type, can_cast=can_cast,
    promote_types=D.promote_types, get_default_dtype=D.get_default_dtype, set_default_dtype=D.set_default_dtype,
    set_printoptions=set_printoptions, get_printoptions=get_printoptions, dispatch=dispatch, autograd=autograd,
    no_grad=autograd.no_grad, enable_grad=autograd.enable_grad, set_grad_enabled=autograd.set_grad_enabled,
    inference_mode=autograd.inference_mode, is_grad_enabled=autograd.is_grad_enabled,
    load=_load, trace=_trace, freeze=_freeze, compile=_compile, script=_script, save=_save,
    trace_only=_trace_only, ignore=_ignore,
    set_num_threads=set_num_threads, get_num_threads=get_num_threads,
)
