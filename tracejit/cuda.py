"""`tracejit.cuda`: whether CUDA can be used here, without importing cupy unless asked.

    >>> import tracejit
    >>> isinstance(tracejit.cuda.is_available(), bool)
    True
"""

from __future__ import annotations

from .devices import cuda_device_count, cuda_is_available


def is_available():
    """True when cupy is installed and sees a GPU."""
    return cuda_is_available()


def device_count():
    return cuda_device_count()


def manual_seed(seed):
    """Random draws come from the CPU generator and move to the GPU, so one seed covers both."""
    from ._creation import manual_seed as seed_all

    seed_all(seed)


manual_seed_all = manual_seed
