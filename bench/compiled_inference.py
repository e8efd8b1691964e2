"""Compiled inference: tracejit's native plan against numpy, PyTorch (eager, TorchScript, torch.compile),
onnxruntime and jax.jit on two elementwise chains, an MLP and a small CNN; and tracejit's compile time.

How it measures: every candidate runs in this one process with the same float32 weights (drawn with numpy
in PyTorch's layout and init range, then loaded into each library), and its output is checked against a
float64 numpy forward before it is timed. Timing is interleaved (`bench.harness.interleaved_medians`):
loops calibrated to ~0.1 s, every candidate once per round, 5 rounds, medians, with a 0.25 s pause before
each loop so the worker threads of the library timed just before go idle (on a 2-core machine they would
otherwise take the cores from the next one). "tracejit" is the deployed path, `plan.run` on numpy arrays;
"tj callable" is the tensor-level call of what `tracejit.compile` returns. Peers that are not installed
print "-"; a peer that fails to build or gives a wrong result is left out with the reason printed.

Compile time is the MLP's, from the `tracejit.compile` call to its first result: in this process with a
fresh TRACEJIT_CACHE_DIR and again with the same one, and in new processes with a fresh and with a warm
cache dir (the last is the honest "from the cache" figure: no in-process state is reused).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

import tracejit as tj

from .harness import cpu_snapshot, fmt_time, interleaved_medians, others_note, print_grid

PEERS = ("numpy", "torch", "torch.jit", "torch.compile", "onnxruntime", "jax.jit")
CANDIDATES = ("tracejit", "tj callable", *PEERS)
THREADS = os.cpu_count() or 1
ELEMENTS = 1 << 22
GELU_C = math.sqrt(2 / math.pi)
REPO = Path(__file__).resolve().parents[1]

MLP_SHAPES = {"0.weight": (512, 784), "0.bias": (512,), "2.weight": (512, 512), "2.bias": (512,),
              "4.weight": (10, 512), "4.bias": (10,)}
CNN_SHAPES = {"0.weight": (32, 1, 3, 3), "0.bias": (32,), "2.weight": (64, 32, 3, 3), "2.bias": (64,),
              "6.weight": (128, 9216), "6.bias": (128,), "8.weight": (10, 128), "8.bias": (10,)}
MODELS = {"mlp": MLP_SHAPES, "cnn": CNN_SHAPES}


class Target(NamedTuple):
    """tracejit's goal for a case: its time over `peer`'s at most `limit` ("best": the fastest peer), or,
    when `peer` is None, its time at most `limit` seconds."""

    text: str
    peer: str | None
    limit: float

    def check(self, times):
        """(what was measured, met?) with met None when the case could not be judged."""
        if "tracejit" not in times:
            return "tracejit did not run", None
        if self.peer is None:
            return f"tracejit {fmt_time(times['tracejit']).strip()}", times["tracejit"] <= self.limit
        peers = [p for p in PEERS if p in times]
        peer = min(peers, key=times.get, default=None) if self.peer == "best" else self.peer
        if peer not in times:
            return f"{self.peer} did not run", None
        ratio = times["tracejit"] / times[peer]
        return f"tracejit/{peer} {ratio:.2f}x", ratio <= self.limit


class Case(NamedTuple):
    label: str
    kind: str  # "chain_a", "chain_b", "mlp" or "cnn"
    shape: tuple
    target: Target


AT_OR_UNDER_ORT = Target("at or under onnxruntime", "onnxruntime", 1.0)
SUITES = (  # (short name, title, cases)
    ("elementwise", "elementwise, 4M float32; A: relu(1.7x+0.3)*x+x, B: gelu_tanh(1.7x+0.3)*sigmoid(x)+tanh(x)", (
        Case("chain A", "chain_a", (ELEMENTS,), Target("at least as fast as jax.jit", "jax.jit", 1.0)),
        Case("chain B", "chain_b", (ELEMENTS,), Target("under 3 ms", None, 3e-3)),
    )),
    ("MLP", "MLP 784-512-512-10 inference (Linear-ReLU-Linear-ReLU-Linear), float32", (
        Case("batch 1", "mlp", (1, 784), AT_OR_UNDER_ORT),
        Case("batch 64", "mlp", (64, 784), AT_OR_UNDER_ORT),
        Case("batch 1024", "mlp", (1024, 784), Target("within 5% of the best peer", "best", 1.05)),
    )),
    ("CNN", "CNN conv3x3(32)-conv3x3(64)-maxpool2-fc128-fc10 inference on 1x28x28, float32", (
        Case("batch 1", "cnn", (1, 1, 28, 28), AT_OR_UNDER_ORT),
        Case("batch 64", "cnn", (64, 1, 28, 28), Target("within 10% of onnxruntime", "onnxruntime", 1.10)),
    )),
)
COMPILE_COLD = Target("under 1 s", None, 1.0)
COMPILE_WARM = Target("under 100 ms", None, 0.1)
IN_PROCESS_COLD = "in this process, first compile, fresh cache dir"
IN_PROCESS_WARM = "in this process, compiled again, same cache dir"
NEW_PROCESS_COLD = "new process, fresh cache dir (cold)"
NEW_PROCESS_WARM = "new process, warm cache dir"
NEW_PROCESS_IMPORT = "new process, loading tracejit's front end"
PEER_SETUP_NOTES = {"torch": " eager", "torch.jit": " trace + freeze", "torch.compile": " (its disk cache may be warm)",
                    "onnxruntime": " graph + session", "jax.jit": " trace + XLA compile"}


# ---- the workloads, once per library


def init_weights(kind, rng):
    """A state dict for `kind` ("mlp" or "cnn"): PyTorch's names, layout and default init range, float32."""
    shapes = MODELS[kind]
    weights = {}
    for name, shape in shapes.items():
        bound = 1 / math.sqrt(math.prod(shapes[name.replace("bias", "weight")][1:]))
        weights[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return weights


def nn_model(nn, kind):
    """The model built from `nn` (tracejit.nn or torch.nn: same API, same state-dict names)."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10))


def loaded_model(lib, kind, weights):
    """`nn_model` of tracejit or torch (`lib`) in eval mode, holding copies of `weights`."""
    model = nn_model(lib.nn, kind).eval()
    model.load_state_dict({k: lib.from_numpy(v.copy()) for k, v in weights.items()})
    return model


def chain_a(x, F):
    return F.relu(1.7 * x + 0.3) * x + x


def chain_b(x, F):
    return F.gelu(1.7 * x + 0.3, approximate="tanh") * x.sigmoid() + x.tanh()


CHAINS = {"chain_a": chain_a, "chain_b": chain_b}


def tensor_fn(lib, kind, weights):
    """The workload as a tracejit or torch callable: a module in eval mode, or a function of x."""
    if kind in MODELS:
        return loaded_model(lib, kind, weights)
    chain, F = CHAINS[kind], lib.nn.functional
    return lambda x: chain(x, F)  # a plain function: torch.jit.trace cannot trace a functools.partial


def numpy_forward(kind, w):
    """The workload written by hand with numpy; float64 weights and inputs give the reference."""
    if kind == "chain_a":
        return lambda x: np.maximum(1.7 * x + 0.3, 0) * x + x
    if kind == "chain_b":
        def chain(x):
            v = 1.7 * x + 0.3
            gelu = 0.5 * v * (1 + np.tanh(GELU_C * (v + 0.044715 * v * v * v)))
            return gelu / (1 + np.exp(-x)) + np.tanh(x)
        return chain
    if kind == "mlp":
        layers = [(w[f"{i}.weight"].T.copy(), w[f"{i}.bias"]) for i in (0, 2, 4)]

        def mlp(x):
            for k, (wt, b) in enumerate(layers):
                x = x @ wt
                x += b
                if k < len(layers) - 1:
                    np.maximum(x, 0, out=x)
            return x
        return mlp
    # Channels-last im2col: each 3x3xC patch is a row, so a convolution is one matrix product; fc1's
    # columns are permuted once from PyTorch's (C, H, W) flatten order to (H, W, C).
    k1, k2 = (w[f"{i}.weight"].reshape(w[f"{i}.weight"].shape[0], -1).T.copy() for i in (0, 2))
    fc1 = w["6.weight"].reshape(128, 64, 12, 12).transpose(0, 2, 3, 1).reshape(128, -1).T.copy()
    fc2 = w["8.weight"].T.copy()

    def conv_relu(h, k, b):  # h: (N, H, W, C) -> (N, H-2, W-2, O)
        n, hh, ww, c = h.shape
        cols = np.lib.stride_tricks.sliding_window_view(h, (3, 3), axis=(1, 2))  # (N, H-2, W-2, C, 3, 3)
        y = cols.reshape(-1, c * 9) @ k
        y += b
        np.maximum(y, 0, out=y)
        return y.reshape(n, hh - 2, ww - 2, -1)

    def cnn(x):
        n = x.shape[0]
        h = conv_relu(x.transpose(0, 2, 3, 1), k1, w["0.bias"])
        h = conv_relu(h, k2, w["2.bias"])
        h = h.reshape(n, 12, 2, 12, 2, 64).max(axis=(2, 4)).reshape(n, -1)
        h = h @ fc1
        h += w["6.bias"]
        np.maximum(h, 0, out=h)
        return h @ fc2 + w["8.bias"]
    return cnn


def jax_forward(jax, kind):
    """The workload as a function of (params, x) with jax.numpy, for jax.jit; `jax_params` gives the params."""
    jnp, lax = jax.numpy, jax.lax
    if kind == "chain_a":
        return lambda p, x: jax.nn.relu(1.7 * x + 0.3) * x + x
    if kind == "chain_b":
        return lambda p, x: jax.nn.gelu(1.7 * x + 0.3, approximate=True) * jax.nn.sigmoid(x) + jnp.tanh(x)

    def linear(p, i, h):
        return h @ p[f"{i}.weight"] + p[f"{i}.bias"]

    def conv(p, i, h):
        y = lax.conv_general_dilated(h, p[f"{i}.weight"], (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + p[f"{i}.bias"][:, None, None]

    if kind == "mlp":
        return lambda p, x: linear(p, 4, jax.nn.relu(linear(p, 2, jax.nn.relu(linear(p, 0, x)))))

    def cnn(p, x):
        h = jax.nn.relu(conv(p, 2, jax.nn.relu(conv(p, 0, x))))
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return linear(p, 8, jax.nn.relu(linear(p, 6, h.reshape(h.shape[0], -1))))
    return cnn


def jax_params(w):
    """`w` with Linear weights as (in, out), the layout flax uses: passed as (out, in), the weights of
    arguments would be transposed on every call (3x the time at batch 1 here)."""
    return {k: v.T.copy() if v.ndim == 2 else v for k, v in w.items()}


def onnx_model(onnx, kind, w, shape):
    """The workload as an ONNX model built node by node: input "x" (float32, `shape`), weights as initializers."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes = []
    inits = [numpy_helper.from_array(v, name) for name, v in w.items()]

    def node(op, *inputs, **attrs):
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def const(value):
        name = f"c{len(inits)}"
        inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def linear(i, h):
        return node("Gemm", h, f"{i}.weight", f"{i}.bias", transB=1)

    def conv(i, h):
        return node("Conv", h, f"{i}.weight", f"{i}.bias", kernel_shape=[3, 3])

    x = "x"
    if kind == "chain_a":
        y = node("Add", node("Mul", node("Relu", node("Add", node("Mul", x, const(1.7)), const(0.3))), x), x)
    elif kind == "chain_b":
        v = node("Add", node("Mul", x, const(1.7)), const(0.3))
        inner = node("Mul", node("Add", v, node("Mul", node("Mul", node("Mul", v, v), v), const(0.044715))),
                     const(GELU_C))
        gelu = node("Mul", node("Mul", v, const(0.5)), node("Add", node("Tanh", inner), const(1.0)))
        y = node("Add", node("Mul", gelu, node("Sigmoid", x)), node("Tanh", x))
    elif kind == "mlp":
        y = linear(4, node("Relu", linear(2, node("Relu", linear(0, x)))))
    else:
        h = node("Relu", conv(2, node("Relu", conv(0, x))))
        h = node("Flatten", node("MaxPool", h, kernel_shape=[2, 2], strides=[2, 2]), axis=1)
        y = linear(8, node("Relu", linear(6, h)))
    f32, y_shape = onnx.TensorProto.FLOAT, list(shape) if kind in CHAINS else [shape[0], 10]
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", f32, list(shape))],
                              [helper.make_tensor_value_info(y, f32, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def onnx_session(ort, model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


# ---- candidates: name -> maker; a maker builds the candidate and returns (call, fetch), where call() runs
# one inference and fetch(result) gives it as a numpy array


def _as_is(out):
    return out


def _tensor_numpy(out):
    return out.numpy()


def candidate_makers(kind, w, x, libs):
    makers = {}

    @functools.cache
    def tj_compiled():
        return tj.compile(tensor_fn(tj, kind, w), tj.from_numpy(x))

    def tj_plan():
        run = tj_compiled()._plan.run
        return (lambda: run(x)), (lambda out: out[0])

    def tj_callable():
        fast, xt = tj_compiled(), tj.from_numpy(x)
        return (lambda: fast(xt)), _tensor_numpy

    makers["tracejit"], makers["tj callable"] = tj_plan, tj_callable
    f = numpy_forward(kind, w)
    makers["numpy"] = lambda: ((lambda: f(x)), _as_is)
    torch = libs.get("torch")
    if torch is not None:
        xt = torch.from_numpy(x)
        eager = functools.cache(lambda: tensor_fn(torch, kind, w))

        def torch_jit():
            traced = torch.jit.trace(eager(), xt)
            return torch.jit.freeze(traced) if kind in MODELS else traced

        builds = {"torch": eager, "torch.jit": torch_jit,
                  "torch.compile": lambda: torch.compile(eager(), dynamic=False)}
        for name, build in builds.items():
            makers[name] = lambda build=build: (functools.partial(build(), xt), _tensor_numpy)
    ort, onnx = libs.get("onnxruntime"), libs.get("onnx")
    if ort is not None and onnx is not None:
        def ort_session():
            sess, feeds = onnx_session(ort, onnx_model(onnx, kind, w, x.shape)), {"x": x}
            return (lambda: sess.run(None, feeds)[0]), _as_is
        makers["onnxruntime"] = ort_session
    jax = libs.get("jax")
    if jax is not None:
        def jax_jit():
            fn, params, xj = jax.jit(jax_forward(jax, kind)), jax.device_put(jax_params(w)), jax.device_put(x)
            return (lambda: fn(params, xj).block_until_ready()), np.asarray
        makers["jax.jit"] = jax_jit
    return makers


def one_line(e):
    msg = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def mismatch(got, ref):
    """Why `got` is not `ref` (rtol 1e-3, atol 1e-4 of ref's largest magnitude), or None."""
    got = np.asarray(got)
    if got.shape != ref.shape:
        return f"wrong output shape {got.shape}, expected {ref.shape}"
    if not np.allclose(got, ref, rtol=1e-3, atol=1e-4 * float(np.abs(ref).max())):
        return f"wrong result (max abs error {float(np.abs(got - ref).max()):.3g})"
    return None


def measure_case(case, weights, x, libs, settings, skip):
    """(median seconds per candidate, seconds to build + first call, reasons for those left out)."""
    ref = numpy_forward(case.kind, {k: v.astype(np.float64) for k, v in weights.items()})(x.astype(np.float64))
    calls, setup, notes = {}, {}, {}
    for name, make in candidate_makers(case.kind, weights, x, libs).items():
        if name in skip:
            continue
        time.sleep(settings["pause"])
        t0 = time.perf_counter()
        try:
            call, fetch = make()
            problem = mismatch(fetch(call()), ref)
            setup[name] = time.perf_counter() - t0
        except Exception as e:
            problem = one_line(e)
        if problem:
            notes[name] = problem
        else:
            calls[name] = call
    times = interleaved_medians(calls, rounds=settings["rounds"], min_time=settings["min_time"],
                                pause=settings["pause"])
    return times, setup, notes


# ---- compile time


@contextlib.contextmanager
def cache_dir(path):
    before = os.environ.get("TRACEJIT_CACHE_DIR")
    os.environ["TRACEJIT_CACHE_DIR"] = path
    try:
        yield
    finally:
        if before is None:
            del os.environ["TRACEJIT_CACHE_DIR"]
        else:
            os.environ["TRACEJIT_CACHE_DIR"] = before


def compile_seconds(weights, x):
    """Seconds from the `tracejit.compile` call on the MLP to its first result."""
    model, xt = loaded_model(tj, "mlp", weights), tj.from_numpy(x)
    t0 = time.perf_counter()
    tj.compile(model, xt)._plan.run(x)
    return time.perf_counter() - t0


def compile_child(folder):
    """In a new process: import time of tracejit and `compile_seconds` for the MLP saved in `folder`."""
    t0 = time.perf_counter()
    tj.nn.Linear  # noqa: B018 - loads the front end, as building any model does
    import_s = time.perf_counter() - t0
    with np.load(os.path.join(folder, "weights.npz")) as f:
        weights = dict(f)
    x = np.load(os.path.join(folder, "x.npy"))
    print(json.dumps({"import_s": import_s, "compile_s": compile_seconds(weights, x)}))


def _run_child(folder, cache):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=cache)
    p = subprocess.run([sys.executable, "-m", "bench.compiled_inference", "--compile-child", folder], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
    if p.returncode:
        lines = p.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def compile_times(weights, x, repeats):
    """Medians: {row label: seconds}, and {row label: reason} for rows that failed."""
    samples, notes = {}, {}

    def record(label, fn, *args):
        try:
            value = fn(*args)
        except Exception as e:
            notes[label] = one_line(e)
            return None
        samples.setdefault(label, []).append(value)
        return value

    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "weights.npz"), **weights)
        np.save(os.path.join(tmp, "x.npy"), x)
        # Only the process's first compile of the model is cold: later ones may reuse in-process state.
        with cache_dir(os.path.join(tmp, "in-process")):
            record(IN_PROCESS_COLD, compile_seconds, weights, x)
            for _ in range(repeats):
                record(IN_PROCESS_WARM, compile_seconds, weights, x)
        for r in range(repeats):
            cache = os.path.join(tmp, f"new-process-{r}")
            cold = record(NEW_PROCESS_COLD, _run_child, tmp, cache)
            record(NEW_PROCESS_WARM, _run_child, tmp, cache)
            if cold is not None:
                samples.setdefault(NEW_PROCESS_IMPORT, []).append(cold["import_s"])
    # A child reports {"compile_s", "import_s"}; its rows show compile_s.
    samples = {label: [v["compile_s"] if isinstance(v, dict) else v for v in s] for label, s in samples.items()}
    return {label: statistics.median(s) for label, s in samples.items()}, notes


def print_compile_times(times, notes, repeats, peer_setup):
    print(f"\n== tracejit compile time: MLP 784-512-512-10 at batch 64, from the tracejit.compile call to the first "
          f"result (median of {repeats}; measured before the timings above)")
    targets = {NEW_PROCESS_COLD: COMPILE_COLD, NEW_PROCESS_WARM: COMPILE_WARM}
    results = []
    for label in (IN_PROCESS_COLD, IN_PROCESS_WARM, NEW_PROCESS_COLD, NEW_PROCESS_WARM, NEW_PROCESS_IMPORT):
        shown = fmt_time(times[label]) if label in times else "-"
        line = f"  {label:48s}{shown:>12s}"
        if label in notes:
            line += f"   failed: {notes[label]}"
        target = targets.get(label)
        if target is not None:
            measured, met = target.check({"tracejit": times[label]} if label in times else {})
            results.append((f"compile, {label}", target, measured, met))
            line += f"   target {target.text}: {_verdict(met)}"
        print(line)
    if peer_setup:
        print("  peers, build + first call at batch 64 (in this process, from the MLP timing above):")
        for name, seconds in peer_setup.items():
            print(f"    {name + PEER_SETUP_NOTES.get(name, ''):46s}{fmt_time(seconds):>12s}")
    return results


# ---- driver


def _verdict(met):
    return {True: "met", False: "MISSED", None: "not judged"}[met]


def available_libs(torch):
    libs, missing = {"torch": torch}, [] if torch is not None else ["torch"]
    for name in ("onnxruntime", "onnx", "jax"):
        try:
            libs[name] = __import__(name)
        except ImportError:
            missing.append(name)
    return libs, missing


def run(torch=None, quick=False, skip=()):
    settings = {"rounds": 3, "min_time": 0.05, "pause": 0.1} if quick else {"rounds": 5, "min_time": 0.1,
                                                                               "pause": 0.25}
    repeats = 1 if quick else 3
    unknown = sorted(set(skip) - set(CANDIDATES))
    if unknown:
        raise ValueError(f"--skip {', '.join(unknown)}: not a candidate; candidates are {', '.join(CANDIDATES)}")
    libs, missing = available_libs(torch)
    print(f"\ncompiled inference: {settings['rounds']} interleaved rounds, medians; tj/x = tracejit (plan.run) "
          f"time / candidate time, <1 = tracejit faster; torch and onnxruntime use {THREADS} threads")
    if missing:
        print(f"  not available: {', '.join(missing)} (their rows print -)")
    rng = np.random.default_rng(0)
    weights = {kind: init_weights(kind, rng) for kind in MODELS}
    compile_x, since = rng.standard_normal((64, 784)).astype(np.float32), cpu_snapshot()
    compile_s, compile_notes = compile_times(weights["mlp"], compile_x, repeats)
    compile_load = others_note(since)
    results, peer_setup = [], {}
    with torch.no_grad() if torch is not None else contextlib.nullcontext():
        for short, title, cases in SUITES:
            measured, since = [], cpu_snapshot()
            for case in cases:
                x = rng.standard_normal(case.shape).astype(np.float32)
                times, setup, notes = measure_case(case, weights.get(case.kind, {}), x, libs, settings, skip)
                measured.append((case, times, notes))
                if case.kind == "mlp" and case.shape[0] == 64:
                    peer_setup = {name: s for name, s in setup.items() if name in PEERS and name != "numpy"}
            print_grid(title, [(case.label, times) for case, times, _ in measured], CANDIDATES)
            note = others_note(since)
            if note:
                print(f"  {note}")
            for case, _, notes in measured:
                for name, why in notes.items():
                    print(f"  {case.label}: {name} left out: {why}")
            for case, times, _ in measured:
                what, met = case.target.check(times)
                results.append((f"{short} {case.label}", case.target, what, met))
                print(f"  target {case.label}: {case.target.text}: {what}: {_verdict(met)}")
    results += print_compile_times(compile_s, compile_notes, repeats, peer_setup)
    if compile_load:
        print(f"  while compiling, {compile_load}")
    print("\n== targets")
    for label, target, what, met in results:
        print(f"  {_verdict(met):10s} {label}: {target.text} ({what})")
    return results


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--compile-child"]:
        compile_child(argv[1])
    else:
        from .run import main as bench_main

        bench_main(["compiled_inference", *argv])


if __name__ == "__main__":
    main()
