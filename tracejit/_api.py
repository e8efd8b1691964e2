"""The public front-end namespace: every `tracejit.<name>` a PyTorch user expects.

Importing this module loads the eager front end and attaches the Tensor methods; the
package's `__init__` imports it lazily on first attribute access, so `tracejit.runtime`
never pays for (or depends on) it.
"""

from __future__ import annotations

from . import _creation, _math, _movement, _reduce, _shape_ops
from . import dtypes as D
from ._creation import Generator, default_generator
from ._tensor import Size, Storage, Tensor, dispatch
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
    where=_tensor_where, requires_grad_=_requires_grad_, new_zeros=_new(_creation.zeros),
    new_ones=_new(_creation.ones), new_empty=_new(_creation.empty), new_full=_new(_creation.full),
    new_tensor=_new(_creation.tensor),
)
for _name, _fn in _methods.items():
    if _name not in Tensor.__dict__:
        setattr(Tensor, _name, _fn)

PUBLIC = dict(FUNCTIONS)
PUBLIC.update(
    Tensor=Tensor, Size=Size, Storage=Storage, UntypedStorage=Storage, dtype=D.dtype, device=device,
    Generator=Generator, default_generator=default_generator, is_tensor=is_tensor,
    is_floating_point=is_floating_point, numel=numel, result_type=result_type, can_cast=can_cast,
    promote_types=D.promote_types, get_default_dtype=D.get_default_dtype, set_default_dtype=D.set_default_dtype,
    set_printoptions=set_printoptions, get_printoptions=get_printoptions, dispatch=dispatch,
)
