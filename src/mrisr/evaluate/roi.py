"""Heart region of interest of a short-axis cine, for the cardiac ROI metrics.

In a short-axis cine the heart is the only thing that moves much over the cycle
(breath-hold: chest wall, liver and spine stay still), so the in-plane region of large
temporal intensity variation locates it without a segmentation model:

1. per-pixel temporal standard deviation over the T frames (the blood/myocardium
   border sweeps across pixels as the ventricles contract and refill);
2. averaged over slices (the heart is roughly a column along the short axis, and
   averaging suppresses slice-specific noise);
3. Gaussian smoothing (σ = `SMOOTH_FRACTION` of the smaller in-plane size) to merge
   the moving LV and RV borders into one blob and suppress pixel noise;
4. the noise floor (median of the map: most of the field of view is static, its
   temporal std is noise) is subtracted, and the map is thresholded at
   `THRESHOLD_FRACTION` of its maximum;
5. the largest connected component is kept (stray moving edges such as vessels are
   smaller);
6. its bounding box is grown by `margin` × its size on each side (the thresholded
   blob hugs the moving borders; the ROI should include the surrounding wall) and
   clipped to the image.

A cine without any temporal variation has no detectable heart: the whole in-plane
field of view is returned, so the ROI metrics then equal the whole-image ones.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SMOOTH_FRACTION = 0.03
THRESHOLD_FRACTION = 0.3


def temporal_variation_map(cine: np.ndarray) -> np.ndarray:
    """(X, Y) map: temporal std per pixel, averaged over slices (steps 1-2)."""
    std = np.asarray(cine, dtype=np.float64).std(axis=-1)
    return std if std.ndim == 2 else std.mean(axis=2)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def _grown_slice(lo: int, hi: int, margin: float, size: int) -> slice:
    """[lo, hi) widened by margin·(hi−lo) on each side, clipped to [0, size)."""
    pad = int(np.ceil(margin * (hi - lo)))
    return slice(max(0, lo - pad), min(size, hi + pad))


def detect_heart_roi(cine: np.ndarray, margin: float = 0.15) -> tuple[slice, slice]:
    """In-plane (x, y) slices of the heart ROI of a cine (X, Y, Z, T) or (X, Y, T).

    See the module docstring for the method.
    """
    cine = np.asarray(cine)
    if cine.ndim not in (3, 4):
        raise ValueError(f"cine must be (X, Y, T) or (X, Y, Z, T), got shape {cine.shape}")
    if cine.shape[-1] < 2:
        raise ValueError(f"cine needs at least 2 frames to show motion, got shape {cine.shape}")
    if not np.isfinite(cine).all():
        raise ValueError("cine contains NaN/Inf")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    nx, ny = cine.shape[:2]
    variation = temporal_variation_map(cine)
    sigma = max(1.0, SMOOTH_FRACTION * min(nx, ny))
    variation = ndimage.gaussian_filter(variation, sigma, mode="nearest")
    variation = variation - np.median(variation)
    peak = variation.max()
    if not peak > 0:
        return slice(0, nx), slice(0, ny)
    blob = _largest_component(variation >= THRESHOLD_FRACTION * peak)
    xs, ys = np.nonzero(blob)
    return (_grown_slice(int(xs.min()), int(xs.max()) + 1, margin, nx),
            _grown_slice(int(ys.min()), int(ys.max()) + 1, margin, ny))
