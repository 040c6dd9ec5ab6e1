"""The user's own data: NIfTI files (or DICOM series folders) found by glob patterns.

Options (`reader_options` of reader `nifti`):
  series: {name: pattern}, one entry per contrast (e.g. {t1: ..., t2: ...} for clinical
          paired T1/T2, or a single entry). A pattern is a glob ('*', '?') relative to the
          raw folder. Two ways to say where the subject is:
          * with `{subject}` in the pattern, the subject id is read from the path:
            "{subject}_T1.nii.gz" (flat folder), "{subject}/anat/{subject}_T2w.nii.gz"
            (BIDS; every `{subject}` in one path must be the same id);
          * without it, subjects are the folders (up to 3 levels down) in which every
            pattern matches, and patterns are relative to the subject folder:
            "*T1*.nii.gz", "dicom/t2".
          A pattern that matches a folder reads it as one DICOM series (SimpleITK/GDCM).
Exactly one match per series and subject: more is ambiguous and fails that subject.
  volume: (optional, an integer >= 0) read a 4D image as its volume `volume` (3D, 0-based)
          instead of as a cine: for fMRI or diffusion scans, whose 4th axis is time or
          diffusion direction, not a cardiac cycle. 3D images are unaffected.
3D images are series as they are; a 4D image is a cine (X, Y, Z, T) whose ED/ES are
detected as for DSB (mrisr.datasets.dsb.detect_ed_es) and written to the sidecar, unless
`volume` picks one of its volumes.
"""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from mrisr.datasets.base import Series, candidate_dirs, check_name, find_subject_dirs
from mrisr.datasets.dsb import LPS_TO_RAS, detect_ed_es
from mrisr.errors import InputError
from mrisr.io import read_nifti, to_ras

SUBJECT = "{subject}"


def sitk_to_ras(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """A SimpleITK 3D image (LPS physical space) as canonical RAS (data (X,Y,Z), affine)."""
    data = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)).astype(np.float32)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    img = to_ras(nib.Nifti1Image(data, LPS_TO_RAS @ lps))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine.astype(np.float64)


def read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The one DICOM series in `folder`, slices ordered by position (GDCM)."""
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError:
        ids = ()
    if not ids:
        raise InputError(folder, "no DICOM series in this folder")
    if len(ids) > 1:
        raise InputError(folder, f"{len(ids)} DICOM series in one folder; point the pattern at a single series")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0])
    check_slice_gaps(folder, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputError(folder, f"unreadable DICOM series ({str(err).strip().splitlines()[-1][:120]})") from None
    data, affine = sitk_to_ras(image)
    if not np.isfinite(data).all():
        raise InputError(folder, "DICOM series contains NaN/Inf values")
    return data, affine


def check_slice_gaps(folder: Path, files) -> None:
    """Slices must be evenly spaced along the plane normal: a missing slice would otherwise be
    averaged into a wrong spacing (ITK only warns), a repeated one stacked twice."""
    positions = []
    normal = None
    for name in files:
        r = sitk.ImageFileReader()
        r.SetFileName(name)
        try:
            r.ReadImageInformation()
            ipp = [float(v) for v in r.GetMetaData("0020|0032").split("\\")]
            if normal is None:
                iop = [float(v) for v in r.GetMetaData("0020|0037").split("\\")]
                normal = np.cross(iop[:3], iop[3:])
        except (RuntimeError, ValueError):
            return  # no usable position tags: SimpleITK's reader decides (and names the folder)
        positions.append(float(np.dot(ipp, normal)))
    if len(positions) < 3:
        return
    gaps = np.diff(np.sort(positions))
    step = float(np.median(gaps))
    if step <= 1e-6 or np.any(gaps < 1e-3 * step):
        raise InputError(folder, "two slices at the same position: a repeated or mixed series")
    bad = np.flatnonzero(np.abs(gaps - step) > 0.05 * step)
    if bad.size:
        k = int(bad[0])
        raise InputError(folder, f"slice gap {gaps[k]:.3g} mm between slices {k + 1} and {k + 2} of {len(positions)} "
                                 f"where the others are {step:.3g} mm: missing slice(s)?")


def pattern_regex(pattern: str) -> re.Pattern:
    """Glob with `{subject}` -> regex; the first `{subject}` captures, later ones must repeat it."""
    out, seen = [], False
    for piece in re.split(r"(\{subject\}|\*|\?)", pattern):
        if piece == SUBJECT:
            # ids become file and wildcard names: letters, digits, '_' and '-' only
            out.append(r"(?P=subject)" if seen else r"(?P<subject>[A-Za-z0-9][A-Za-z0-9_\-]*?)")
            seen = True
        elif piece == "*":
            out.append(r"[^/]*")
        elif piece == "?":
            out.append(r"[^/]")
        else:
            out.append(re.escape(piece))
    return re.compile("".join(out))


class NiftiFolderReader:
    """Per-contrast glob patterns over the user's folder (see the module docstring)."""

    def __init__(self, series: dict[str, str] | None = None, volume: int | None = None) -> None:
        if volume is not None and (isinstance(volume, bool) or not isinstance(volume, int) or volume < 0):
            raise ValueError(f"nifti reader: volume must be an integer >= 0 (a 4D image's volume), got {volume!r}")
        self.volume = volume
        if not series or not isinstance(series, dict):
            raise ValueError("nifti reader needs `series`: {name: glob pattern}, e.g. {t1: '{subject}_T1.nii.gz'}")
        self.series = {check_name(k, "series"): str(v) for k, v in series.items()}
        with_id = [SUBJECT in p for p in self.series.values()]
        if any(with_id) and not all(with_id):
            raise ValueError("nifti reader: either every series pattern contains {subject} or none does")
        for name, p in self.series.items():
            if p.startswith("/") or ".." in Path(p).parts:
                raise ValueError(f"nifti reader: pattern of {name!r} must be relative, without '..': {p!r}")
        self.by_path = all(with_id)

    # --- where the files are -------------------------------------------------------------

    def _matches_by_path(self, raw_dir: Path) -> dict[str, dict[str, list[Path]]]:
        """subject -> series -> matching paths ({subject} patterns)."""
        found: dict[str, dict[str, list[Path]]] = {}
        for name, pattern in self.series.items():
            regex = pattern_regex(pattern)
            for path in sorted(raw_dir.glob(pattern.replace(SUBJECT, "*"))):
                m = regex.fullmatch(path.relative_to(raw_dir).as_posix())
                if m:
                    found.setdefault(m.group("subject"), {}).setdefault(name, []).append(path)
        return found

    def _complete_by_path(self, raw_dir: Path) -> dict[str, dict[str, list[Path]]]:
        return {s: v for s, v in self._matches_by_path(raw_dir).items() if set(v) == set(self.series)}

    def incomplete(self, raw_dir: Path) -> dict[str, tuple[Path, str]]:
        """Subjects some but not all of whose series patterns match: subject -> (a file it has,
        problem). list_subjects leaves them out; inventory refuses to drop them silently."""
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            return {}
        if self.by_path:
            partial = {s: v for s, v in self._matches_by_path(raw_dir).items() if set(v) != set(self.series)}
            return {s: (next(iter(v.values()))[0],
                        f"no match for series {', '.join(sorted(set(self.series) - set(v)))} "
                        f"({', '.join(repr(self.series[n]) for n in sorted(set(self.series) - set(v)))})")
                    for s, v in sorted(partial.items())}
        out = {}
        for d in candidate_dirs(raw_dir, self._is_subject):
            matches = self._matches_in(d)
            have = [n for n, paths in matches.items() if paths]
            if have and len(have) < len(self.series):
                missing = sorted(set(self.series) - set(have))
                out[d.name] = (d, f"no match for series {', '.join(missing)} "
                                  f"({', '.join(repr(self.series[n]) for n in missing)})")
        return out

    def _matches_in(self, folder: Path) -> dict[str, list[Path]]:
        return {name: sorted(folder.glob(p)) for name, p in self.series.items()}

    def _is_subject(self, folder: Path) -> bool:
        return all(self._matches_in(folder).values())

    def _subject_matches(self, raw_dir: Path, subject: str) -> tuple[dict[str, list[Path]], Path]:
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise InputError(raw_dir, "raw data folder not found")
        if self.by_path:
            matches = self._complete_by_path(raw_dir)
            if subject not in matches:
                raise InputError(raw_dir, f"subject {subject!r} not found (or missing a series)")
            return matches[subject], raw_dir
        dirs = find_subject_dirs(raw_dir, self._is_subject)
        if subject not in dirs:
            raise InputError(raw_dir, f"subject {subject!r} not found (or missing a series)")
        return self._matches_in(dirs[subject]), dirs[subject]

    def list_subjects(self, raw_dir: Path) -> list[str]:
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise InputError(raw_dir, "raw data folder not found")
        if self.by_path:
            return sorted(self._complete_by_path(raw_dir))
        return list(find_subject_dirs(raw_dir, self._is_subject))

    # --- reading ---------------------------------------------------------------------------

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        matches, where = self._subject_matches(raw_dir, subject)
        out = []
        for name, paths in matches.items():
            if len(paths) != 1:
                listed = ", ".join(p.name for p in paths[:4])
                raise InputError(where, f"series {name!r}: pattern {self.series[name]!r} matches {len(paths)} "
                                        f"paths ({listed}); make it match one")
            path = paths[0]
            data, affine = read_dicom_series(path) if path.is_dir() else read_nifti(path, ndim=(3, 4))
            meta = {"source": str(path), "contrast": name}
            if data.ndim == 4 and self.volume is not None:
                if self.volume >= data.shape[3]:
                    raise InputError(path, f"reader option volume: {self.volume}, but the 4D image has "
                                           f"{data.shape[3]} volume(s) (0-based)")
                meta["volume"] = {"index": self.volume, "of": int(data.shape[3])}
                data = np.ascontiguousarray(data[..., self.volume])
            if data.ndim == 4:
                try:
                    ed, es, curve = detect_ed_es(data)
                except ValueError as err:
                    raise InputError(path, f"4D image read as a cine, ED/ES detection failed: {err}") from None
                meta.update({"frames": int(data.shape[3]), "ed": ed, "es": es,
                             "ed_es": {"method": "blood_pool_size", "curve": curve}})
            out.append(Series(name, data, affine, meta))
        return out
