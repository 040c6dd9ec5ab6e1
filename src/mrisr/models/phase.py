"""The cardiac phase code and cyclic clip indexing, re-exported from `mrisr.phase` (numpy only;
it lives outside this package so that importing it never loads torch)."""

from mrisr.phase import cyclic_clip_indices, phase_code  # noqa: F401

__all__ = ["cyclic_clip_indices", "phase_code"]
