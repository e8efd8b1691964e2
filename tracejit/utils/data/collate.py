"""Turning a list of samples into a batch, as `torch.utils.data.default_collate` does.

`collate` walks the structure of the first sample: containers (dicts, namedtuples, tuples,
lists) are transposed and collated field by field; leaves go to the function registered for
their type in `default_collate_fn_map` (tensors are stacked, numbers become 1-d tensors,
strings stay a list).

    >>> import tracejit as tj
    >>> batch = default_collate([{"x": tj.ones(2), "y": 0}, {"x": tj.zeros(2), "y": 1}])
    >>> batch["x"].shape, batch["y"].tolist()
    (tracejit.Size([2, 2]), [0, 1])
"""

from __future__ import annotations

import collections.abc
import copy
import re

import numpy as np

import tracejit as tj

# numpy dtypes that have no tensor counterpart: bytes, strings, unicode and Python objects
_NP_STR_OBJ = re.compile(r"[SaUO]")

_ERR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _same_shapes(shapes, what):
    """Raise, naming the first two entries that differ, unless every shape is the same."""
    first = shapes[0]
    for i, s in enumerate(shapes):
        if s != first:
            raise RuntimeError(f"default_collate: every {what} in a batch must have the same shape, but got "
                               f"{list(first)} at entry 0 and {list(s)} at entry {i}; pad or crop the samples to "
                               "one shape, or pass a collate_fn that handles ragged samples")


def collate_tensor_fn(batch, *, collate_fn_map=None):
    """Stack tensors along a new first dim (checked first, so a ragged batch names its shapes)."""
    _same_shapes([tuple(t.shape) for t in batch], "tensor")
    return tj.stack(list(batch), 0)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    elem = batch[0]
    if _NP_STR_OBJ.search(elem.dtype.str) is not None:
        raise TypeError(_ERR.format(elem.dtype))
    _same_shapes([a.shape for a in batch], "numpy array")
    if all(a.dtype == elem.dtype for a in batch):
        # one numpy copy instead of one tensor per sample; same dtype, so the same result as stacking tensors
        return tj.from_numpy(np.asarray(np.stack(batch)))
    # mixed dtypes promote with PyTorch's rules (tj.stack), not numpy's
    return collate_tensor_fn([tj.as_tensor(a) for a in batch])


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    return tj.as_tensor(np.array(batch))  # keeps the scalars' numpy dtype, as torch.as_tensor does


def collate_float_fn(batch, *, collate_fn_map=None):
    # Built in numpy: tj.tensor(floats, dtype=float64) rounds through float32 first.
    return tj.from_numpy(np.array(batch, dtype=np.float64))


def collate_int_fn(batch, *, collate_fn_map=None):
    return tj.tensor(batch)  # int64; bools alone give a bool tensor, as torch.tensor does


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


# Looked up by exact type first, then by isinstance in this order: numpy scalars come before
# float and int because np.float64 is a float subclass and must keep its dtype.
default_collate_fn_map = {
    tj.Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def _leaf_fn(elem, collate_fn_map):
    fn = collate_fn_map.get(type(elem))
    if fn is not None:
        return fn
    for kind, fn in collate_fn_map.items():
        if isinstance(elem, kind):
            return fn
    return None


def collate(batch, *, collate_fn_map=None):
    """Collate `batch` (a list of samples with the same structure) with leaf functions from
    `collate_fn_map` ({type or tuple of types: fn(batch, *, collate_fn_map)}).

        >>> collate([(1, "a"), (2, "b")], collate_fn_map={int: lambda b, **_: sum(b), str: lambda b, **_: b})
        [3, ('a', 'b')]
    """
    if len(batch) == 0:
        raise IndexError("collate: the batch is empty; a sampler or batch_sampler yielded no indices")
    elem = batch[0]
    if collate_fn_map is not None:
        fn = _leaf_fn(elem, collate_fn_map)
        if fn is not None:
            return fn(batch, collate_fn_map=collate_fn_map)

    def sub(samples):  # the samples stay a tuple where zip made one: strings come back as that tuple, as in PyTorch
        return collate(samples, collate_fn_map=collate_fn_map)

    if isinstance(elem, collections.abc.Mapping):
        values = {key: sub([d[key] for d in batch]) for key in elem}
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)  # keeps the mapping's type and extra state (OrderedDict, defaultdict)
                clone.update(values)
                return clone
            return type(elem)(values)
        except TypeError:  # a mapping type that cannot be built from a dict
            return values
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(sub(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence) and not isinstance(elem, (str, bytes)):
        size = len(elem)
        for i, e in enumerate(batch):
            if len(e) != size:
                raise RuntimeError(f"each element in list of batch should be of equal size, but entry 0 has {size} "
                                   f"elements and entry {i} has {len(e)}")
        columns = [sub(samples) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return columns  # a list, as PyTorch returns for plain tuples (kept for backward compatibility there)
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, column in enumerate(columns):
                    clone[i] = column
                return clone
            return type(elem)(columns)
        except TypeError:
            return columns
    raise TypeError(_ERR.format(type(elem)))


def default_collate(batch):
    """Stack a list of samples into a batch with a new leading dim of size len(batch).

    Tensors and numpy arrays are stacked; ints become an int64 tensor, floats a float64 tensor,
    bools a bool tensor; strings and bytes stay a list; dicts, namedtuples and lists keep their
    type with each field collated, and plain tuples become lists (as in PyTorch).

        >>> import tracejit as tj
        >>> out = default_collate([(tj.ones(3), 1.5), (tj.zeros(3), 2.5)])
        >>> out[0].shape, out[1].dtype
        (tracejit.Size([2, 3]), tracejit.float64)
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    """Convert numpy arrays and numpy scalars (also inside dicts, tuples and lists) to tensors and
    leave everything else as it is; the DataLoader's collate_fn when batching is off.

        >>> import numpy as np
        >>> default_convert({"a": np.arange(3), "b": 1})
        {'a': tensor([0, 1, 2]), 'b': 1}
    """
    if isinstance(data, tj.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if _NP_STR_OBJ.search(data.dtype.str) else tj.as_tensor(data)
    if isinstance(data, (np.bool_, np.number)):
        return tj.as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        values = {key: default_convert(data[key]) for key in data}
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update(values)
                return clone
            return type(data)(values)
        except TypeError:
            return values
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # a list, as PyTorch returns
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        items = [default_convert(d) for d in data]
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, item in enumerate(items):
                    clone[i] = item
                return clone
            return type(data)(items)
        except TypeError:
            return items
    return data
