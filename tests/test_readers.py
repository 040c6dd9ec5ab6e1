"""Readers on layouts of the real archives (nested folders, duplicates, missing files).

(The round trip on flat synthetic output is in test_datasets.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrisr.datasets import Series, get_reader, write_synth
from mrisr.errors import InputError

CINE = {"size": [24, 24], "slices": 2, "frames": 6}


@pytest.fixture(scope="module")
def acdc(tmp_path_factory) -> Path:
    """ACDC as downloaded: database/training/patient001, database/testing/patient002."""
    flat = tmp_path_factory.mktemp("flat")
    write_synth("cine", flat, 2, 3, CINE)
    root = tmp_path_factory.mktemp("acdc")
    shutil.copytree(flat / "patient001", root / "database" / "training" / "patient001")
    shutil.copytree(flat / "patient002", root / "database" / "testing" / "patient002")
    return root


def test_acdc_nested_layout_and_one_based_info(acdc: Path) -> None:
    reader = get_reader("acdc")
    assert reader.list_subjects(acdc) == ["patient001", "patient002"]
    (series,) = reader.load(acdc, "patient002")
    assert isinstance(series, Series) and series.name == "cine" and series.data.shape == (24, 24, 2, 6)
    cfg = dict(line.split(": ") for line in (acdc / "database/testing/patient002/Info.cfg").read_text().splitlines())
    assert (series.meta["ed"], series.meta["es"]) == (int(cfg["ED"]) - 1, int(cfg["ES"]) - 1)
    assert series.meta["frames"] == 6 and series.meta["source"].endswith("patient002_4d.nii.gz")
    assert series.data.dtype == np.float32


def test_duplicate_subject_is_ambiguous(acdc: Path, tmp_path: Path) -> None:
    shutil.copytree(acdc / "database", tmp_path / "database")
    shutil.copytree(acdc / "database/training/patient001", tmp_path / "database/testing/patient001")
    with pytest.raises(InputError, match="patient001.*also found"):
        get_reader("acdc").list_subjects(tmp_path)


def test_acdc_missing_or_3d_cine_names_the_file(acdc: Path, tmp_path: Path) -> None:
    folder = tmp_path / "patient001"
    shutil.copytree(acdc / "database/training/patient001", folder)
    cine = folder / "patient001_4d.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2), np.float32), np.eye(4)), cine)
    with pytest.raises(InputError, match=r"patient001_4d\.nii\.gz: expected 4D"):
        get_reader("acdc").load(tmp_path, "patient001")
    cine.unlink()
    with pytest.raises(InputError, match=r"patient001_4d\.nii\.gz: file not found"):
        get_reader("acdc").load(tmp_path, "patient001")
    with pytest.raises(InputError, match="patient999"):
        get_reader("acdc").load(tmp_path, "patient999")


def test_brats_selects_contrasts_and_reorients(tmp_path: Path) -> None:
    """Only subjects with every requested contrast count; an LPS file comes back RAS."""
    rng = np.random.default_rng(0)
    data = rng.random((6, 7, 3)).astype(np.float32)
    lps = np.diag([-2.0, -2.0, 3.0, 1.0])
    for sid, contrasts in (("A", ("t1", "t2", "flair")), ("B", ("t1",))):
        (tmp_path / sid).mkdir()
        for c in contrasts:
            nib.save(nib.Nifti1Image(data, lps), tmp_path / sid / f"{sid}_{c}.nii.gz")
    assert get_reader("brats", contrasts=["t1"]).list_subjects(tmp_path) == ["A", "B"]
    assert get_reader("brats", contrasts=["t1", "flair"]).list_subjects(tmp_path) == ["A"]
    t1, flair = get_reader("brats", contrasts=["t1", "flair"]).load(tmp_path, "A")
    assert (t1.name, flair.name, flair.meta["contrast"]) == ("t1", "flair", "flair")
    assert nib.aff2axcodes(t1.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(t1.data, data[::-1, ::-1, :])  # flipped x and y, same world content
    np.testing.assert_allclose(t1.affine[:3, 3], lps[:3, :3] @ [5, 6, 0])  # old far corner is the new origin


def test_reader_options_are_checked() -> None:
    with pytest.raises(ValueError, match="bad options"):
        get_reader("hcp", contrasts=["t1"])
    with pytest.raises(ValueError, match="contrast"):
        get_reader("brats", contrasts=["../t1"])
