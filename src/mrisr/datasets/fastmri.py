"""fastMRI knee HDF5 files (file{id}.h5), read from raw k-space.

Each file holds one acquisition of one knee:
* `kspace`: complex, single-coil (slices, H, W) or multi-coil (slices, coils, H, W);
* `reconstruction_esc` (single-coil) / `reconstruction_rss` (multi-coil), (slices, 320, 320)
  — absent from test files, so they are not needed;
* `ismrmrd_header`: ISMRMRD XML (reconSpace matrix and field of view give the spacing);
* attrs: `acquisition` (`CORPD_FBK` proton density, `CORPDFS_FBK` fat-suppressed PD).

Image = root-sum-of-squares over coils of the centred 2D inverse FFT of every slice
(magnitude for single-coil), centre-cropped to `crop` (fastMRI's 320 × 320; the readout
is 2× oversampled). Axes: image columns → X, rows → Y, slices → Z; fastMRI keeps no
patient orientation, so the affine is diagonal with the header's spacing.

Pairs (MINet protocol): PD → PDFS file pairs of the same knee come from a list file
(`pairs`: one pair per line, "pd_file,pdfs_file", ".h5" optional, '#' comments and a
"pd,pdfs" header allowed; a relative path is relative to the raw folder). The subject is
the PD file's stem; its series are `pd` and `pdfs`. Without a list, `contrast` selects
single files of one acquisition (subject = file stem, one series).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np

from mrisr.datasets.base import Series, check_name
from mrisr.errors import InputError

ACQUISITIONS = {"CORPD_FBK": "pd", "CORPDFS_FBK": "pdfs"}
DEFAULT_CROP = (320, 320)
_NS = re.compile(r"^\{[^}]*\}")


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Centred, orthonormal 2D inverse FFT over the last two axes (fastMRI's ifft2c)."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kspace, axes=axes), axes=axes, norm="ortho"), axes=axes)


def rss_image(kspace: np.ndarray) -> np.ndarray:
    """(slices, H, W) magnitude: RSS over coils (axis 1) of multi-coil, |·| of single-coil."""
    coil_images = ifft2c(kspace)
    if kspace.ndim == 4:
        return np.sqrt((np.abs(coil_images) ** 2).sum(axis=1))
    return np.abs(coil_images)


def centre_crop_2d(images: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    """Crop the last two axes around the centre; start = (n − c) // 2, as fastMRI's center_crop."""
    h, w = images.shape[-2:]
    ch, cw = crop
    top, left = (h - ch) // 2, (w - cw) // 2
    return images[..., top:top + ch, left:left + cw]


def _local(tag: str) -> str:
    return _NS.sub("", tag)


def _find(root: ET.Element, path: str) -> ET.Element | None:
    """Namespace-agnostic path lookup ("encoding/reconSpace/matrixSize")."""
    node = root
    for part in path.split("/"):
        node = next((c for c in node if _local(c.tag) == part), None)
        if node is None:
            return None
    return node


def header_spacing(xml: bytes | str, path: Path) -> tuple[float, float, float]:
    """(x, y, z) mm from reconSpace: fieldOfView_mm / matrixSize in-plane; z = slice FOV."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise InputError(path, f"ismrmrd_header is not valid XML ({err})") from None
    values = {}
    for what in ("matrixSize", "fieldOfView_mm"):
        node = _find(root, f"encoding/reconSpace/{what}")
        if node is None:
            raise InputError(path, f"ismrmrd_header: encoding/reconSpace/{what} missing")
        try:
            values[what] = [float(_find(node, a).text) for a in ("x", "y", "z")]
        except (AttributeError, TypeError, ValueError):
            raise InputError(path, f"ismrmrd_header: reconSpace/{what} needs numeric x, y, z") from None
    (mx, my, _), (fx, fy, fz) = values["matrixSize"], values["fieldOfView_mm"]
    if min(mx, my, fx, fy, fz) <= 0:
        raise InputError(path, "ismrmrd_header: non-positive reconSpace matrix or field of view")
    return fx / mx, fy / my, fz


def header_protocol(xml: bytes | str) -> str | None:
    try:
        node = _find(ET.fromstring(xml), "measurementInformation/protocolName")
    except ET.ParseError:
        return None
    return node.text.strip() if node is not None and node.text else None


def read_acquisition(path: Path) -> str:
    """CORPD_FBK / CORPDFS_FBK / ...: attrs['acquisition'], else the header's protocolName."""
    try:
        with h5py.File(path, "r") as f:
            acq = f.attrs.get("acquisition")
            xml = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
    except OSError as err:
        raise InputError(path, f"unreadable HDF5 ({err})") from None
    if isinstance(acq, bytes):
        acq = acq.decode()
    if not acq and xml is not None:
        acq = header_protocol(xml)
    if not acq:
        raise InputError(path, "no acquisition: attrs['acquisition'] and ismrmrd_header protocolName both missing")
    return str(acq)


def contrast_of(acquisition: str) -> str:
    return ACQUISITIONS.get(acquisition, acquisition.lower())


def read_fastmri(path: Path, crop: tuple[int, int] = DEFAULT_CROP) -> tuple[np.ndarray, np.ndarray, dict]:
    """(X, Y, Z) float32 RSS image, diagonal affine and meta of one fastMRI file."""
    try:
        with h5py.File(path, "r") as f:
            if "kspace" not in f:
                raise InputError(path, f"no 'kspace' dataset (keys: {sorted(f.keys())})")
            if "ismrmrd_header" not in f:
                raise InputError(path, "no 'ismrmrd_header' dataset")
            ds = f["kspace"]
            if ds.ndim not in (3, 4) or not np.issubdtype(ds.dtype, np.complexfloating):
                raise InputError(path, f"kspace has shape {ds.shape} dtype {ds.dtype}; expected complex "
                                       "slices×H×W (single-coil) or slices×coils×H×W (multi-coil)")
            kspace = ds[()]
            xml = f["ismrmrd_header"][()]
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except OSError as err:
        raise InputError(path, f"unreadable HDF5 ({err})") from None
    h, w = kspace.shape[-2:]
    if h < crop[0] or w < crop[1]:
        raise InputError(path, f"k-space {h}×{w} is smaller than the crop {crop[0]}×{crop[1]}")
    if not np.isfinite(kspace).all():
        raise InputError(path, "kspace contains NaN/Inf")
    image = centre_crop_2d(rss_image(kspace), crop)  # (slices, rows, cols)
    data = np.ascontiguousarray(np.transpose(image[:, ::-1, :], (2, 1, 0)), dtype=np.float32)  # rows top→bottom = −Y
    sx, sy, sz = header_spacing(xml, path)
    affine = np.diag([sx, sy, sz, 1.0])
    acquisition = attrs.get("acquisition") or header_protocol(xml) or ""
    meta = {"source": str(path), "contrast": contrast_of(acquisition) if acquisition else "unknown",
            "acquisition": acquisition, "coils": int(kspace.shape[1]) if kspace.ndim == 4 else 1,
            "kspace_shape": list(kspace.shape), "crop": list(crop)}
    return data, affine, meta


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(pd_stem, pdfs_stem) per line of a pairs list (comma, tab or space separated)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError) as err:
        raise InputError(path, f"unreadable pairs list ({type(err).__name__})") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cells = [c for c in re.split(r"[,\t ]+", line) if c]
        if [c.lower() for c in cells] == ["pd", "pdfs"]:
            continue
        if len(cells) != 2:
            raise InputError(path, f"line {n}: expected 'pd_file,pdfs_file', got {line!r}")
        pd, pdfs = (Path(c).name.removesuffix(".h5") for c in cells)
        pairs.append((check_name(pd, "file name"), check_name(pdfs, "file name")))
    if not pairs:
        raise InputError(path, "pairs list is empty")
    return pairs


class FastmriReader:
    """fastMRI knee: PD→PDFS pairs from a list (MINet), or single files of one contrast."""

    def __init__(self, pairs: str | None = None, contrast: str | None = None,
                 crop: list[int] | tuple[int, int] = DEFAULT_CROP) -> None:
        if (pairs is None) == (contrast is None):
            raise ValueError("fastmri reader needs exactly one of `pairs` (PD→PDFS list file) or `contrast`")
        if len(crop) != 2 or not all(isinstance(c, int) and c > 0 for c in crop):
            raise ValueError(f"fastmri crop must be two positive integers, got {crop!r}")
        self.pairs, self.contrast, self.crop = pairs, contrast, (int(crop[0]), int(crop[1]))

    @staticmethod
    def _files(raw_dir: Path) -> dict[str, Path]:
        """stem -> file for every .h5 under raw_dir (train/val folders alike)."""
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise InputError(raw_dir, "raw data folder not found")
        files: dict[str, Path] = {}
        for p in sorted(raw_dir.rglob("*.h5")):
            if p.stem in files:
                raise InputError(p, f"file {p.name} also found at {files[p.stem]}")
            files[p.stem] = p
        return files

    def _pairs_path(self, raw_dir: Path) -> Path:
        """A relative `pairs` is looked up in the raw folder first (a list shipped with the data),
        then from the working directory (e.g. config/minet_fastmri/pairs.csv of this repository)."""
        p = Path(self.pairs)
        if p.is_absolute():
            return p
        in_raw = Path(raw_dir) / p
        return p if not in_raw.exists() and p.exists() else in_raw

    def _pair_map(self, raw_dir: Path) -> dict[str, str]:
        return dict(read_pairs(self._pairs_path(raw_dir)))

    def list_subjects(self, raw_dir: Path) -> list[str]:
        files = self._files(raw_dir)
        if self.pairs is not None:
            return sorted(pd for pd, pdfs in self._pair_map(raw_dir).items() if pd in files and pdfs in files)
        return sorted(stem for stem, p in files.items() if contrast_of(read_acquisition(p)) == self.contrast)

    def incomplete(self, raw_dir: Path) -> dict[str, tuple[Path, str]]:
        """Pairs of the list with a file missing: subject -> (pairs list, problem).
        list_subjects leaves them out; inventory refuses to drop them silently."""
        if self.pairs is None:
            return {}
        files = self._files(raw_dir)
        return {pd: (self._pairs_path(raw_dir), f"pair {pd} -> {pdfs}: {', '.join(f'{s}.h5' for s in (pd, pdfs) if s not in files)} not found")
                for pd, pdfs in sorted(self._pair_map(raw_dir).items()) if pd not in files or pdfs not in files}

    def _series(self, path: Path, expected: str, where: Path) -> Series:
        data, affine, meta = read_fastmri(path, self.crop)
        if meta["contrast"] != expected:
            raise InputError(where, f"{path.name} is {meta['acquisition'] or 'of unknown acquisition'}, "
                                    f"expected {expected} ({', '.join(k for k, v in ACQUISITIONS.items() if v == expected) or expected})")
        return Series(expected, data, affine, meta)

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        files = self._files(raw_dir)
        if self.pairs is None:
            if subject not in files:
                raise InputError(raw_dir, f"subject {subject!r} not found (no {subject}.h5)")
            return [self._series(files[subject], self.contrast, files[subject])]
        pairs_path = self._pairs_path(raw_dir)
        partner = self._pair_map(raw_dir).get(subject)
        if partner is None:
            raise InputError(pairs_path, f"subject {subject!r} is not a PD file of the pairs list")
        for stem in (subject, partner):
            if stem not in files:
                raise InputError(raw_dir, f"{stem}.h5 (pair {subject}→{partner}) not found")
        pd = self._series(files[subject], "pd", pairs_path)
        pdfs = self._series(files[partner], "pdfs", pairs_path)
        if pd.data.shape != pdfs.data.shape:
            raise InputError(pairs_path, f"pair {subject}→{partner}: PD image {pd.data.shape} and PDFS "
                                         f"{pdfs.data.shape} differ (not a slice-aligned pair)")
        if not np.allclose(pd.affine, pdfs.affine, rtol=0.01, atol=1e-3):
            raise InputError(pairs_path, f"pair {subject}→{partner}: voxel spacings differ "
                                         f"({np.diag(pd.affine)[:3]} vs {np.diag(pdfs.affine)[:3]} mm)")
        pdfs.affine = pd.affine.copy()  # same knee, same slices: one grid (header FOVs may differ in the 4th digit)
        pdfs.meta["pair"] = pd.meta["pair"] = [subject, partner]
        return [pd, pdfs]
