"""Loading data in batches, as `torch.utils.data`: map-style and iterable datasets, samplers that
choose the order, `default_collate` that stacks samples into batches, and the `DataLoader` that
ties them together.

    >>> import tracejit as tj
    >>> from tracejit.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(tj.arange(10).float(), tj.arange(10))
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, generator=tj.Generator().manual_seed(0))
    >>> [len(y) for x, y in loader]
    [4, 4, 2]

`num_workers > 0` is accepted for compatibility but batches are always loaded in this process
(see `DataLoader`). The general `collate(batch, collate_fn_map=...)` that `default_collate` is built
on lives in `tracejit.utils.data.collate`, as PyTorch keeps it out of this namespace (and the
name would hide that module).
"""

from .collate import default_collate, default_collate_fn_map, default_convert
from .dataloader import DataLoader, get_worker_info
from .dataset import ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler

__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "RandomSampler",
    "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset", "default_collate",
    "default_collate_fn_map", "default_convert", "get_worker_info", "random_split",
]
