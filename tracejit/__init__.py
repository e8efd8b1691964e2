"""tracejit: PyTorch-style eager tensors whose models trace into a typed SSA IR and compile.

The front end (tensors, autograd, nn, ...) is loaded lazily on first use (PEP 562), so that
`import tracejit.runtime` runs a saved model without executing any of it.

    >>> import tracejit as torch
    >>> torch.ones(2, 3).sum(dim=1)
    tensor([3., 3.])
"""

from __future__ import annotations

import importlib

from .dtypes import bool_ as bool  # noqa: A004 - PyTorch's name
from .dtypes import float16, float32, float64, int8, int16, int32, int64, uint8

__all__ = ["bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"]

__version__ = "0.1.0"

half, float, double = float16, float32, float64  # noqa: A001 - PyTorch's names
short, int, long = int16, int32, int64  # noqa: A001

# Submodules reachable as attributes (`tracejit.cuda.is_available()`), imported on first use.
_SUBMODULES = {"cuda", "ops", "dtypes", "devices", "ir", "codegen", "runtime", "nn", "optim", "utils", "autograd",
               "errors", "jit"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name.startswith("__"):  # dunder probes (copy, pickle, import machinery) are not ours
        raise AttributeError(f"module 'tracejit' has no attribute {name!r}")
    api = importlib.import_module("._api", __name__)
    try:
        value = api.PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'tracejit' has no attribute {name!r}") from None
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    api = importlib.import_module("._api", __name__)
    return sorted(set(globals()) | set(api.PUBLIC) | _SUBMODULES)
