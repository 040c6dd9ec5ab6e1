"""Built-in brain data from real anatomy (`params: {anatomy: mni152}`, datasets/anatomy.py).

Determinism, tissue contrast, partial volume, the real-source layouts and readers, the
phantom left untouched by the new param, and one clear error when nilearn is missing.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrisr.cli import main
from mrisr.datasets import anatomy, get_reader, write_synth
from mrisr.datasets.synth_multicontrast import generate_multicontrast
from mrisr.datasets.synth_volume import generate_volume

MC = {"size": [64, 64], "slices": 3, "anatomy": "mni152"}
VOL = {"shape": [40, 48, 40], "anatomy": "mni152"}
# 2 mm voxels: a whole head fits, so every tissue and head shell is in view
HEAD = {"size": [96, 110], "slices": 3, "spacing": [2.0, 2.0, 6.0], "anatomy": "mni152"}


def pure(fractions: dict, tissue: str) -> np.ndarray:
    return fractions[tissue] > 0.97


def array_digest(path: Path) -> str:
    return hashlib.sha256(np.asarray(nib.load(path).dataobj).tobytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    for name, kind, params in (("mc", "multicontrast", MC), ("vol", "volume", VOL)):
        write_synth(kind, tmp_path / f"{name}_a", 2, 7, params)
        write_synth(kind, tmp_path / f"{name}_b", 2, 7, params)
        write_synth(kind, tmp_path / f"{name}_c", 2, 8, params)
        files = sorted(p.relative_to(tmp_path / f"{name}_a") for p in (tmp_path / f"{name}_a").rglob("*.nii.gz"))
        assert len(files) == (4 if kind == "multicontrast" else 2)
        for f in files:
            a, b, c = ((tmp_path / f"{name}_{x}" / f).read_bytes() for x in "abc")
            assert a == b, f
            assert a != c, f
        manifest = json.loads((tmp_path / f"{name}_a" / "manifest.json").read_text())
        assert manifest["params"] == params


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_t1_and_t2_tissue_order(seed: int) -> None:
    """T1w: WM > GM > CSF; T2w: CSF > GM > WM (pure-tissue voxels, no noise)."""
    s = generate_multicontrast(np.random.default_rng([seed, 2, 0]), {**HEAD, "noise": 0.0})
    f = s.fractions
    t1 = {k: s.images["t1"][pure(f, k)].mean() for k in ("wm", "gm", "csf")}
    t2 = {k: s.images["t2"][pure(f, k)].mean() for k in ("wm", "gm", "csf")}
    assert t1["wm"] > 1.2 * t1["gm"] > 1.2 * 1.5 * t1["csf"], t1
    assert t2["csf"] > 1.2 * t2["gm"] > 1.2 * 1.2 * t2["wm"], t2
    v = generate_volume(np.random.default_rng([seed, 3, 0]), {**VOL, "noise": 0.0})
    wm, gm, csf = (v.image[pure(v.fractions, k)].mean() for k in ("wm", "gm", "csf"))
    assert wm > 1.2 * gm > 1.2 * 1.5 * csf


def test_whole_head_fractions_partial_volume_and_shells() -> None:
    s = generate_multicontrast(np.random.default_rng([4, 2, 0]), {**HEAD, "noise": 0.0})
    f = s.fractions
    np.testing.assert_allclose(sum(f.values()), 1.0, atol=1e-5)
    assert all(v.min() >= -1e-6 for v in f.values())
    for tissue in ("csf", "gm", "wm", "bone", "marrow", "fat", "skin", "background"):
        assert pure(f, tissue).any() or tissue in ("marrow", "skin"), tissue  # thin shells may never be pure
        assert f[tissue].sum() > 5, tissue
    brain = f["gm"] + f["wm"]
    # real cortex: grey matter is a large share of the brain, and the edges are one voxel wide
    assert 0.3 < f["gm"].sum() / brain.sum() < 0.75
    mixed = ((f["wm"] > 0.05) & (f["wm"] < 0.95)).sum() / (f["wm"] > 0.05).sum()
    assert 0.12 < mixed < 0.35, mixed  # measured 0.22–0.26; ramps 4× sharper give 0.06–0.08, 2× wider 0.40–0.45
    # the head: background at the corners of the field of view, skull around the brain
    assert f["background"][0, 0].min() > 0.99 and f["background"][-1, -1].min() > 0.99


def test_subjects_are_deformed_differently_and_contrasts_share_edges() -> None:
    a = generate_multicontrast(np.random.default_rng([1, 2, 0]), {**MC, "noise": 0.0})
    b = generate_multicontrast(np.random.default_rng([1, 2, 1]), {**MC, "noise": 0.0})
    assert np.corrcoef(a.fractions["wm"].ravel(), b.fractions["wm"].ravel())[0, 1] < 0.8

    def grad(x: np.ndarray) -> np.ndarray:
        return np.hypot(*np.gradient(x[..., 1])).ravel()

    same = np.corrcoef(grad(a.images["t1"]), grad(a.images["t2"]))[0, 1]
    other = np.corrcoef(grad(a.images["t1"]), grad(b.images["t2"]))[0, 1]
    assert same > 0.4 and same > other + 0.25


def test_lesions_are_bright_on_t2() -> None:
    for k in range(12):
        s = generate_multicontrast(np.random.default_rng([0, 2, k]), {**HEAD, "noise": 0.0})
        core = pure(s.fractions, "lesion")
        if core.sum() > 10:
            assert s.images["t2"][core].mean() > 1.3 * s.images["t2"][pure(s.fractions, "wm")].mean()
            return
    pytest.fail("no lesion in 12 subjects")


def test_files_read_by_the_real_readers(tmp_path: Path) -> None:
    write_synth("multicontrast", tmp_path / "mc", 3, 1, {**MC, "size": [60, 72]})
    reader = get_reader("brats", contrasts=["t1", "t2"])
    assert reader.list_subjects(tmp_path / "mc") == ["SYN_0001", "SYN_0002", "SYN_0003"]
    t1, t2 = reader.load(tmp_path / "mc", "SYN_0002")
    assert t1.data.shape[:3] == t2.data.shape[:3] == (60, 72, 3)
    assert np.allclose(nib.load(tmp_path / "mc/SYN_0002/SYN_0002_t2.nii.gz").header.get_zooms(), (1.0, 1.0, 4.0))
    (cropped,) = get_reader("brats", contrasts=["t2"], max_info_crop=True, margin=12).load(tmp_path / "mc", "SYN_0001")
    assert cropped.data.shape[:2] == (36, 48)
    write_synth("volume", tmp_path / "vol", 3, 1, VOL)
    (vol,) = get_reader("hcp").load(tmp_path / "vol", "100002")
    assert vol.data.shape[:3] == (40, 48, 40)
    assert np.allclose(nib.load(tmp_path / "vol/100002/T1w/T1w_acpc_dc_restore.nii.gz").header.get_zooms(), 0.7)


def test_phantom_stays_the_default_and_unchanged(tmp_path: Path) -> None:
    """Digests of the phantom recorded before `anatomy` existed (main at 2246137)."""
    golden = {
        "mc/SYN_0001/SYN_0001_t1.nii.gz": "924260a87438776dc0db2bc0ec51c86eac1b713e384ac6523aa857613a1de3a5",
        "mc/SYN_0001/SYN_0001_t2.nii.gz": "0a67f40a39fcb97bf4edad93fc8b24db87f5a6b7d2641a26f84b78844d919055",
        "vol/100001/T1w/T1w_acpc_dc_restore.nii.gz": "7f837b6da182e4a5412ed1ee11dbc4c294087fd49b4fd07d6489e0eb85b9d624",
    }
    for params in ({}, {"anatomy": "phantom"}):
        root = tmp_path / str(len(params))
        write_synth("multicontrast", root / "mc", 1, 5, {"size": [36, 36], "slices": 2, **params})
        write_synth("volume", root / "vol", 1, 5, {"shape": [24, 28, 24], **params})
        assert {f: array_digest(root / f) for f in golden} == golden


@pytest.mark.parametrize("kind, params, match", [
    ("multicontrast", {"anatomy": "colin27"}, "anatomy"),
    ("multicontrast", {"anatomy": "mni152", "flavour": "knee"}, "knee flavour has only 'phantom'"),
    ("multicontrast", {"anatomy": "mni152", "format": "fastmri"}, "knee flavour has only 'phantom'"),
    ("volume", {"anatomy": "MNI152"}, "anatomy"),
])
def test_bad_anatomy_is_a_clear_error(tmp_path: Path, kind: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_synth(kind, tmp_path, 1, 0, params)


def test_missing_nilearn_is_one_line_naming_the_package(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(anatomy, "find_spec", lambda name: None)
    monkeypatch.setattr(anatomy, "atlas", anatomy.atlas.__wrapped__)  # bypass this process's cache
    rc = main(["synth", "--kind", "volume", "--out", str(tmp_path / "v"), "--n-subjects", "3",
               "--params", json.dumps(VOL)])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("mrisr synth: error: nilearn: not installed") and "pip install nilearn==0.13.1" in err
    assert not (tmp_path / "v" / "manifest.json").exists()


def test_atlas_files_are_checked_and_nilearn_never_imported(monkeypatch) -> None:
    assert anatomy.mni_file("gm").name == anatomy.MNI_FILES["gm"][0]
    anatomy.atlas()
    assert "nilearn" not in sys.modules  # data files only: importing nilearn costs seconds (sklearn)
    requirement = f"{anatomy.PACKAGE}=="
    pins = [line for line in (Path(__file__).parents[1] / "requirements.txt").read_text().splitlines()
            if line.startswith(requirement)]
    assert pins == [anatomy.PIN]
    monkeypatch.setitem(anatomy.MNI_FILES, "wm", (anatomy.MNI_FILES["wm"][0], "0" * 64))
    with pytest.raises(anatomy.MissingAnatomyError, match="sha256 .* is not the MNI152 map of nilearn==0.13.1"):
        anatomy.mni_file("wm")


def test_generation_is_cheap() -> None:
    """The default config's largest 2D subject (156² × 8) and 3D subject (96×120×96), CPU time."""
    anatomy.atlas()
    t = time.process_time()
    generate_multicontrast(np.random.default_rng([0, 2, 0]), {"size": [156, 156], "slices": 8, "anatomy": "mni152"})
    slab = time.process_time() - t
    t = time.process_time()
    generate_volume(np.random.default_rng([0, 3, 0]), {"shape": [96, 120, 96], "anatomy": "mni152"})
    volume = time.process_time() - t
    assert slab < 2.0 and volume < 5.0, (slab, volume)
