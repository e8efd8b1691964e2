"""Script a model with data-dependent control flow, save it, and run the file with `tracejit-run`.

A greedy decoder emits tokens until every sequence in the batch has produced the stop token (or a
length limit is reached), so how many steps it runs depends on the input. `tracejit.script` keeps
that loop (a `prim::Loop` in the saved graph); a trace would have baked in one input's step count.

    python examples/script_decoder.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

import tracejit as torch
import tracejit.nn as nn

STOP, VOCAB, DIM, MAX_LEN = 0, 3, 8, 24


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.cell = nn.Linear(2 * DIM, DIM)
        self.out = nn.Linear(DIM, VOCAB)

    def forward(self, h):  # h: (batch, DIM), an encoder state
        tok = self.out(h).argmax(-1)
        tokens = tok[:, None]
        done = tok == STOP
        while tokens.shape[1] < MAX_LEN and not bool(done.all()):
            h = torch.tanh(self.cell(torch.cat([h, self.embed(tok)], dim=1)))
            tok = torch.where(done, tok * 0 + STOP, self.out(h).argmax(-1))  # finished rows keep emitting STOP
            tokens = torch.cat([tokens, tok[:, None]], dim=1)
            done = done | (tok == STOP)
        return tokens


def main():
    torch.manual_seed(0)
    model = Decoder().eval()
    example = torch.randn(4, DIM)
    scripted = torch.script(model, example)
    loops = sum(n.op == "prim::Loop" for n in scripted.graph.nodes())
    folder = tempfile.mkdtemp(prefix="tracejit-decoder-")
    path = os.path.join(folder, "decoder.tj")
    info = scripted.save(path)
    print(f"scripted the decoder: {loops} prim::Loop in the graph; saved {info}")

    rng = np.random.default_rng(1)
    lengths, agree = set(), 0
    for k in range(8):
        x = (rng.standard_normal((4, DIM)) * (0.3 + k)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        np.save(os.path.join(folder, "x.npy"), x)
        out = os.path.join(folder, "y.npy")
        run = subprocess.run([sys.executable, "-m", "tracejit.runtime", path, os.path.join(folder, "x.npy"),
                              "-o", out], capture_output=True, text=True, timeout=300)
        if run.returncode:
            raise SystemExit(f"tracejit-run failed: {run.stderr.strip()}")
        got = np.load(out)
        lengths.add(want.shape[1])
        agree += got.shape == want.shape and bool((got == want).all())
    print(f"tracejit-run on 8 inputs: sequence lengths {sorted(lengths)}; equal to eager on {agree} of 8")
    if agree != 8:
        raise SystemExit("the saved model does not match eager")


if __name__ == "__main__":
    main()
