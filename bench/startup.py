"""Startup: the whole-process cost of loading a saved MLP 784-512-512-10 and running one inference (batch 1),
per runtime: TorchScript (`torch.jit.load`), an onnxruntime session and `tracejit-run` on a `.tj` file (with
a fresh and with a warm TRACEJIT_CACHE_DIR), next to bare `python` and `python -c "import numpy"`.

How it measures: the model files are written first, with the same weights in each. Every command then runs
as a child process, once untimed (so its files are in the page cache), then 5 times, the commands taking
turns. Wall time is taken around each child; peak memory is that child's own peak RSS, from GNU time
(`/usr/bin/time -f %M`; "-" without it). Medians are printed. The cold tracejit-run gets a new, empty
cache dir every run; the warm one reuses a cache dir its untimed run filled. The `.tj` file's size is
compared with the raw float32 weights.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

import tracejit as tj

from .compiled_inference import init_weights, loaded_model, numpy_forward, one_line, onnx_model
from .harness import cpu_snapshot, others_note

PY = sys.executable
TORCH_CODE = ("import sys, numpy, torch; m = torch.jit.load(sys.argv[1]); "
              "m(torch.from_numpy(numpy.load(sys.argv[2])))")
ORT_CODE = ("import sys, numpy, onnxruntime as ort; "
            "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']); "
            "s.run(None, {'x': numpy.load(sys.argv[2])})")
GNU_TIME = "/usr/bin/time"
WARM_WALL, WARM_RSS_MIB, COLD_WALL, SIZE_RATIO = 0.2, 80.0, 1.0, 1.05


class NamedInput(tj.nn.Module):
    """Calls `model` with its input named `x`, the name `tracejit-run --input x=...` gives."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def tracejit_run_path():
    """The `tracejit-run` console script next to this interpreter (a pyenv-style shim on PATH would add its
    own start-up), else the one on PATH, else None."""
    here = Path(sysconfig.get_path("scripts")) / "tracejit-run"
    return str(here) if here.exists() else shutil.which("tracejit-run")


def run_child(argv, env=None):
    """(wall seconds, peak RSS in MiB or None) of running `argv` to completion; raises with its last stderr line.

    The peak RSS comes from GNU time (`/usr/bin/time -f %M`), which forks the command from its own small
    process: `ru_maxrss` read here with `os.wait4` or RUSAGE_CHILDREN would report at least this process's
    own high-water mark, because Linux counts the spawning process's memory up to the child's exec."""
    gnu_time = os.path.exists(GNU_TIME)
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        prefix = [GNU_TIME, "-f", "%M", "-o", rss.name] if gnu_time else []
        t0 = time.perf_counter()
        p = subprocess.run(prefix + argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        wall = time.perf_counter() - t0
        if p.returncode:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"exit status {p.returncode}")
        return wall, int(rss.read().split()[-1]) / 1024 if gnu_time else None  # %M is in KiB


def write_models(folder, weights, x, torch):
    """Write x.npy and the model files; returns ({runtime: path}, {runtime: why it is not available})."""
    paths, missing = {}, {}
    np.save(os.path.join(folder, "x.npy"), x)
    try:
        path = os.path.join(folder, "mlp.tj")
        tj.script(NamedInput(loaded_model(tj, "mlp", weights)).eval(), tj.from_numpy(x)).save(path)
        paths["tracejit"] = path
    except Exception as e:
        missing["tracejit"] = f"not available yet: tracejit.script(...).save: {one_line(e)}"
    if torch is None:
        missing["torch"] = "torch is not available (not installed, or --no-torch)"
    else:
        path = os.path.join(folder, "mlp.pt")
        try:
            with torch.no_grad():
                model = loaded_model(torch, "mlp", weights)
                torch.jit.save(torch.jit.freeze(torch.jit.trace(model, torch.from_numpy(x))), path)
            paths["torch"] = path
        except Exception as e:
            missing["torch"] = f"saving the TorchScript model failed: {one_line(e)}"
    try:
        import onnx
        import onnxruntime  # noqa: F401 - the child process needs it
    except ImportError as e:
        missing["onnxruntime"] = f"{e.name} is not installed"
    else:
        path = os.path.join(folder, "mlp.onnx")
        onnx.save(onnx_model(onnx, "mlp", weights, x.shape), path)
        paths["onnxruntime"] = path
    return paths, missing


def commands(folder, paths, missing):
    """[(label, make argv and env for one run, or the reason it cannot run)]."""
    x_npy, y_npy = os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")
    rows = [("python, no imports", lambda: ([PY, "-c", "pass"], None)),
            ('python -c "import numpy"', lambda: ([PY, "-c", "import numpy"], None))]
    rows.append(("torch.jit.load + 1 inference", missing.get("torch") or
                 (lambda: ([PY, "-c", TORCH_CODE, paths["torch"], x_npy], None))))
    rows.append(("onnxruntime session + 1 inference", missing.get("onnxruntime") or
                 (lambda: ([PY, "-c", ORT_CODE, paths["onnxruntime"], x_npy], None))))
    exe = tracejit_run_path()
    why = missing.get("tracejit") or (None if exe else "not available yet: no tracejit-run console script")
    warm_cache = tempfile.mkdtemp(dir=folder)

    def tracejit_run(cache):
        argv = [exe, paths.get("tracejit", ""), "--input", f"x={x_npy}", "--output", y_npy]
        return argv, dict(os.environ, TRACEJIT_CACHE_DIR=cache)

    rows.append(("tracejit-run, fresh cache dir (cold)", why or (lambda: tracejit_run(tempfile.mkdtemp(dir=folder)))))
    rows.append(("tracejit-run, warm cache dir", why or (lambda: tracejit_run(warm_cache))))
    return rows


def run(torch=None, quick=False):
    runs = 3 if quick else 5
    rng = np.random.default_rng(0)
    weights = init_weights("mlp", rng)
    x = rng.standard_normal((1, 784)).astype(np.float32)
    raw_bytes = sum(v.size * 4 for v in weights.values())
    with tempfile.TemporaryDirectory() as folder:
        paths, missing = write_models(folder, weights, x, torch)
        rows = commands(folder, paths, missing)
        samples, since = {label: [] for label, _ in rows}, cpu_snapshot()
        notes = {label: make for label, make in rows if isinstance(make, str)}
        for r in range(runs + 1):  # run 0 is the untimed warm-up
            for label, make in rows:
                if label in notes:
                    continue
                try:
                    measured = run_child(*make())
                except Exception as e:
                    notes[label] = f"failed: {one_line(e)}"
                    continue
                if r:
                    samples[label].append(measured)
        load = others_note(since)
        y_path = os.path.join(folder, "y.npy")
        if os.path.exists(y_path):
            got, want = np.load(y_path), numpy_forward("mlp", weights)(x)
            ok = got.shape == want.shape and np.allclose(got, want, rtol=1e-3, atol=1e-5)
            notes["tracejit-run output"] = "matches the numpy forward" if ok else "differs from the numpy forward"
        sizes = {name: os.path.getsize(p) for name, p in paths.items()}
    print(f"\n== startup: a new process loads the MLP 784-512-512-10 and runs one inference (batch 1); "
          f"median of {runs} runs")
    print(f"  {'command':40s}{'wall':>12s}{'peak RSS':>12s}   target")
    targets = {"tracejit-run, fresh cache dir (cold)": (f"wall at most {COLD_WALL * 1e3:.0f} ms", COLD_WALL, None),
               "tracejit-run, warm cache dir": (f"wall at most {WARM_WALL * 1e3:.0f} ms and peak RSS at most "
                                                f"{WARM_RSS_MIB:.0f} MiB", WARM_WALL, WARM_RSS_MIB)}
    for label, _ in rows:
        if label in notes:
            print(f"  {label:40s}{'-':>12s}{'-':>12s}   {notes[label]}")
            continue
        wall = statistics.median(s[0] for s in samples[label])
        rss = None if samples[label][0][1] is None else statistics.median(s[1] for s in samples[label])
        line = f"  {label:40s}{wall * 1e3:9.1f} ms" + (f"{rss:8.1f} MiB" if rss is not None else f"{'-':>12s}")
        if label in targets:
            text, max_wall, max_rss = targets[label]
            met = wall <= max_wall and (max_rss is None or (rss is not None and rss <= max_rss))
            line += f"   {text}: {'met' if met else 'MISSED'}"
        print(line)
    if "tracejit-run output" in notes:
        print(f"  tracejit-run output: {notes['tracejit-run output']}")
    print(f"  raw float32 weights: {raw_bytes:,} bytes; model files: "
          + ", ".join(f"{Path(paths[n]).name} {sizes[n]:,} bytes ({sizes[n] / raw_bytes:.3f}x)" for n in sizes))
    if "tracejit" in sizes:
        ratio = sizes["tracejit"] / raw_bytes
        print(f"  target: mlp.tj at most {SIZE_RATIO:.2f}x the raw weights: {ratio:.3f}x: "
              f"{'met' if ratio <= SIZE_RATIO else 'MISSED'}")
    else:
        print(f"  mlp.tj: {missing['tracejit']}")
    if load:
        print(f"  {load}")
