"""The `div2k` reader on fixtures in DIV2K's exact layout (DIV2K_train_HR/0001.png …, the official
zips' top-level folders), written here with Pillow: BT.601 luminance, orientation, subjects, errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2ycbcr

from div2k_fixture import random_rgb, write_div2k
from mrisr.cli import main
from mrisr.datasets import get_reader
from mrisr.datasets.div2k import image_to_volume, rgb_to_y
from mrisr.errors import InputError


def test_luminance_is_matlab_rgb2ycbcr_y() -> None:
    rgb = random_rgb(0)
    expected = rgb2ycbcr(rgb)[..., 0]  # scikit-image's BT.601 YCbCr, as MATLAB's for float input
    np.testing.assert_allclose(rgb_to_y(rgb), expected, rtol=0, atol=1e-4)
    # and by hand: white is 235, black 16, pure green 16 + 128.553
    corners = np.array([[[255, 255, 255], [0, 0, 0], [0, 255, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(corners)[0], [235.0, 16.0, 144.553], atol=1e-3)


def test_orientation_column_is_x_and_row_upward_is_y() -> None:
    img = np.arange(6, dtype=np.float32).reshape(2, 3)  # 2 rows, 3 columns
    vol, affine = image_to_volume(img)
    assert vol.shape == (3, 2, 1) and np.array_equal(affine, np.eye(4))
    assert vol[0, 1, 0] == img[0, 0]  # top-left pixel: leftmost x, highest y
    assert vol[2, 0, 0] == img[1, 2]  # bottom-right pixel: rightmost x, lowest y


def test_reads_the_unpacked_official_zips(tmp_path: Path) -> None:
    pixels = write_div2k(tmp_path / "src", {"DIV2K_train_HR": [1, 2, 3], "DIV2K_valid_HR": [801, 802]})
    raw = tmp_path / "raw"
    for folder in ("DIV2K_train_HR", "DIV2K_valid_HR"):  # what `mrisr download` extracts each zip into
        with zipfile.ZipFile(tmp_path / f"{folder}.zip", "w") as zf:
            for p in sorted((tmp_path / "src" / folder).iterdir()):
                zf.write(p, f"{folder}/{p.name}")
        zipfile.ZipFile(tmp_path / f"{folder}.zip").extractall(raw)
    (raw / "DIV2K_train_HR" / ".DS_Store").write_bytes(b"x")  # hidden and non-PNG files are not images
    reader = get_reader("div2k")
    assert reader.list_subjects(raw) == ["0001", "0002", "0003", "0801", "0802"]
    (series,) = reader.load(raw, "0802")
    assert series.name == "y" and series.data.dtype == np.float32 and series.data.shape == (30, 20, 1)
    expected = rgb2ycbcr(pixels["0802"])[..., 0]
    np.testing.assert_allclose(series.data[:, :, 0], expected[::-1, :].T, atol=1e-4)
    assert series.meta["source"].endswith("DIV2K_valid_HR/0802.png") and series.meta["image_size"] == [30, 20]
    # a wrapping folder (a zip of the zips' contents) is found too
    wrapped = tmp_path / "wrapped"
    write_div2k(wrapped / "DIV2K", {"DIV2K_train_HR": [5]})
    assert reader.list_subjects(wrapped) == ["0005"] and reader.load(wrapped, "0005")[0].data.shape == (30, 20, 1)


def test_prepare_cli_writes_a_ras_volume(tmp_path: Path) -> None:
    write_div2k(tmp_path / "raw", {"DIV2K_train_HR": [1]}, height=26, width=38)
    out = tmp_path / "prepared" / "0001"
    assert main(["prepare", "--reader", "div2k", "--raw", str(tmp_path / "raw"), "--subject", "0001",
                 "--dataset", "div2k", "--out-dir", str(out)]) == 0
    import nibabel as nib

    img = nib.load(out / "y.nii.gz")
    assert img.shape == (36, 24, 1) and nib.aff2axcodes(img.affine) == ("R", "A", "S")  # cropped to 12s


def write_bad(path: Path, kind: str) -> None:
    rgb = random_rgb(1)
    if kind == "jpeg":
        Image.fromarray(rgb, "RGB").save(path, format="JPEG")
    elif kind == "text":
        path.write_text("not an image")
    elif kind == "truncated":
        Image.fromarray(rgb, "RGB").save(path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "palette":
        Image.fromarray(rgb, "RGB").convert("P").save(path)
    elif kind == "alpha":
        Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(path)
    elif kind == "grey16":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(path)
    elif kind == "rgb16":  # Pillow cannot write 48-bit RGB; SimpleITK can
        import SimpleITK as sitk

        sitk.WriteImage(sitk.GetImageFromArray(rgb.astype(np.uint16) * 257, isVector=True), str(path))
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind, problem", [
    ("jpeg", "not a PNG"), ("text", "not an image Pillow can read"), ("truncated", "unreadable PNG"),
    ("palette", "mode 'P'"), ("alpha", "mode 'RGBA'"), ("grey16", "mode 'I;16'"),
    ("rgb16", "pixel format 'RGB;16B'")])
def test_bad_images_are_one_error_naming_the_file(tmp_path: Path, kind: str, problem: str) -> None:
    write_div2k(tmp_path, {"DIV2K_train_HR": [1]})
    bad = tmp_path / "DIV2K_train_HR" / "0002.png"
    write_bad(bad, kind)
    reader = get_reader("div2k")
    assert reader.list_subjects(tmp_path) == ["0001", "0002"]
    with pytest.raises(InputError, match=problem) as err:
        reader.load(tmp_path, "0002")
    assert err.value.path == str(bad)
    assert reader.load(tmp_path, "0001")[0].data.shape == (30, 20, 1)  # the good one still reads


def test_layout_errors_name_the_file(tmp_path: Path) -> None:
    reader = get_reader("div2k", min_size=24)
    with pytest.raises(InputError, match="no DIV2K_train_HR or DIV2K_valid_HR folder"):
        reader.list_subjects(tmp_path)
    write_div2k(tmp_path, {"DIV2K_train_HR": [1], "DIV2K_valid_HR": [801]})
    with pytest.raises(InputError, match="smaller than min_size 24") as err:  # 30×20
        reader.load(tmp_path, "0001")
    assert err.value.path.endswith("DIV2K_train_HR/0001.png")
    with pytest.raises(InputError, match="'0009' not found"):
        reader.load(tmp_path, "0009")
    write_div2k(tmp_path, {"DIV2K_valid_HR": [1]})  # the same number in both folders
    with pytest.raises(InputError, match="also found at"):
        reader.list_subjects(tmp_path)
    (tmp_path / "DIV2K_valid_HR" / "0001.png").unlink()
    Image.fromarray(random_rgb(3)).save(tmp_path / "DIV2K_train_HR" / "cat.png")
    with pytest.raises(InputError, match="not a DIV2K image name") as err:
        reader.list_subjects(tmp_path)
    assert err.value.path.endswith("cat.png")
    with pytest.raises(ValueError, match="min_size"):
        get_reader("div2k", min_size=0)


def test_prepare_cli_fails_with_one_line_naming_the_png(tmp_path: Path, capsys) -> None:
    write_div2k(tmp_path / "raw", {"DIV2K_train_HR": [1]})
    bad = tmp_path / "raw" / "DIV2K_train_HR" / "0001.png"
    write_bad(bad, "truncated")
    assert main(["prepare", "--reader", "div2k", "--raw", str(tmp_path / "raw"), "--subject", "0001",
                 "--dataset", "div2k", "--out-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mrisr prepare: error: {bad}: unreadable PNG"), err
