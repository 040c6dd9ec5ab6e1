"""Image-quality metrics: PSNR, SSIM (Wang et al. 2004), NMSE.

Plain numpy/scipy. PSNR and NMSE take differences in the images' precision (float32
for float32 images, as scikit-image does) and accumulate sums in float64; SSIM runs in
float64 (its local variances E[x²] − E[x]² cancel). The metric functions do not clip:
callers (evaluate.run) clip SR to [0, 1] first, so that the functions stay
exact counterparts of the scikit-image references the tests compare against.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

# Wang et al. 2004 constants; truncate 3.5 at sigma 1.5 gives radius 5 = 11 taps,
# the same window scikit-image uses with gaussian_weights=True.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _pair(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 with equal shapes (a shape slip must never be silent)."""
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs reference {ref.shape}")
    return x, ref


def _pair_float(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as floats of their common precision (float32 stays float32), equal shapes."""
    x, ref = np.asarray(x), np.asarray(ref)
    dtype = np.result_type(x.dtype, ref.dtype, np.float32)
    x, ref = x.astype(dtype, copy=False), ref.astype(dtype, copy=False)
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs reference {ref.shape}")
    return x, ref


def _sum_squares(a: np.ndarray, overwrite: bool = False) -> float:
    """Σ a² with float64 accumulation; squares in place when a is a temporary."""
    sq = np.square(a, out=a if overwrite else None)
    return float(np.sum(sq, dtype=np.float64))


def psnr(x: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; identical images give +inf (no epsilon,
    so a perfect reconstruction is visible as such rather than as a large number)."""
    x, ref = _pair_float(x, ref)
    mse = _sum_squares(x - ref, overwrite=True) / max(1, x.size)
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def nmse(x: np.ndarray, ref: np.ndarray) -> float:
    """Normalised MSE ||x - ref||^2 / ||ref||^2 (fastMRI); a zero reference gives
    inf (or 0 when x is also zero)."""
    x, ref = _pair_float(x, ref)
    num = _sum_squares(x - ref, overwrite=True)
    den = _sum_squares(ref)
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def _gaussian(a: np.ndarray) -> np.ndarray:
    """Separable Gaussian window over every axis, 'reflect' edges as scikit-image."""
    for axis in range(a.ndim):
        a = gaussian_filter1d(a, SSIM_SIGMA, axis=axis, mode="reflect", truncate=SSIM_TRUNCATE)
    return a


def ssim_map(x: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Local SSIM at every voxel (before cropping the border), population covariance."""
    x, ref = _pair(x, ref)
    if min(x.shape) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs every axis >= {2 * SSIM_RADIUS + 1} samples, got shape {x.shape}")
    ux, uy = _gaussian(x), _gaussian(ref)
    vx = _gaussian(x * x) - ux * ux
    vy = _gaussian(ref * ref) - uy * uy
    vxy = _gaussian(x * ref) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(x: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM over the valid region (border of one window radius dropped on every
    axis, where the reflected padding would otherwise bias the value). Works for
    2D and 3D arrays alike (the window spans every axis)."""
    s = ssim_map(x, ref, data_range)
    valid = tuple(slice(SSIM_RADIUS, n - SSIM_RADIUS) for n in s.shape)
    return float(s[valid].mean(dtype=np.float64))


def ssim_over(x: np.ndarray, ref: np.ndarray, axes: Sequence[int], data_range: float = 1.0) -> float:
    """Mean of SSIM over every sub-image spanned by `axes`, iterating all other axes
    (slices, frames). With axes == all axes it is plain `ssim`."""
    x, ref = _pair(x, ref)
    axes = tuple(int(a) % x.ndim for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axes {axes}")
    n = len(axes)
    xs = np.moveaxis(x, axes, range(x.ndim - n, x.ndim)).reshape(-1, *(x.shape[a] for a in axes))
    rs = np.moveaxis(ref, axes, range(x.ndim - n, x.ndim)).reshape(xs.shape)
    return float(np.mean([ssim(a, b, data_range) for a, b in zip(xs, rs)], dtype=np.float64))


def ssim_slices(x: np.ndarray, ref: np.ndarray, axes: tuple[int, int], data_range: float = 1.0) -> float:
    """Mean 2D SSIM over every 2D image spanned by `axes` (2D tasks: per slice/frame)."""
    if len(axes) != 2:
        raise ValueError(f"ssim_slices needs exactly two axes, got {axes}")
    return ssim_over(x, ref, axes, data_range)
