"""Pixel losses: L1 + α·(1 − SSIM3D), UDEAN's ℓ (eqs. 1–3; `losses.udean`).

SSIM3D: Gaussian window σ = 1.5, 11 taps, truncated to the axis length on short axes (a
3-voxel-thick LR patch gets a 3-tap window there); population covariance; mean over the valid
region — mrisr.evaluate.metrics.ssim (numpy, for evaluation) where the full window fits.
"""

from __future__ import annotations

import functools

import torch

SSIM_SIGMA = 1.5
SSIM_TAPS = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03


def gaussian_taps(n: int, taps: int = SSIM_TAPS, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised Gaussian window for an axis of n samples: `taps` long, or the longest odd
    length that fits (a thin axis still gets a valid, centred window)."""
    k = min(taps, n if n % 2 else n - 1)
    x = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


@functools.lru_cache(maxsize=32)
def valid_filter_matrix(n: int) -> torch.Tensor:
    """(n − k + 1) × n band matrix M with (M @ v)[i] = Σ_j w[j]·v[i + j]: the 'valid' Gaussian
    filter of one axis. A matmul per axis is far cheaper on CPU than a grouped 1-tap-wide
    conv3d, and its cost does not depend on patch thinness."""
    w = gaussian_taps(n)
    k = w.numel()
    m = torch.zeros(n - k + 1, n, dtype=torch.float64)
    for i in range(n - k + 1):
        m[i, i:i + k] = w
    return m


def gaussian_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter over the last three axes of x, keeping only the 'valid' region."""
    for axis in range(x.ndim - 3, x.ndim):
        m = valid_filter_matrix(x.shape[axis]).to(dtype=x.dtype, device=x.device)
        x = torch.movedim(torch.movedim(x, axis, -1) @ m.T, -1, axis)
    return x


def ssim3d(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean 3D SSIM per sample (B,) of (B, C, X, Y, Z) tensors (Wang et al.; see the module docstring)."""
    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(f"ssim3d needs two (B, C, X, Y, Z) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    # float32 even under bf16 autocast: the variances are differences of nearly equal moments.
    with torch.autocast(device_type=x.device.type, enabled=False):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # float64 for reference tests
        x, y = x.to(dtype), y.to(dtype)
        ux, uy, xx, yy, xy = gaussian_valid(torch.stack([x, y, x * x, y * y, x * y]))  # one pass for all moments
        vx, vy, vxy = xx - ux * ux, yy - uy * uy, xy - ux * uy
        c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        return s.flatten(1).mean(dim=1)


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 − SSIM3D, averaged over the batch (UDEAN eq. 2)."""
    return 1.0 - ssim3d(x, y).mean()


def pixel_loss(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """L1 + α·L_SSIM, UDEAN eq. 3 (in float32 whatever the forward's autocast dtype)."""
    x, y = x.float(), y.float()
    return torch.nn.functional.l1_loss(x, y) + alpha * ssim_loss(x, y)
