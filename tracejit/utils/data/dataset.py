"""Datasets, as `torch.utils.data`: map-style (`dataset[i]` and `len`) and iterable (a stream),
ways to wrap tensors (`TensorDataset`), select (`Subset`), join (`ConcatDataset`, `ChainDataset`)
and split them (`random_split`).

    >>> import tracejit as tj
    >>> ds = TensorDataset(tj.arange(6).reshape(3, 2), tj.tensor([0, 1, 0]))
    >>> x, y = ds[1]
    >>> x.tolist(), y.item(), len(ds + ds)
    ([2, 3], 1, 6)
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import warnings

import tracejit as tj


class Dataset:
    """A map from keys (usually 0..len-1) to samples. Subclasses define `__getitem__` and usually
    `__len__`; they may define `__getitems__(indices)` to fetch a whole batch at once.

        >>> class Squares(Dataset):
        ...     def __getitem__(self, i):
        ...         return i * i
        ...     def __len__(self):
        ...         return 4
        >>> [Squares()[i] for i in range(4)]
        [0, 1, 4, 9]
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__ (subclasses of Dataset "
                                  "map an index to a sample)")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define `__iter__`. The DataLoader batches it in order;
    it cannot be shuffled or sampled.

        >>> class Count(IterableDataset):
        ...     def __iter__(self):
        ...         return iter(range(3))
        >>> list(Count() + Count())
        [0, 1, 2, 0, 1, 2]
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Sample i is `(t[i] for t in tensors)`; every tensor must have the same size in dim 0.

        >>> import tracejit as tj
        >>> ds = TensorDataset(tj.zeros(5, 3), tj.arange(5))
        >>> len(ds), ds[4][1].item()
        (5, 4)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, tj.Tensor):
                raise TypeError(f"TensorDataset takes tensors, but argument {i} is a {type(t).__name__}; "
                                "convert it with tj.as_tensor")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset indexes dim 0, but tensor {i} is 0-dimensional")
        sizes = [t.shape[0] for t in tensors]
        if any(s != sizes[0] for s in sizes):
            raise ValueError(f"Size mismatch between tensors: every tensor in a TensorDataset must have the same "
                             f"size in dim 0, but got sizes {sizes} (shapes {[list(t.shape) for t in tensors]})")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order.

        >>> sub = Subset(["a", "b", "c", "d"], [3, 0])
        >>> len(sub), sub[0], sub[1]
        (2, 'd', 'a')
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        # Pass a whole batch down, so a dataset with its own batched fetch keeps it under a Subset.
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Map-style datasets one after another: index len(a) is b[0].

        >>> ds = ConcatDataset([[1, 2], [3]])
        >>> len(ds), ds[2], ds[-3], ds.cumulative_sizes
        (3, 3, 1, [2, 3])
    """

    @staticmethod
    def cumsum(sequence):
        return list(itertools.accumulate(len(d) for d in sequence))

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset, got an empty iterable")
        for i, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset):
                raise TypeError(f"ConcatDataset does not support IterableDataset (dataset {i} is a "
                                f"{type(d).__name__}); use ChainDataset for streams")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        n, idx = len(self), operator.index(idx)
        if idx < 0:
            if -idx > n:
                raise ValueError(f"absolute value of index should not exceed dataset length: index {idx}, length {n}")
            idx += n
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        if which == len(self.datasets):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of length {n}")
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """Iterable datasets one after another, chained lazily as they are iterated.

        >>> class Two(IterableDataset):
        ...     def __iter__(self):
        ...         return iter("ab")
        >>> "".join(ChainDataset([Two(), Two()]))
        'abab'
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def _check(self, d):
        if not isinstance(d, IterableDataset):
            raise TypeError(f"ChainDataset only supports IterableDataset, got {type(d).__name__}")
        return d

    def __iter__(self):
        for d in self.datasets:
            yield from self._check(d)

    def __len__(self):
        return sum(len(self._check(d)) for d in self.datasets)


def _split_lengths(n, lengths):
    """Integer split sizes: given as ints, or as fractions of n that add up to 1."""
    lengths = list(lengths)
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:  # PyTorch's test: so [1] means "everything", even as an int
        sizes = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1: {frac}")
            sizes.append(int(math.floor(n * frac)))
        # the items lost to flooring go one each to the splits in turn, as PyTorch does
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              stacklevel=3)
        return sizes
    for i, size in enumerate(lengths):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"random_split lengths must be non-negative ints or fractions that sum to 1, but "
                             f"length {i} is {size!r}")
    if total != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! The lengths "
                         f"{lengths} sum to {total}, but the dataset has {n} samples; give ints that sum to {n} "
                         "or fractions that sum to 1")
    return lengths


def random_split(dataset, lengths, generator=None):
    """Split `dataset` into non-overlapping random Subsets of the given lengths (ints, or
    fractions that sum to 1). `generator` (default: the global one) makes the split reproducible.

        >>> import tracejit as tj
        >>> train, val = random_split(range(10), [0.7, 0.3], generator=tj.Generator().manual_seed(0))
        >>> len(train), len(val), sorted(list(train) + list(val)) == list(range(10))
        (7, 3, True)
    """
    sizes = _split_lengths(len(dataset), lengths)
    order = tj.randperm(sum(sizes), generator=generator).tolist()
    return [Subset(dataset, order[end - size : end]) for end, size in zip(itertools.accumulate(sizes), sizes)]
