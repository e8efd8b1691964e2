"""`tracejit-run`: run, inspect, check and benchmark a `.tj` model from the command line.

    tracejit-run model.tj --input x=x.npy --output y.npy   # by name; several outputs -> .npz
    tracejit-run model.tj x.npy                           # positional files, in signature order
    tracejit-run model.tj --input inputs.npz               # an .npz supplies inputs by name
    tracejit-run model.tj --info | --graph | --check
    tracejit-run model.tj --bench 100 [--dim N=32]         # random inputs unless some are given
    tracejit-run model.tj x.npy --device cuda              # on the GPU (pip install 'tracejit[cuda]')

Exit status: 0 on success, 1 when the model or the inputs are at fault, 2 on usage errors.
Errors are one line on stderr (`tracejit-run: error: ...`); `--verbose` adds the traceback.
Only numpy and the runtime's own layers are imported (and cupy with `--device cuda`), never the front end.

    >>> main(["--version"])  # doctest: +ELLIPSIS
    tracejit-run ...
    0
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

PROG = "tracejit-run"


class CLIError(Exception):
    """A problem with the model or the inputs (exit status 1)."""


def _parser():
    import tracejit

    p = argparse.ArgumentParser(prog=PROG, description="Run a tracejit model file (.tj) without the front end.")
    p.add_argument("model", help="the .tj model file")
    p.add_argument("files", nargs="*", metavar="INPUT",
                   help="input files (.npy or .npz) in signature order; an .npz gives inputs by name")
    p.add_argument("-i", "--input", action="append", default=[], metavar="NAME=FILE",
                   help="an input by name from a .npy file (or an .npz holding it); a bare FILE.npz gives "
                        "several inputs by name")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the outputs: .npy (one output) or .npz (keyed by output name)")
    p.add_argument("--info", action="store_true", help="print the signature, ops, parameters and file details")
    p.add_argument("--graph", action="store_true", help="print the model's IR text")
    p.add_argument("--check", action="store_true", help="check the file's integrity and contents without running")
    p.add_argument("--bench", type=int, metavar="N", help="time N runs after warm-up (random inputs if none given)")
    p.add_argument("--warmup", type=int, metavar="W", help="warm-up runs before --bench (default: N/5, 1 to 20)")
    p.add_argument("--dim", action="append", default=[], metavar="SYM=SIZE",
                   help="size of a symbolic dim for random --bench inputs (default 1)")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="where to run: cpu (default), cuda or cuda:N (needs cupy and an NVIDIA GPU)")
    p.add_argument("--threads", type=int, metavar="K", help="threads for large ops and BLAS")
    p.add_argument("--no-native", action="store_true", help="run in the reference interpreter, not native code")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    p.add_argument("--version", action="version", version=f"{PROG} {tracejit.__version__}")
    return p


def main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (2), --help and --version (0)
        return e.code if isinstance(e.code, int) else 2
    usage = _usage_problem(args)
    if usage:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {usage}", file=sys.stderr)
        return 2
    try:
        _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the model, the inputs or the files are at fault: one line, not a traceback
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    return 0


def _one_line(e):
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        msg = f"{e.filename}: {e.strerror}"
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    return "; ".join(lines) or type(e).__name__


def _usage_problem(args):
    if args.bench is not None and args.bench < 1:
        return "--bench needs a positive number of runs"
    if args.warmup is not None and args.warmup < 0:
        return "--warmup cannot be negative"
    if args.threads is not None and args.threads < 1:
        return "--threads needs a positive number"
    for item in args.input:
        name, sep, file = item.partition("=")
        if not sep and not item.endswith(".npz"):
            return f"--input {item!r}: expected NAME=FILE, or a FILE.npz that names its inputs"
        if sep and (not name or not file):
            return f"--input {item!r}: expected NAME=FILE"
    for item in args.dim:
        sym, sep, size = item.partition("=")
        if not sep or not sym or not size.isdigit():
            return f"--dim {item!r}: expected SYMBOL=SIZE, e.g. N=32"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        return f"--device {args.device!r}: expected cpu, cuda or cuda:N"
    if args.output and not args.output.endswith((".npy", ".npz")):
        return f"--output {args.output!r}: the file must end in .npy or .npz"
    return None


def _set_threads(k):
    from tracejit.ops import parallel

    parallel.set_num_threads(k)
    import importlib.util

    if importlib.util.find_spec("tracejit.codegen.blas") is not None:
        import tracejit.codegen.blas as blas

        if hasattr(blas, "set_num_threads"):
            blas.set_num_threads(k)


def _run(args):
    if args.threads is not None:
        _set_threads(args.threads)
    if args.check or args.info or args.graph:
        from tracejit.runtime import tjfile

        f = tjfile.read(args.model)
        if args.check:
            _print_check(args.model, f)
        if args.info:
            _print_info(args.model, f)
            print(f"device:      {_describe_device(args.device)}")
        if args.graph:
            from tracejit import ir

            sys.stdout.write(ir.print_graph(f.graph))
        if not (args.files or args.input or args.bench):
            return
    from tracejit.runtime.model import load

    model = load(args.model, device=args.device, native=not args.no_native)
    feeds = _read_inputs(model, args)
    if args.bench:
        if not feeds:
            feeds = _random_inputs(model, args.dim)
        _bench(model, feeds, args.bench, args.warmup)
        if not args.output:
            return
    outs = model(**feeds)
    outs = outs if isinstance(outs, tuple) else (outs,)
    if args.output:
        _write_outputs(model, outs, args.output)
    else:
        _print_outputs(model, outs)


# -- inputs and outputs -------------------------------------------------------------------------

def _load_array_file(file):
    import numpy as np

    if not os.path.exists(file):
        raise CLIError(f"input file {file} does not exist")
    try:
        data = np.load(file, allow_pickle=False)  # never unpickle what a file says
    except ValueError as e:
        raise CLIError(f"{file}: cannot read it as .npy/.npz without pickle ({e})") from None
    except Exception as e:
        raise CLIError(f"{file} is not a readable .npy/.npz file ({type(e).__name__}: {e})") from None
    return data


def _npz_dict(data, file):
    try:
        return {k: data[k] for k in data.files}
    except Exception as e:
        raise CLIError(f"{file}: cannot read it without pickle ({type(e).__name__}: {e})") from None
    finally:
        data.close()


def _read_inputs(model, args):
    """Inputs by name from positional files and --input options; checks names against the signature."""
    import numpy as np

    expected = f"; the model expects {model.signature}"
    feeds = {}

    def put(name, arr, source):
        if name not in model.input_names:
            raise CLIError(f"{source} gives an input named {name!r}, but the model has no such input{expected}")
        if name in feeds:
            raise CLIError(f"input {name!r} is given twice ({source}){expected}")
        feeds[name] = arr

    position = 0
    for file in args.files:
        data = _load_array_file(file)
        if isinstance(data, np.ndarray):
            if position >= len(model.input_names):
                raise CLIError(f"{file}: more positional input files than the model has inputs{expected}")
            put(model.input_names[position], data, file)
            position += 1
        else:
            for k, v in _npz_dict(data, file).items():
                put(k, v, file)
    for item in args.input:
        name, sep, file = item.partition("=")
        if not sep:
            for k, v in _npz_dict(_load_array_file(item), item).items():
                put(k, v, item)
            continue
        data = _load_array_file(file)
        if not isinstance(data, np.ndarray):
            arrays = _npz_dict(data, file)
            if name in arrays:
                data = arrays[name]
            elif len(arrays) == 1:
                data = next(iter(arrays.values()))
            else:
                raise CLIError(f"{file} holds {sorted(arrays)}, none named {name!r}")
        put(name, data, f"--input {item}")
    return feeds


def _random_inputs(model, dim_args):
    import numpy as np

    sizes = {}
    for item in dim_args:
        sym, _, size = item.partition("=")
        sizes[sym] = int(size)
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in model.signature.inputs:
        shape = tuple(sizes.get(d, 1) if isinstance(d, str) else d for d in (spec.shape or ()))
        dt = spec.dtype.np
        if dt.kind == "f":
            arr = rng.standard_normal(shape).astype(dt)
        elif dt.kind == "b":
            arr = rng.random(shape) < 0.5
        else:
            arr = np.zeros(shape, dt)  # indices and counts: zeros are in range for any size
        feeds[spec.name] = arr
    return feeds


def _write_outputs(model, outs, file):
    import numpy as np

    if file.endswith(".npy"):
        if len(outs) != 1:
            raise CLIError(f"the model has {len(outs)} outputs ({', '.join(model.output_names)}); write them "
                           "to an .npz file")
        with open(file, "wb") as fh:  # np.save on a path would append .npy to other names
            np.save(fh, outs[0], allow_pickle=False)
    else:
        with open(file, "wb") as fh:
            np.savez(fh, **dict(zip(model.output_names, outs)))


def _print_outputs(model, outs):
    import numpy as np

    for name, arr in zip(model.output_names, outs):
        flat = np.asarray(arr).ravel()
        head = np.array2string(flat[:6], precision=4, separator=", ", max_line_width=1 << 30)
        more = f" ... ({flat.size} values)" if flat.size > 6 else ""
        print(f"{name}: {arr.dtype}[{', '.join(map(str, arr.shape))}] {head}{more}")


# -- inspection ---------------------------------------------------------------------------------

def _print_check(path, f):
    print(f"{path}: OK (format {f.manifest['format_version']}, {f.manifest['producer']}, "
          f"{len(f.manifest['members']) + 1} members checked, {f.file_bytes:,} bytes)")


def _print_info(path, f):
    from collections import Counter

    counts = Counter(n.op for n in f.graph.nodes())
    weights = f.graph.constants.values()
    n_params = sum(int(a.size) for a in weights)
    n_bytes = sum(int(a.nbytes) for a in weights)
    m = f.manifest
    print(f"model:       {path}")
    print(f"format:      {m['format_version']} (written by {m['producer']})")
    print(f"file size:   {f.file_bytes:,} bytes")
    for what, specs in (("inputs", f.signature.inputs), ("outputs", f.signature.outputs)):
        print(f"{what + ':':<13}" + ("\n" + " " * 13).join(str(s) for s in specs) if specs else f"{what}: none")
    print(f"parameters:  {n_params:,} in {len(f.graph.constants)} tensors ({n_bytes:,} bytes)")
    ops = ", ".join(f"{op} x{k}" for op, k in sorted(counts.items(), key=lambda t: (-t[1], t[0])))
    print(f"ops:         {sum(counts.values())} nodes: {ops}")
    print(f"native:      {', '.join(sorted(f.native)) or 'none (compiled on first run)'}")


def _describe_device(device):
    """The device --device names, as --info prints it; says why when CUDA is not available."""
    if device == "cpu":
        return "cpu"
    from tracejit.runtime import model

    missing = model._cuda_missing()
    if missing is not None:
        return f"{device} (not available here: {missing})"
    try:
        from tracejit.runtime.cuda_device import describe_device

        return describe_device(model._check_device(device).index)
    except Exception as e:
        return f"{device} (not usable: {_one_line(e)})"


def _bench(model, feeds, runs, warmup):
    import numpy as np

    arrays = model.bind(**feeds)  # checked once; the timed loop measures the model alone
    warmup = warmup if warmup is not None else max(1, min(20, runs // 5))
    for _ in range(warmup):
        model.run(*arrays)
    times = np.empty(runs)
    start = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        model.run(*arrays)
        times[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    ms = times * 1e3
    shapes = ", ".join(f"{k}{list(np.shape(v))}" for k, v in zip(model.input_names, arrays))
    print(f"bench: {runs} runs after {warmup} warm-up, inputs {shapes}, on {model.device}")
    print(f"latency: min {ms.min():.3f} ms, median {np.median(ms):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms"
          + (" (inputs copied to the GPU and outputs back, each run)" if model.device.type == "cuda" else ""))
    print(f"throughput: {runs / total:,.1f} inferences/s")
    launches = getattr(model.plan, "launches", None)
    if launches is not None:
        print(f"GPU launches per run: {launches} (kernels, GEMMs and registry ops)")


if __name__ == "__main__":
    sys.exit(main())
