"""Evaluation: metrics, whole-volume inference, per-subject evaluation, tables, figures.

Names are imported lazily so that `import mrisr.evaluate` stays cheap (no torch,
pandas or matplotlib until a function that needs them is used).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "psnr": "metrics",
    "ssim": "metrics",
    "ssim_slices": "metrics",
    "nmse": "metrics",
    "super_resolve": "inference",
    "evaluate": "run",
    "collect": "tables",
    "summarize": "tables",
    "write_tables": "tables",
    "comparison_figure": "figures",
    "metric_plot": "figures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mrisr.evaluate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mrisr.evaluate.{_EXPORTS[name]}"), name)
