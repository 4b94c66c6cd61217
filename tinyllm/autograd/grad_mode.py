"""Whether operations record a graph: `no_grad()` and `enable_grad()` as context managers."""

from __future__ import annotations

import functools


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """Return whether new operations record the graph for backward."""
    return _GradMode.enabled


class _SetGradEnabled:
    def __init__(self, mode: bool) -> None:
        self.mode = mode
        self.previous = True

    def __enter__(self) -> None:
        self.previous = _GradMode.enabled
        _GradMode.enabled = self.mode

    def __exit__(self, *exc) -> None:
        _GradMode.enabled = self.previous

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.__class__(self.mode):
                return func(*args, **kwargs)

        return wrapper


class no_grad(_SetGradEnabled):  # noqa: N801 - named as in PyTorch
    """Context manager and decorator under which no graph is built (inference, optimizer steps)."""

    def __init__(self) -> None:
        super().__init__(False)

    def __call__(self, func):
        return _SetGradEnabled(False)(func)


class enable_grad(_SetGradEnabled):  # noqa: N801 - named as in PyTorch
    """Context manager and decorator that turns graph recording back on inside `no_grad`."""

    def __init__(self) -> None:
        super().__init__(True)

    def __call__(self, func):
        return _SetGradEnabled(True)(func)


class inference_mode(_SetGradEnabled):  # noqa: N801 - named as in PyTorch
    """no_grad under PyTorch's other name (mode=False records the graph as usual)."""

    def __init__(self, mode: bool = True) -> None:
        super().__init__(not mode)

    def __call__(self, func):
        return _SetGradEnabled(self.mode)(func)


class set_grad_enabled(_SetGradEnabled):  # noqa: N801 - named as in PyTorch
    """Context manager and decorator that turns graph recording on or off, as `mode` says."""
