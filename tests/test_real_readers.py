"""Readers of DSB 2015 (DICOM), fastMRI (HDF5 k-space), BraTS (max-info crop), ACDC extras and
the user's own NIfTI/DICOM folder: fixtures in exactly the real formats, checked against
the generators' images (independent of the readers), plus their bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mrisr.cli import main
from mrisr.datasets import get_reader, prepare_subject, write_synth
from mrisr.datasets.dsb import detect_ed_es
from mrisr.datasets.synth_cine import generate_cine
from mrisr.datasets.synth_dsb import write_sax_series, dsb_affine
from mrisr.datasets.synth_multicontrast import generate_multicontrast
from mrisr.errors import InputError
from mrisr.io import read_json

SEED = 5
CINE = {"size": [40, 40], "slices": 3, "frames": 10}
KNEE = {"size": [24, 20], "slices": 3}


def cyclic_distance(a: int, b: int, n: int) -> int:
    return min((a - b) % n, (b - a) % n)


def canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    return np.asarray(img.dataobj), img.affine


# --- DSB 2015 ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dsb(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("dsb")
    main(["synth", "--kind", "cine", "--out", str(raw / "train"), "--n-subjects", "2", "--seed", str(SEED),
          "--params", '{"format": "dsb", "size": [40, 40], "slices": 3, "frames": 10}'])
    return raw


def truth(k: int):
    return generate_cine(np.random.default_rng([SEED, 1, k]), CINE)


def test_dsb_reads_oblique_dicom_stack_in_position_order(dsb: Path) -> None:
    reader = get_reader("dsb")
    assert reader.list_subjects(dsb) == ["1", "2"]
    (cine,) = reader.load(dsb, "2")
    s = truth(1)
    # Reference: the generator's frames as stored (int16) on the oblique grid, reoriented by nibabel.
    ref_data, ref_affine = canonical(np.round(s.image).astype(np.float32), dsb_affine(s))
    np.testing.assert_array_equal(cine.data, ref_data)
    np.testing.assert_allclose(cine.affine, ref_affine, atol=1e-3)
    assert cine.meta["frames"] == 10 and cine.meta["dropped"] == []
    assert np.all(np.diff(cine.meta["trigger_times_ms"]) > 0)
    assert cine.meta["es"] == s.es and cyclic_distance(cine.meta["ed"], s.ed, 10) <= 1


def test_ed_es_detection_on_generated_cycles() -> None:
    """ES is the sharp volume minimum; ED lies in the diastasis plateau (±1 frame)."""
    for k in range(3):
        s = generate_cine(np.random.default_rng([11, 1, k]), {"size": [40, 40], "slices": 2, "frames": 12})
        ed, es, curve = detect_ed_es(s.image)
        assert es == s.es and cyclic_distance(ed, s.ed, 12) <= 1
        assert curve[ed] == max(curve) and len(curve) == 12
    with pytest.raises(ValueError, match="constant"):
        detect_ed_es(np.ones((8, 8, 2, 5)))


def test_dsb_prepared_sidecar_has_detected_cycle(dsb: Path, tmp_path: Path) -> None:
    prepare_subject(get_reader("dsb"), dsb, "1", tmp_path, "dsb", crop_multiple=4)
    side = read_json(tmp_path / "cine.json")
    assert side["frames"] == 10 and side["ed"] != side["es"] and side["ed_es"]["method"] == "blood_pool_size"
    assert nib.load(tmp_path / "cine.nii.gz").shape == (40, 40, 3, 10)


def test_dsb_repeated_location_keeps_latest_series_and_drops_odd_slices(dsb: Path, tmp_path: Path) -> None:
    shutil.copytree(dsb / "train" / "1", tmp_path / "1")
    study = tmp_path / "1" / "study"
    s = truth(0)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ dsb_affine(s)
    tags = {"0008|0060": "MR", "0010|0020": "1", "0020|000d": "1.2.3", "0008|103e": "sax"}
    # The middle slice acquired again (higher series number), brighter so we can tell.
    write_sax_series(study / "sax_40", s.image[:, :, 1] + 100.0, lps, 1.0, 900, tags)
    # A slice with only 4 frames (aborted acquisition) at a new location.
    write_sax_series(study / "sax_41", s.image[:, :, 0, :4], lps, 7.0, 901, tags)
    (cine,) = get_reader("dsb").load(tmp_path, "1")
    assert cine.data.shape == (40, 40, 3, 10)
    assert sorted(cine.meta["dropped"]) == ["sax_41", "sax_7"]  # sax_7 is the superseded middle slice
    ref, _ = canonical(np.round(s.image).astype(np.float32), dsb_affine(s))
    before = np.abs(cine.data - ref).reshape(-1, 10).max(axis=1).reshape(40, 40, 3)
    assert (before.max(axis=(0, 1)) > 0).sum() == 1  # exactly one slice differs: the re-acquired one


def test_dsb_bad_files_name_the_file(dsb: Path, tmp_path: Path) -> None:
    shutil.copytree(dsb / "train" / "2", tmp_path / "2")
    victim = sorted((tmp_path / "2/study/sax_5").iterdir())[3]
    victim.write_bytes(b"\x00" * 50 + b"not a dicom")
    with pytest.raises(InputError, match=rf"{victim.name}: unreadable DICOM"):
        get_reader("dsb").load(tmp_path, "2")
    for f in (tmp_path / "2/study").glob("sax_*/*"):
        f.unlink()
    with pytest.raises(InputError, match="no DICOM images in the sax_"):
        get_reader("dsb").load(tmp_path, "2")


# --- fastMRI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def knee(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("fastmri")
    write_synth("multicontrast", raw, 2, SEED, {"format": "fastmri", **KNEE, "coils": 3})
    return raw


def knee_truth(k: int):
    return generate_multicontrast(np.random.default_rng([SEED, 2, k]), {**KNEE, "flavour": "knee"})


def test_fastmri_rss_of_multicoil_kspace_is_the_image(knee: Path) -> None:
    reader = get_reader("fastmri", pairs="pairs.csv", crop=[20, 24])
    assert reader.list_subjects(knee) == ["file1000001", "file1000003"]
    pd, pdfs = reader.load(knee, "file1000003")
    s = knee_truth(1)
    assert (pd.name, pdfs.name) == ("pd", "pdfs") and pd.meta["coils"] == 3
    np.testing.assert_allclose(pd.data, s.images["pd"], rtol=1e-4, atol=1e-3 * s.images["pd"].max())
    np.testing.assert_allclose(pdfs.data, s.images["pdfs"], rtol=1e-4, atol=1e-3 * s.images["pdfs"].max())
    spacing = np.sqrt((s.affine[:3, :3] ** 2).sum(axis=0))  # the header carries the generator's spacing
    np.testing.assert_allclose(pd.affine, np.diag([*spacing, 1.0]), atol=1e-4)
    np.testing.assert_array_equal(pdfs.affine, pd.affine)
    with h5py.File(knee / "multicoil_train/file1000003.h5") as f:
        assert f["kspace"].shape == (3, 3, 40, 32) and f.attrs["acquisition"] == "CORPD_FBK"  # 2× readout
        assert "reconstruction_rss" in f


def test_fastmri_singlecoil_and_single_contrast(tmp_path: Path) -> None:
    write_synth("multicontrast", tmp_path, 2, SEED, {"format": "fastmri", **KNEE, "coils": 0})
    reader = get_reader("fastmri", contrast="pdfs", crop=[20, 24])
    assert reader.list_subjects(tmp_path) == ["file1000002", "file1000004"]
    (img,) = reader.load(tmp_path, "file1000004")
    s = knee_truth(1)
    np.testing.assert_allclose(img.data, s.images["pdfs"], rtol=1e-4, atol=1e-3 * s.images["pdfs"].max())
    with h5py.File(tmp_path / "singlecoil_train/file1000004.h5") as f:
        assert f["kspace"].ndim == 3 and "reconstruction_esc" in f


def copy_file(knee: Path, tmp_path: Path, stem: str) -> Path:
    (tmp_path / "k").mkdir(exist_ok=True)
    return Path(shutil.copy(knee / "multicoil_train" / f"{stem}.h5", tmp_path / "k" / f"{stem}.h5"))


def test_fastmri_bad_files(knee: Path, tmp_path: Path) -> None:
    reader = get_reader("fastmri", contrast="pd", crop=[20, 24])
    path = copy_file(knee, tmp_path, "file1000001")
    with h5py.File(path, "a") as f:
        del f["kspace"]
    with pytest.raises(InputError, match=r"file1000001\.h5: no 'kspace' dataset"):
        reader.load(tmp_path, "file1000001")
    with h5py.File(path, "a") as f:
        f["kspace"] = np.zeros((40, 28), np.complex64)
    with pytest.raises(InputError, match=r"kspace has shape \(40, 28\)"):
        reader.load(tmp_path, "file1000001")
    with h5py.File(path, "a") as f:
        del f["kspace"]
        f["kspace"] = np.zeros((3, 40, 28), np.float32)
    with pytest.raises(InputError, match="expected complex"):
        reader.load(tmp_path, "file1000001")
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError, match=r"file1000001\.h5: unreadable HDF5"):
        reader.load(tmp_path, "file1000001")
    path = copy_file(knee, tmp_path, "file1000001")
    with pytest.raises(InputError, match=r"k-space 40×32 is smaller than the crop 320×320"):
        get_reader("fastmri", contrast="pd").load(tmp_path, "file1000001")
    with h5py.File(path, "a") as f:
        del f.attrs["acquisition"]
        del f["ismrmrd_header"]
        f["ismrmrd_header"] = b"<ismrmrdHeader/>"
    with pytest.raises(InputError, match="no acquisition"):
        reader.list_subjects(tmp_path)


def test_fastmri_pair_lists_are_checked(knee: Path, tmp_path: Path) -> None:
    for stem in ("file1000001", "file1000002", "file1000003"):
        copy_file(knee, tmp_path, stem)
    raw = tmp_path / "k"
    (raw / "swapped.csv").write_text("# pd, pdfs\nfile1000002.h5,file1000001.h5\n")
    reader = get_reader("fastmri", pairs="swapped.csv", crop=[20, 24])
    assert reader.list_subjects(raw) == ["file1000002"]
    with pytest.raises(InputError, match=r"swapped\.csv: file1000002\.h5 is CORPDFS_FBK, expected pd"):
        reader.load(raw, "file1000002")
    # PD of one knee with the PDFS of another that has fewer slices: not slice-aligned.
    with h5py.File(raw / "file1000002.h5", "a") as f:
        k = f["kspace"][()]
        del f["kspace"]
        f["kspace"] = k[:2]
    (raw / "short.csv").write_text("pd,pdfs\nfile1000003,file1000002\n")
    with pytest.raises(InputError, match="not a slice-aligned pair"):
        get_reader("fastmri", pairs="short.csv", crop=[20, 24]).load(raw, "file1000003")
    (raw / "bad.csv").write_text("file1000001.h5\n")
    with pytest.raises(InputError, match=r"bad\.csv: line 1: expected 'pd_file,pdfs_file'"):
        get_reader("fastmri", pairs="bad.csv").list_subjects(raw)
    with pytest.raises(ValueError, match="exactly one of"):
        get_reader("fastmri", pairs="x.csv", contrast="pd")


# --- BraTS max-info crop, ACDC Info.cfg, HCP -----------------------------------------------


def brats_subject(root: Path, sid: str, sep: str, contrasts=("t1", "t2")) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(0)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [30.0, 20.0, -5.0]
    vols = {}
    for c in contrasts:
        v = np.zeros((36, 30, 10), np.float32)
        v[6:30, 5:25, 2:7] = rng.random((24, 20, 5)) + 0.1  # brain in slices 2..6 only
        vols[c] = v
        (root / sid).mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(v, affine), root / sid / f"{sid}{sep}{c}.nii.gz")
    return vols, affine


def test_brats_max_info_crop_keeps_brain_slices_and_moves_affine(tmp_path: Path) -> None:
    vols, affine = brats_subject(tmp_path, "BraTS-GLI-00001-000", "-", ("t1n", "t2w"))
    reader = get_reader("brats", contrasts=["t1n", "t2w"], separator="-", max_info_crop=True, margin=3)
    t1, t2 = reader.load(tmp_path, "BraTS-GLI-00001-000")
    ras, ras_affine = canonical(vols["t2w"], affine)
    np.testing.assert_array_equal(t2.data, ras[3:33, 3:27, 2:7])
    np.testing.assert_allclose(t2.affine[:3, 3], (ras_affine @ [3, 3, 2, 1])[:3])  # world position of voxel (3,3,2)
    assert t1.meta["max_info_crop"] == {"slices": [2, 7], "margin": 3, "before": [36, 30, 10]}
    prepare_subject(reader, tmp_path, "BraTS-GLI-00001-000", tmp_path / "out", "brats", crop_multiple=6)
    assert nib.load(tmp_path / "out/t2w.nii.gz").shape == (30, 24, 5)
    with pytest.raises(InputError, match="margin 15 leaves nothing"):
        get_reader("brats", contrasts=["t1n"], separator="-", max_info_crop=True, margin=15).load(
            tmp_path, "BraTS-GLI-00001-000")


def test_acdc_info_cfg_extras_and_frame_count(tmp_path: Path) -> None:
    write_synth("cine", tmp_path, 1, 3, {"size": [24, 24], "slices": 2, "frames": 6})
    (cine,) = get_reader("acdc").load(tmp_path, "patient001")
    assert cine.meta["info"]["Group"] == "NOR" and cine.meta["info"]["NbFrame"] == 6.0
    assert 150 <= cine.meta["info"]["Height"] <= 200
    cfg = tmp_path / "patient001/Info.cfg"
    cfg.write_text(cfg.read_text().replace("NbFrame: 6", "NbFrame: 30"))
    with pytest.raises(InputError, match=r"Info\.cfg: NbFrame: 30 but patient001_4d\.nii\.gz has 6 frames"):
        get_reader("acdc").load(tmp_path, "patient001")


# --- the user's own folder -----------------------------------------------------------------


def write_dicom_volume(folder: Path, volume: np.ndarray, spacing=(0.9, 0.8, 3.0)) -> np.ndarray:
    """A 3D volume (X, Y, Z) as a DICOM series, one file per slice; returns its RAS affine."""
    folder.mkdir(parents=True)
    origin = np.array([-20.0, 15.0, 40.0])  # LPS
    for k in range(volume.shape[2]):
        image = sitk.GetImageFromArray(np.round(volume[:, :, k].T).astype(np.int16))
        image.SetSpacing(spacing[:2])  # the writer takes PixelSpacing from the image, not the tags
        tags = {"0008|0060": "MR", "0020|000d": "1.2.3", "0020|000e": "1.2.3.4", "0020|0011": "7",
                "0020|0013": str(k + 1), "0020|0037": "1\\0\\0\\0\\1\\0",
                "0028|0030": f"{spacing[1]}\\{spacing[0]}", "0018|0050": str(spacing[2]),
                "0020|0032": "\\".join(str(v) for v in origin + [0, 0, k * spacing[2]])}
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"slice{volume.shape[2] - k:03d}.dcm"))  # names against the order
        writer.Execute(image)
    lps = np.diag([*spacing, 1.0])
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def test_nifti_folder_bids_patterns_and_dicom_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t1 = (rng.random((12, 10, 4)) * 1000).astype(np.float32)
    t2 = np.round(rng.random((12, 10, 4)) * 1000).astype(np.float32)
    for sid in ("sub-01", "sub-02", "sub-03"):
        (tmp_path / sid / "anat").mkdir(parents=True)
        nib.save(nib.Nifti1Image(t1, np.eye(4)), tmp_path / sid / "anat" / f"{sid}_T1w.nii.gz")
    affine = write_dicom_volume(tmp_path / "sub-01" / "dicom_t2", t2)
    write_dicom_volume(tmp_path / "sub-02" / "dicom_t2", t2)
    nib.save(nib.Nifti1Image(t1, np.eye(4)), tmp_path / "sub-03" / "anat" / "sub-02_T1w.nii.gz")  # wrong id: ignored
    reader = get_reader("nifti", series={"t1": "{subject}/anat/{subject}_T1w.nii.gz", "t2": "{subject}/dicom_t2"})
    assert reader.list_subjects(tmp_path) == ["sub-01", "sub-02"]  # sub-03 has no T2
    s1, s2 = reader.load(tmp_path, "sub-01")
    np.testing.assert_array_equal(s1.data, t1)
    ref, ref_affine = canonical(t2, affine)
    np.testing.assert_array_equal(s2.data, ref)
    np.testing.assert_allclose(s2.affine, ref_affine, atol=1e-4)
    assert (s2.name, s2.meta["contrast"]) == ("t2", "t2")


def test_nifti_folder_flat_and_subject_folders(tmp_path: Path) -> None:
    vol = np.arange(6 * 6 * 3, dtype=np.float32).reshape(6, 6, 3)
    for sid in ("case_1", "case_2"):
        nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / f"{sid}_t1.nii.gz")
    assert get_reader("nifti", series={"t1": "{subject}_t1.nii.gz"}).list_subjects(tmp_path) == ["case_1", "case_2"]
    nested = tmp_path / "clinic" / "site"
    for sid in ("p1", "p2"):
        (nested / sid).mkdir(parents=True)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), nested / sid / "scan_T1_axial.nii.gz")
        nib.save(nib.Nifti1Image(vol, np.eye(4)), nested / sid / "scan_T2_axial.nii.gz")
    reader = get_reader("nifti", series={"t1": "*T1*.nii.gz", "t2": "*T2*.nii.gz"})
    assert reader.list_subjects(tmp_path) == ["p1", "p2"]
    nib.save(nib.Nifti1Image(vol[:4], np.eye(4)), nested / "p2" / "scan_T2_sagittal.nii.gz")
    with pytest.raises(InputError, match=r"p2: series 't2': pattern '\*T2\*\.nii\.gz' matches 2 paths"):
        reader.load(tmp_path, "p2")
    # A mismatched pair (another grid) is refused when the subject is prepared.
    (nested / "p2" / "scan_T2_axial.nii.gz").unlink()
    with pytest.raises(InputError, match="must be co-registered"):
        prepare_subject(reader, tmp_path, "p2", tmp_path / "out", "mine", crop_multiple=2)
    (nested / "p1" / "scan_T1_axial.nii.gz").write_bytes(b"corrupt")
    with pytest.raises(InputError, match=r"scan_T1_axial\.nii\.gz: unreadable NIfTI"):
        reader.load(tmp_path, "p1")
    with pytest.raises(ValueError, match="every series pattern contains"):
        get_reader("nifti", series={"t1": "{subject}_t1.nii.gz", "t2": "*T2*"})
    with pytest.raises(ValueError, match="relative"):
        get_reader("nifti", series={"t1": "/data/*.nii.gz"})


def test_nifti_folder_4d_is_a_cine_with_detected_cycle(tmp_path: Path) -> None:
    s = generate_cine(np.random.default_rng([2, 1, 0]), {"size": [40, 40], "slices": 2, "frames": 12})
    nib.save(nib.Nifti1Image(s.image, s.affine), tmp_path / "heart_cine.nii.gz")
    (cine,) = get_reader("nifti", series={"cine": "{subject}_cine.nii.gz"}).load(tmp_path, "heart")
    assert cine.meta["frames"] == 12 and cine.meta["es"] == s.es
    assert cyclic_distance(cine.meta["ed"], s.ed, 12) <= 1
