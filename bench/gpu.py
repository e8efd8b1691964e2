"""GPU: what tracejit's CUDA runtime (`runtime.cuda_plan.CudaPlan`) reaches, beside cupy and torch on the GPU.

(a) device-to-device copy of 64M float32 (bytes read + written per second): the bandwidth the memory-bound
    cases below are measured against;
(b) the 8-op elementwise chain of `bench.fused_elementwise` on 64M float32: CudaPlan (one fused kernel)
    against the same chain as separate cupy ops (and torch eager on the GPU), as GB/s of the chain's
    least traffic (read x and y, write the result) and % of the copy bandwidth;
(c) row-wise softmax and layer norm on 8192x4096 float32 through CudaPlan, with the path that ran (one
    row kernel, or op by op through cupy), as % of the copy bandwidth (read once, write once);
(d) the MLP 784-512-512-10 and the CNN of `bench.compiled_inference` at batch 1 and 1024: latency of one
    inference through CudaPlan on inputs already on the GPU, beside torch on the GPU when its CUDA build
    is installed, and the GPU launches per inference (`CudaPlan.launches`).

How it measures: every result is checked against a reference first. Bandwidth cases are timed with CUDA
events around loops calibrated to ~`min_time`, median of the rounds. Latency cases use
`bench.harness.interleaved_medians`, each call followed by a device synchronize, so a number is the time
from the call to its result on the GPU. Without a GPU the suite prints one line and returns.
"""

from __future__ import annotations

import contextlib
import statistics

import numpy as np

import tracejit as tj
from tracejit import devices, ir

from .compiled_inference import init_weights, loaded_model, mismatch, numpy_forward, one_line
from .fused_elementwise import chain
from .harness import fmt_time, interleaved_medians, print_table

ELEMENTS = 1 << 26  # 64M float32: 256 MB per array
ROWS, COLS = 8192, 4096
BATCHES = (1, 1024)
EXAMPLE_SHAPES = {"mlp": (2, 784), "cnn": (2, 1, 28, 28)}
TITLES = {"mlp": "MLP 784-512-512-10", "cnn": "CNN conv32-conv64-pool-fc128-fc10"}


def unavailable():
    """Why the suite cannot run here (a message), or None."""
    try:
        devices.cupy_module()
    except RuntimeError as e:
        return str(e)
    from tracejit.codegen import nvrtc

    if not nvrtc.available():
        return f"NVRTC was not found ({nvrtc.INSTALL_HINT})"
    return None


def event_median(fn, cp, *, rounds, min_time):
    """Median seconds per call of `fn()`: loops calibrated to last about `min_time`, each timed with CUDA events."""
    fn()
    cp.cuda.Device().synchronize()

    def timed(n):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return cp.cuda.get_elapsed_time(start, end) / 1e3

    n = 1
    while True:
        dt = timed(n)
        if dt >= min_time or n >= 1 << 16:
            break
        n = max(n * 2, min(int(n * min_time / max(dt, 1e-9) * 1.1) + 1, n * 64))
    return statistics.median(timed(n) / n for _ in range(rounds))


def frozen_graph(fn, example, dims):
    return tj.freeze(tj.trace(fn, example, dynamic_dims=dims)).graph


def path_of(plan):
    """How the last run's groups ran: 'row kernel', 'elementwise kernel' or 'op by op (cupy)'."""
    kinds = []
    for s in plan.steps or ():
        if s.kind == "kernel":
            kinds.append("row kernel" if getattr(s.kernel, "launch", "") == "rows" else "elementwise kernel")
        elif s.kind in ("ops", "op"):
            kinds.append("op by op (cupy)")
    return ", ".join(dict.fromkeys(kinds)) or "interpreter"


def bandwidth_line(label, seconds, nbytes, copy_gbps, extra=""):
    gbps = nbytes / seconds / 1e9
    print(f"  {label:44s}{fmt_time(seconds):>12s} {gbps:9.1f} GB/s {100 * gbps / copy_gbps:6.1f}% of copy{extra}")


def check(label, got, want, rtol=1e-4, atol=1e-5):
    """Whether `got` matches `want`; prints why not."""
    try:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    except AssertionError as e:
        print(f"  {label}: WRONG RESULT, left out ({one_line(e)})")
        return False
    return True


def copy_bandwidth(cp, settings):
    """(a) GB/s of the better of a cupy copy kernel and cudaMemcpy, device to device, 64M float32."""
    a = cp.arange(ELEMENTS, dtype=cp.float32)
    b = cp.empty_like(a)
    runs = {"cupy.copyto (a copy kernel)": lambda: cp.copyto(b, a),
            "cudaMemcpy device to device": lambda: b.data.copy_from_device(a.data, a.nbytes)}
    print(f"\n== (a) copy bandwidth, {ELEMENTS >> 20}M float32 ({a.nbytes >> 20} MiB read + written)")
    best = 0.0
    for label, fn in runs.items():
        t = event_median(fn, cp, **settings)
        gbps = 2 * a.nbytes / t / 1e9
        best = max(best, gbps)
        print(f"  {label:44s}{fmt_time(t):>12s} {gbps:9.1f} GB/s")
    assert bool((b == a).all())
    return best


def cupy_chain(x, y, cp):
    return cp.sqrt(cp.abs(cp.maximum(x * 2 + y, 0) - y / 3)) * 0.5 + x


def fused_chain(cp, torch, settings, copy_gbps):
    """(b) the 8-op chain: one CudaPlan kernel against 8 cupy ops (and torch eager)."""
    from tracejit.runtime.cuda_plan import CudaPlan

    small = (tj.randn(1024), tj.randn(1024))
    graph = frozen_graph(lambda a, b: chain(a, b, tj), small, {"a": {0: "N"}, "b": {0: "N"}})
    plan = CudaPlan(graph)
    rng = np.random.default_rng(0)
    x, y = (cp.asarray(rng.standard_normal(ELEMENTS, dtype=np.float32)) for _ in range(2))
    want = cp.asnumpy(cupy_chain(x, y, cp))
    print(f"\n== (b) fused elementwise chain sqrt(|relu(2x+y) - y/3|)*0.5 + x, {ELEMENTS >> 20}M float32 "
          f"(GB/s of 3 x {x.nbytes >> 20} MiB: x and y read, the result written)")
    nbytes = 3 * x.nbytes
    if check("tracejit", cp.asnumpy(plan.run(x, y)[0]), want, rtol=1e-5, atol=1e-6):
        t = event_median(lambda: plan.run(x, y), cp, **settings)
        bandwidth_line("tracejit (CudaPlan)", t, nbytes, copy_gbps,
                       f", {plan.launches} launch{'es' if plan.launches != 1 else ''}, {path_of(plan)}")
    t = event_median(lambda: cupy_chain(x, y, cp), cp, **settings)
    bandwidth_line("cupy, 8 separate ops", t, nbytes, copy_gbps)
    if torch is not None:
        xt, yt = torch.as_tensor(x, device="cuda"), torch.as_tensor(y, device="cuda")
        if check("torch", chain(xt, yt, torch).cpu().numpy(), want, rtol=1e-5, atol=1e-6):
            t = event_median(lambda: chain(xt, yt, torch), cp, **settings)
            bandwidth_line("torch eager", t, nbytes, copy_gbps)


def row_wise(cp, torch, settings, copy_gbps):
    """(c) softmax and layer norm over the last dim of 8192x4096 through CudaPlan (and torch)."""
    from tracejit.runtime.cuda_plan import CudaPlan

    F = tj.nn.functional
    w, b = np.linspace(0.5, 1.5, COLS, dtype=np.float32), np.linspace(-0.1, 0.1, COLS, dtype=np.float32)
    norm = tj.nn.LayerNorm(COLS).eval()
    norm.load_state_dict({"weight": tj.from_numpy(w.copy()), "bias": tj.from_numpy(b.copy())})

    def torch_layer_norm(x, t):
        return t.nn.functional.layer_norm(x, (COLS,), t.as_tensor(w, device="cuda"), t.as_tensor(b, device="cuda"))

    cases = {
        "softmax(x, dim=-1)": (frozen_graph(lambda x: F.softmax(x, dim=-1), (tj.randn(4, COLS),), {"x": {0: "N"}}),
                               lambda x, t: t.softmax(x, dim=-1)),
        f"layer_norm(x, ({COLS},), w, b)": (frozen_graph(norm, tj.randn(4, COLS), {"input": {0: "N"}}),
                                           torch_layer_norm),
    }
    x_host = np.random.default_rng(1).standard_normal((ROWS, COLS), dtype=np.float32)
    x = cp.asarray(x_host)
    print(f"\n== (c) row-wise ops on {ROWS}x{COLS} float32 (GB/s of {x.nbytes >> 20} MiB read + written)")
    for label, (graph, torch_fn) in cases.items():
        plan = CudaPlan(graph)
        want = ir.run(graph, x_host[:64])[0]  # the interpreter on numpy, on the first rows
        if not check(f"{label} tracejit", cp.asnumpy(plan.run(x)[0][:64]), want, rtol=1e-4, atol=1e-5):
            continue
        t = event_median(lambda plan=plan: plan.run(x), cp, **settings)
        bandwidth_line(f"{label}: tracejit", t, 2 * x.nbytes, copy_gbps,
                       f", {plan.launches} launch{'es' if plan.launches != 1 else ''}, {path_of(plan)}")
        if torch is not None:
            xt = torch.as_tensor(x, device="cuda")
            if check(f"{label} torch", torch_fn(xt, torch)[:64].cpu().numpy(), want, rtol=1e-4, atol=1e-5):
                t = event_median(lambda torch_fn=torch_fn, xt=xt: torch_fn(xt, torch), cp, **settings)
                bandwidth_line(f"{label}: torch", t, 2 * x.nbytes, copy_gbps)


def models(cp, torch, settings):
    """(d) MLP and CNN latency per inference at batch 1 and 1024, and GPU launches per inference."""
    from tracejit.runtime.cuda_plan import CudaPlan

    rng = np.random.default_rng(2)
    sync = cp.cuda.Device().synchronize
    for kind in ("mlp", "cnn"):
        weights = init_weights(kind, rng)
        example = tj.from_numpy(rng.standard_normal(EXAMPLE_SHAPES[kind]).astype(np.float32))
        graph = frozen_graph(loaded_model(tj, kind, weights), example, {"input": {0: "N"}})
        plan = CudaPlan(graph)
        ref = numpy_forward(kind, {k: v.astype(np.float64) for k, v in weights.items()})
        torch_model = None
        if torch is not None:
            torch_model = loaded_model(torch, kind, weights).cuda()
        rows, notes = [], []
        for batch in BATCHES:
            x_host = rng.standard_normal((batch, *EXAMPLE_SHAPES[kind][1:])).astype(np.float32)
            x = cp.asarray(x_host)
            want = ref(x_host.astype(np.float64))
            fns = {}
            problem = mismatch(cp.asnumpy(plan.run(x)[0]), want)
            if problem:
                notes.append(f"batch {batch}: tracejit left out: {problem}")
            else:
                fns["tracejit"] = lambda x=x, plan=plan: (plan.run(x), sync())
            launches, path = plan.launches, path_of(plan)
            if torch_model is not None:
                xt = torch.as_tensor(x, device="cuda")
                with torch.no_grad():
                    problem = mismatch(torch_model(xt).cpu().numpy(), want)
                if problem:
                    notes.append(f"batch {batch}: torch left out: {problem}")
                else:
                    def torch_call(xt=xt, model=torch_model):
                        with torch.no_grad():
                            model(xt)
                        torch.cuda.synchronize()

                    fns["torch"] = torch_call
            times = interleaved_medians(fns, pause=0, **settings) if fns else {}
            if "tracejit" in times:
                rows.append((f"batch {batch}", times))
                notes.append(f"batch {batch}: {launches} GPU launches per inference ({path})")
        peers = ["torch"] if torch_model is not None else []
        print_table(f"(d) {TITLES[kind]} inference, float32, latency per call (inputs on the GPU, synchronized)",
                    rows, peers)
        for note in notes:
            print(f"  {note}")


def run(torch=None, quick=False):
    why = unavailable()
    if why is not None:
        print(f"\ngpu: skipped, no usable CUDA GPU here: {why}")
        return
    from tracejit.runtime.cuda_device import describe_device

    cp = devices.cupy_module()
    if torch is not None and not torch.cuda.is_available():
        print("\n(torch has no CUDA here: tracejit and cupy only)")
        torch = None
    settings = {"rounds": 3, "min_time": 0.05} if quick else {"rounds": 5, "min_time": 0.2}
    print(f"\ngpu: {describe_device()}; cupy {cp.__version__}"
          + (f"; torch {torch.__version__} (CUDA {torch.version.cuda})" if torch is not None else ""))
    with torch.no_grad() if torch is not None else contextlib.nullcontext():
        copy_gbps = copy_bandwidth(cp, settings)
        fused_chain(cp, torch, settings, copy_gbps)
        row_wise(cp, torch, settings, copy_gbps)
    models(cp, torch, {"rounds": settings["rounds"], "min_time": settings["min_time"] / 2})


def main(argv=None):
    from .run import main as bench_main

    bench_main(["gpu", *(argv or [])])


if __name__ == "__main__":
    main()
