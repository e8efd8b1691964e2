"""Run the benchmarks: `python -m bench.run [workload ...]` (all workloads by default).

Every workload times tracejit side by side with numpy, and with PyTorch when it is
installed, in this one process, and prints tracejit's time as a ratio to each peer.
`gpu` times the CUDA runtime against cupy and PyTorch on the GPU; without a GPU it prints
one line saying why it was skipped.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform

WORKLOADS = {
    "eager_ops": "bench.eager_ops",
    "train_mlp": "bench.train_mlp",
    "fused_elementwise": "bench.fused_elementwise",
    "compiled_inference": "bench.compiled_inference",
    "startup": "bench.startup",
    "scripted": "bench.scripted",
    "gpu": "bench.gpu",
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workloads", nargs="*", metavar="workload", help=f"one or more of: {', '.join(WORKLOADS)}")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument("--quick", action="store_true",
                   help="fewer rounds and shorter loops (compiled_inference, startup, scripted, gpu)")
    p.add_argument("--skip", action="append", default=[], metavar="CANDIDATE",
                   help="leave a candidate out, e.g. --skip torch.compile (compiled_inference)")
    args = p.parse_args(argv)
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; expected one of: {', '.join(WORKLOADS)}")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("(PyTorch is not installed: comparing with numpy only; pip install 'tracejit[bench]')")
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    import numpy as np

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores; numpy {np.__version__}"
          + (f"; torch {torch.__version__}" if torch is not None else ""))
    options = {"quick": args.quick, "skip": tuple(args.skip)}
    for name in args.workloads or list(WORKLOADS):
        run = importlib.import_module(WORKLOADS[name]).run
        accepted = inspect.signature(run).parameters
        run(torch=torch, **{k: v for k, v in options.items() if k in accepted})


if __name__ == "__main__":
    main()
