"""NIfTI reading (validated, canonical RAS) and atomic writing via nibabel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from mrisr.errors import InputError
from mrisr.io.atomic import atomic_path


def to_ras(img: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """Reorient to the closest canonical RAS+ orientation (nibabel.as_closest_canonical)."""
    return nib.as_closest_canonical(img)


def read_nifti(
    path: str | Path,
    ndim: int | tuple[int, ...] | None = None,
    canonical: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file as float32 (data, affine).

    Raises InputError naming the file when it is missing, empty, unreadable (truncated,
    not NIfTI), complex-valued (casting would silently drop the imaginary part: give
    magnitude images), has the wrong number of dimensions or an empty axis, or holds NaN/Inf.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    try:
        img = nib.load(str(path))
        dtype = np.dtype(img.get_data_dtype())
        if dtype.kind == "c" or dtype.fields is not None:
            raise InputError(path, f"{'complex' if dtype.kind == 'c' else 'structured (RGB)'}-valued image "
                                   f"(dtype {dtype}): give a real magnitude image")
        if canonical:
            img = to_ras(img)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(path, f"unreadable NIfTI ({type(err).__name__}: {err})") from None
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and data.ndim not in allowed:
        raise InputError(path, f"expected {' or '.join(map(str, allowed))}D image, got shape {data.shape}")
    if data.size == 0:
        raise InputError(path, f"empty image: shape {data.shape}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise InputError(path, f"contains {bad} NaN/Inf voxels")
    return data, img.affine.astype(np.float64)


def spacing_of(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel spacing (mm) of the three spatial axes from an affine."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def write_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write float32 NIfTI atomically (temporary name in the folder, then rename)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
