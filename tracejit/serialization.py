"""`tracejit.save` / `tracejit.load` for tensors and state dicts, without pickle.

Tensors go into a safetensors file; the structure around them (nested dicts, lists,
numbers, strings, None — e.g. an optimizer's state_dict) and the device of each GPU tensor
are stored as JSON in the file's metadata; loading puts tensors back on their device unless
`map_location` says where. Loading parses JSON and safetensors only: nothing from the file is
executed. Saving is atomic: a temporary file in the same folder is renamed over the target.

    >>> import tempfile, os, tracejit as tj
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> tj.save({"w": tj.ones(2)}, path)
    >>> tj.load(path)["w"]
    tensor([1., 1.])
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict

import numpy as np

from ._tensor import Tensor, _wrap
from .errors import TracejitFormatError

_STRUCT_KEY = "tracejit.structure"
_FORMAT = 1


def _contiguous(arr):
    # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _key(tensors, path):
    """The tensor's name in the file: its dotted path (state_dict keys stay readable by other tools)."""
    key = path or "tensor"
    n = 1
    while key in tensors:  # {"a.b": x, "a": {"b": y}} would otherwise collide
        key = f"{path}#{n}"
        n += 1
    return key


def _flatten(obj, tensors, path):
    """JSON-able description of obj; tensors are moved into `tensors` under their path."""
    if isinstance(obj, Tensor):
        key = _key(tensors, path)
        tensors[key] = _contiguous(obj.detach().numpy(force=True))
        return {"t": key} if obj.is_cpu else {"t": key, "dev": str(obj.device)}
    if isinstance(obj, np.ndarray):
        key = _key(tensors, path)
        tensors[key] = _contiguous(obj)
        return {"t": key, "np": True}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int)):
                raise TypeError(f"tracejit.save: dict keys must be str or int, got {type(k).__name__} at {path!r}")
        return {"d": [[k, _flatten(v, tensors, f"{path}.{k}" if path else str(k))] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, tensors, f"{path}.{i}" if path else str(i)) for i, v in enumerate(obj)]
        return {"l" if isinstance(obj, list) else "u": items}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"v": obj}
    raise TypeError(f"tracejit.save cannot store {type(obj).__name__} at {path or 'the top level'!r}: only tensors, "
                    "numpy arrays, dicts, lists, tuples, numbers, strings and None (no pickle)")


def _unflatten(desc, tensors, devices):
    """The saved structure; with `devices`, tensors go back to the device they were saved from."""
    if "t" in desc:
        arr = tensors[desc["t"]]
        if desc.get("np"):
            return arr
        return _on_saved_device(_wrap(arr), desc["dev"]) if devices and "dev" in desc else _wrap(arr)
    if "d" in desc:
        return OrderedDict((k, _unflatten(v, tensors, devices)) for k, v in desc["d"])
    if "l" in desc:
        return [_unflatten(v, tensors, devices) for v in desc["l"]]
    if "u" in desc:
        return tuple(_unflatten(v, tensors, devices) for v in desc["u"])
    return desc["v"]


def _on_saved_device(t, dev):
    try:
        return t.to(dev)
    except RuntimeError as e:
        raise RuntimeError(f"tracejit.load: a tensor was saved on {dev}, which is not usable here ({e}); pass "
                           "map_location='cpu' to load it on the CPU") from None


def save(obj, f):
    """Save tensors / a state dict / nested containers of them to the path `f` (safetensors format)."""
    from safetensors.numpy import save as st_save

    tensors = {}
    structure = _flatten(obj, tensors, "")
    meta = {_STRUCT_KEY: json.dumps({"format": _FORMAT, "root": structure})}
    blob = st_save(tensors, metadata=meta)
    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(f, map_location=None, weights_only=True):
    """Load what `save` wrote (or any safetensors file: a dict of tensors)."""
    from safetensors.numpy import load as st_load

    path = os.fspath(f)
    with open(path, "rb") as fh:
        blob = fh.read()
    try:
        tensors = st_load(blob)
        header_len = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + header_len])
    except Exception as e:
        raise TracejitFormatError(f"{path} is not a valid safetensors file ({e})") from None
    meta = header.get("__metadata__") or {}
    if _STRUCT_KEY not in meta:
        out = OrderedDict((k, _wrap(v)) for k, v in tensors.items())
    else:
        info = json.loads(meta[_STRUCT_KEY])
        if info.get("format", 0) > _FORMAT:
            raise TracejitFormatError(f"{path} was written by a newer tracejit (format {info['format']}; this "
                                      f"version reads up to {_FORMAT})")
        out = _unflatten(info["root"], tensors, devices=map_location is None)
    if map_location is not None:
        out = _move(out, map_location)
    return out


def _move(obj, device):
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return OrderedDict((k, _move(v, device)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, device) for v in obj)
    return obj
