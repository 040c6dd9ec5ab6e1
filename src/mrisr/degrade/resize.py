"""Image-space Keys-cubic downsampling onto an LR grid (mrisr.grid placement).

Two flavours:
* plain cubic sampling (mrisr.grid.downsample_matrix) for signals already
  low-passed in k-space (the cine protocol);
* antialiased cubic as MATLAB imresize does it: the kernel is stretched by the
  step so it also acts as the low-pass, rows renormalised to sum to 1, and the
  border handled by half-sample symmetric mirroring.
"""

from __future__ import annotations

import numpy as np

from mrisr.grid import AxisGrid, Grid, apply_matrices, downsample_matrix, keys_kernel


def mirror_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Half-sample symmetric reflection into [0, n): … 1 0 | 0 1 … n-1 | n-1 n-2 …
    (MATLAB imresize's 'symmetric' padding)."""
    period = 2 * n
    r = np.mod(idx, period)
    return np.where(r < n, r, period - 1 - r)


def antialias_cubic_matrix(ag: AxisGrid, n_hr: int, n_lr: int) -> np.ndarray:
    """(n_lr × n_hr) Keys-cubic sampling of HR at the LR positions with the
    kernel widened by the step (when > 1) so that it low-passes before sampling."""
    width = max(float(ag.step), 1.0)
    centres = np.asarray(ag.hr_position(np.arange(n_lr)), dtype=np.float64)
    taps = int(np.ceil(4.0 * width)) + 2
    first = np.floor(centres - 2.0 * width).astype(np.int64)
    idx = first[:, None] + np.arange(taps)[None, :]
    weights = keys_kernel((centres[:, None] - idx) / width)
    weights /= weights.sum(axis=1, keepdims=True)
    mat = np.zeros((n_lr, n_hr), dtype=np.float64)
    rows = np.broadcast_to(np.arange(n_lr)[:, None], idx.shape)
    np.add.at(mat, (rows, mirror_index(idx, n_hr)), weights)
    return mat


def cubic_downsample(x: np.ndarray, grid: Grid, antialias: bool) -> np.ndarray:
    """Resample x (HR) onto grid's LR sample positions along grid.axes, float32.

    The matrices are applied in float32 (BLAS sgemm) — ample precision for
    images in [0, 1] and half the memory traffic.
    """
    mats = {}
    for a in grid.axes:
        n_hr, n_lr = grid.hr_shape[a], grid.lr_shape[a]
        build = antialias_cubic_matrix if antialias else downsample_matrix
        mats[a] = build(grid.axis(a), n_hr, n_lr).astype(np.float32)
    return apply_matrices(np.asarray(x, dtype=np.float32), mats)
