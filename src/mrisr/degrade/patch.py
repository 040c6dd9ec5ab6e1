"""Degrading small HR patches without wrap-around: LR made on the fly during training.

The k-space modes (`truncate`, `lowpass_bicubic`) filter with a DFT, which treats its
input as periodic. On a whole image the periodic neighbour of a border pixel is background
(zero), so that is harmless; on a 48×48 patch cut from the middle of a brain the left and
right borders hold unrelated tissue, the DFT sees a jump there, and the low-pass rings
around every border of the patch — LR content that the evaluation data (whole slices)
never has.

Fix: per degraded axis, extend the patch evenly (x followed by its mirror image, length 2n)
before filtering. The even extension is continuous where it wraps (a DCT-II's implicit
symmetry), so there is no jump to ring about; the band is chosen so that the cut-off is the
same fraction of the patch's own LR Nyquist frequency, and the LR samples of the original
part sit exactly where `degrade_array` would put them on the patch:

* the patch's LR size is n_lr = lr_size(n, r) and its grid step s = n/n_lr;
* the extension (2n samples) is degraded at scale s, giving lr_size(2n, s) = 2·n_lr samples
  on a grid with the same step s and offset (both conventions), so its first n_lr samples
  are the patch's LR samples;
* the cubic sampling of `lowpass_bicubic` near the end of the patch then reads mirrored
  samples (symmetric boundary), not replicated ones.

`bicubic` (antialiased image-space resize) has no DFT and already mirrors at borders;
it goes through `degrade_array` unchanged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mrisr.degrade.kspace import normalize_axes
from mrisr.degrade.pipeline import check_mode, degrade_array, lr_grid
from mrisr.grid import Grid, lr_size

KSPACE_MODES = ("truncate", "lowpass_bicubic")


def even_extension(x: np.ndarray, axis: int) -> np.ndarray:
    """x followed by its mirror along `axis` (length 2n): periodic and continuous."""
    return np.concatenate([x, np.flip(x, axis=axis)], axis=axis)


def _degrade_extended(x: np.ndarray, mode: str, axes: Sequence[int], step: float, window: str) -> np.ndarray:
    """Degrade the even extension of x along `axes` (one common grid step) and keep the
    LR samples of the original part."""
    ext = x
    for a in axes:
        ext = even_extension(ext, a)
    lr, _ = degrade_array(ext, mode, step, tuple(axes), window=window, workers=1)
    keep = [slice(None)] * x.ndim
    for a in axes:
        keep[a] = slice(0, lr_size(x.shape[a], step))
    return lr[tuple(keep)]


def degrade_patches(x: np.ndarray, mode: str, scale: float, axes: Sequence[int],
                    window: str = "none") -> tuple[np.ndarray, Grid]:
    """Degrade HR patches along `axes` by `scale` as `degrade_array` would, without the
    DFT's wrap-around at the patch borders. Returns float32 LR and the patch's LR Grid
    (lr_size(n, scale) samples per degraded axis, the mode's convention)."""
    check_mode(mode)
    x = np.asarray(x)
    axes = normalize_axes(axes, x.ndim)
    grid = lr_grid(x.shape, mode, scale, axes)
    if mode not in KSPACE_MODES or float(scale) == 1.0:
        return degrade_array(x, mode, scale, axes, window=window, workers=1)
    steps = {a: x.shape[a] / grid.lr_shape[a] for a in axes}
    if len({round(s, 12) for s in steps.values()}) == 1:
        lr = _degrade_extended(x, mode, axes, steps[axes[0]], window)
    else:  # non-square patch: each axis has its own step; the filters are separable
        lr = x
        for a in axes:
            lr = _degrade_extended(lr, mode, (a,), steps[a], window)
    if tuple(lr.shape) != grid.lr_shape:  # the construction guarantees it; a slip would misalign pairs
        raise AssertionError(f"patch LR shape {lr.shape} != grid {grid.lr_shape}")
    return np.ascontiguousarray(lr, dtype=np.float32), grid
