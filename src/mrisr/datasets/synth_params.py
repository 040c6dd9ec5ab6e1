"""Validation of the generators' `params` dicts (they come from YAML, so check types here)."""

from __future__ import annotations

from typing import Any, Sequence

ANATOMIES = ("phantom", "mni152")  # the brain generators' `anatomy` param; the first is the default


def merge_params(kind: str, defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `given`; an unknown key is a ValueError listing the known ones
    (a typo must not silently fall back to a default)."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {kind} synth params {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


def int_tuple(name: str, value: Any, n: int, minimum: int = 1) -> tuple[int, ...]:
    """An int (repeated n times) or a sequence of n ints, each ≥ minimum."""
    values = [value] * n if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(values, Sequence) or len(values) != n:
        raise ValueError(f"synth param {name!r} must be an int or {n} ints, got {value!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not float(v).is_integer() or int(v) < minimum:
            raise ValueError(f"synth param {name!r} must hold integers ≥ {minimum}, got {value!r}")
        out.append(int(v))
    return tuple(out)


def positive_floats(name: str, value: Any, n: int) -> tuple[float, ...]:
    """A number (repeated n times) or n numbers, each > 0."""
    values = [value] * n if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(values, Sequence) or len(values) != n or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"synth param {name!r} must be {n} positive numbers, got {value!r}")
    return tuple(float(v) for v in values)


def non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"synth param {name!r} must be a number ≥ 0, got {value!r}")
    return float(value)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"synth param {name!r} must be one of {list(options)}, got {value!r}")
    return str(value)
