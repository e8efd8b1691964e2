"""The standalone runtime that loads and runs `model.tj` files.

Layer rule: `runtime` never imports the front end (`_tensor`, `autograd`, `nn`, `optim`,
`utils`, `jit`); `tracejit-run` starts with numpy, llvmlite and the layers below only.

    >>> import tracejit.runtime as rt
    >>> sorted(rt.__all__)
    ['Model', 'TracejitFormatError', 'load']
"""

from tracejit.errors import TracejitFormatError
from tracejit.runtime.model import Model, load

__all__ = ["Model", "TracejitFormatError", "load"]
