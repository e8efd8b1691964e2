"""The `Optimizer` base class: parameter groups, per-parameter state, `zero_grad`, and
`state_dict` / `load_state_dict` with PyTorch's layout.

A subclass passes its options as `defaults` and implements `step`; every group gets the
defaults it does not override.

    >>> import tracejit as tj
    >>> from tracejit.optim import SGD
    >>> w, b = tj.ones(2, requires_grad=True), tj.zeros(1, requires_grad=True)
    >>> opt = SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.5]
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

from .. import _api  # noqa: F401 - attaches the Tensor methods (add_, mul_, ...) the updates call
from .._tensor import Tensor
from ..autograd import enable_grad


class Optimizer:
    """Base class of all optimizers; see the module docstring.

    `param_groups` is a list of dicts, each with "params" (a list of tensors) and the options;
    `state` maps a parameter to a dict of its buffers, filled lazily by `step`.
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {params.type()}")
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with "params" and any options that differ from the defaults).

            >>> import tracejit as tj
            >>> from tracejit.optim import SGD
            >>> opt = SGD([tj.ones(1, requires_grad=True)], lr=0.1)
            >>> opt.add_param_group({"params": [tj.ones(2, requires_grad=True)], "lr": 0.01})
            >>> len(opt.param_groups)
            2
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        param_group["params"] = params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        if len(params) != len(set(params)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in PyTorch this will "
                          "become an error", stacklevel=3)
        seen = set()
        for group in self.param_groups:
            seen.update(group["params"])
        if not seen.isdisjoint(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's `.grad`: to None (the default), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad = False
                    g.zero_()

    def step(self, closure=None):
        """Update the parameters once from their `.grad`; returns `closure()`'s loss when given one."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    # ---- checkpoints ---------------------------------------------------------------------

    def state_dict(self):
        """The optimizer's state as PyTorch lays it out: {"state": {index: {...}}, "param_groups": [...]}.

        Parameters are named by their position across all groups; the state's tensors are the
        optimizer's own (not copies), as in PyTorch: `copy.deepcopy` the result to snapshot it.

            >>> import tracejit as tj
            >>> from tracejit.optim import SGD
            >>> opt = SGD([tj.ones(1, requires_grad=True)], lr=0.1)
            >>> opt.state_dict()["param_groups"][0]["params"]
            [0]
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {(index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a `state_dict()`: options per group, and each parameter's state by position.

        Tensors in the state are cast to their parameter's dtype and device (shared, not
        copied, when they already match, as in PyTorch).
        """
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups ({len(saved_groups)}) "
                             f"than the optimizer ({len(groups)})")
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group: group {i} has {len(s['params'])} parameters in the state dict "
                                 f"and {len(g['params'])} in the optimizer")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            param = id_map.get(k)
            if param is None:
                state[k] = v
            else:
                state[param] = {key: _cast(param, key, value) for key, value in v.items()}
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            for name, default in self.defaults.items():  # a state dict from an older version may lack an option
                s.setdefault(name, default)
        self.state = state
        self.param_groups = saved_groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        lines.append(")")
        return "\n".join(lines)


def _cast(param, key, value):
    """A state value moved to its parameter's device (and dtype, for floating tensors other than the step)."""
    if not isinstance(value, Tensor):
        return value
    if key == "step":  # kept as a Python number: the update reads it on the host every step
        return value.item()
    if param.is_floating_point():
        return value.to(dtype=param.dtype, device=param.device)
    return value.to(device=param.device)


_LABELS = {"lr": "learning rate", "eps": "epsilon value"}


def check_nonnegative(**values):
    """PyTorch's hyperparameter checks: `Invalid learning rate: -1`, `Invalid alpha value: -1`, ...
    (NaN fails too), in the order given."""
    for name, v in values.items():
        if not 0.0 <= v:
            raise ValueError(f"Invalid {_LABELS.get(name, name + ' value')}: {v}")


def grads_of(group):
    """(parameter, gradient) for each parameter of `group` that has a gradient; negated with `maximize`."""
    maximize = group.get("maximize", False)
    for p in group["params"]:
        grad = p.grad
        if grad is not None:
            yield p, (-grad if maximize else grad)


def closure_loss(closure):
    """Run an optimizer's `closure` with gradients enabled (step itself runs under no_grad)."""
    if closure is None:
        return None
    with enable_grad():
        return closure()
