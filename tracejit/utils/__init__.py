"""Utilities that sit beside the framework rather than inside it; today only `data` (datasets,
samplers and the DataLoader), as `torch.utils.data`.

    >>> import tracejit as tj
    >>> from tracejit.utils.data import DataLoader, TensorDataset
    >>> [x.tolist() for (x,) in DataLoader(TensorDataset(tj.arange(4)), batch_size=2)]
    [[0, 1], [2, 3]]
"""

from . import data

__all__ = ["data"]
