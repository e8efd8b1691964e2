"""The op registry and every op's definition.

    >>> import tracejit.ops as ops
    >>> ops.get("tj::relu").kind
    'elementwise'
"""

from . import elementwise, factory, linalg, movement, reduction  # noqa: F401  (each registers its ops)
from . import grads  # noqa: F401, I001  (attaches gradient rules to the ops above)
from .registry import KINDS, OpDef, ShapeError, all_ops, get, register
from . import conv  # noqa: F401

__all__ = ["KINDS", "OpDef", "ShapeError", "all_ops", "get", "register"]
