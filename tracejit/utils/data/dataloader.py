"""The DataLoader, as `torch.utils.data.DataLoader`: it draws indices from a sampler, fetches the
samples from a dataset and collates them into batches.

    >>> import tracejit as tj
    >>> loader = DataLoader(TensorDataset(tj.arange(5)), batch_size=2)
    >>> len(loader), [x.tolist() for (x,) in loader]
    (3, [[0, 1], [2, 3], [4]])

Everything runs in the calling process: `num_workers > 0` (and the options that go with it) are
accepted so PyTorch code runs unchanged, but no worker processes are started and the loader
behaves exactly as with num_workers=0 (worker_init_fn is not called, get_worker_info() is None).
Workers would have to pickle the dataset and send every batch back between processes, while the
common case here, a TensorDataset, costs one indexing op per tensor per batch (`_tensor_batch`).
"""

from __future__ import annotations

import itertools

import numpy as np

import tracejit as tj

from .collate import default_collate, default_convert
from .dataset import IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, check_batch_args


def get_worker_info():
    """Always None: batches are loaded in the main process (there are no workers to describe)."""
    return None


def _tensor_batch(dataset, indices):
    """A TensorDataset batch as one `t[idx]` per tensor, or None when that shortcut does not apply.

    `default_collate` on TensorDataset samples stacks len(indices) rows per tensor; indexing each
    tensor once with the batch's indices gives the identical list of tensors (same values, shape
    and dtype) in one op instead of a Python loop of row views and a stack, which is what makes
    a batch of 64 cheap. It is only taken when nothing user-defined would run in between:
    exact TensorDataset / Subset behaviour (no overridden __getitem__ or __getitems__) and
    in-range integer indices (anything else falls back, so errors come from the usual path).
    """
    if isinstance(indices, tj.Tensor):  # a batch_sampler may yield index tensors
        indices = indices.tolist()
    while isinstance(dataset, Subset) and type(dataset).__getitem__ is Subset.__getitem__ \
            and type(dataset).__getitems__ is Subset.__getitems__:
        base = dataset.indices
        try:
            indices = [base[i] for i in indices]
        except (IndexError, TypeError):
            return None
        dataset = dataset.dataset
    if not (isinstance(dataset, TensorDataset) and type(dataset).__getitem__ is TensorDataset.__getitem__
            and getattr(type(dataset), "__getitems__", None) is None) or len(indices) == 0:
        return None
    if any(isinstance(i, tj.Tensor) for i in indices):  # Subset indices held as a tensor give 0-d tensors
        indices = [int(i) if isinstance(i, tj.Tensor) and i.ndim == 0 else i for i in indices]
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= len(dataset):
        return None
    idx = tj.from_numpy(idx.astype(np.int64, copy=False))
    return [t[idx] for t in dataset.tensors]


class DataLoader:
    """Iterate over `dataset` in batches.

    batch_size: samples per batch (None: no batching, yield samples one by one through
        `default_convert`); shuffle: a new random order each epoch, drawn from `generator`
        (default: the global generator, so `tj.manual_seed` makes runs reproducible);
        sampler / batch_sampler: a custom order of indices / of lists of indices;
        collate_fn: turns a list of samples into a batch (default: `default_collate`);
        drop_last: drop the last batch when it is short.
    num_workers, pin_memory, timeout, worker_init_fn, multiprocessing_context, prefetch_factor,
    persistent_workers, pin_memory_device and in_order are checked as PyTorch checks them, then
    ignored: loading always happens in this process (see the module docstring).

        >>> import tracejit as tj
        >>> ds = TensorDataset(tj.arange(10))
        >>> loader = DataLoader(ds, batch_size=4, shuffle=True, generator=tj.Generator().manual_seed(0))
        >>> len(loader), sorted(i for (x,) in loader for i in x.tolist()) == list(range(10))
        (3, True)
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in (False, None):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
                                 f"got batch_sampler={batch_sampler}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")

        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        if self._iterable and batch_size is not None:  # streams are batched without a BatchSampler to check these
            check_batch_args(batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.num_workers, self.pin_memory, self.timeout = num_workers, pin_memory, timeout
        self.worker_init_fn, self.multiprocessing_context = worker_init_fn, multiprocessing_context
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor
        self.persistent_workers, self.pin_memory_device, self.in_order = persistent_workers, pin_memory_device, in_order
        self._initialized = True

    def __setattr__(self, name, value):
        # the samplers were built from these; changing one afterwards would silently not take effect
        if getattr(self, "_initialized", False) and name in (
                "batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers"):
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self):
        return self.batch_size is not None if self._iterable else self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)

    def __iter__(self):
        return _LoaderIterator(self, self._iter_stream() if self._iterable else self._iter_map())

    def _iter_map(self):
        dataset, collate_fn = self.dataset, self.collate_fn
        if not self._auto_collation:
            for index in self.sampler:
                yield collate_fn(dataset[index])
            return
        getitems = getattr(dataset, "__getitems__", None)
        for indices in self.batch_sampler:
            batch = _tensor_batch(dataset, indices) if collate_fn is default_collate else None
            if batch is None:
                samples = getitems(indices) if callable(getitems) else [dataset[i] for i in indices]
                batch = collate_fn(samples)
            yield batch

    def _iter_stream(self):
        stream = iter(self.dataset)
        if not self._auto_collation:
            for sample in stream:
                yield self.collate_fn(sample)
            return
        while samples := list(itertools.islice(stream, self.batch_size)):
            if self.drop_last and len(samples) < self.batch_size:
                return
            yield self.collate_fn(samples)


class _LoaderIterator:
    """One epoch of batches; like PyTorch's iterator it also knows its length."""

    def __init__(self, loader, batches):
        self._loader, self._batches = loader, batches

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._batches)

    def __len__(self):
        return len(self._loader)
