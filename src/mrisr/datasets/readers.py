"""Readers of real source layouts (also what reads the built-in data): ACDC, BraTS, HCP.

Each returns canonical RAS float32 Series; every problem is an InputError naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

from mrisr.datasets.base import Series, check_name, find_subject_dirs, subject_dir
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
    """BraTS-like: SUBJ/SUBJ_{contrast}.nii.gz for each requested contrast (3D each)."""

    def __init__(self, contrasts: list[str] | tuple[str, ...] = ("t1", "t2")) -> None:
        if not contrasts:
            raise ValueError("brats reader needs at least one contrast")
        self.contrasts = [check_name(c, "contrast") for c in contrasts]

    def _is_subject(self, d: Path) -> bool:
        return all((d / f"{d.name}_{c}.nii.gz").is_file() for c in self.contrasts)

    def list_subjects(self, raw_dir: Path) -> list[str]:
        return list(find_subject_dirs(raw_dir, self._is_subject))

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        folder = subject_dir(raw_dir, subject, self._is_subject)
        out = []
        for c in self.contrasts:
            path = folder / f"{subject}_{c}.nii.gz"
            data, affine = read_nifti(path, ndim=3)
            out.append(Series(c, data, affine, {"source": str(path), "contrast": c}))
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


READERS = {"acdc": AcdcReader, "brats": BratsReader, "hcp": HcpReader}


def get_reader(name: str, **options):
    if name not in READERS:
        raise ValueError(f"unknown reader {name!r}; known: {sorted(READERS)}")
    try:
        return READERS[name](**options)
    except TypeError as err:
        raise ValueError(f"reader {name!r}: bad options {options}: {err}") from None
