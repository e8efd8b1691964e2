"""NVRTC through ctypes: CUDA C source to PTX, with no GPU, driver or CUDA toolkit needed.

The library is found lazily (never when tracejit is imported), in this order: the
`nvidia-cuda-nvrtc-cu12` wheel (`pip install 'tracejit[cuda]'`), the system loader
(`ctypes.util.find_library("nvrtc")`, `libnvrtc.so.12`), and cupy's bundled copy.

`compile_ptx_cached` keeps PTX in the folder of `tracejit.codegen.cache` (`TRACEJIT_CACHE_DIR`; `off`
disables it), keyed by the SHA-256 of the source, file name, architecture, options and NVRTC version.
`arch` names the `--gpu-architecture` for a device's compute capability.

    >>> available() in (True, False)
    True
    >>> arch((9, 0), check=False), arch((8, 6), real=True, check=False)
    ('compute_90', 'sm_86')
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import os
import sys
import threading

INSTALL_HINT = "pip install 'tracejit[cuda]' (or: pip install nvidia-cuda-nvrtc-cu12)"

_lock = threading.Lock()
_lib = None
_load_error = None


class NVRTCError(RuntimeError):
    """NVRTC is missing, or a program failed to compile (the message carries the log and the source)."""


def _candidates():
    """Paths or names to try, best first."""
    out = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    except (ImportError, ValueError):
        spec = None
    for base in list(spec.submodule_search_locations or []) if spec is not None else []:
        for sub in ("lib", "bin"):
            pattern = "nvrtc64_*.dll" if sys.platform == "win32" else "libnvrtc.so*"
            out += sorted((p for p in glob.glob(os.path.join(base, sub, pattern)) if "builtins" not in p
                           and ".alt." not in p), key=len)
    found = ctypes.util.find_library("nvrtc")
    if found:
        out.append(found)
    out += ["libnvrtc.so.12", "libnvrtc.so"]
    try:
        import cupy.cuda.nvrtc  # noqa: F401  (loads cupy's own libnvrtc into the process)
    except Exception:  # cupy is optional, and may fail to import without a driver
        pass
    return out


def _load():
    global _lib, _load_error
    with _lock:
        if _lib is not None or _load_error is not None:
            return _lib
        tried = []
        for path in _candidates():
            try:
                lib = ctypes.CDLL(path)
                lib.nvrtcVersion  # noqa: B018  (a library of another name would lack it)
            except (OSError, AttributeError) as e:
                tried.append(f"{path}: {e}")
                continue
            _declare(lib)
            _lib = lib
            return lib
        _load_error = "NVRTC (libnvrtc) was not found; install it with " + INSTALL_HINT
        if tried:
            _load_error += ". Tried: " + "; ".join(tried)
        return None


def _declare(lib):
    P, S, C = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    sigs = {
        "nvrtcVersion": [ctypes.POINTER(ctypes.c_int)] * 2,
        "nvrtcGetErrorString": [ctypes.c_int],
        "nvrtcCreateProgram": [ctypes.POINTER(P), C, C, ctypes.c_int, P, P],
        "nvrtcCompileProgram": [P, ctypes.c_int, ctypes.POINTER(C)],
        "nvrtcGetProgramLogSize": [P, ctypes.POINTER(S)],
        "nvrtcGetProgramLog": [P, C],
        "nvrtcGetPTXSize": [P, ctypes.POINTER(S)],
        "nvrtcGetPTX": [P, C],
        "nvrtcDestroyProgram": [ctypes.POINTER(P)],
        "nvrtcGetNumSupportedArchs": [ctypes.POINTER(ctypes.c_int)],
        "nvrtcGetSupportedArchs": [ctypes.POINTER(ctypes.c_int)],
    }
    for name, args in sigs.items():
        fn = getattr(lib, name, None)
        if fn is None:  # the supported-architecture queries arrived in NVRTC 11.2
            continue
        fn.argtypes = args
        fn.restype = ctypes.c_char_p if name == "nvrtcGetErrorString" else ctypes.c_int


def _library():
    lib = _load()
    if lib is None:
        raise NVRTCError(_load_error)
    return lib


def available():
    """Whether NVRTC can be loaded here (no GPU needed)."""
    return _load() is not None


def version():
    """NVRTC's (major, minor) version, e.g. (12, 9)."""
    lib = _library()
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(lib, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def _check(lib, status, what):
    if status != 0:
        raise NVRTCError(f"{what} failed: {lib.nvrtcGetErrorString(status).decode()} ({status})")


def numbered(source):
    """The source with 1-based line numbers, as compiler logs count them."""
    lines = source.splitlines()
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, 1))


def compile_ptx(source, name="kernel.cu", arch="compute_80", options=()):
    """Compile CUDA C++ `source` to PTX text for the virtual architecture `arch`.

    Raises `NVRTCError` with NVRTC's log and the numbered source when compilation fails. Safe to call
    from several threads at once (each call owns its program).
    """
    lib = _library()
    opts = [f"--gpu-architecture={arch}", "-default-device"]
    if version() >= (11, 0):
        opts.append("--std=c++17")
    opts += list(options)
    prog = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        c_opts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        status = lib.nvrtcCompileProgram(prog, len(opts), c_opts)
        if status != 0:
            log = _log(lib, prog)
            raise NVRTCError(f"NVRTC failed to compile {name} ({lib.nvrtcGetErrorString(status).decode()}), "
                             f"options {opts}:\n{log}\n--- source ---\n{numbered(source)}")
        size = ctypes.c_size_t()
        _check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
        buf = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return buf.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _log(lib, prog):
    size = ctypes.c_size_t()
    if lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) != 0:
        return "(no log)"
    buf = ctypes.create_string_buffer(max(size.value, 1))
    lib.nvrtcGetProgramLog(prog, buf)
    return buf.value.decode(errors="replace").strip()


def supported_archs():
    """The architectures this NVRTC compiles for, as ints (e.g. 75, 80, ..., 90), newest last; None when
    the library is too old to say (before NVRTC 11.2)."""
    lib = _library()
    if getattr(lib, "nvrtcGetSupportedArchs", None) is None:
        return None
    count = ctypes.c_int()
    _check(lib, lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
    archs = (ctypes.c_int * count.value)()
    _check(lib, lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
    return tuple(sorted(archs))


def arch(capability, real=False, check=True):
    """The `--gpu-architecture` for a device of compute capability `capability` (a (major, minor) tuple):
    "compute_90" for (9, 0), or "sm_90" with `real` (code for that GPU only). With `check`, a GPU newer
    than this NVRTC knows gets the newest virtual architecture it has (the driver compiles that PTX for
    the GPU), and `real` there raises `NVRTCError`.

        >>> arch((8, 0), check=False)
        'compute_80'
    """
    major, minor = (int(v) for v in capability)
    want = major * 10 + minor
    known = supported_archs() if check else None
    if known and want not in known:
        older = [a for a in known if a <= want]
        if real or not older:
            raise NVRTCError(f"NVRTC {'.'.join(map(str, version()))} cannot compile for compute capability "
                             f"{major}.{minor} (it knows {', '.join(map(str, known))}); install a newer one: "
                             + INSTALL_HINT)
        want = older[-1]
    return f"{'sm' if real else 'compute'}_{want}"


_PTX_CACHE_FORMAT = b"tracejit-ptx-cache-1"


def ptx_cache_key(source, name="kernel.cu", arch="compute_80", options=()):
    """Hex SHA-256 over what decides the PTX: source, file name, architecture, options, NVRTC version."""
    h = hashlib.sha256(_PTX_CACHE_FORMAT)
    for part in (source, name, arch, *options, "nvrtc {}.{}".format(*version())):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def compile_ptx_cached(source, arch="compute_80", options=(), name="kernel.cu"):
    """`compile_ptx` through the on-disk cache (see `tracejit.codegen.cache`): a source compiled once, by
    any process sharing the cache folder, is read back instead of compiled again.

        >>> import os, tempfile
        >>> saved = os.environ.get("TRACEJIT_CACHE_DIR")
        >>> os.environ["TRACEJIT_CACHE_DIR"] = tempfile.mkdtemp()
        >>> src = 'extern "C" __global__ void k(float* o) { o[0] = 1.0f; }'
        >>> not available() or compile_ptx_cached(src) == compile_ptx_cached(src)
        True
        >>> _ = os.environ.pop("TRACEJIT_CACHE_DIR") if saved is None else os.environ.update(TRACEJIT_CACHE_DIR=saved)
    """
    from tracejit.codegen import cache

    options = tuple(options)
    key = ptx_cache_key(source, name, arch, options)
    hit = cache.get(key)
    if hit is not None:
        return hit.decode()
    ptx = compile_ptx(source, name, arch, options)
    cache.put(key, ptx.encode())
    return ptx
