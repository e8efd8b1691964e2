"""The op registry and every op's definition.

    >>> import tracejit.ops as ops
    >>> ops.get("tj::relu").kind
    'elementwise'
"""

# Each module registers its ops; grads attaches gradient rules to the core ones, conv/pool carry their own.
from . import elementwise, factory, linalg, movement, reduction  # noqa: F401, I001
from . import grads  # noqa: F401
from . import conv  # noqa: F401
from .registry import KINDS, OpDef, ShapeError, all_ops, get, register

__all__ = ["KINDS", "OpDef", "ShapeError", "all_ops", "get", "register"]
