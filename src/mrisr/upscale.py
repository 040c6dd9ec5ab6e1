"""`mrisr upscale`: apply a trained model to any NIfTI at a chosen scale.

The output grid follows the model's grid convention (`mrisr.grid`): along each upscaled axis
n_lr samples become n_hr = round(n_lr·r), input voxel i sits at output coordinate
offset + i·step (step = n_hr/n_lr), and the output affine is the input affine composed with
the inverse of that map — the exact inverse of `mrisr.degrade.lr_affine`, so degrading a
volume and upscaling it back lands on the original affine and spacing.

2D models run slice by slice over the two upscaled axes (every other axis — slices,
frames — is a batch item); 3D models see whole volumes (tiled when large). Arbitrary-scale
models (`meta_srgan`) take any r ≥ 1; fixed-scale models only their own integer scale.

Models expect intensities in [0, 1] (the prepared-data rule): the input is mapped linearly
by its 0.5 / 99.5 percentiles to [0, 1] (not clipped), super-resolved, and mapped back, so
the output is in the input's units. `normalize=False` passes values through unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from mrisr.errors import InputError
from mrisr.evaluate.inference import from_batch, super_resolve, to_batch
from mrisr.grid import Grid, format_scale, integer_scale
from mrisr.io import read_nifti, write_nifti
from mrisr.models.meta_srgan import output_size  # also registers meta_srgan / srgan

PERCENTILES = (0.5, 99.5)
SPATIAL_AXES = (0, 1, 2)


def upscaled_grid(lr_shape: Sequence[int], axes: Sequence[int], scale: float, convention: str) -> Grid:
    """The grid of the output: round(n·r) samples on every listed axis, the others unchanged."""
    hr_shape = tuple(output_size(n, scale) if a in axes else int(n) for a, n in enumerate(lr_shape))
    return Grid(convention=convention, axes=tuple(int(a) for a in axes), hr_shape=hr_shape,
                lr_shape=tuple(int(n) for n in lr_shape))


def upscaled_affine(lr_affine: np.ndarray, grid: Grid) -> np.ndarray:
    """Affine of the upscaled image: output voxel j is input coordinate (j − offset)/step on
    every upscaled axis (inverse of `degrade.lr_affine`)."""
    index_map = np.eye(4)
    for a in grid.axes:
        ag = grid.axis(a)
        index_map[a, a] = 1.0 / ag.step
        index_map[a, 3] = -ag.offset / ag.step
    return np.asarray(lr_affine, dtype=np.float64) @ index_map


def super_resolve_any_scale(model, lr: np.ndarray, grid: Grid, scale: float, device: str = "cpu",
                            batch_size: int = 16) -> np.ndarray:
    """LR array → model output on grid.hr_shape (float32, not clipped).

    Arbitrary-scale models get the nominal r and each image's HR shape; any other model
    goes through `evaluate.inference.super_resolve` (its own fixed scale). Usable for a
    scale sweep on degraded LR + its sidecar grid as well as for `upscale_file`.
    """
    if not getattr(model, "arbitrary_scale", False):
        return super_resolve(lr, grid, "model", model=model, device=device, batch_size=batch_size)
    import torch

    if len(grid.axes) != 2:
        raise ValueError(f"arbitrary-scale models are 2D: upscale exactly two axes, got {grid.axes}")
    model.to(device).eval()
    batch = to_batch(np.asarray(lr, dtype=np.float32), grid.axes)
    out_shape = tuple(grid.hr_shape[a] for a in grid.axes)
    outs = []
    with torch.no_grad():
        for start in range(0, batch.shape[0], max(1, batch_size)):
            x = torch.from_numpy(np.ascontiguousarray(batch[start:start + max(1, batch_size)])).to(device)
            outs.append(model(x, scale=float(scale), out_shape=out_shape).float().cpu().numpy())
    return from_batch(np.concatenate(outs), grid.axes, grid.hr_shape).astype(np.float32, copy=False)


def intensity_window(x: np.ndarray, path: Path) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(x, PERCENTILES))
    if not hi > lo:
        raise InputError(path, f"image is constant between its {PERCENTILES} percentiles; nothing to upscale")
    return lo, hi


def model_file(model: str | Path) -> Path:
    """A model folder (…/model.pt inside) or the model file itself."""
    model = Path(model)
    return model / "model.pt" if model.is_dir() else model


def check_request(path: Path, record: dict, model, scale: float, axes: tuple[int, ...], ndim: int) -> None:
    """InputError naming the model (or input) file when the request does not fit it."""
    dims = int(record["dims"])
    if len(axes) != dims:
        raise InputError(path, f"a {dims}D model upscales {dims} axes, got axes {list(axes)}")
    bad = [a for a in axes if a not in SPATIAL_AXES or a >= ndim]
    if bad or len(set(axes)) != len(axes):
        raise InputError(path, f"axes {list(axes)} must be distinct spatial axes of the {ndim}D input")
    if getattr(model, "arbitrary_scale", False):
        if scale > float(record["scale"]) + 1e-9:
            print(f"mrisr upscale: warning: ×{format_scale(scale)} is beyond the largest training scale "
                  f"×{format_scale(record['scale'])} of {path}", file=sys.stderr)
        return
    if integer_scale(scale) != integer_scale(record["scale"]):
        raise InputError(path, f"{record['arch']} is a fixed ×{format_scale(record['scale'])} model; "
                               f"cannot upscale by {format_scale(scale)}")


def upscale_file(model: str | Path, in_path: str | Path, out_path: str | Path, scale: float,
                 axes: Sequence[int] | None = None, device: str = "cpu", batch_size: int = 16,
                 normalize: bool = True) -> Grid:
    """Upscale one NIfTI by `scale` along `axes` (default: (0, 1) for 2D models, (0, 1, 2) for 3D);
    writes out_path atomically and returns the output grid."""
    from mrisr.models.io import load_model, read_model_record

    if float(scale) < 1.0:
        raise ValueError(f"scale must be >= 1, got {scale}")
    path = model_file(model)
    record = read_model_record(path)
    net = load_model(path, device=device)
    axes = tuple(int(a) for a in (axes if axes is not None else SPATIAL_AXES[: int(record["dims"])]))
    in_path = Path(in_path)
    # canonical=False: keep the input's voxel layout, so "slice by slice" means its own slices.
    x, affine = read_nifti(in_path, ndim=(2, 3, 4), canonical=False)
    check_request(path, record, net, float(scale), axes, x.ndim)
    grid = upscaled_grid(x.shape, axes, float(scale), str(record["grid_convention"]))
    lo, hi = intensity_window(x, in_path) if normalize else (0.0, 1.0)
    sr = super_resolve_any_scale(net, (x - lo) / (hi - lo), grid, float(scale), device, batch_size)
    write_nifti(out_path, sr * (hi - lo) + lo, upscaled_affine(affine, grid))
    return grid
