"""Whether operations record a graph for autograd: `no_grad`, `enable_grad`,
`set_grad_enabled` and `inference_mode`, usable as context managers and decorators.

    >>> import tracejit as tj
    >>> x = tj.ones(2, requires_grad=True)
    >>> with tj.no_grad():
    ...     (x * 2).requires_grad
    False
"""

from __future__ import annotations

import functools

# One process-wide switch: dispatch reads it on every op, and a plain global is the cheapest read.
_state = {"enabled": True}


def is_grad_enabled():
    return _state["enabled"]


class _Mode:
    """Base for the grad-mode context managers; also works as a decorator."""

    _target = True

    def __enter__(self):
        self._prev = _state["enabled"]
        _state["enabled"] = self._target
        return self

    def __exit__(self, *exc):
        _state["enabled"] = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(*self._args()):
                return fn(*args, **kwargs)

        return wrapper

    def _args(self):
        return ()


class no_grad(_Mode):  # noqa: N801 - PyTorch's name
    """Ops inside do not record a graph: results have requires_grad=False."""

    _target = False


class enable_grad(_Mode):  # noqa: N801
    _target = True


class set_grad_enabled(_Mode):  # noqa: N801
    """`set_grad_enabled(False)` as a context manager, a decorator, or a plain call that sets the mode."""

    def __init__(self, mode):
        self._target = bool(mode)
        self._prev = _state["enabled"]
        _state["enabled"] = self._target

    def __enter__(self):
        return self

    def _args(self):
        return (self._target,)


class inference_mode(_Mode):  # noqa: N801
    """Like no_grad (tracejit has no separate inference tensors)."""

    def __init__(self, mode=True):
        self._target = not mode

    def _args(self):
        return (not self._target,)
