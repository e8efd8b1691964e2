"""Models with data-dependent Python control flow: the scripting corpus (eager == script == load == tracejit-run)."""

from __future__ import annotations

import tracejit as torch
import tracejit.nn as nn
import tracejit.nn.functional as F


class SignBranch(nn.Module):
    """`if x.sum() > 0:` picks one of two different computations."""

    def __init__(self):
        super().__init__()
        self.pos = nn.Linear(6, 4)
        self.neg = nn.Linear(6, 4)

    def forward(self, x):
        if x.sum() > 0:
            y = torch.relu(self.pos(x))
        elif x.mean() < -1:
            y = self.neg(x) * 2.0
        else:
            y = torch.tanh(self.neg(x))
        return y + 1.0


class ElmanRNN(nn.Module):
    """An RNN written as a Python loop over the time steps of a variable-length sequence (T, B, F)."""

    def __init__(self, features=5, hidden=8):
        super().__init__()
        self.hidden = hidden
        self.inp = nn.Linear(features, hidden)
        self.rec = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, 3)

    def forward(self, x):
        h = torch.zeros_like(self.inp(x[0]))
        total = x[0, :, :1] * 0.0
        for t in range(x.size(0)):
            h = torch.tanh(self.inp(x[t]) + self.rec(h))
            total = total + h[:, :1]
        return self.out(h), total


class Beam(nn.Module):
    """A beam-search-like decoder: extend the best sequences one token at a time until every beam has
    emitted the stop token or `max_len` steps ran, whichever comes first (a data-dependent stop)."""

    def __init__(self, vocab=7, dim=6, beams=3, max_len=12, stop=0):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(dim, vocab)
        self.beams, self.max_len, self.stop = beams, max_len, stop

    def forward(self, state):
        h = state  # (beams, dim)
        scores = state[:, 0] * 0.0
        tokens = (state[:, :1] * 0.0).long()
        finished = scores > 1.0
        step = 0
        while step < self.max_len and not bool(finished.all()):
            logp = torch.log_softmax(self.proj(torch.tanh(h)), dim=-1)
            best, tok = logp.max(dim=-1)
            scores = scores + torch.where(finished, best * 0.0, best)
            tok = torch.where(finished, tok * 0 + self.stop, tok)
            tokens = torch.cat([tokens, tok[:, None]], dim=1)
            h = h + self.embed(tok)
            finished = finished | (tok == self.stop)
            step += 1
        return scores, tokens


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        y = self.fc2(F.relu(self.fc1(self.norm(x))))
        if x.abs().max() > 10.0:  # a data-dependent branch inside every block
            y = y * 0.5 - x * 0.1
        return x + y


class ResNet(nn.Module):
    """A residual network whose depth comes from an nn.ModuleList."""

    def __init__(self, dim=16, depth=4):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)
