"""Built-in generators, readers, prepare and split against their contracts."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mrisr.datasets import get_reader, make_split, prepare_subject, write_synth
from mrisr.datasets.split import split_counts
from mrisr.errors import InputError

CINE = {"size": [32, 32], "slices": 2, "frames": 12}
MC = {"size": [36, 36], "slices": 2}
VOL = {"shape": [24, 28, 24]}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_synth("cine", root / "cine", 3, 5, CINE)
    write_synth("multicontrast", root / "mc", 3, 5, MC)
    write_synth("multicontrast", root / "knee", 1, 5, {**MC, "flavour": "knee"})
    write_synth("volume", root / "vol", 2, 5, VOL)
    return root


def test_layouts_are_the_real_sources(raw: Path) -> None:
    p = raw / "cine" / "patient001"
    assert (p / "patient001_4d.nii.gz").exists() and (p / "Info.cfg").exists()
    info = dict(line.split(": ") for line in (p / "Info.cfg").read_text().splitlines())
    assert set(info) == {"ED", "ES", "Group", "Height", "NbFrame", "Weight"} and info["NbFrame"] == "12"
    ed, es = int(info["ED"]), int(info["ES"])
    assert (p / f"patient001_frame{ed:02d}.nii.gz").exists() and (p / f"patient001_frame{es:02d}_gt.nii.gz").exists()
    assert nib.load(p / "patient001_4d.nii.gz").shape == (32, 32, 2, 12)
    assert (raw / "mc" / "SYN_0001" / "SYN_0001_t1.nii.gz").exists()
    assert (raw / "knee" / "SYN_0001" / "SYN_0001_pdfs.nii.gz").exists()
    assert (raw / "vol" / "100001" / "T1w" / "T1w_acpc_dc_restore.nii.gz").exists()
    manifest = json.loads((raw / "vol" / "manifest.json").read_text())
    assert manifest["subjects"] == ["100001", "100002"]


def test_subject_depends_only_on_seed_and_index(raw: Path, tmp_path: Path) -> None:
    write_synth("cine", tmp_path / "one", 1, 5, CINE)
    a = nib.load(raw / "cine/patient001/patient001_4d.nii.gz").get_fdata()
    b = nib.load(tmp_path / "one/patient001/patient001_4d.nii.gz").get_fdata()
    np.testing.assert_array_equal(a, b)
    c = nib.load(raw / "cine/patient002/patient002_4d.nii.gz").get_fdata()
    assert not np.array_equal(a, c)


def test_cine_cycle_lv_largest_at_ed_smallest_at_es(raw: Path) -> None:
    reader = get_reader("acdc")
    (series,) = reader.load(raw / "cine", "patient002")
    ed, es = series.meta["ed"], series.meta["es"]
    p = raw / "cine" / "patient002"
    lv = {f: (nib.load(p / f"patient002_frame{f + 1:02d}_gt.nii.gz").get_fdata() == 3).sum() for f in (ed, es)}
    assert lv[ed] > 1.3 * lv[es]
    # the image changes most in the heart over the cycle: temporal variation exists
    assert series.data.std(axis=3).max() > 5 * np.median(series.data.std(axis=3))


def test_contrasts_share_anatomy_but_not_intensity(raw: Path) -> None:
    t1, t2 = get_reader("brats", contrasts=["t1", "t2"]).load(raw / "mc", "SYN_0001")
    g1, g2 = (np.hypot(*np.gradient(ndimage.gaussian_filter(s.data[..., 0], 1.0))) for s in (t1, t2))
    assert np.corrcoef(g1.ravel(), g2.ravel())[0, 1] > 0.5  # same edges
    assert np.corrcoef(t1.data.ravel(), t2.data.ravel())[0, 1] < 0.9  # different contrast


def test_readers_list_subjects(raw: Path) -> None:
    assert get_reader("acdc").list_subjects(raw / "cine") == ["patient001", "patient002", "patient003"]
    assert get_reader("brats", contrasts=["t1", "t2"]).list_subjects(raw / "mc") == ["SYN_0001", "SYN_0002", "SYN_0003"]
    assert get_reader("brats", contrasts=["t1", "flair"]).list_subjects(raw / "mc") == []
    assert get_reader("hcp").list_subjects(raw / "vol") == ["100001", "100002"]
    with pytest.raises(ValueError, match="unknown reader"):
        get_reader("dicomland")


@pytest.mark.parametrize("text, problem", [
    ("ES: 3\nNbFrame: 12\n", "missing field ED"),
    ("ED: one\nES: 3\n", "not a frame number"),
    ("ED: 1\nES: 40\n", "outside the cine's frames"),
])
def test_bad_info_cfg_names_the_file(raw: Path, tmp_path: Path, text: str, problem: str) -> None:
    import shutil

    shutil.copytree(raw / "cine" / "patient001", tmp_path / "patient001")
    (tmp_path / "patient001" / "Info.cfg").write_text(text)
    with pytest.raises(InputError, match=rf"Info\.cfg: .*{problem}"):
        get_reader("acdc").load(tmp_path, "patient001")


def test_nan_and_wrong_dims_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "100001" / "T1w"
    folder.mkdir(parents=True)
    data = np.ones((8, 8, 8), np.float32)
    data[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "T1w_acpc_dc_restore.nii.gz")
    with pytest.raises(InputError, match=r"T1w_acpc_dc_restore\.nii\.gz: contains 1 NaN"):
        get_reader("hcp").load(tmp_path, "100001")
    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), folder / "T1w_acpc_dc_restore.nii.gz")
    with pytest.raises(InputError, match="expected 3D"):
        get_reader("hcp").load(tmp_path, "100001")
    (folder / "T1w_acpc_dc_restore.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="unreadable NIfTI"):
        get_reader("hcp").load(tmp_path, "100001")


def test_prepare_contract(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    paths = prepare_subject(get_reader("acdc"), raw / "cine", "patient001", out, "ds", (0.5, 99.5), 12, (0, 1))
    assert paths == [out / "cine.nii.gz"]
    img = nib.load(paths[0])
    data = np.asarray(img.dataobj)
    assert data.dtype == np.float32 and data.shape == (24, 24, 2, 12)  # 32 -> 24 (multiple of 12)
    assert data.min() >= 0 and data.max() <= 1 and (data == 1).mean() > 0.001
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    side = json.loads((out / "cine.json").read_text())
    assert {"dataset", "subject", "series", "contrast", "shape", "spacing", "source", "intensity", "crop",
            "frames", "ed", "es"} <= set(side)
    assert side["crop"]["before"] == [32, 32, 2, 12] and side["intensity"]["rule"] == "percentile_clip"
    # the crop is centred and the affine follows it: same world position for the same voxel content
    raw_img = nib.load(raw / "cine/patient001/patient001_4d.nii.gz")
    np.testing.assert_allclose(img.affine[:3, 3], raw_img.affine[:3, :3] @ [4, 4, 0] + raw_img.affine[:3, 3])


def test_prepare_reorients_to_ras(tmp_path: Path) -> None:
    """A raw volume stored LPS comes out RAS with the same world-space content."""
    rng = np.random.default_rng(0)
    data = rng.random((12, 12, 12)).astype(np.float32)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    folder = tmp_path / "raw" / "100001" / "T1w"
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(data, lps), folder / "T1w_acpc_dc_restore.nii.gz")
    prepare_subject(get_reader("hcp"), tmp_path / "raw", "100001", tmp_path / "out", "ds", (0, 100), 1, (0, 1, 2))
    out = nib.load(tmp_path / "out" / "t1w.nii.gz")
    assert nib.aff2axcodes(out.affine) == ("R", "A", "S")
    prepared = np.asarray(out.dataobj)
    scaled = (data - data.min()) / (data.max() - data.min())
    # voxel (i,j,k) of the LPS file sits at world (-i,-j,k): in the RAS file it is index (11-i, 11-j, k)
    np.testing.assert_allclose(prepared[::-1, ::-1, :], scaled, atol=1e-6)


def test_mismatched_contrasts_fail(raw: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(raw / "mc" / "SYN_0001", tmp_path / "SYN_0001")
    nib.save(nib.Nifti1Image(np.ones((20, 20, 2), np.float32), np.eye(4)), tmp_path / "SYN_0001" / "SYN_0001_t2.nii.gz")
    with pytest.raises(InputError, match="co-registered"):
        prepare_subject(get_reader("brats"), tmp_path, "SYN_0001", tmp_path / "out", "ds")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_split_is_seeded_disjoint_and_follows_ratios() -> None:
    subjects = [f"s{i:02d}" for i in range(10)]
    a = make_split(subjects, (0.7, 0.1, 0.2), 1, "d")
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (7, 1, 2)
    assert sorted(a["train"] + a["val"] + a["test"]) == subjects
    assert a == make_split(list(reversed(subjects)), (0.7, 0.1, 0.2), 1, "d")
    assert a["test"] != make_split(subjects, (0.7, 0.1, 0.2), 2, "d")["test"] or \
        a["val"] != make_split(subjects, (0.7, 0.1, 0.2), 2, "d")["val"]
    assert split_counts(4, (0.7, 0.1, 0.2)) == (2, 1, 1)
    assert split_counts(5, (0, 0, 1)) == (0, 0, 5)
    with pytest.raises(ValueError, match="cannot be split"):
        split_counts(2, (0.7, 0.1, 0.2))
