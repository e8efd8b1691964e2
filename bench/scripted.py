"""Scripted models with data-dependent control flow (tests/script_models.py: a branching module, a
variable-length RNN loop, a beam-search-like decoder with a data-dependent stop, a residual network
from an nn.ModuleList): tracejit's runtime on the saved `.tj` file beside tracejit eager, torch eager
and torch.jit.script, all in one process; interleaved rounds, medians.

The torch models are the same source executed with `import torch` in place of `import tracejit as
torch`, with the tracejit models' weights."""

from __future__ import annotations

import os
import tempfile

import numpy as np

import tracejit as tj

from .harness import cpu_snapshot, interleaved_medians, others_note, print_grid

_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "script_models.py")
_IMPORTS = ("import tracejit as torch\nimport tracejit.nn as nn\nimport tracejit.nn.functional as F\n",
            "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n")


def _namespace(torch_source):
    """The corpus module: tracejit's (the file itself), or the same source run against torch."""
    with open(_MODELS) as f:
        source = f.read()
    name = "script_models_torch" if torch_source else "script_models"
    if torch_source:
        if _IMPORTS[0] not in source:
            raise RuntimeError(f"{_MODELS} no longer starts with the imports this benchmark swaps")
        source = source.replace(*_IMPORTS)
    ns = {"__name__": name, "__file__": _MODELS}
    exec(compile(source, _MODELS, "exec"), ns)  # noqa: S102 - the project's own test corpus
    return ns


# name: (class, example input shape, timed input shape, dynamic dims)
CASES = {
    "branch": ("SignBranch", (2, 6), (2, 6), None),
    "rnn T=16": ("ElmanRNN", (4, 2, 5), (16, 2, 5), {"x": {0: "T"}}),
    "beam": ("Beam", (3, 6), (3, 6), None),
    "resnet N=8": ("ResNet", (3, 16), (8, 16), {"x": {0: "N"}}),
}


def _outputs(out):
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [np.asarray(o.detach().numpy() if hasattr(o, "detach") else o) for o in out]


def run(torch=None, quick=False):
    settings = {"rounds": 3, "min_time": 0.05, "pause": 0.1} if quick else {"rounds": 5, "min_time": 0.15}
    ns = _namespace(False)
    tns = _namespace(True) if torch is not None else None
    rng = np.random.default_rng(0)
    cases = []
    folder = tempfile.mkdtemp(prefix="tracejit-bench-")
    since = cpu_snapshot()
    for label, (cls, example_shape, shape, dims) in CASES.items():
        tj.manual_seed(0)
        model = ns[cls]().eval()
        example = tj.from_numpy(rng.standard_normal(example_shape).astype(np.float32))
        x = rng.standard_normal(shape).astype(np.float32)
        xt = tj.from_numpy(x)
        path = os.path.join(folder, f"{cls}.tj")
        tj.script(model, example, dynamic_dims=dims).save(path)
        runtime = tj.load(path)
        with tj.no_grad():
            want = _outputs(model(xt))
        for got in (_outputs(runtime(x)),):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        fns = {"tracejit": lambda runtime=runtime, x=x: runtime(x)}

        def eager(model=model, xt=xt):
            with tj.no_grad():
                return model(xt)

        fns["tj eager"] = eager
        if tns is not None:
            tmodel = tns[cls]().eval()
            tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
            tx = torch.from_numpy(x)
            with torch.no_grad():
                for g, w in zip(_outputs(tmodel(tx)), want):
                    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)

            def torch_eager(tmodel=tmodel, tx=tx):
                with torch.no_grad():
                    return tmodel(tx)

            fns["torch eager"] = torch_eager
            try:
                jitted = torch.jit.script(tmodel)
                with torch.no_grad():
                    for g, w in zip(_outputs(jitted(tx)), want):
                        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)

                def torch_script(jitted=jitted, tx=tx):
                    with torch.no_grad():
                        return jitted(tx)

                fns["torch.jit.script"] = torch_script
            except Exception as e:  # a construct TorchScript refuses: say so, time the rest
                print(f"  torch.jit.script of {cls} failed: {type(e).__name__}: {str(e).splitlines()[0]}")
        cases.append((label, interleaved_medians(fns, **settings)))
    candidates = ["tracejit", "tj eager"] + (["torch eager", "torch.jit.script"] if torch is not None else [])
    print_grid("scripted control flow, batch as labelled (tracejit = script -> save -> runtime load)", cases,
               candidates)
    note = others_note(since)
    if note:
        print(f"  {note}")
