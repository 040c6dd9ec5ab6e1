"""HR → LR degradation: k-space low-pass/truncation (rfftn), Keys-cubic resize,
and motion simulation (SimpleITK).  Every LR image comes with its mrisr.grid.Grid.

Names are imported lazily: `mrisr degrade` must not pay for SimpleITK (motion only).
"""

from __future__ import annotations

from mrisr.lazy import lazy_exports

_EXPORTS = {
    "MODES": "pipeline",
    "WINDOWS": "kspace",
    "STAGE_ID_MOTION": "motion",
    "kspace_lowpass": "kspace",
    "kspace_truncate": "kspace",
    "degrade_array": "pipeline",
    "lr_affine": "pipeline",
    "degrade_file": "pipeline",
    "sidecar_path": "pipeline",
    "draw_motion": "motion",
    "apply_motion": "motion",
    "motion_file": "motion",
}

__getattr__, __all__ = lazy_exports("mrisr.degrade", _EXPORTS)
