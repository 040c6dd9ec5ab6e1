"""Kaggle Second Annual Data Science Bowl (2015) short-axis cines, read from DICOM.

Layout: {id}/study/sax_{n}/IM-{series}-{instance}.dcm — one folder per short-axis slice
location, ~30 frames each (2ch_*/4ch_* long-axis folders are ignored). Read with
SimpleITK (GDCM); per file the header gives ImagePositionPatient, ImageOrientationPatient,
PixelSpacing, TriggerTime, InstanceNumber and SeriesNumber.

Assembly into one (X, Y, Z, T) cine:
* frames of a slice are ordered by (TriggerTime, InstanceNumber);
* slices are grouped by location (position along the plane normal, to 0.1 mm) and stacked
  by that position, not by folder number (sax numbers are not in slice order);
* a location acquired more than once keeps its latest series (highest SeriesNumber) —
  DSB studies repeat slices that were spoiled by breathing;
* slices whose geometry (pixel grid, spacing, orientation) or frame count differs from the
  majority are dropped and listed in the sidecar (`dropped`): a cine must be one grid;
* the affine uses the median slice gap (DSB gaps are often uneven; the exact positions go
  to the sidecar as `slice_positions_mm`).

ED/ES are not given, so they are detected (`detect_ed_es`, documented there) and written
to the sidecar (0-based) with the curve they came from.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.filters import threshold_otsu

from mrisr.datasets.base import Series, find_subject_dirs, subject_dir
from mrisr.errors import InputError
from mrisr.io import to_ras

SAX = re.compile(r"^sax_\d+$")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
POSITION_TOL_MM = 0.1

TAGS = {
    "position": "0020|0032",
    "orientation": "0020|0037",
    "pixel_spacing": "0028|0030",
    "trigger": "0018|1060",
    "instance": "0020|0013",
    "series": "0020|0011",
    "thickness": "0018|0050",
}


@dataclass
class Frame:
    """One DICOM image of a cine with the header fields that place it in space and time."""

    path: Path
    pixels: np.ndarray  # (rows, cols) float32
    position: np.ndarray  # ImagePositionPatient, LPS mm
    row_dir: np.ndarray  # direction of increasing column index (IOP[0:3])
    col_dir: np.ndarray  # direction of increasing row index (IOP[3:6])
    spacing: tuple[float, float]  # (between columns, between rows) mm
    trigger: float
    instance: int
    series: int
    thickness: float

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    def geometry_key(self) -> tuple:
        """Frames that can share one cine grid have equal keys."""
        return (self.pixels.shape, tuple(np.round(self.spacing, 3)),
                tuple(np.round(np.r_[self.row_dir, self.col_dir], 3)))


def _numbers(text: str, n: int, path: Path, tag: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.strip().split("\\")], dtype=np.float64)
    except ValueError:
        values = np.array([])
    if values.size != n or not np.isfinite(values).all():
        raise InputError(path, f"DICOM tag {tag}: expected {n} numbers, got {text.strip()!r}")
    return values


def read_frame(path: Path) -> Frame:
    """One DICOM file -> Frame; an unreadable file or a missing geometry tag is an InputError."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputError(path, f"unreadable DICOM ({str(err).strip().splitlines()[-1][:120]})") from None

    def tag(name: str, required: bool = True) -> str | None:
        key = TAGS[name]
        if image.HasMetaDataKey(key) and image.GetMetaData(key).strip():
            return image.GetMetaData(key)
        if required:
            raise InputError(path, f"DICOM tag {key} ({name}) missing")
        return None

    pixels = sitk.GetArrayFromImage(image).astype(np.float32)
    if pixels.ndim == 3 and pixels.shape[0] == 1:
        pixels = pixels[0]
    if pixels.ndim != 2:
        raise InputError(path, f"expected one 2D image, got pixel array {pixels.shape}")
    iop = _numbers(tag("orientation"), 6, path, TAGS["orientation"])
    row_dir, col_dir = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    dr, dc = _numbers(tag("pixel_spacing"), 2, path, TAGS["pixel_spacing"])  # DICOM order: row, column
    trigger = tag("trigger", required=False)
    instance = tag("instance", required=False)
    series = tag("series", required=False)
    thickness = tag("thickness", required=False)
    return Frame(
        path=path, pixels=pixels,
        position=_numbers(tag("position"), 3, path, TAGS["position"]),
        row_dir=row_dir, col_dir=col_dir, spacing=(float(dc), float(dr)),
        trigger=float(trigger) if trigger else float("nan"),
        instance=int(float(instance)) if instance else 0,
        series=int(float(series)) if series else 0,
        thickness=float(thickness) if thickness else float("nan"),
    )


def sax_folders(study: Path) -> list[Path]:
    return sorted(p for p in study.iterdir() if p.is_dir() and SAX.match(p.name))


def read_sax_frames(study: Path) -> list[Frame]:
    frames = []
    for folder in sax_folders(study):
        frames.extend(read_frame(f) for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith("."))
    if not frames:
        raise InputError(study, "no DICOM images in the sax_* folders")
    return frames


def _majority(frames: list[Frame]) -> tuple[list[Frame], list[Frame]]:
    """Frames on the most common grid, and the rest."""
    common, _ = Counter(f.geometry_key() for f in frames).most_common(1)[0]
    return [f for f in frames if f.geometry_key() == common], [f for f in frames if f.geometry_key() != common]


def _time_key(f: Frame) -> tuple[float, int]:
    """Cardiac phase order: TriggerTime, then InstanceNumber (alone when TriggerTime is absent)."""
    return (f.trigger if np.isfinite(f.trigger) else float("-inf"), f.instance)


def group_slices(frames: list[Frame]) -> tuple[list[list[Frame]], list[str]]:
    """Frames -> time-ordered slices sorted by position along the normal, plus dropped
    folder names (other geometry, repeated locations, odd frame counts)."""
    kept, odd = _majority(frames)
    dropped = {f.path.parent.name for f in odd}
    normal = kept[0].normal
    by_location: dict[int, list[Frame]] = {}
    for f in kept:
        by_location.setdefault(int(round(float(f.position @ normal) / POSITION_TOL_MM)), []).append(f)
    slices = []
    for loc in sorted(by_location):
        group = by_location[loc]
        latest = max(f.series for f in group)
        dropped |= {f.path.parent.name for f in group if f.series != latest}
        series = sorted((f for f in group if f.series == latest), key=_time_key)
        slices.append(series)
    n_frames = Counter(len(s) for s in slices).most_common(1)[0][0]
    dropped |= {s[0].path.parent.name for s in slices if len(s) != n_frames}
    slices = [s for s in slices if len(s) == n_frames]
    return slices, sorted(dropped - {f.path.parent.name for s in slices for f in s})


def stack_cine(slices: list[list[Frame]]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(X, Y, Z, T) data and its RAS affine (not yet canonical), plus slice positions (mm
    along the normal)."""
    first = slices[0][0]
    normal = first.normal
    positions = [float(s[0].position @ normal) for s in slices]
    gaps = np.diff(positions)
    dz = float(np.median(gaps)) if gaps.size else (first.thickness if np.isfinite(first.thickness) else 1.0)
    data = np.stack([np.stack([f.pixels.T for f in s], axis=-1) for s in slices], axis=2)  # (cols, rows, Z, T)
    lps = np.eye(4)
    lps[:3, 0] = first.row_dir * first.spacing[0]
    lps[:3, 1] = first.col_dir * first.spacing[1]
    lps[:3, 2] = normal * dz
    lps[:3, 3] = first.position
    return data.astype(np.float32), LPS_TO_RAS @ lps, positions


def heart_mask(cine: np.ndarray) -> np.ndarray:
    """(X, Y) mask around the moving heart: the blob of large temporal std (averaged over
    slices, smoothed, above 30 % of its peak over the median floor), holes filled, grown
    by 5 % of the field of view so that the whole blood pool is inside."""
    std = cine.std(axis=-1).mean(axis=2)
    size = min(std.shape)
    smooth = ndimage.gaussian_filter(std, sigma=max(1.0, 0.03 * size))
    smooth = smooth - np.median(smooth)
    if smooth.max() <= 0:
        return np.ones(std.shape, dtype=bool)
    labels, n = ndimage.label(smooth > 0.3 * smooth.max())
    largest = labels == (1 + int(np.argmax(ndimage.sum(np.ones_like(smooth), labels, range(1, n + 1)))))
    filled = ndimage.binary_fill_holes(largest)
    return ndimage.binary_dilation(filled, iterations=max(1, int(round(0.05 * size))))


def detect_ed_es(cine: np.ndarray) -> tuple[int, int, list[float]]:
    """End-diastole and end-systole of a short-axis cine (X, Y, Z, T), 0-based.

    Method (blood-pool size over the cycle): bright blood is the only bright thing whose
    amount changes over the cycle, so inside the heart region (`heart_mask`) the blood
    volume is measured per frame. An Otsu threshold over the region (all slices and frames)
    splits it into dark (myocardium, lung) and bright (blood, fat) classes; each voxel counts
    as blood in proportion to where it lies between the two class means (a partial-volume
    fraction, clipped to [0, 1]), which avoids the ties of a hard count. ED = the frame of
    the largest summed fraction, ES = the smallest. Near ED the volume plateaus (diastasis),
    so ED can sit one frame from a manual label; ES, a sharp minimum, does not.
    """
    x = np.asarray(cine, dtype=np.float64)
    if x.ndim != 4 or x.shape[-1] < 2:
        raise ValueError(f"need a cine (X, Y, Z, T) with T >= 2, got shape {x.shape}")
    region = x[heart_mask(x)]  # (pixels in the mask, Z, T)
    if np.ptp(region) == 0:
        raise ValueError("constant image: no blood pool to measure")
    threshold = threshold_otsu(region)
    dark, bright = region[region <= threshold].mean(), region[region > threshold].mean()
    curve = np.clip((region - dark) / (bright - dark), 0.0, 1.0).sum(axis=(0, 1))
    ed, es = int(np.argmax(curve)), int(np.argmin(curve))
    if not curve[ed] > curve[es]:
        raise ValueError("blood-pool size does not change over the cycle: ED/ES undetectable")
    return ed, es, [round(float(v), 3) for v in curve]


class DsbReader:
    """Kaggle DSB 2015: {id}/study/sax_*/ DICOM cines -> one 4D cine with detected ED/ES."""

    @staticmethod
    def _is_subject(d: Path) -> bool:
        study = d / "study"
        return study.is_dir() and any(SAX.match(p.name) and p.is_dir() for p in study.iterdir())

    def list_subjects(self, raw_dir: Path) -> list[str]:
        return list(find_subject_dirs(raw_dir, self._is_subject))

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        study = subject_dir(raw_dir, subject, self._is_subject) / "study"
        slices, dropped = group_slices(read_sax_frames(study))
        data, affine, positions = stack_cine(slices)
        img = to_ras(nib.Nifti1Image(data, affine))
        data, affine = np.asarray(img.dataobj, dtype=np.float32), img.affine.astype(np.float64)
        try:
            ed, es, curve = detect_ed_es(data)
        except ValueError as err:
            raise InputError(study, f"ED/ES detection failed: {err}") from None
        frames = data.shape[3]
        trigger = [f.trigger for f in slices[0]]
        meta = {
            "source": str(study), "contrast": "cine", "frames": frames, "ed": ed, "es": es,
            "ed_es": {"method": "blood_pool_size", "curve": curve},
            "slice_positions_mm": positions, "dropped": dropped,
            "trigger_times_ms": [t if np.isfinite(t) else None for t in trigger],
        }
        return [Series("cine", data, affine, meta)]
