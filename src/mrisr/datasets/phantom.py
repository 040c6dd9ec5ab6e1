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
from scipy import ndimage

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
        c = c.astype(np.float32)  # float32 halves the cost of every shape on big volumes
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
    all the partial-volume edge needs. Centre and semi-axes may be arrays that
    broadcast against the coordinates (e.g. shapes that change from slice to slice).
    """
    x, y, z = (coords[a] - centre[a] for a in range(3))
    x, y = rotate_xy(x, y, angle)
    rho = np.sqrt((x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2)
    return (rho - 1.0) * np.minimum(np.minimum(semi[0], semi[1]), semi[2])  # semi may vary per slice


def disk_sdf(coords: Coords, centre: Sequence[float], radius: np.ndarray | float) -> np.ndarray:
    """Signed distance to a disk in the x-y plane, extruded along z (radius may vary per slice)."""
    return np.hypot(coords[0] - centre[0], coords[1] - centre[1]) - radius


def soft(sdf: np.ndarray, width: float) -> np.ndarray:
    """Fraction of a voxel inside the shape (float32): a linear ramp of length 4·width
    across the boundary — the box-integrated partial volume of a straight edge, and the
    slope a logistic of scale `width` has at the edge. (A ramp, unlike a logistic, is
    cheap on million-voxel volumes.)"""
    return np.clip(0.5 - sdf / (4.0 * width), 0.0, 1.0).astype(np.float32, copy=False)


def composite(layers: Sequence[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Painter's algorithm on soft masks, first layer at the bottom.

    Each tissue's fraction is its mask times what no later layer covers, so fractions
    (plus "background") sum to one in every voxel. Several layers may share a tissue name.
    """
    shape = np.broadcast_shapes(*(np.shape(m) for _, m in layers))
    remaining = np.ones(shape, dtype=np.float32)
    fractions: dict[str, np.ndarray] = {}
    for name, mask in reversed(layers):
        part = mask * remaining
        if name in fractions:
            fractions[name] += part
        else:
            fractions[name] = part
        remaining -= part  # remaining·(1 − mask)
    fractions["background"] = remaining
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
    fine = ndimage.gaussian_filter(noise, sigma=list(sigma), mode="wrap", truncate=3.0)
    coarse = ndimage.gaussian_filter(noise, sigma=[2.0 * s for s in sigma], mode="wrap", truncate=3.0)
    return _standardise(fine - coarse)


def _standardise(field: np.ndarray) -> np.ndarray:
    field = field - field.mean()
    std = field.std()
    return field / std if std > 0 else field


def folded_cortex(
    rng: np.random.Generator,
    coords: Coords,
    centre: Sequence[float],
    semi: Sequence[float],
    angle: float,
    shape: Sequence[int],
    spacing: Sequence[float],
    length: float,
    fold_scale: float,
    width: float,
    thickness: tuple[float, float] = (0.06, 0.08),
    depth: tuple[float, float] = (0.20, 0.28),
    sulcus_width: float = 0.45,
) -> list[tuple[str, np.ndarray]]:
    """Folded cortex as two level sets of one function g = ρ + a(ρ)·exp(−(f/κ)²).

    ρ is the ellipsoidal radius (1 at the hull) and f a band-pass random field: its
    zero-crossings form a maze of thin lines, and the bump on them cuts sulci into the
    hull. Grey matter is g < 1, white matter g < 1 − t, so the ribbon keeps roughly
    constant thickness, lines every sulcus, and white-matter fingers fill the gyri.
    The fold depth fades towards the centre (no grey islands in deep white matter).
    Returns layers ("gm", then "wm" over it); fold_scale is the fold size / length;
    thickness and depth (ρ units) are drawn uniformly from their ranges; sulcus_width is κ.
    """
    sigma = [fold_scale * length / s for s in spacing]
    f = bandpass_field(rng, shape, sigma)
    fold_depth = rng.uniform(*depth)
    ribbon = rng.uniform(*thickness)
    rho = ellipsoid_sdf(coords, centre, semi, angle) / float(min(semi)) + 1.0
    sulci = np.exp(-((f / sulcus_width) ** 2))
    g = rho + fold_depth * np.clip((rho - 0.6) / 0.3, 0.0, 1.0) * sulci
    w = width / float(min(semi))  # widths in ρ units
    return [("gm", soft(g - 1.0, w)), ("wm", soft(g - (1.0 - ribbon), w))]


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
