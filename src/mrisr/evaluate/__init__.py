"""Evaluation: metrics, whole-volume inference, per-subject evaluation, tables, figures.

Names are imported lazily so that `import mrisr.evaluate` stays cheap (no torch,
pandas or matplotlib until a function that needs them is used).
"""

from __future__ import annotations

from mrisr.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports("mrisr.evaluate", _EXPORTS)
