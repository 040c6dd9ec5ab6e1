"""HR → LR degradation of arrays and prepared NIfTI files, with the LR grid.

Modes (docs/architecture.md):
* truncate         k-space centre crop                      convention 'corner'
* lowpass_bicubic  k-space low-pass, then Keys-cubic sampling 'center'
                   (the cine SR protocol: k-space low-pass then bicubic downsampling)
* bicubic          antialiased Keys-cubic resize only         'center'
* nearest          decimation: keep HR sample i·s             'corner' (mrisr.degrade.nearest)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrisr.degrade.kspace import check_window, kspace_lowpass, kspace_truncate, normalize_axes
from mrisr.degrade.nearest import nearest_decimate
from mrisr.degrade.resize import cubic_downsample
from mrisr.errors import InputError
from mrisr.grid import Grid, lr_size
from mrisr.io import read_nifti, write_json, write_nifti

MODES: tuple[str, ...] = ("truncate", "lowpass_bicubic", "bicubic", "nearest")
CONVENTION_OF_MODE: dict[str, str] = {"truncate": "corner", "lowpass_bicubic": "center", "bicubic": "center",
                                      "nearest": "corner"}
SPATIAL_AXES = (0, 1, 2)


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown degradation mode {mode!r}; expected one of {MODES}")


def lr_grid(hr_shape: tuple[int, ...], mode: str, scale: float, axes: tuple[int, ...]) -> Grid:
    """The LR grid a mode produces: lr_size(n, scale) samples on every listed axis."""
    check_mode(mode)
    lr_shape = tuple(lr_size(n, scale) if a in axes else n for a, n in enumerate(hr_shape))
    return Grid(convention=CONVENTION_OF_MODE[mode], axes=tuple(axes), hr_shape=tuple(hr_shape), lr_shape=lr_shape)


def degrade_array(
    x: np.ndarray,
    mode: str,
    scale: float,
    axes: tuple[int, ...],
    window: str = "none",
    workers: int = -1,
) -> tuple[np.ndarray, Grid]:
    """Degrade x along `axes` by `scale`; returns float32 LR and its Grid.

    `window` shapes the kept k-space band of the k-space modes; the bicubic
    mode has no k-space step and ignores it.
    """
    check_mode(mode)
    check_window(window)
    x = np.asarray(x)
    axes = normalize_axes(axes, x.ndim)
    grid = lr_grid(x.shape, mode, scale, axes)
    if float(scale) == 1.0:
        return np.array(x, dtype=np.float32, copy=True), grid
    if mode == "truncate":
        lr = kspace_truncate(x, scale, axes, window=window, workers=workers)
    elif mode == "nearest":
        lr = nearest_decimate(x, scale, axes)
    elif mode == "lowpass_bicubic":
        lr = cubic_downsample(kspace_lowpass(x, scale, axes, window=window, workers=workers), grid, antialias=False)
    else:
        lr = cubic_downsample(x, grid, antialias=True)
    return lr.astype(np.float32, copy=False), grid


def lr_affine(hr_affine: np.ndarray, grid: Grid) -> np.ndarray:
    """Affine of the LR image: LR index i on a degraded axis maps to the world
    position of HR voxel coordinate offset + i·step (only spatial axes 0..2)."""
    if any(a not in SPATIAL_AXES for a in grid.axes):
        raise ValueError(f"only spatial axes 0..2 can be degraded, got {grid.axes}")
    index_map = np.eye(4)
    for a in grid.axes:
        ag = grid.axis(a)
        index_map[a, a] = ag.step
        index_map[a, 3] = ag.offset
    return np.asarray(hr_affine, dtype=np.float64) @ index_map


def sidecar_path(nifti_path: Path) -> Path:
    """x/y.nii.gz → x/y.json (also .nii → .json)."""
    nifti_path = Path(nifti_path)
    name = nifti_path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return nifti_path.with_name(name[: -len(ext)] + ".json")
    raise ValueError(f"{nifti_path}: expected a .nii or .nii.gz path")


def meta_fields(meta: dict, keys: tuple[str, ...]) -> dict:
    """The identifying keys a sidecar copies from `meta`; all must be present."""
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ValueError(f"meta lacks {missing}; expected keys {list(keys)}")
    return {k: meta[k] for k in keys}


def degrade_file(
    hr_path: Path, out_path: Path, mode: str, scale: float, axes: tuple[int, ...], window: str, meta: dict
) -> None:
    """Degrade one prepared HR series; write the LR NIfTI, then its sidecar last
    (so a present sidecar means a complete LR image)."""
    check_mode(mode)
    check_window(window)
    meta_fields(meta, ("dataset", "subject", "series"))  # fail before any work
    x, affine = read_nifti(hr_path, ndim=(3, 4), canonical=False)
    bad = [a for a in axes if a not in SPATIAL_AXES]
    if bad:
        raise InputError(hr_path, f"cannot degrade non-spatial axes {bad} of a {x.ndim}D image {x.shape}")
    lr, grid = degrade_array(x, mode, scale, tuple(axes), window=window)
    write_nifti(out_path, lr, lr_affine(affine, grid))
    write_json(
        sidecar_path(out_path),
        {
            **meta_fields(meta, ("dataset", "subject", "series")),
            "hr_source": str(hr_path),
            "hr_shape": list(x.shape),
            "lr_shape": list(lr.shape),
            "mode": mode,
            "scale": float(scale),
            "window": window,
            "grid": grid.to_json(),
        },
    )
