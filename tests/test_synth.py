"""Built-in generators: physics and anatomy they promise, determinism, reruns, params.

(Layouts and the reader round trip are in test_datasets.py; this file checks the
generators themselves against independent references.)
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mrisr.datasets import phantom as ph
from mrisr.datasets import write_synth
from mrisr.datasets.synth_cine import LABEL_LV, LABEL_MYO, contraction, generate_cine
from mrisr.datasets.synth_multicontrast import generate_multicontrast
from mrisr.datasets.synth_volume import generate_volume

CINE = {"size": [40, 40], "slices": 2, "frames": 15}
MC = {"size": [48, 48], "slices": 3}
BRAIN = {"size": [96, 96], "slices": 3}  # big enough for pure grey-matter voxels
VOL = {"shape": [28, 32, 28]}
HEAD = {"shape": [40, 48, 40]}  # big enough for pure grey-matter voxels


def pure(fractions: dict, tissue: str) -> np.ndarray:
    """Voxels (almost) entirely of one tissue."""
    return fractions[tissue] > 0.97


def test_soft_disk_area_is_partial_volume_exact() -> None:
    """Summed fractions of a soft disk equal its area π r² (independent of the grid)."""
    coords = ph.normalised_coords((200, 200, 1), (1.0, 1.0, 1.0), 100.0)
    width = 0.35 / 100.0
    for r in (0.2, 0.37, 0.61):
        area = ph.soft(ph.disk_sdf(coords, (0.013, -0.021), r), width).sum() * (1 / 100.0) ** 2
        assert area == pytest.approx(np.pi * r * r, rel=2e-3)


def test_composite_fractions_sum_to_one_and_respect_order() -> None:
    coords = ph.normalised_coords((30, 30, 1), (1.0, 1.0, 1.0), 15.0)
    big = ph.soft(ph.disk_sdf(coords, (0, 0), 0.8), 0.02)
    small = ph.soft(ph.disk_sdf(coords, (0, 0), 0.3), 0.02)
    f = ph.composite([("a", big), ("b", small), ("a", small * 0.0)])
    np.testing.assert_allclose(f["a"] + f["b"] + f["background"], 1.0, atol=1e-6)
    np.testing.assert_allclose(f["b"], small, atol=1e-6)  # top layer keeps its whole mask
    assert f["a"][15, 15, 0] == 0.0 and f["a"][15, 6, 0] == 1.0


def test_cine_cycle_over_every_frame() -> None:
    """LV cavity is largest exactly at ED and smallest at ES; the myocardium, an
    incompressible wall, keeps its area while the cavity shrinks."""
    s = generate_cine(np.random.default_rng([7, 1, 0]), CINE)
    lv = (s.labels == LABEL_LV).sum(axis=(0, 1, 2))
    myo = (s.labels == LABEL_MYO).sum(axis=(0, 1, 2))
    assert lv[s.ed] == lv.max() and lv[s.es] == lv.min() and lv[s.ed] > 1.4 * lv[s.es]
    assert abs(myo[s.es] - myo[s.ed]) < 0.2 * myo[s.ed]
    assert set(np.unique(s.labels)) == {0, 1, 2, 3}
    assert s.es - s.ed == pytest.approx(CINE["frames"] / 3, abs=1.5)


def test_contraction_curve() -> None:
    frames, ed, n_sys = 30, 4, 10
    c = np.array([contraction(t, ed, n_sys, frames) for t in range(frames)])
    assert c[ed] == 0.0 and c[ed + n_sys] == 1.0
    assert np.all(c[np.arange(frames) != ed] > 0) and np.all(c[np.arange(frames) != ed + n_sys] < 1)
    assert np.all(np.diff(c[ed:ed + n_sys + 1]) > 0)  # contracts monotonically to ES


def test_cine_files_match_the_generated_subject(tmp_path: Path) -> None:
    write_synth("cine", tmp_path, 1, 7, CINE)
    s = generate_cine(np.random.default_rng([7, 1, 0]), CINE)
    folder = tmp_path / "patient001"
    cfg = (folder / "Info.cfg").read_text()
    assert cfg.startswith(f"ED: {s.ed + 1}\nES: {s.es + 1}\nGroup: NOR\nHeight: ")
    for frame in (s.ed, s.es):
        stem = folder / f"patient001_frame{frame + 1:02d}"
        np.testing.assert_array_equal(nib.load(f"{stem}.nii.gz").get_fdata(dtype=np.float32), s.image[..., frame])
        gt = nib.load(f"{stem}_gt.nii.gz")
        assert gt.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asarray(gt.dataobj), s.labels[..., frame])
    assert np.allclose(nib.load(folder / "patient001_4d.nii.gz").header.get_zooms()[:3], (1.8, 1.8, 8.0))


def test_brain_contrasts_follow_the_signal_equation() -> None:
    """CSF darker than WM on T1w, brighter on T2w; lesion bright on T2w."""
    s = generate_multicontrast(np.random.default_rng([3, 2, 1]), {**BRAIN, "noise": 0.0})
    t1, t2, f = s.images["t1"], s.images["t2"], s.fractions
    assert t1[pure(f, "wm")].mean() > 1.5 * t1[pure(f, "csf")].mean()
    assert t2[pure(f, "csf")].mean() > 1.5 * t2[pure(f, "wm")].mean()
    assert t1[pure(f, "wm")].mean() > t1[pure(f, "gm")].mean()  # WM brighter than GM on T1w


def test_knee_fat_suppression_and_fluid() -> None:
    s = generate_multicontrast(np.random.default_rng([3, 2, 2]), {**MC, "flavour": "knee", "noise": 0.0})
    pd, pdfs, f = s.images["pd"], s.images["pdfs"], s.fractions
    fat = pure(f, "fat") | pure(f, "marrow")
    assert pdfs[fat].mean() < 0.2 * pd[fat].mean()  # fat suppressed
    assert pdfs[pure(f, "muscle")].mean() == pytest.approx(pd[pure(f, "muscle")].mean(), rel=1e-3)  # rest untouched
    assert set(s.images) == {"pd", "pdfs"}


def test_knee_microstructure_is_opt_in_and_keeps_fractions() -> None:
    """`microstructure: true`: trabeculae darken part of the marrow, fatty streaks brighten part of the
    muscle; fractions still sum to one; off (the default) the knee is the phantom recorded before the
    param existed (main at 2246137)."""
    import hashlib

    plain = generate_multicontrast(np.random.default_rng([5, 2, 0]), {"size": [36, 36], "slices": 2, "flavour": "knee"})
    assert {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in plain.images.items()} == {
        "pd": "8c021dfdf38c7ebde2c2bfc7890391ca0cf3951d358375b83a5d278bb2383989",
        "pdfs": "2e4e94a8f4ae733ca570cdf767d140efb54d28dc4144f3959649f10eddac3886"}
    params = {**MC, "size": [96, 96], "flavour": "knee", "noise": 0.0, "spacing": [0.5, 0.5, 3.0]}
    a = generate_multicontrast(np.random.default_rng([3, 2, 2]), params)
    b = generate_multicontrast(np.random.default_rng([3, 2, 2]), {**params, "microstructure": True})
    np.testing.assert_allclose(sum(b.fractions.values()), 1.0, atol=1e-5)
    inside = a.fractions["marrow"] > 0.99
    assert b.fractions["bone"][inside].mean() > a.fractions["bone"][inside].mean() + 0.02
    core = ndimage.binary_erosion(inside, np.ones((7, 7, 1)))  # away from the cortex edge
    fine = lambda s: (s.images["pd"] - ndimage.gaussian_filter(s.images["pd"], (2, 2, 0)))[core].std()  # noqa: E731
    assert fine(b) > 1.5 * fine(a)  # the trabecular maze is fine-scale texture
    muscle = a.fractions["muscle"] > 0.99
    assert 0.01 < b.fractions["fat"][muscle].mean() < 0.3
    with pytest.raises(ValueError, match="microstructure"):
        generate_multicontrast(np.random.default_rng(0), {**MC, "microstructure": True})  # brain


def test_contrasts_share_edges_with_each_other_not_with_another_subject() -> None:
    """Gradient magnitudes of T1w and T2w of one subject correlate strongly; with another
    subject's T2w they do not: the anatomy is shared, the contrast is not."""
    a = generate_multicontrast(np.random.default_rng([3, 2, 1]), {**BRAIN, "noise": 0.0})
    b = generate_multicontrast(np.random.default_rng([3, 2, 11]), {**BRAIN, "noise": 0.0})

    def grad(x: np.ndarray) -> np.ndarray:
        return np.hypot(*np.gradient(x[..., 1])).ravel()

    same = np.corrcoef(grad(a.images["t1"]), grad(a.images["t2"]))[0, 1]
    other = np.corrcoef(grad(a.images["t1"]), grad(b.images["t2"]))[0, 1]
    assert same > 0.4 and same > other + 0.25


def test_volume_t1w_tissue_order_and_folding() -> None:
    s = generate_volume(np.random.default_rng([3, 3, 0]), {**HEAD, "noise": 0.0})
    f, img = s.fractions, s.image
    wm, gm, csf = (img[pure(f, t)].mean() for t in ("wm", "gm", "csf"))
    assert wm > gm > csf
    assert s.image.shape == (40, 48, 40) and np.allclose(np.diag(s.affine)[:3], 0.7)
    assert (f["gm"] > 0.5).sum() > 0.1 * (f["wm"] > 0.5).sum()  # a real cortical ribbon


@pytest.mark.parametrize("kind, params", [("cine", CINE), ("multicontrast", MC), ("volume", VOL),
                                          ("multicontrast", {**MC, "flavour": "knee"})])
def test_subject_k_ignores_n_subjects_and_seed_matters(tmp_path: Path, kind: str, params: dict) -> None:
    three = write_synth(kind, tmp_path / "a", 3, 11, params)
    five = write_synth(kind, tmp_path / "b", 5, 11, params)
    other = write_synth(kind, tmp_path / "c", 3, 12, params)
    assert five[:3] == three == other
    for folder in ("b", "c"):
        for x, y in zip(sorted((tmp_path / "a").rglob("*.nii.gz")), sorted((tmp_path / folder).rglob("*.nii.gz"))):
            same = np.array_equal(np.asarray(nib.load(x).dataobj), np.asarray(nib.load(y).dataobj))
            assert same == (folder == "b"), (x, y)


def test_rerun_removes_stale_subjects_and_writes_manifest_last(tmp_path: Path) -> None:
    write_synth("volume", tmp_path, 3, 1, VOL)
    (tmp_path / "notes.txt").write_text("mine")
    assert write_synth("volume", tmp_path, 2, 1, VOL) == ["100001", "100002"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["100001", "100002", "manifest.json", "notes.txt"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == {"kind": "volume", "n_subjects": 2, "seed": 1, "params": VOL, "subjects": ["100001", "100002"]}
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    newest_data = max(p.stat().st_mtime_ns for p in tmp_path.rglob("*.nii.gz"))
    assert (tmp_path / "manifest.json").stat().st_mtime_ns >= newest_data


@pytest.mark.parametrize("kind, params, match", [
    ("cine", {"sizes": 32}, "unknown cine synth params"),
    ("cine", {"frames": 1}, "frames"),
    ("multicontrast", {"flavour": "liver"}, "flavour"),
    ("volume", {"spacing": [0.7, -1, 0.7]}, "spacing"),
    ("volume", {"shape": [32, 32]}, "shape"),
    ("mri", None, "unknown synth kind"),
])
def test_bad_params_are_clear_errors(tmp_path: Path, kind: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_synth(kind, tmp_path, 1, 0, params)


def test_bad_seed_or_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed"):
        write_synth("cine", tmp_path, 1, -1, CINE)
    with pytest.raises(ValueError, match="n_subjects"):
        write_synth("cine", tmp_path, 0, 1, CINE)
