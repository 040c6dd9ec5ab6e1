"""Readers of real source layouts (also what reads the built-in data): ACDC, BraTS, HCP here;
DSB 2015 (dsb.py), fastMRI knee (fastmri.py), DIV2K natural images (div2k.py) and the user's
own folder (nifti_folder.py).

Each returns canonical RAS float32 Series; every problem is an InputError naming the file.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np

from mrisr.datasets.base import Series, candidate_dirs, check_name, find_subject_dirs, subject_dir
from mrisr.errors import InputError
from mrisr.io import read_nifti


class AcdcReader:
    """ACDC: patientNNN/ with patientNNN_4d.nii.gz (X,Y,Z,T) and Info.cfg (ED/ES 1-based)."""

    @staticmethod
    def _is_subject(d: Path) -> bool:
        return (d / "Info.cfg").is_file()

    def list_subjects(self, raw_dir: Path) -> list[str]:
        return list(find_subject_dirs(raw_dir, self._is_subject))

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        folder = subject_dir(raw_dir, subject, self._is_subject)
        info = read_info_cfg(folder / "Info.cfg")
        path = folder / f"{subject}_4d.nii.gz"
        data, affine = read_nifti(path, ndim=4)
        frames = data.shape[3]
        ed, es = info["ED"], info["ES"]
        for name, v in (("ED", ed), ("ES", es)):
            if not 1 <= v <= frames:
                raise InputError(folder / "Info.cfg", f"{name}: {v} outside the cine's frames 1..{frames}")
        if ed == es:
            raise InputError(folder / "Info.cfg", f"ED and ES are the same frame ({ed})")
        if isinstance(info.get("NbFrame"), float) and int(info["NbFrame"]) != frames:
            raise InputError(folder / "Info.cfg", f"NbFrame: {int(info['NbFrame'])} but {path.name} has {frames} frames")
        meta = {"source": str(path), "contrast": "cine", "frames": frames, "ed": ed - 1, "es": es - 1,
                "info": {k: v for k, v in info.items() if k not in ("ED", "ES")}}
        return [Series("cine", data, affine, meta)]


def read_info_cfg(path: Path) -> dict:
    """Parse ACDC's Info.cfg ("Key: value" lines); ED and ES are required integers."""
    try:
        text = path.read_text()
    except (FileNotFoundError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable Info.cfg ({type(err).__name__})") from None
    fields: dict = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(\w+)\s*:\s*(.*?)\s*$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    for key in ("ED", "ES"):
        if key not in fields:
            raise InputError(path, f"missing field {key}:")
        if not re.fullmatch(r"\d+", fields[key]):
            raise InputError(path, f"field {key}: {fields[key]!r} is not a frame number")
        fields[key] = int(fields[key])
    for key in ("Height", "Weight", "NbFrame"):
        if key in fields:
            try:
                fields[key] = float(fields[key])
            except ValueError:
                pass
    return fields


class BratsReader:
    """BraTS-like: SUBJ/SUBJ_{contrast}.nii.gz for each requested contrast (3D each).

    `separator` joins subject and contrast ("-" for BraTS 2023: SUBJ-t2w.nii.gz).
    `max_info_crop` is the Meta-SRGAN/MIASSR "maximal information" crop (their BraTS loader,
    github.com/GinZhu/MIASSR datasets/BraTS_dataset.py): keep the axial slices that hold
    any non-zero voxel in any requested contrast (BraTS is skull-stripped, so these are
    the brain's slices; the first..last such slice, so the volume stays one grid), and
    drop a fixed `margin` of voxels on each in-plane border (MIASSR: 20 of 240 → 200).
    """

    def __init__(self, contrasts: list[str] | tuple[str, ...] = ("t1", "t2"), max_info_crop: bool = False,
                 margin: int = 20, separator: str = "_") -> None:
        if not contrasts:
            raise ValueError("brats reader needs at least one contrast")
        if separator not in ("_", "-"):
            raise ValueError(f"brats separator must be '_' or '-', got {separator!r}")
        if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
            raise ValueError(f"brats margin must be an integer >= 0, got {margin!r}")
        self.contrasts = [check_name(c, "contrast") for c in contrasts]
        self.max_info_crop, self.margin, self.separator = bool(max_info_crop), margin, separator

    def _file(self, folder: Path, subject: str, contrast: str) -> Path:
        return folder / f"{subject}{self.separator}{contrast}.nii.gz"

    def _is_subject(self, d: Path) -> bool:
        return all(self._file(d, d.name, c).is_file() for c in self.contrasts)

    def list_subjects(self, raw_dir: Path) -> list[str]:
        return list(find_subject_dirs(raw_dir, self._is_subject))

    def incomplete(self, raw_dir: Path) -> dict[str, tuple[Path, str]]:
        """Folders holding some but not all requested contrasts: subject -> (missing file, problem).
        list_subjects leaves them out; inventory refuses to drop them silently."""
        out = {}
        for d in candidate_dirs(raw_dir, self._is_subject):
            have = [c for c in self.contrasts if self._file(d, d.name, c).is_file()]
            if have and len(have) < len(self.contrasts):
                missing = [c for c in self.contrasts if c not in have]
                out[d.name] = (self._file(d, d.name, missing[0]),
                               f"missing contrast {', '.join(missing)} (has {', '.join(have)})")
        return out

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        folder = subject_dir(raw_dir, subject, self._is_subject)
        out = []
        for c in self.contrasts:
            path = self._file(folder, subject, c)
            data, affine = read_nifti(path, ndim=3)
            out.append(Series(c, data, affine, {"source": str(path), "contrast": c}))
        return max_info_crop(out, self.margin) if self.max_info_crop else out


def max_info_crop(series: list[Series], margin: int) -> list[Series]:
    """Crop co-registered 3D series to the slices with signal and an in-plane margin (see
    BratsReader). The affine moves with the crop; the sidecar records what was kept."""
    first = series[0]
    for s in series[1:]:
        if s.data.shape != first.data.shape:
            raise InputError(s.meta["source"], f"shape {s.data.shape} differs from {first.name} {first.data.shape}")
    nx, ny, _ = first.data.shape
    if 2 * margin >= min(nx, ny):
        raise InputError(first.meta["source"], f"max_info_crop margin {margin} leaves nothing of {nx}×{ny}")
    signal = np.flatnonzero(np.any([np.any(s.data != 0, axis=(0, 1)) for s in series], axis=0))
    if signal.size == 0:
        raise InputError(first.meta["source"], "all slices are zero: nothing for max_info_crop to keep")
    lo, hi = int(signal[0]), int(signal[-1]) + 1
    box = (slice(margin, nx - margin), slice(margin, ny - margin), slice(lo, hi))
    start = np.array([margin, margin, lo], dtype=np.float64)
    out = []
    for s in series:
        affine = s.affine.copy()
        affine[:3, 3] = s.affine[:3, :3] @ start + s.affine[:3, 3]
        meta = {**s.meta, "max_info_crop": {"slices": [lo, hi], "margin": margin, "before": list(s.data.shape)}}
        out.append(Series(s.name, np.ascontiguousarray(s.data[box]), affine, meta))
    return out


class HcpReader:
    """HCP: SUBJ/T1w/T1w_acpc_dc_restore.nii.gz (0.7 mm T1w)."""

    REL = Path("T1w") / "T1w_acpc_dc_restore.nii.gz"

    def _is_subject(self, d: Path) -> bool:
        return (d / self.REL).is_file()

    def list_subjects(self, raw_dir: Path) -> list[str]:
        return list(find_subject_dirs(raw_dir, self._is_subject))

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        path = subject_dir(raw_dir, subject, self._is_subject) / self.REL
        data, affine = read_nifti(path, ndim=3)
        return [Series("t1w", data, affine, {"source": str(path), "contrast": "t1w"})]


# name -> (module, class): a reader's module (and its libraries: SimpleITK, h5py,
# scikit-image) is imported only when that reader is asked for.
READERS: dict[str, tuple[str, str]] = {
    "acdc": ("mrisr.datasets.readers", "AcdcReader"),
    "brats": ("mrisr.datasets.readers", "BratsReader"),
    "div2k": ("mrisr.datasets.div2k", "Div2kReader"),
    "dsb": ("mrisr.datasets.dsb", "DsbReader"),
    "fastmri": ("mrisr.datasets.fastmri", "FastmriReader"),
    "hcp": ("mrisr.datasets.readers", "HcpReader"),
    "nifti": ("mrisr.datasets.nifti_folder", "NiftiFolderReader"),
}


def reader_class(name: str) -> type:
    if name not in READERS:
        raise ValueError(f"unknown reader {name!r}; known: {sorted(READERS)}")
    module, cls = READERS[name]
    return getattr(importlib.import_module(module), cls)


def get_reader(name: str, **options):
    cls = reader_class(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise ValueError(f"reader {name!r}: bad options {options}: {err}") from None
