"""Samplers, as `torch.utils.data`: iterables of dataset indices that set the order a DataLoader
reads samples in (`SequentialSampler`, `RandomSampler`, `SubsetRandomSampler`), and
`BatchSampler`, which groups them into lists of indices, one list a batch.

    >>> import tracejit as tj
    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    >>> sorted(RandomSampler(range(5), generator=tj.Generator().manual_seed(0)))
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import itertools

import tracejit as tj


class Sampler:
    """Base class: subclasses define `__iter__` (yielding indices) and usually `__len__`.

        >>> class Evens(Sampler):
        ...     def __init__(self, n):
        ...         self.n = n
        ...     def __iter__(self):
        ...         return iter(range(0, self.n, 2))
        >>> list(Evens(5))
        [0, 2, 4]
    """

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1, every epoch.

        >>> list(SequentialSampler("abc"))
        [0, 1, 2]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _private_generator(generator):
    """`generator`, or, when None, a fresh one seeded from the global generator.

    Drawing only the seed from the global generator up front keeps an epoch's order fixed once
    it starts: a training loop draws from the global generator between batches (dropout, noise),
    and those draws must not change the indices still to come."""
    if generator is not None:
        return generator
    seed = tj.randint(0, 2**63 - 1, ()).item()
    return tj.Generator().manual_seed(seed)


class RandomSampler(Sampler):
    """A random order: a permutation of the indices per epoch (repeated when `num_samples` is
    larger than the dataset), or `num_samples` independent draws with `replacement=True`.
    Each epoch draws anew from `generator` (default: the global generator, so `tj.manual_seed`
    makes the whole run reproducible).

        >>> import tracejit as tj
        >>> s = RandomSampler(range(4), generator=tj.Generator().manual_seed(1))
        >>> sorted(s), len(RandomSampler(range(4), replacement=True, num_samples=10))
        ([0, 1, 2, 3], 10)
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        n = self.num_samples
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={n}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        generator = _private_generator(self.generator)
        if self.replacement:
            # in chunks of 32, so a loop that stops early does not pay for num_samples draws
            for _ in range(self.num_samples // 32):
                yield from tj.randint(n, (32,), generator=generator).tolist()
            yield from tj.randint(n, (self.num_samples % 32,), generator=generator).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from tj.randperm(n, generator=generator).tolist()
            yield from tj.randperm(n, generator=generator).tolist()[: self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, drawn anew each epoch.

        >>> import tracejit as tj
        >>> sorted(SubsetRandomSampler([5, 7, 9], generator=tj.Generator().manual_seed(0)))
        [5, 7, 9]
    """

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in tj.randperm(len(self.indices), generator=self.generator).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


def check_batch_args(batch_size, drop_last):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
    if not isinstance(drop_last, bool):
        raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")


class BatchSampler(Sampler):
    """Group the indices of `sampler` into lists of `batch_size`; the last, shorter list is kept
    unless `drop_last`.

        >>> list(BatchSampler(range(5), batch_size=2, drop_last=True))
        [[0, 1], [2, 3]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        check_batch_args(batch_size, drop_last)
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        while batch := list(itertools.islice(indices, self.batch_size)):
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
