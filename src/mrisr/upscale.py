"""`mrisr upscale`: apply a trained model to an image at a chosen scale.

Input: a NIfTI file (nibabel), a DICOM series folder (the project's DICOM reader,
`datasets.dsb`: frames placed by ImagePositionPatient, grouped by location, a cine stacked
as (X, Y, Z, T)), or any single file SimpleITK reads (NRRD, MetaImage, Analyze, one DICOM
file, ...). Output format by the output suffix: NIfTI (.nii, .nii.gz), or NRRD (.nrrd) /
MetaImage (.mha) through SimpleITK; world geometry (RAS affine ↔ ITK's LPS origin, spacing,
direction) is carried over either way. The output may not be the input (also through a
symlink) nor lie inside an input DICOM folder: that is refused before anything is read.

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

import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mrisr.errors import InputError
from mrisr.evaluate.inference import from_batch, super_resolve, to_batch
from mrisr.grid import Grid, format_scale, integer_scale
from mrisr.io import atomic_path, read_nifti, write_nifti

PERCENTILES = (0.5, 99.5)
SPATIAL_AXES = (0, 1, 2)
NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_WRITE_SUFFIXES = (".nrrd", ".mha")  # single-file formats (an .mhd/.hdr pair cannot be renamed atomically)
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # ITK/DICOM world (LPS) <-> NIfTI world (RAS); its own inverse


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def check_paths(in_path: str | Path, out_path: str | Path) -> None:
    """InputError unless the output is a new place: not the input itself (symlinks resolved), not inside
    an input folder, and in a format we write. Runs before any reading, so nothing is written on refusal."""
    src, dst = Path(in_path), Path(out_path)
    if not src.exists():
        raise InputError(src, "file not found")
    real_src, real_dst = src.resolve(), dst.resolve()
    if real_dst == real_src or (dst.exists() and os.path.samefile(src, dst)):
        raise InputError(dst, f"output is the input ({src}); choose another output path")
    if src.is_dir() and real_src in real_dst.parents:
        raise InputError(dst, f"output lies inside the input DICOM folder {src}; choose another output path")
    if suffix_of(dst) not in NIFTI_SUFFIXES + ITK_WRITE_SUFFIXES:
        raise InputError(dst, f"unknown output format {suffix_of(dst) or '(no suffix)'!r}; "
                              f"use one of {', '.join(NIFTI_SUFFIXES + ITK_WRITE_SUFFIXES)}")


# ---------------------------------------------------------------------------- reading and writing
def read_dicom_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) or (X, Y, Z, T) float32 data and RAS affine of the DICOM images in one folder."""
    from mrisr.datasets.dsb import group_slices, read_frame, stack_cine

    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        raise InputError(folder, "no files in the DICOM folder")
    frames = [read_frame(f) for f in files]
    slices, _dropped = group_slices(frames)
    used = sum(len(s) for s in slices)
    if used < len(frames):  # other geometry, repeated locations: say so rather than silently
        print(f"mrisr upscale: warning: {folder}: {len(frames) - used} of {len(frames)} DICOM images left out "
              "(other pixel grid or orientation, repeated location, or unequal frame count)", file=sys.stderr)
    data, affine, _positions = stack_cine(slices)
    return (data[..., 0] if data.shape[-1] == 1 else data), affine


def itk_affine(image) -> np.ndarray:
    """RAS 4×4 affine of a SimpleITK image (2D, 3D, or 4D whose first three axes are spatial)."""
    dim = image.GetDimension()
    k = min(dim, 3)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:k, :k]
    lps = np.eye(4)
    lps[:k, :k] = direction @ np.diag(np.asarray(image.GetSpacing(), dtype=np.float64)[:k])
    lps[:k, 3] = np.asarray(image.GetOrigin(), dtype=np.float64)[:k]
    return LPS_RAS @ lps


def read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InputError(path, f"unreadable image ({str(err).strip().splitlines()[-1][:120]})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"{image.GetNumberOfComponentsPerPixel()}-component pixels; expected a scalar image")
    data = sitk.GetArrayFromImage(image).astype(np.float32)
    data = np.ascontiguousarray(data.transpose(tuple(range(data.ndim))[::-1]))  # ITK arrays are (..., y, x)
    if data.ndim == 3 and data.shape[2] == 1 and image.GetDimension() == 3:
        data = data[:, :, 0]  # one slice: 2D
    return data, itk_affine(image)


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(float32 data in the file's own voxel order, RAS affine) of a NIfTI, DICOM folder or ITK file."""
    if path.is_dir():
        data, affine = read_dicom_folder(path)
    elif suffix_of(path) in NIFTI_SUFFIXES:
        # canonical=False: keep the input's voxel layout, so "slice by slice" means its own slices.
        return read_nifti(path, ndim=(2, 3, 4), canonical=False)
    else:
        data, affine = read_itk(path)
    if data.ndim not in (2, 3, 4):
        raise InputError(path, f"expected a 2D, 3D or 4D image, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise InputError(path, f"contains {int((~np.isfinite(data)).sum())} NaN/Inf voxels")
    return data, affine


def write_image(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """NIfTI by nibabel, .nrrd/.mha by SimpleITK (LPS origin/spacing/direction from the RAS affine); atomic."""
    if suffix_of(path) in NIFTI_SUFFIXES:
        write_nifti(path, data, affine)
        return
    import SimpleITK as sitk

    data = np.asarray(data, dtype=np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(tuple(range(data.ndim))[::-1])))
    lps = LPS_RAS @ np.asarray(affine, dtype=np.float64)
    k = min(data.ndim, 3)
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = np.eye(data.ndim)
    direction[:k, :k] = (lps[:3, :3] / spacing)[:k, :k]
    image.SetSpacing([float(v) for v in spacing[:k]] + [1.0] * (data.ndim - k))
    image.SetOrigin([float(v) for v in lps[:k, 3]] + [0.0] * (data.ndim - k))
    image.SetDirection([float(v) for v in direction.ravel()])
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp))


def upscaled_grid(lr_shape: Sequence[int], axes: Sequence[int], scale: float, convention: str) -> Grid:
    """The grid of the output: round(n·r) samples on every listed axis, the others unchanged."""
    from mrisr.models.meta_srgan import output_size  # the arbitrary-scale models' own rule (imports torch)

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


def split_axis(ndim: int, axes: Sequence[int]) -> int | None:
    """The axis the work is split along for progress: the first one that is not upscaled (slices of a
    3D input for a 2D model, slices — not frames — of a cine, frames of a 4D input for a 3D model)."""
    rest = [a for a in range(ndim) if a not in axes]
    return rest[0] if rest else None


def super_resolve_in_parts(model, x: np.ndarray, grid: Grid, scale: float, device: str, batch_size: int,
                           step: Callable[[], None] = lambda: None) -> np.ndarray:
    """`super_resolve_any_scale`, one index of `split_axis` at a time (calling `step` after each)."""
    axis = split_axis(x.ndim, grid.axes)
    if axis is None:
        out = super_resolve_any_scale(model, x, grid, scale, device, batch_size)
        step()
        return out
    out = np.empty(grid.hr_shape, dtype=np.float32)
    part_lr = tuple(1 if a == axis else n for a, n in enumerate(grid.lr_shape))
    part_hr = tuple(1 if a == axis else n for a, n in enumerate(grid.hr_shape))
    part = Grid(convention=grid.convention, axes=grid.axes, hr_shape=part_hr, lr_shape=part_lr)
    for k in range(x.shape[axis]):
        index = tuple(slice(k, k + 1) if a == axis else slice(None) for a in range(x.ndim))
        out[index] = super_resolve_any_scale(model, x[index], part, scale, device, batch_size)
        step()
    return out


def upscale_file(model: str | Path, in_path: str | Path, out_path: str | Path, scale: float,
                 axes: Sequence[int] | None = None, device: str = "cpu", batch_size: int = 16,
                 normalize: bool = True, progress: bool | None = None) -> Grid:
    """Upscale one image (file or DICOM folder) by `scale` along `axes` (default: (0, 1) for 2D models,
    (0, 1, 2) for 3D); writes out_path atomically and returns the output grid.

    progress: a tqdm bar on stderr (None: only when stderr is a terminal)."""
    from tqdm import tqdm

    import mrisr.models.meta_srgan  # noqa: F401  registers meta_srgan / srgan for load_model
    from mrisr.models.io import load_model, read_model_record

    if float(scale) < 1.0:
        raise ValueError(f"scale must be >= 1, got {scale}")
    in_path, out_path = Path(in_path), Path(out_path)
    check_paths(in_path, out_path)
    path = model_file(model)
    record = read_model_record(path)
    net = load_model(path, device=device)
    axes = tuple(int(a) for a in (axes if axes is not None else SPATIAL_AXES[: int(record["dims"])]))
    x, affine = read_image(in_path)
    check_request(path, record, net, float(scale), axes, x.ndim)
    grid = upscaled_grid(x.shape, axes, float(scale), str(record["grid_convention"]))
    lo, hi = intensity_window(x, in_path) if normalize else (0.0, 1.0)
    axis = split_axis(x.ndim, axes)
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(total=1 if axis is None else x.shape[axis], disable=not show, unit="slice", file=sys.stderr,
              desc=f"upscale ×{format_scale(scale)}", leave=False) as bar:
        sr = super_resolve_in_parts(net, (x - lo) / (hi - lo), grid, float(scale), device, batch_size,
                                    step=lambda: bar.update(1))
    write_image(out_path, sr * (hi - lo) + lo, upscaled_affine(affine, grid))
    return grid
