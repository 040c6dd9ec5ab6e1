"""Synthetic knee pairs written as fastMRI HDF5 files (raw k-space), for the `fastmri` reader.

The multi-contrast generator's knee (synth_multicontrast, flavour "knee": PD and PDFS of
one tissue map) is turned into what a scanner records: each slice is placed in a field
of view twice as long along the readout (rows; fastMRI's 2× oversampling) and a little
wider along the phase encoding, multiplied by a smooth phase and by coil sensitivities
normalised so that Σ|S_c|² = 1 (the root-sum-of-squares of the coil images is then the
magnitude image exactly), and Fourier transformed with fastMRI's centred orthonormal FFT.

Layout: multicoil_train/file{id}.h5 (singlecoil_train/ with coils = 0), PD and PDFS of a
knee in consecutive ids, and pairs.csv ("pd,pdfs" rows) listing them, as MINet's lists do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrisr.datasets.fastmri import centre_crop_2d, rss_image
from mrisr.datasets.synth_multicontrast import MultiContrastSubject
from mrisr.io import atomic_path
from mrisr.io.hdf5 import h5_writer

ACQUISITION = {"pd": "CORPD_FBK", "pdfs": "CORPDFS_FBK"}
DEFAULTS = {"coils": 4}
PHASE_PAD = 4  # extra phase-encoding columns each side


def fft2c(image: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(image, axes=axes), axes=axes, norm="ortho"), axes=axes)


def scanner_slices(volume: np.ndarray) -> np.ndarray:
    """(X, Y, Z) -> (Z, rows, cols) as displayed: rows run top (high Y) to bottom, cols = X."""
    return np.transpose(volume, (2, 1, 0))[:, ::-1, :]


def coil_sensitivities(coils: int, shape: tuple[int, int]) -> np.ndarray:
    """(coils, H, W) complex Gaussian bumps around the field of view, Σ|S|² = 1 everywhere."""
    h, w = shape
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    maps = []
    for c in range(coils):
        ang = 2 * np.pi * c / coils
        bump = np.exp(-((x - 0.8 * np.cos(ang)) ** 2 + (y - 0.8 * np.sin(ang)) ** 2) / 0.8)
        maps.append(bump * np.exp(1j * ang))
    maps = np.array(maps)
    return maps / np.sqrt((np.abs(maps) ** 2).sum(axis=0, keepdims=True))


def to_kspace(volume: np.ndarray, coils: int) -> np.ndarray:
    """(slices, [coils,] 2·rows, cols + 2·PHASE_PAD) complex64 k-space of a magnitude volume."""
    images = scanner_slices(volume)
    z, rows, cols = images.shape
    h, w = 2 * rows, cols + 2 * PHASE_PAD
    top, left = (h - rows) // 2, (w - cols) // 2  # centre_crop_2d's placement
    fov = np.zeros((z, h, w), dtype=np.complex128)
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    fov[:, top:top + rows, left:left + cols] = images
    fov *= np.exp(1j * (0.6 * xx + 0.3 * yy))  # smooth B0/receiver phase: magnitude untouched
    if coils == 0:
        return fft2c(fov).astype(np.complex64)
    return fft2c(fov[:, None] * coil_sensitivities(coils, (h, w))[None]).astype(np.complex64)


def ismrmrd_header(acquisition: str, kspace_shape: tuple[int, ...], recon: tuple[int, int],
                   spacing: tuple[float, float, float]) -> bytes:
    """Minimal ISMRMRD XML with the fields the reader (and fastMRI's own loaders) use."""
    h, w = kspace_shape[-2:]
    rows, cols = recon
    sx, sy, sz = spacing
    return f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <measurementInformation><protocolName>{acquisition}</protocolName></measurementInformation>
  <encoding>
    <encodedSpace>
      <matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{2 * rows * sy:.4f}</x><y>{w * sx:.4f}</y><z>{sz:.4f}</z></fieldOfView_mm>
    </encodedSpace>
    <reconSpace>
      <matrixSize><x>{cols}</x><y>{rows}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{cols * sx:.4f}</x><y>{rows * sy:.4f}</y><z>{sz:.4f}</z></fieldOfView_mm>
    </reconSpace>
  </encoding>
</ismrmrdHeader>
""".encode()


def file_ids(subject: str) -> tuple[str, str]:
    """PD file is the subject id (file{n}); its PDFS partner is file{n+1}."""
    n = int(subject.removeprefix("file"))
    return subject, f"file{n + 1:07d}"


def folder_name(coils: int) -> str:
    return "singlecoil_train" if coils == 0 else "multicoil_train"


def write_fastmri_file(path: Path, volume: np.ndarray, contrast: str, spacing, coils: int, patient: str) -> None:
    kspace = to_kspace(volume, coils)
    rows, cols = volume.shape[1], volume.shape[0]
    recon = centre_crop_2d(rss_image(kspace), (rows, cols)).astype(np.float32)
    with atomic_path(path) as tmp, h5_writer(tmp) as f:  # disk full: one OSError, no partial file
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("reconstruction_esc" if coils == 0 else "reconstruction_rss", data=recon)
        f.create_dataset("ismrmrd_header", data=ismrmrd_header(ACQUISITION[contrast], kspace.shape, (rows, cols),
                                                               spacing))
        f.attrs.update({"acquisition": ACQUISITION[contrast], "max": float(recon.max()),
                        "norm": float(np.linalg.norm(recon)), "patient_id": patient})


def write_fastmri_subject(out_dir: Path, subject: str, s: MultiContrastSubject, coils: int = DEFAULTS["coils"]) -> None:
    """PD and PDFS of one knee as two fastMRI files."""
    if s.flavour != "knee" or set(s.images) != {"pd", "pdfs"}:
        raise ValueError("fastmri format needs the knee flavour (PD and PDFS): add \"flavour\": \"knee\"")
    if isinstance(coils, bool) or not isinstance(coils, int) or coils < 0:
        raise ValueError(f"synth param 'coils' must be an integer ≥ 0 (0 = single-coil), got {coils!r}")
    spacing = tuple(float(v) for v in np.sqrt((s.affine[:3, :3] ** 2).sum(axis=0)))
    folder = Path(out_dir) / folder_name(coils)
    for stem, contrast in zip(file_ids(subject), ("pd", "pdfs")):
        write_fastmri_file(folder / f"{stem}.h5", s.images[contrast], contrast, spacing, coils, f"knee-{subject}")


def finish_fastmri(out_dir: Path, subjects: list[str], coils: int = DEFAULTS["coils"]) -> None:
    """pairs.csv for this run, and no .h5 of an earlier, larger run left behind."""
    keep = {f"{stem}.h5" for sid in subjects for stem in file_ids(sid)}
    for folder in ("singlecoil_train", "multicoil_train"):
        for p in (Path(out_dir) / folder).glob("*.h5"):
            if p.name not in keep or folder != folder_name(coils):
                p.unlink()
    with atomic_path(Path(out_dir) / "pairs.csv") as tmp:
        tmp.write_text("pd,pdfs\n" + "".join(f"{pd}.h5,{pdfs}.h5\n" for pd, pdfs in map(file_ids, subjects)))
