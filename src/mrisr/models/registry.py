"""Architectures by name: `@register("name")` on a class, `build_model(name, ...)` to make one.

Every registered class takes keyword arguments `scale, dims, grid_convention` (from the
patch store) plus its own hyper-parameters (`args` in the model config), and names the
batch keys its forward consumes in the class attribute `inputs`.
"""

from __future__ import annotations

import inspect
from typing import Callable, TypeVar

from torch import nn

from mrisr.grid import CONVENTIONS

_REGISTRY: dict[str, type[nn.Module]] = {}
_GEOMETRY = ("scale", "dims", "grid_convention")

M = TypeVar("M", bound=type[nn.Module])


def register(name: str) -> Callable[[M], M]:
    """Class decorator adding an architecture under `name` (names are unique)."""

    def decorate(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} already registered by {_REGISTRY[name].__qualname__}")
        inputs = getattr(cls, "inputs", None)
        if not (isinstance(inputs, tuple) and inputs and all(isinstance(k, str) for k in inputs)):
            raise TypeError(f"{cls.__qualname__} needs a class attribute `inputs`: a non-empty tuple of batch keys")
        _REGISTRY[name] = cls
        return cls

    return decorate


def registered() -> list[str]:
    return sorted(_REGISTRY)


def _check_args(arch: str, cls: type, args: dict) -> None:
    """Unknown hyper-parameters are a config typo: name them and the accepted ones."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p != "self" and p not in _GEOMETRY]
    clash = sorted(set(args) & set(_GEOMETRY))
    if clash:
        raise ValueError(f"model {arch!r}: {clash} come from the patch store, not from model args")
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise ValueError(f"model {arch!r}: unknown args {unknown}; accepted: {accepted}")


def build_model(arch: str, *, scale: int, dims: int, grid_convention: str, **args) -> nn.Module:
    """A freshly initialised model (seed torch first for reproducible weights)."""
    if arch not in _REGISTRY:
        raise ValueError(f"unknown model arch {arch!r}; registered: {registered()}")
    if grid_convention not in CONVENTIONS:
        raise ValueError(f"unknown grid convention {grid_convention!r}; expected one of {CONVENTIONS}")
    cls = _REGISTRY[arch]
    _check_args(arch, cls, args)
    return cls(scale=scale, dims=dims, grid_convention=grid_convention, **args)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (what papers report)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
