"""The op registry and every op's definition.

    >>> import tracejit.ops as ops
    >>> ops.get("tj::relu").kind
    'elementwise'
"""

import warnings

# Each module registers its ops; grads attaches gradient rules to the core ones, conv/pool carry their own.
from . import conv, elementwise, factory, grads, linalg, movement, reduction  # noqa: F401
from .registry import KINDS, OpDef, ShapeError, all_ops, get, register

# IEEE events are values, not errors: inf - inf is nan and 1/0 is inf, silently, as in PyTorch. numpy
# would warn; a filter scoped to warnings raised from tracejit's own code costs nothing per op, where an
# errstate guard costs more than a small op itself. The user's own numpy calls still warn as configured.
warnings.filterwarnings("ignore", message=r"(overflow|invalid value|divide by zero|underflow) encountered",
                        category=RuntimeWarning, module=r"tracejit(\.|$)")

__all__ = ["KINDS", "OpDef", "ShapeError", "all_ops", "get", "register"]
