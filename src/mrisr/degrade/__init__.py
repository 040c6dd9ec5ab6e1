"""HR → LR degradation: k-space low-pass/truncation (rfftn), Keys-cubic resize,
and motion simulation (SimpleITK).  Every LR image comes with its mrisr.grid.Grid."""

from mrisr.degrade.kspace import WINDOWS, kspace_lowpass, kspace_truncate
from mrisr.degrade.motion import STAGE_ID_MOTION, apply_motion, draw_motion, motion_file
from mrisr.degrade.pipeline import MODES, degrade_array, degrade_file, lr_affine, sidecar_path

__all__ = [
    "MODES",
    "WINDOWS",
    "STAGE_ID_MOTION",
    "kspace_lowpass",
    "kspace_truncate",
    "degrade_array",
    "lr_affine",
    "degrade_file",
    "sidecar_path",
    "draw_motion",
    "apply_motion",
    "motion_file",
]
