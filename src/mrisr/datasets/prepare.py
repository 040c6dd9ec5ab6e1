"""Raw series -> the canonical prepared form (docs/architecture.md: Prepared series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrisr.datasets.base import Reader, Series
from mrisr.errors import InputError
from mrisr.io import write_json, write_nifti
from mrisr.io.nifti import spacing_of


def percentile_scale(data: np.ndarray, percentiles: tuple[float, float]) -> tuple[np.ndarray, dict]:
    """x -> clip((x − p_lo)/(p_hi − p_lo), 0, 1) over the whole series (all frames):
    robust to a few hot voxels, and the same rule for every source."""
    p_lo, p_hi = percentiles
    v_lo, v_hi = (float(v) for v in np.percentile(data, [p_lo, p_hi]))
    if not v_hi > v_lo:
        raise ValueError(f"constant image between percentiles {p_lo} and {p_hi} (value {v_lo})")
    out = np.clip((data - v_lo) / (v_hi - v_lo), 0.0, 1.0).astype(np.float32)
    return out, {"rule": "percentile_clip", "p_lo": p_lo, "p_hi": p_hi, "v_lo": v_lo, "v_hi": v_hi}


def centre_crop(data: np.ndarray, affine: np.ndarray, axes: tuple[int, ...], multiple: int):
    """Centre-crop the listed axes to a multiple of `multiple` (integer scales then divide
    every degraded axis exactly); the affine moves with the crop."""
    slices = [slice(None)] * data.ndim
    start = np.zeros(3)
    for a in axes:
        n = data.shape[a]
        keep = n - n % multiple
        if keep == 0:
            raise ValueError(f"axis {a} has {n} voxels, fewer than crop_multiple {multiple}")
        lo = (n - keep) // 2
        slices[a] = slice(lo, lo + keep)
        start[a] = lo
    new_affine = affine.copy()
    new_affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    return data[tuple(slices)], new_affine


def prepare_series(series: Series, percentiles, crop_multiple: int, crop_axes) -> tuple[np.ndarray, np.ndarray, dict]:
    before = list(series.data.shape)
    data, affine = centre_crop(series.data, series.affine, tuple(crop_axes), crop_multiple)
    data, intensity = percentile_scale(data, tuple(percentiles))
    side = {"shape": list(data.shape), "spacing": list(spacing_of(affine)), "intensity": intensity,
            "crop": {"axes": list(crop_axes), "multiple": crop_multiple, "before": before, "after": list(data.shape)}}
    return data, affine, side


def prepare_subject(reader: Reader, raw_dir: Path, subject: str, out_dir: Path, dataset: str,
                    percentiles: tuple[float, float] = (0.5, 99.5), crop_multiple: int = 12,
                    crop_axes: tuple[int, ...] = (0, 1)) -> list[Path]:
    """Write out_dir/{series}.nii.gz + .json for every series of one subject.

    All or nothing: every series is prepared (and so checked) before the first file is
    written, and a write that fails (disk full) removes the files this call wrote, so a
    failed subject never leaves some of its series behind."""
    series = reader.load(Path(raw_dir), subject)
    first = series[0]
    for s in series[1:]:  # paired contrasts must share the grid voxel for voxel
        if s.data.shape != first.data.shape or not np.allclose(s.affine, first.affine, atol=1e-3):
            raise InputError(s.meta.get("source", subject),
                             f"grid {s.data.shape} does not match {first.name} {first.data.shape} "
                             f"({first.meta.get('source')}): contrasts must be co-registered")
    prepared = []
    for s in series:
        try:
            data, affine, side = prepare_series(s, percentiles, crop_multiple, crop_axes)
        except ValueError as err:
            raise InputError(s.meta.get("source", subject), str(err)) from None
        side.update({"dataset": dataset, "subject": subject, "series": s.name,
                     **{k: v for k, v in s.meta.items()}})
        prepared.append((s.name, data, affine, side))
    written: list[Path] = []
    try:
        for name, data, affine, side in prepared:
            path = Path(out_dir) / f"{name}.nii.gz"
            written.append(path)
            write_nifti(path, data, affine)
            written.append(Path(out_dir) / f"{name}.json")
            write_json(Path(out_dir) / f"{name}.json", side)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return [Path(out_dir) / f"{name}.nii.gz" for name, *_ in prepared]
