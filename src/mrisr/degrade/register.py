"""Rigid registration (SimpleITK): Euler3D, Mattes mutual information, multi-resolution.

Used by the ts_rcan_registered benchmark of UDEAN: the moved HR volumes (mrisr.degrade.motion)
are registered back onto their subject's LR volume (cubic-upsampled onto the HR grid) before
supervised training. Mutual information rather than a squared difference because the fixed
image is blurrier than the moving one (different "contrast" in the MI sense).

Arrays are RAS (X, Y, Z) as nibabel gives them; SimpleITK sees the same axes (its x index =
numpy axis 0), as in mrisr.degrade.motion. The transform's centre is set to the volume centre
(n−1)/2·spacing, the centre apply_motion rotates about, so the returned parameters are directly
comparable to the drawn motion: registering (fixed=original, moving=moved) recovers
rot_x_deg, rot_z_deg, trans_x_vox, trans_z_vox of a rigid motion (fixed point → moving point).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mrisr.degrade.pipeline import sidecar_path
from mrisr.errors import InputError
from mrisr.grid import Grid, cubic_upsample
from mrisr.io import read_json, read_nifti, write_json, write_nifti
from mrisr.io.nifti import spacing_of


@dataclass(frozen=True)
class RegistrationSettings:
    """Optimiser and pyramid. The metric samples a fixed, seeded random subset of voxels, and every
    ITK filter of the registration runs on `threads` threads (1), so the same inputs give the same
    result bit for bit."""

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_vox: tuple[float, ...] = (2.0, 1.0, 0.0)
    histogram_bins: int = 50
    sampling_fraction: float = 0.25
    iterations: int = 200
    learning_rate: float = 1.0
    min_step: float = 1e-4
    seed: int = 0
    threads: int = 1

    def check(self) -> None:
        if len(self.shrink_factors) != len(self.smoothing_sigmas_vox) or not self.shrink_factors:
            raise ValueError("shrink_factors and smoothing_sigmas_vox need the same, non-zero length")
        if self.seed < 0 or self.threads < 1:
            raise ValueError(f"seed must be >= 0 and threads >= 1, got {self.seed}, {self.threads}")
        if not 0.0 < self.sampling_fraction <= 1.0:
            raise ValueError(f"sampling_fraction must lie in (0, 1], got {self.sampling_fraction}")


def to_sitk(volume: np.ndarray, spacing: tuple[float, ...]) -> sitk.Image:
    """numpy (X, Y, Z) → SimpleITK image with origin 0 and the given spacing (float32)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume, dtype=np.float32).T))
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def centred_euler(shape: tuple[int, ...], spacing: tuple[float, ...]) -> sitk.Euler3DTransform:
    """Identity Euler3D about the volume centre (the centre mrisr.degrade.motion uses)."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter([(n - 1) / 2.0 * s for n, s in zip(shape, spacing)])
    return transform


@contextmanager
def itk_threads(n: int) -> Iterator[None]:
    """ITK's global default thread count set to n for the block, then restored.

    ImageRegistrationMethod.SetNumberOfThreads reaches the metric only: the filters it builds
    inside (the multi-resolution pyramid's smoothing and shrinking) take the global default.
    With more than one thread the fitted angles differed by ~1e-7° between two runs on the same
    files (tests/test_batch.py failed 5 of 20 runs); with one, 20 of 20 agreed."""
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def registration_method(settings: RegistrationSettings) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(settings.threads)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # SimpleITK reads seed 0 as "seed from the wall clock" (sitkWallClock): shift by one.
    reg.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=settings.learning_rate, minStep=settings.min_step,
                                                 numberOfIterations=settings.iterations,
                                                 gradientMagnitudeTolerance=1e-8)
    # Rotations (radians) and translations (mm) on one footing: one unit moves a voxel ~1 mm.
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    reg.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas_vox))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def resample_moving(moving: sitk.Image, fixed: sitk.Image, transform: sitk.Transform,
                    lo: float, hi: float) -> np.ndarray:
    """Moving resampled onto the fixed grid (cubic B-spline, clipped to the moving range as the
    B-spline overshoots at edges; outside filled with the minimum, as apply_motion does)."""
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(fixed)
    resampler.SetTransform(transform)
    resampler.SetInterpolator(sitk.sitkBSpline)
    resampler.SetDefaultPixelValue(lo)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    out = sitk.GetArrayFromImage(resampler.Execute(moving)).T
    return np.clip(out, lo, hi).astype(np.float32)


def transform_params(transform: sitk.Euler3DTransform, spacing: tuple[float, ...]) -> dict:
    """Angles (degrees) and translation (mm and voxels) of the fitted fixed → moving transform."""
    rx, ry, rz = (float(np.rad2deg(a)) for a in (transform.GetAngleX(), transform.GetAngleY(), transform.GetAngleZ()))
    t = [float(v) for v in transform.GetTranslation()]
    return {
        "rot_x_deg": rx, "rot_y_deg": ry, "rot_z_deg": rz,
        "trans_x_vox": t[0] / spacing[0], "trans_y_vox": t[1] / spacing[1], "trans_z_vox": t[2] / spacing[2],
        "trans_mm": t,
        "centre_mm": [float(c) for c in transform.GetCenter()],
    }


def register_rigid(fixed: np.ndarray, moving: np.ndarray, spacing: tuple[float, float, float],
                   settings: RegistrationSettings | None = None) -> tuple[np.ndarray, dict]:
    """Rigidly register `moving` onto `fixed` (same grid, 3D, spacing in mm).

    Returns (moving resampled onto the fixed grid, params): Euler angles in degrees, translation
    in voxels and mm of the fixed → moving point map about the volume centre, plus the final
    metric value, the optimiser's stop condition and the settings used.
    """
    settings = settings or RegistrationSettings()
    settings.check()
    fixed = np.asarray(fixed, dtype=np.float32)
    moving = np.asarray(moving, dtype=np.float32)
    if fixed.ndim != 3 or fixed.shape != moving.shape:
        raise ValueError(f"register_rigid needs two 3D volumes on one grid, got {fixed.shape} and {moving.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive values, got {spacing}")
    fixed_img, moving_img = to_sitk(fixed, spacing), to_sitk(moving, spacing)
    reg = registration_method(settings)
    reg.SetInitialTransform(centred_euler(fixed.shape, spacing), inPlace=False)
    with itk_threads(settings.threads):
        fitted = _as_euler(reg.Execute(fixed_img, moving_img))
    aligned = resample_moving(moving_img, fixed_img, fitted, float(moving.min()), float(moving.max()))
    params = {**transform_params(fitted, spacing), "metric": float(reg.GetMetricValue()),
              "stop": reg.GetOptimizerStopConditionDescription(), "settings": asdict(settings)}
    return aligned, params


def _as_euler(transform: sitk.Transform) -> sitk.Euler3DTransform:
    """The Euler3D inside the result of Execute (a CompositeTransform wrapping it in recent SimpleITK)."""
    if isinstance(transform, sitk.CompositeTransform):
        transform = transform.GetNthTransform(transform.GetNumberOfTransforms() - 1)
    return sitk.Euler3DTransform(transform)


def fixed_from_lr(lr_path: Path) -> tuple[np.ndarray, Grid]:
    """The LR volume cubic-upsampled onto its HR grid (from the grid in its sidecar)."""
    side_path = sidecar_path(lr_path)
    side = read_json(side_path)
    try:
        grid = Grid.from_json(side["grid"])
    except KeyError as err:
        raise InputError(side_path, f"missing key {err}") from None
    lr, _ = read_nifti(lr_path, ndim=3, canonical=False)
    if tuple(lr.shape) != grid.lr_shape:
        raise InputError(lr_path, f"shape {lr.shape} differs from the sidecar's lr_shape {grid.lr_shape}")
    return cubic_upsample(lr, grid), grid


def register_to_lr_file(lr_path: Path, moving_path: Path, out_path: Path,
                        settings: RegistrationSettings | None = None) -> dict:
    """Register a moved HR volume onto its subject's LR volume (cubic-upsampled to the HR grid);
    write the aligned HR NIfTI (the moving file's affine), then a sidecar with the parameters
    last. Returns the parameters."""
    fixed, grid = fixed_from_lr(Path(lr_path))
    moving, affine = read_nifti(moving_path, ndim=3, canonical=False)
    if tuple(moving.shape) != grid.hr_shape:
        raise InputError(moving_path, f"shape {moving.shape} differs from the LR grid's HR shape {grid.hr_shape}")
    aligned, params = register_rigid(fixed, moving, spacing_of(affine), settings)
    write_nifti(out_path, aligned, affine)
    write_json(sidecar_path(out_path), {"fixed_lr": str(lr_path), "moving": str(moving_path), "params": params})
    return params
