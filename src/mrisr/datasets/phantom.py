"""Building blocks of the synthetic anatomies: soft shapes, painter's compositing,
random fields, coil bias, Rician noise and the spin-echo signal equation.

Shapes are signed distance functions (negative inside) in *normalised* units: millimetres
divided by a length L (half the smaller in-plane field of view), so that an anatomy keeps
its proportions at any matrix size (tests use 32×32, the pipeline 96×96). A sigmoid of
the distance over about half a voxel gives each voxel the fraction of the shape it
contains: partial volume, hence realistic band-limited edges for super-resolution.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage, special

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]  # broadcastable (X,1,1), (1,Y,1), (1,1,Z)


def centred_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """RAS+ affine with the given voxel spacing whose world origin is the volume centre."""
    spacing = np.asarray(spacing, dtype=np.float64)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape[:3], dtype=np.float64) - 1.0) / 2.0 * spacing
    return affine


def normalised_coords(shape: Sequence[int], spacing: Sequence[float], length: float) -> Coords:
    """World coordinates (mm, origin at the centre) of every voxel divided by `length`."""
    axes = []
    for a in range(3):
        c = (np.arange(shape[a], dtype=np.float64) - (shape[a] - 1) / 2.0) * spacing[a] / length
        view = [1, 1, 1]
        view[a] = shape[a]
        axes.append(c.reshape(view))
    return axes[0], axes[1], axes[2]


def rotate_xy(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in a frame rotated by `angle` (radians) about the z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y


def ellipsoid_sdf(
    coords: Coords,
    centre: Sequence[float],
    semi: Sequence[float],
    angle: float = 0.0,
) -> np.ndarray:
    """Approximate signed distance to an ellipsoid (rotated by `angle` in the x-y plane).

    (ρ - 1)·min(semi) is exact for spheres and a close, smooth stand-in otherwise —
    all the partial-volume edge needs.
    """
    x, y, z = (coords[a] - centre[a] for a in range(3))
    x, y = rotate_xy(x, y, angle)
    rho = np.sqrt((x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2)
    return (rho - 1.0) * float(min(semi))


def disk_sdf(coords: Coords, centre: Sequence[float], radius: np.ndarray | float) -> np.ndarray:
    """Signed distance to a disk in the x-y plane, extruded along z (radius may vary per slice)."""
    return np.hypot(coords[0] - centre[0], coords[1] - centre[1]) - radius


def soft(sdf: np.ndarray, width: float) -> np.ndarray:
    """Fraction of a voxel inside the shape: logistic of -distance/width."""
    return special.expit(-sdf / width)


def composite(layers: Sequence[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Painter's algorithm on soft masks, first layer at the bottom.

    Each tissue's fraction is its mask times what no later layer covers, so fractions
    (plus "background") sum to one in every voxel. Several layers may share a tissue name.
    """
    remaining: np.ndarray | float = 1.0
    fractions: dict[str, np.ndarray] = {}
    for name, mask in reversed(layers):
        part = mask * remaining
        fractions[name] = fractions[name] + part if name in fractions else part
        remaining = remaining * (1.0 - mask)
    fractions["background"] = np.broadcast_to(remaining, next(iter(fractions.values())).shape).copy()
    return fractions


def smooth_field(rng: np.random.Generator, shape: Sequence[int], sigma: Sequence[float]) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field: white noise low-passed by a Gaussian
    of `sigma` voxels per axis (tissue texture, fold patterns)."""
    field = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), sigma=list(sigma), mode="wrap")
    return _standardise(field)


def bandpass_field(rng: np.random.Generator, shape: Sequence[int], sigma: Sequence[float]) -> np.ndarray:
    """Unit-std band-pass field (difference of Gaussians σ and 2σ): blobs of one size,
    the pattern of gyri and sulci."""
    noise = rng.standard_normal(tuple(shape))
    fine = ndimage.gaussian_filter(noise, sigma=list(sigma), mode="wrap")
    coarse = ndimage.gaussian_filter(noise, sigma=[2.0 * s for s in sigma], mode="wrap")
    return _standardise(fine - coarse)


def _standardise(field: np.ndarray) -> np.ndarray:
    field = field - field.mean()
    std = field.std()
    return field / std if std > 0 else field


def bias_field(rng: np.random.Generator, coords: Coords, strength: float) -> np.ndarray:
    """Smooth multiplicative receive-coil bias: exp of a random quadratic polynomial,
    scaled so that its log spans about ±strength over the normalised volume."""
    x, y, z = coords
    terms = [x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]
    coefs = rng.normal(0.0, 1.0, size=len(terms))
    log_bias = sum(c * t for c, t in zip(coefs, terms))
    log_bias = np.broadcast_to(log_bias, np.broadcast_shapes(x.shape, y.shape, z.shape))
    span = float(np.abs(log_bias - log_bias.mean()).max())
    scale = strength / span if span > 0 else 0.0
    return np.exp((log_bias - log_bias.mean()) * scale)


def rician(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise: Rician statistics, the
    positive noise floor of real magnitude MR images."""
    if sigma <= 0:
        return image
    real = image + rng.normal(0.0, sigma, size=image.shape)
    imag = rng.normal(0.0, sigma, size=image.shape)
    return np.hypot(real, imag)


def spin_echo(pd: float, t1: float, t2: float, tr: float, te: float) -> float:
    """Spin-echo signal S = PD·(1 − exp(−TR/T1))·exp(−TE/T2) (times in ms)."""
    return float(pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2))


def jitter(rng: np.random.Generator, value: float, rel: float) -> float:
    """value·(1 + rel·N(0,1)), kept positive: per-subject variation of a tissue constant."""
    return float(value * max(0.2, 1.0 + rel * rng.standard_normal()))
