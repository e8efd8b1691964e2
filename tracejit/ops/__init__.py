"""The op registry and every op's definition.

    >>> import tracejit.ops as ops
    >>> ops.get("tj::relu").kind
    'elementwise'
"""

from . import elementwise, factory, linalg, movement, reduction  # noqa: F401  (each registers its ops)
from .registry import KINDS, OpDef, ShapeError, all_ops, get, register

__all__ = ["KINDS", "OpDef", "ShapeError", "all_ops", "get", "register"]
