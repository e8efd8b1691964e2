"""On-disk cache of compiled native code: object files keyed by a hash of what produced them.

The key is the SHA-256 of the kernel's LLVM IR text, the target (triple, CPU name and features),
the llvmlite and LLVM versions and the cache format, so a changed kernel, another machine or
another compiler never picks up a stale entry. Entries live in `TRACEJIT_CACHE_DIR` when set,
else `$XDG_CACHE_HOME/tracejit`, else `~/.cache/tracejit`; `TRACEJIT_CACHE_DIR=off` disables
the cache. Each entry carries the SHA-256 of its payload: a damaged or truncated entry is a miss
(and is replaced), never loaded. Writes are atomic (temporary file, then rename), so processes
sharing the folder never see half an entry. A folder that cannot be written only costs speed.

    >>> import tempfile, os
    >>> os.environ["TRACEJIT_CACHE_DIR"] = tempfile.mkdtemp()
    >>> key = cache_key("define void @k() { ret void }", ("x86_64", "znver2", "+avx2"))
    >>> get(key) is None
    True
    >>> put(key, b"object code")
    >>> get(key)
    b'object code'
    >>> del os.environ["TRACEJIT_CACHE_DIR"]
"""

from __future__ import annotations

import hashlib
import os
import tempfile

_FORMAT = b"tracejit-native-cache-1"
_MAGIC = b"TJNC"


def cache_dir():
    """The cache folder, or None when caching is off."""
    env = os.environ.get("TRACEJIT_CACHE_DIR")
    if env:
        return None if env.lower() in ("off", "0", "none") else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tracejit")


def _versions():
    import llvmlite
    import llvmlite.binding as llvm

    return f"llvmlite {llvmlite.__version__} llvm {'.'.join(map(str, llvm.llvm_version_info))}"


def cache_key(ir_text, target):
    """Hex SHA-256 over the IR text, the target description (any tuple of strings) and the versions."""
    h = hashlib.sha256(_FORMAT)
    for part in (ir_text, *target, _versions()):
        data = part.encode() if isinstance(part, str) else bytes(part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _path(folder, key):
    return os.path.join(folder, key[:2], key + ".o")


def get(key):
    """The payload stored under `key`, or None (missing, damaged, or caching off)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        with open(_path(folder, key), "rb") as f:
            blob = f.read()
    except OSError:
        return None
    if len(blob) < 36 or blob[:4] != _MAGIC:
        return None
    digest, payload = blob[4:36], blob[36:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    return payload


def put(key, payload):
    """Store `payload` under `key` atomically; failures to write are ignored (the cache is optional)."""
    folder = cache_dir()
    if folder is None:
        return
    path = _path(folder, key)
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
