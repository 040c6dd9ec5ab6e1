"""Synthetic cine written in the Kaggle DSB 2015 layout (DICOM), for the `dsb` reader.

The cine generator's subject (synth_cine) is written as {id}/study/sax_{n}/IM-{series}-{frame}.dcm:
one series per short-axis slice, int16 pixels, the geometry tags a scanner writes
(ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness,
SliceLocation) and TriggerTime per frame. What the reader must cope with is built in:
the plane is double-oblique, sax numbers run against the slice order, and a long-axis
2ch_* folder (to be ignored) sits beside them. ED/ES are not written anywhere (DSB has
none); the generator's subject (same seed) holds them, for tests of the detection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mrisr.datasets.synth_cine import CineSubject
from mrisr.io import atomic_path

RR_MS = 900.0  # one cardiac cycle
UID_ROOT = "1.2.826.0.1.3680043.8.498"
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def oblique_rotation(angle_deg: float = 25.0, axis=(1.0, 1.0, 0.3)) -> np.ndarray:
    """A fixed double-oblique rotation (Rodrigues), as a short-axis plane is."""
    k = np.asarray(axis, dtype=np.float64)
    k /= np.linalg.norm(k)
    a = np.deg2rad(angle_deg)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def dsb_affine(s: CineSubject) -> np.ndarray:
    """The RAS affine the DICOM geometry will encode: the cine's, rotated obliquely."""
    rot = np.eye(4)
    rot[:3, :3] = oblique_rotation()
    return rot @ s.affine


def _ds(values) -> str:
    """DICOM decimal strings (≤ 16 characters each)."""
    return "\\".join(f"{float(v):.8g}" for v in values)


def _uid(*parts: int) -> str:
    return ".".join([UID_ROOT, *map(str, parts)])


def write_sax_series(folder: Path, frames: np.ndarray, lps: np.ndarray, k: float, series: int,
                  tags: dict[str, str]) -> None:
    """frames: (X, Y, T) of one slice at voxel index k along the third affine axis."""
    row_dir = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    col_dir = lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    position = lps[:3, :3] @ [0.0, 0.0, k] + lps[:3, 3]
    common = {
        **tags,
        "0020|000e": _uid(int(tags["0010|0020"]), series),
        "0020|0011": str(series),
        "0020|0037": _ds(np.r_[row_dir, col_dir]),
        "0028|0030": _ds([np.linalg.norm(lps[:3, 1]), np.linalg.norm(lps[:3, 0])]),  # row, column spacing
        "0018|0050": _ds([np.linalg.norm(lps[:3, 2])]),
        "0020|0032": _ds(position),
        "0020|1041": _ds([position @ np.cross(row_dir, col_dir)]),
    }
    n_frames = frames.shape[-1]
    for t in range(n_frames):
        pixels = np.clip(np.round(frames[..., t].T), -32768, 32767).astype(np.int16)  # (rows, cols)
        image = sitk.GetImageFromArray(pixels)
        image.SetSpacing((float(np.linalg.norm(lps[:3, 0])), float(np.linalg.norm(lps[:3, 1]))))  # GDCM writes these
        for key, value in {**common, "0020|0013": str(t + 1), "0018|1060": _ds([t * RR_MS / n_frames])}.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        with atomic_path(folder / f"IM-{series:04d}-{t + 1:04d}.dcm") as tmp:
            writer.SetFileName(str(tmp))
            writer.Execute(image)


def write_dsb_subject(out_dir: Path, subject: str, s: CineSubject) -> None:
    """DSB layout: {subject}/study/sax_{n}/ per slice (+ one 2ch_ folder the reader ignores)."""
    study = Path(out_dir) / subject / "study"
    lps = LPS_FROM_RAS @ dsb_affine(s)
    nz = s.image.shape[2]
    tags = {"0008|0060": "MR", "0010|0020": subject, "0020|000d": _uid(int(subject)), "0008|103e": "sax"}
    for k in range(nz):
        n = 5 + 2 * (nz - 1 - k)  # numbered against the slice order, as DSB folders often are
        write_sax_series(study / f"sax_{n}", s.image[:, :, k], lps, float(k), 100 + n, tags)
    # A long-axis view: same pixels on a perpendicular plane; the sax reader must skip it.
    la = lps.copy()
    la[:3, [1, 2]] = lps[:3, [2, 1]]
    write_sax_series(study / "2ch_1", s.image[:, :, nz // 2], la, 0.0, 99, {**tags, "0008|103e": "2ch"})
