"""Deterministic sampling of aligned (LR, HR[, ref]) patch pairs from whole images.

For an integer scale s whose grid step is exactly s, LR patch [i0, i0+p) covers HR
[i0*s, (i0+p)*s) under both grid conventions (corner: LR i at HR i*s; center: LR i
at the centre of HR block [i*s, i*s+s)), so pairs are cut at LR-aligned corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrisr.grid import Grid, integer_scale

FG_LEVEL = 0.1  # intensity above which a voxel counts as foreground (images are in [0, 1])
MAX_TRIES = 20  # foreground retries per patch before accepting whatever was drawn


@dataclass(frozen=True)
class PatchSpec:
    hr_patch: tuple[int, ...]
    n: int
    fg_fraction: float = 0.25


def as_images(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Move the degraded axes last and flatten the others into a leading image axis.

    (X,Y,Z,T) with axes (0,1) -> (Z*T, X, Y); (X,Y,Z) with axes (0,1,2) -> (1, X, Y, Z).
    """
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    return moved.reshape((-1,) + moved.shape[-len(axes):])


def check_grid(grid: Grid, scale: float, hr_patch: tuple[int, ...]) -> int:
    """The integer scale after checking the grid and patch geometry are exact."""
    s = integer_scale(scale)
    if s is None:
        raise ValueError(f"patch stores need an integer scale, got {scale}")
    for a in grid.axes:
        if grid.hr_shape[a] != s * grid.lr_shape[a]:
            raise ValueError(
                f"axis {a}: HR size {grid.hr_shape[a]} is not {s}× LR size {grid.lr_shape[a]}; "
                f"set prepare.crop_multiple to a multiple of {s}"
            )
    if len(hr_patch) != len(grid.axes) or any(p % s for p in hr_patch):
        raise ValueError(f"hr_patch {list(hr_patch)} must have {len(grid.axes)} sizes divisible by {s}")
    return s


def sample_pairs(
    hr: np.ndarray,
    lr: np.ndarray,
    grid: Grid,
    scale: float,
    spec: PatchSpec,
    rng: np.random.Generator,
    ref: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Draw spec.n aligned patches from one subject's volumes (foreground-biased)."""
    s = check_grid(grid, scale, spec.hr_patch)
    hr_im, lr_im = as_images(hr, grid.axes), as_images(lr, grid.axes)
    ref_im = as_images(ref, grid.axes) if ref is not None else None
    lr_patch = tuple(p // s for p in spec.hr_patch)
    if any(lp > n for lp, n in zip(lr_patch, lr_im.shape[1:])):
        raise ValueError(f"LR patch {list(lr_patch)} larger than LR image {list(lr_im.shape[1:])}")
    out: dict[str, list[np.ndarray]] = {"hr": [], "lr": []}
    if ref_im is not None:
        out["ref"] = []
    for _ in range(spec.n):
        for _try in range(MAX_TRIES):
            k = int(rng.integers(hr_im.shape[0]))
            corner = [int(rng.integers(n - lp + 1)) for n, lp in zip(lr_im.shape[1:], lr_patch)]
            lr_sl = tuple(slice(c, c + lp) for c, lp in zip(corner, lr_patch))
            hr_sl = tuple(slice(c * s, c * s + hp) for c, hp in zip(corner, spec.hr_patch))
            hr_p = hr_im[(k,) + hr_sl]
            if (hr_p > FG_LEVEL).mean() >= spec.fg_fraction:
                break
        out["hr"].append(hr_p)
        out["lr"].append(lr_im[(k,) + lr_sl])
        if ref_im is not None:
            out["ref"].append(ref_im[(k,) + hr_sl])
    return {key: np.stack(v).astype(np.float32) for key, v in out.items()}


@dataclass(frozen=True)
class ClipSpec:
    """Video clips for cine SR: `frames` central frames plus `warmup` frames either side."""

    hr_patch: tuple[int, int]
    n: int
    frames: int
    warmup: int
    fg_fraction: float = 0.25


def sample_clips(
    hr: np.ndarray,
    lr: np.ndarray,
    grid: Grid,
    scale: float,
    spec: ClipSpec,
    ed: int,
    es: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Draw spec.n cine clips from (X, Y, Z, T) volumes degraded over axes (0, 1).

    lr: (n, frames + 2·warmup, h, w), frames taken cyclically around the cycle (the
    warm-up frames prime the recurrent memory); hr: (n, frames, H, W) of the central
    frames; phase: (n, frames + 2·warmup) phase codes of every lr frame.
    """
    from mrisr.phase import cyclic_clip_indices, phase_code  # numpy only: no torch

    if hr.ndim != 4 or tuple(grid.axes) != (0, 1):
        raise ValueError(f"clips need a 4D cine degraded over axes (0, 1), got shape {hr.shape}, axes {grid.axes}")
    s = check_grid(grid, scale, spec.hr_patch)
    n_frames = hr.shape[3]
    lr_patch = tuple(p // s for p in spec.hr_patch)
    out: dict[str, list[np.ndarray]] = {"hr": [], "lr": [], "phase": []}
    for _ in range(spec.n):
        for _try in range(MAX_TRIES):
            z = int(rng.integers(hr.shape[2]))
            t0 = int(rng.integers(n_frames))
            cx, cy = (int(rng.integers(n - lp + 1)) for n, lp in zip(lr.shape[:2], lr_patch))
            hx, hy = slice(cx * s, cx * s + spec.hr_patch[0]), slice(cy * s, cy * s + spec.hr_patch[1])
            if (hr[hx, hy, z, t0] > FG_LEVEL).mean() >= spec.fg_fraction:
                break
        idx = cyclic_clip_indices(t0, spec.frames, spec.warmup, n_frames)
        centre = idx[spec.warmup:spec.warmup + spec.frames]
        lx, ly = slice(cx, cx + lr_patch[0]), slice(cy, cy + lr_patch[1])
        out["lr"].append(np.moveaxis(lr[lx, ly, z][:, :, idx], -1, 0))
        out["hr"].append(np.moveaxis(hr[hx, hy, z][:, :, centre], -1, 0))
        out["phase"].append(phase_code(idx, ed, es, n_frames))
    return {key: np.stack(v).astype(np.float32) for key, v in out.items()}
