"""DIV2K (Agustsson & Timofte, NTIRE 2017): the natural-image set the Meta-SRGAN paper pretrains on.

Layout, as the official zips unpack (DIV2K_train_HR.zip, DIV2K_valid_HR.zip, each holding its
top-level folder): `DIV2K_train_HR/0001.png … 0800.png` and `DIV2K_valid_HR/0801.png … 0900.png`,
8-bit RGB PNGs about 2040×1356. The folders are looked for at the raw folder itself and up to two
levels below it (a zip wrapped in another folder still works).

One image = one subject, named by its number ("0001"), with one series, `y`:

* **Luminance.** The generators are single-channel, so an image becomes its luma Y of ITU-R BT.601
  as the SR literature computes it (MATLAB `rgb2ycbcr`, which EDSR/Meta-SR evaluate on):
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in [0, 1], i.e. studio range
  16…235. Our reading: kept in float (MATLAB rounds to uint8 for uint8 input); `prepare`'s
  percentile rule then rescales it like any series, so the offset and range do not reach training.
* **Orientation.** A 2D image becomes the 3D volume (X, Y, 1) with unit spacing and the identity
  affine (RAS+, as `prepare` expects): image column (left→right) → +X, image row upward (bottom→top)
  → +Y, i.e. `data[x, y, 0] = Y_img[H - 1 - y, x]`. The picture's top is anterior, as an axial slice
  shown in the neurological convention, so a NIfTI viewer shows it upright and unmirrored; the
  `slices` kind cuts its 2D images across the last axis, which here is the one image.

Refused, one InputError naming the PNG: not a PNG, truncated or corrupt, any mode other than 8-bit
RGB (DIV2K's HR images are all RGB: a palette, alpha, grey or 16-bit file is not DIV2K as published,
and guessing its colours would change the luminance), smaller than `min_size` on either side (the
HR patch: failing here names the PNG, not a prepared file later), a `.png` in a DIV2K folder not
named by a 4-digit number, and the same number in both folders.

Pillow reads the PNGs (a dependency of scikit-image and matplotlib too; pinned in requirements.txt).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mrisr.datasets.base import MAX_SEARCH_DEPTH, Series
from mrisr.errors import InputError

HR_FOLDERS = ("DIV2K_train_HR", "DIV2K_valid_HR")
_IMAGE_NAME = re.compile(r"^\d{4}\.png$")
SERIES = "y"

# ITU-R BT.601 luma as in MATLAB rgb2ycbcr (offset 16, weights for R, G, B on [0, 1] inputs).
BT601_OFFSET = 16.0
BT601_WEIGHTS = np.array([65.481, 128.553, 24.966])


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y of BT.601 (studio range, float) of an 8-bit (H, W, 3) RGB array."""
    unit = rgb.astype(np.float64) / 255.0
    return (BT601_OFFSET + unit @ BT601_WEIGHTS).astype(np.float32)


def image_to_volume(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) image → ((W, H, 1) volume, identity affine): column → +X, upward row → +Y (module doc)."""
    data = np.ascontiguousarray(y[::-1, :].T)[:, :, None]
    return data.astype(np.float32, copy=False), np.eye(4)


def read_png_rgb(path: Path) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of an 8-bit RGB PNG; InputError naming the file otherwise."""
    from PIL import Image, UnidentifiedImageError  # only the div2k reader needs Pillow

    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise InputError(path, f"not a PNG (Pillow reads it as {img.format})")
            if img.mode != "RGB":
                raise InputError(path, f"image mode {img.mode!r}: DIV2K images are 8-bit RGB (mode 'RGB'); "
                                       f"palette, alpha, grey and 16-bit files are refused")
            # A 16-bit RGB PNG opens as mode 'RGB' too, decoded from raw mode 'RGB;16B' to its high bytes:
            # only the tile's raw mode tells it from an 8-bit one.
            rawmode = img.tile[0][3] if img.tile else "RGB"
            if rawmode != "RGB":
                raise InputError(path, f"PNG pixel format {rawmode!r}: DIV2K images are 8 bits per channel; "
                                       f"16-bit files are refused (Pillow would keep only their high bytes)")
            img.load()  # decodes now: a truncated file fails here, not as a short array later
            return np.asarray(img, dtype=np.uint8)
    except UnidentifiedImageError:
        raise InputError(path, "not an image Pillow can read (expected an 8-bit RGB PNG)") from None
    except (OSError, SyntaxError, ValueError) as err:  # Pillow: truncated data, bad chunks, CRC errors
        raise InputError(path, f"unreadable PNG ({err})") from None


def _hr_folders(raw_dir: Path) -> list[Path]:
    """Every DIV2K_train_HR / DIV2K_valid_HR folder at raw_dir or below it (depth < MAX_SEARCH_DEPTH)."""
    found, frontier = [], [raw_dir]
    for _ in range(MAX_SEARCH_DEPTH):
        found += [d for d in frontier if d.name in HR_FOLDERS]
        frontier = [c for d in frontier if d.name not in HR_FOLDERS
                    for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    return found


class Div2kReader:
    """DIV2K HR images (module doc): subject = image number, one luminance series `y`."""

    def __init__(self, min_size: int = 1) -> None:
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ValueError(f"div2k min_size must be an integer >= 1, got {min_size!r}")
        self.min_size = min_size

    def images(self, raw_dir: Path) -> dict[str, Path]:
        """Subject → PNG of every image in the HR folders; InputError for a folder-less raw dir,
        a stray .png name or a number in both folders."""
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise InputError(raw_dir, "raw data folder not found")
        folders = _hr_folders(raw_dir)
        if not folders:
            raise InputError(raw_dir, f"no {' or '.join(HR_FOLDERS)} folder here (unpack the official DIV2K zips)")
        out: dict[str, Path] = {}
        for folder in folders:
            for path in sorted(folder.iterdir()):
                if path.name.startswith(".") or path.suffix.lower() != ".png":
                    continue  # e.g. a viewer's thumbnail cache: not an image of the set
                if not _IMAGE_NAME.match(path.name):
                    raise InputError(path, "not a DIV2K image name (NNNN.png, e.g. 0001.png)")
                if path.stem in out:
                    raise InputError(path, f"image {path.stem} also found at {out[path.stem]}")
                out[path.stem] = path
        return dict(sorted(out.items()))

    def list_subjects(self, raw_dir: Path) -> list[str]:
        return list(self.images(raw_dir))

    def load(self, raw_dir: Path, subject: str) -> list[Series]:
        direct = [Path(raw_dir) / f / f"{subject}.png" for f in HR_FOLDERS]  # the unpacked zips: no tree walk
        found = [p for p in direct if p.is_file()]
        path = found[0] if len(found) == 1 else self.images(raw_dir).get(subject)
        if path is None:
            raise InputError(raw_dir, f"subject {subject!r} not found (no {subject}.png in a DIV2K HR folder)")
        rgb = read_png_rgb(path)
        height, width = rgb.shape[:2]
        if min(height, width) < self.min_size:
            raise InputError(path, f"{width}×{height} pixels is smaller than min_size {self.min_size} "
                                   f"(the HR patch) on a side")
        data, affine = image_to_volume(rgb_to_y(rgb))
        meta = {"source": str(path), "contrast": SERIES, "image_size": [width, height],
                "luma": "ITU-R BT.601 Y (MATLAB rgb2ycbcr): 16 + (65.481 R + 128.553 G + 24.966 B) / 255, "
                        "R, G, B in [0, 1]",
                "orientation": "x = image column, y = image row from the bottom"}
        return [Series(SERIES, data, affine, meta)]
