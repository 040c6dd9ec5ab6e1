"""Motion simulation after the UDEAN protocol: small rigid motion plus a
shrinking deformation, resampled with SimpleITK.

Drawn per subject: rotations about Z and X, translations along right-left (x)
and head-foot (z), shrinking along anterior-posterior (y) and right-left (x).
Arrays are RAS (X, Y, Z) as nibabel gives them; SimpleITK sees the same axes
(its x index = numpy axis 0), so "x" means numpy axis 0 throughout.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mrisr.degrade.pipeline import meta_fields, sidecar_path
from mrisr.io import read_nifti, write_json, write_nifti
from mrisr.io.nifti import spacing_of

STAGE_ID_MOTION = 5  # stage id in the RNG seed tuple (seed, stage, subject)
DEFAULT_RANGES: dict[str, tuple[float, float]] = {"rot_deg": (0.0, 2.0), "trans_vox": (0.0, 2.0), "shrink_vox": (0.0, 2.0)}
FOREGROUND_FRACTION = 0.05  # of the intensity range: what counts as object when measuring its extent


def resolve_ranges(ranges: dict | None) -> dict[str, tuple[float, float]]:
    """Defaults overlaid with `ranges`; each a [lo, hi] magnitude range with 0 ≤ lo ≤ hi."""
    ranges = dict(ranges or {})
    unknown = set(ranges) - set(DEFAULT_RANGES)
    if unknown:
        raise ValueError(f"unknown motion ranges {sorted(unknown)}; expected {sorted(DEFAULT_RANGES)}")
    out = {}
    for key, default in DEFAULT_RANGES.items():
        lo, hi = (float(v) for v in ranges.get(key, default))
        if not 0.0 <= lo <= hi:
            raise ValueError(f"motion range {key} must satisfy 0 <= lo <= hi, got {[lo, hi]}")
        out[key] = (lo, hi)
    return out


def motion_rng(seed: int, subject: str) -> np.random.Generator:
    """Generator for one subject: crc32 is stable across runs (unlike hash())."""
    return np.random.default_rng([int(seed), STAGE_ID_MOTION, zlib.crc32(subject.encode("utf-8"))])


def _signed(rng: np.random.Generator, lo: float, hi: float) -> float:
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return float(sign * rng.uniform(lo, hi))


def draw_motion(rng: np.random.Generator, ranges: dict) -> dict:
    """Draw one subject's motion: magnitudes uniform in range; rotations and
    translations get a random sign, shrinks are always shrinks (≥ 0)."""
    r = resolve_ranges(ranges)
    return {
        "rot_z_deg": _signed(rng, *r["rot_deg"]),
        "rot_x_deg": _signed(rng, *r["rot_deg"]),
        "trans_x_vox": _signed(rng, *r["trans_vox"]),
        "trans_z_vox": _signed(rng, *r["trans_vox"]),
        "shrink_y_vox": float(rng.uniform(*r["shrink_vox"])),
        "shrink_x_vox": float(rng.uniform(*r["shrink_vox"])),
    }


def object_extent(volume: np.ndarray, axis: int) -> int:
    """Voxels spanned along `axis` by the object (intensity above 5% of the
    range); the whole field of view when nothing stands out."""
    lo, hi = float(volume.min()), float(volume.max())
    if hi <= lo:
        return volume.shape[axis]
    mask = volume > lo + FOREGROUND_FRACTION * (hi - lo)
    other = tuple(a for a in range(volume.ndim) if a != axis)
    hits = np.flatnonzero(mask.any(axis=other))
    return int(hits[-1] - hits[0] + 1)


def shrink_factor(extent: int, shrink_vox: float) -> float:
    """Scale that shortens an extent of `extent` voxels by `shrink_vox` voxels."""
    return max(0.5, 1.0 - shrink_vox / max(extent, 1))


def motion_transform(shape: tuple[int, ...], spacing: tuple[float, ...], params: dict, factors: tuple[float, ...]):
    """Resampling transform (output point → input point) of the forward motion
    'shrink about the centre, then rotate and translate the object'."""
    centre = [(n - 1) / 2.0 * s for n, s in zip(shape, spacing)]
    rigid = sitk.Euler3DTransform()
    rigid.SetCenter(centre)
    rigid.SetRotation(np.deg2rad(params["rot_x_deg"]), 0.0, np.deg2rad(params["rot_z_deg"]))
    rigid.SetTranslation((params["trans_x_vox"] * spacing[0], 0.0, params["trans_z_vox"] * spacing[2]))
    shrink = sitk.ScaleTransform(3, [1.0 / f for f in factors])  # inverse of the forward shrink
    shrink.SetCenter(centre)
    composite = sitk.CompositeTransform(3)
    composite.AddTransform(shrink)  # applied last
    composite.AddTransform(rigid.GetInverse())  # applied first to output points
    return composite


def apply_motion(volume: np.ndarray, spacing: tuple[float, float, float], params: dict) -> np.ndarray:
    """Resample a 3D volume under the drawn motion: rigid Euler3D about the
    volume centre plus a scaling toward the centre that shortens the object's
    extent by shrink_{x,y}_vox voxels; cubic B-spline, clipped to the input
    range (B-splines overshoot at edges), background filled with the minimum."""
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"apply_motion needs a 3D volume, got shape {volume.shape}")
    spacing = tuple(float(s) for s in spacing)
    factors = (
        shrink_factor(object_extent(volume, 0), params["shrink_x_vox"]),
        shrink_factor(object_extent(volume, 1), params["shrink_y_vox"]),
        1.0,
    )
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.T))  # sitk (x,y,z) = numpy axes (0,1,2)
    image.SetSpacing(spacing)
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(image)
    resampler.SetTransform(motion_transform(volume.shape, spacing, params, factors))
    resampler.SetInterpolator(sitk.sitkBSpline)
    resampler.SetDefaultPixelValue(float(volume.min()))
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    moved = sitk.GetArrayFromImage(resampler.Execute(image)).T
    return np.clip(moved, volume.min(), volume.max()).astype(np.float32)


def motion_file(hr_path: Path, out_path: Path, ranges: dict, seed: int, subject: str, meta: dict) -> None:
    """Move one prepared 3D series; write the moved NIfTI, then the sidecar with
    the drawn parameters last."""
    meta_fields(meta, ("dataset", "series"))  # fail before any work
    volume, affine = read_nifti(hr_path, ndim=3, canonical=False)
    resolved = resolve_ranges(ranges)
    params = draw_motion(motion_rng(seed, subject), resolved)
    moved = apply_motion(volume, spacing_of(affine), params)
    write_nifti(out_path, moved, affine)
    write_json(
        sidecar_path(out_path),
        {
            **meta_fields(meta, ("dataset", "series")),
            "subject": subject,
            "hr_source": str(hr_path),
            "seed": int(seed),
            "ranges": {k: list(v) for k, v in resolved.items()},
            "params": params,
        },
    )
