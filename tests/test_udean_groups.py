"""UDEAN data groups: nearest (decimation) degradation and its grid, the target/source division,
and the group patch stores (pairs with replaced HR; unpaired source_hr/target_lr)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from mrisr.datasets.groups import make_groups
from mrisr.datasets.split import make_split
from mrisr.datasets.synth_volume import generate_volume
from mrisr.degrade.motion import apply_motion
from mrisr.degrade.nearest import nearest_decimate
from mrisr.degrade.pipeline import degrade_array, degrade_file
from mrisr.errors import InputError
from mrisr.grid import Grid
from mrisr.io import read_nifti, write_json, write_nifti
from mrisr.patches.groups import build_group_store

MOTION = {"rot_z_deg": 1.5, "rot_x_deg": -1.0, "trans_x_vox": 1.2, "trans_z_vox": -0.7,
          "shrink_y_vox": 1.0, "shrink_x_vox": 0.5}


# ---------------------------------------------------------------------------- nearest
def test_nearest_keeps_every_sth_hr_sample_on_the_corner_grid():
    x = np.random.default_rng(0).random((12, 8, 6)).astype(np.float32)
    lr, grid = degrade_array(x, "nearest", 2, (0, 1, 2))
    np.testing.assert_array_equal(lr, x[::2, ::2, ::2])
    assert grid.convention == "corner" and grid.lr_shape == (6, 4, 3)
    assert all(grid.axis(a).offset == 0.0 and grid.axis(a).step == 2.0 for a in (0, 1, 2))
    lr2, _ = degrade_array(x, "nearest", 2, (0, 1))  # only the listed axes
    np.testing.assert_array_equal(lr2, x[::2, ::2, :])


def test_nearest_sits_where_kspace_truncation_samples():
    """Independent check of the convention: a volume band-limited below the LR Nyquist frequency
    is reproduced exactly by k-space truncation at HR positions i·s — the samples decimation keeps."""
    n, s = 24, 2
    i = np.arange(n)
    x = (0.5 + 0.2 * np.cos(2 * np.pi * 3 * i / n + 0.4)[:, None, None]
         * np.cos(2 * np.pi * 2 * i / n - 1.0)[None, :, None] + 0.1 * np.sin(2 * np.pi * 4 * i / n)[None, None, :])
    near, g_near = degrade_array(x, "nearest", s, (0, 1, 2))
    trunc, g_trunc = degrade_array(x, "truncate", s, (0, 1, 2))
    assert g_near == g_trunc
    np.testing.assert_allclose(near, trunc, atol=1e-5)
    half_shift = x[1::2, 1::2, 1::2]  # the other candidate "nearest" sample of a centre grid
    assert np.abs(half_shift - trunc).max() > 1e-2


def test_nearest_lr_affine_puts_lr_voxel_i_on_hr_voxel_i_times_s(tmp_path):
    hr_affine = np.array([[0.0, -0.8, 0.0, 4.0], [1.2, 0.0, 0.0, -10.0], [0.0, 0.0, 2.5, 7.5], [0, 0, 0, 1]])
    x = np.random.default_rng(1).random((40, 32, 6)).astype(np.float32)
    write_nifti(tmp_path / "hr.nii.gz", x, hr_affine)
    degrade_file(tmp_path / "hr.nii.gz", tmp_path / "lr.nii.gz", "nearest", 4, (0, 1), "none",
                 {"dataset": "d", "subject": "s", "series": "t1w"})
    lr, lr_aff = read_nifti(tmp_path / "lr.nii.gz", canonical=False)
    for ijk in [(0, 0, 0), (3, 5, 2), (9, 7, 5)]:
        hr_ijk = (4 * ijk[0], 4 * ijk[1], ijk[2])
        np.testing.assert_allclose(lr_aff @ [*ijk, 1], hr_affine @ [*hr_ijk, 1], atol=1e-5)
        assert lr[ijk] == x[hr_ijk]


def test_nearest_refuses_fractional_or_indivisible_scales():
    x = np.zeros((12, 12, 12), np.float32)
    with pytest.raises(ValueError, match="integer scale"):
        nearest_decimate(x, 1.5, (0, 1, 2))
    with pytest.raises(ValueError, match="not multiples"):
        nearest_decimate(np.zeros((12, 13, 12)), 2, (0, 1, 2))


# ---------------------------------------------------------------------------- groups
def test_groups_have_the_papers_proportions_and_are_disjoint_and_seeded():
    subjects = [f"s{i:02d}" for i in range(20)]
    split = make_split(subjects, (0.8, 0.1, 0.1), 42, "ds")
    g = make_groups(split, 0.5, 42, "ds")
    assert [len(g[k]) for k in ("target", "source", "val", "test")] == [8, 8, 2, 2]  # 120+120 / 30 / 30
    assert not set(g["target"]) & set(g["source"])
    assert set(g["target"]) | set(g["source"]) == set(split["train"])
    assert g["val"] == split["val"] and g["test"] == split["test"]
    assert g == make_groups(split, 0.5, 42, "ds")
    assert g["source"] != make_groups(split, 0.5, 43, "ds")["source"]
    with pytest.raises(ValueError, match="between 0 and 1"):
        make_groups(split, 1.0, 42, "ds")
    with pytest.raises(ValueError, match="non-empty"):
        make_groups({"train": ["a"], "val": [], "test": []}, 0.5, 42, "ds")


# ---------------------------------------------------------------------------- stores
@pytest.fixture(scope="module")
def group_dirs(tmp_path_factory) -> dict:
    """Four built-in heads: prepared HR, truncated and nearest LR, moved HR; groups 2 + 2."""
    root = tmp_path_factory.mktemp("groups")
    subjects = ["a", "b", "c", "d"]
    for k, sub in enumerate(subjects):
        v = generate_volume(np.random.default_rng(k), {"shape": [24, 24, 24]}).image
        v = (v / v.max()).astype(np.float32)
        hr = root / "prepared" / sub / "t1w.nii.gz"
        write_nifti(hr, v, np.diag([0.7, 0.7, 0.7, 1.0]))
        meta = {"dataset": "d", "subject": sub, "series": "t1w"}
        degrade_file(hr, root / "lr" / f"{sub}.nii.gz", "truncate", 2, (0, 1, 2), "none", meta)
        degrade_file(hr, root / "nearest" / f"{sub}.nii.gz", "nearest", 2, (0, 1, 2), "none", meta)
        write_nifti(root / "motion" / f"{sub}.nii.gz", apply_motion(v, (0.7,) * 3, MOTION), np.diag([0.7] * 3 + [1]))
    groups = {"target": ["a", "b"], "source": ["c", "d"], "val": [], "test": []}
    write_json(root / "groups.json", groups)
    return {"root": root, "groups": groups}


def build(root: Path, kind: str, out: str, lr: str = "lr", hr_dir: Path | None = None) -> Path:
    path = root / "stores" / out
    build_group_store(path, kind, root / "groups.json", root / lr, 2, (8, 8, 4), 5, 3, hr_dir)
    return path


def is_block_of(patch: np.ndarray, volume: np.ndarray, step: int) -> bool:
    """Whether `patch` is a sub-block of `volume` with its corner on multiples of `step`."""
    shape = patch.shape
    for c in np.ndindex(*((n - p) // step + 1 for n, p in zip(volume.shape, shape))):
        sl = tuple(slice(step * ci, step * ci + p) for ci, p in zip(c, shape))
        if np.array_equal(volume[sl], patch):
            return True
    return False


def test_misaligned_pairs_take_hr_from_the_moved_volumes(group_dirs):
    root = group_dirs["root"]
    path = build(root, "misaligned_pairs", "mis.h5", hr_dir=root / "motion")
    with h5py.File(path) as f:
        hr, lr, subj = f["hr"][:], f["lr"][:], f["subject"][:]
        assert f.attrs["task"] == "sisr3d" and f.attrs["group_store"] == "misaligned_pairs"
        assert f.attrs["lr_patch"] == "[4, 4, 2]" and f.attrs["grid_convention"] == "corner"
    assert hr.shape == (10, 8, 8, 4) and lr.shape == (10, 4, 4, 2)
    for k in (0, 7):
        sub = group_dirs["groups"]["target"][subj[k]]
        moved, _ = read_nifti(root / "motion" / f"{sub}.nii.gz", canonical=False)
        prepared, _ = read_nifti(root / "prepared" / sub / "t1w.nii.gz", canonical=False)
        assert is_block_of(hr[k], moved, 2) and not is_block_of(hr[k], prepared, 2)
        lr_vol, _ = read_nifti(root / "lr" / f"{sub}.nii.gz", canonical=False)
        assert is_block_of(lr[k], lr_vol, 1)
    again = build(root, "misaligned_pairs", "mis2.h5", hr_dir=root / "motion")
    with h5py.File(again) as f:
        np.testing.assert_array_equal(f["hr"][:], hr)


def test_nearest_pairs_come_from_the_source_group(group_dirs):
    root = group_dirs["root"]
    with h5py.File(build(root, "nearest_pairs", "nn.h5", lr="nearest")) as f:
        hr, lr = f["hr"][:], f["lr"][:]
        assert f.attrs["subjects"] == '["c", "d"]'
    np.testing.assert_array_equal(lr, hr[:, ::2, ::2, ::2])  # decimation within each aligned pair


@pytest.mark.parametrize("kind", ["udean_unpaired", "udean_misaligned"])
def test_unpaired_store_holds_source_hr_and_target_lr(group_dirs, kind):
    root = group_dirs["root"]
    hr_dir = root / "motion" if kind == "udean_misaligned" else None
    with h5py.File(build(root, kind, f"{kind}.h5", hr_dir=hr_dir)) as f:
        assert set(f) == {"source_hr", "target_lr", "source_subject", "target_subject"}
        src, tgt = f["source_hr"][:], f["target_lr"][:]
        s_sub, t_sub = f["source_subject"][:], f["target_subject"][:]
        assert f.attrs["target_subjects"] == '["a", "b"]'
    assert src.shape == (10, 8, 8, 4) and tgt.shape == (10, 4, 4, 2)
    sources = group_dirs["groups"]["source" if kind == "udean_unpaired" else "target"]
    for k in (0, 9):
        sub = sources[s_sub[k]]
        vol = root / ("motion" if hr_dir else "prepared")
        hr_vol, _ = read_nifti(vol / (f"{sub}.nii.gz" if hr_dir else f"{sub}/t1w.nii.gz"), canonical=False)
        assert is_block_of(src[k], hr_vol, 2)  # corners on the LR grid
        lr_vol, _ = read_nifti(root / "lr" / f"{group_dirs['groups']['target'][t_sub[k]]}.nii.gz", canonical=False)
        assert is_block_of(tgt[k], lr_vol, 1)


def test_group_store_errors_name_the_file(group_dirs, tmp_path):
    root = group_dirs["root"]
    bad = tmp_path / "groups.json"
    write_json(bad, {"target": ["a"]})
    with pytest.raises(InputError, match="groups.json"):
        build_group_store(tmp_path / "x.h5", "udean_unpaired", bad, root / "lr", 2, (8, 8, 4), 2, 0)
    with pytest.raises(ValueError, match="unknown group store kind"):
        build_group_store(tmp_path / "x.h5", "pairs", root / "groups.json", root / "lr", 2, (8, 8, 4), 2, 0)
    with pytest.raises(InputError, match="a.nii.gz: file not found"):
        build_group_store(tmp_path / "x.h5", "misaligned_pairs", root / "groups.json", root / "lr", 2,
                          (8, 8, 4), 2, 0, root / "prepared")  # a folder of subject folders, not volumes
    for sub in ("a", "b"):
        write_nifti(tmp_path / "wrong" / f"{sub}.nii.gz", np.zeros((20, 24, 24), np.float32), np.eye(4))
    with pytest.raises(InputError, match="differs from the LR grid"):
        build_group_store(tmp_path / "x.h5", "misaligned_pairs", root / "groups.json", root / "lr", 2,
                          (8, 8, 4), 2, 0, tmp_path / "wrong")


# ---------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", ["config.yaml", "udean_hcp.yaml"])
def test_udean_configs_validate_and_the_paper_config_has_paper_sizes(name):
    import jsonschema
    import yaml

    repo = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    cfg = yaml.safe_load((repo / "config" / name).read_text())
    jsonschema.Draft202012Validator(schema).validate(cfg)
    ds = next(d for k, d in cfg["datasets"].items() if "udean" in k)
    assert ds["split"] == [0.8, 0.1, 0.1] and ds["source_fraction"] == 0.5 and ds["scales"] == [2]
    stores = {m: cfg["models"][m]["store"] for m in ds["methods"] if m != "tricubic"}
    assert stores == {"ts_rcan_misaligned": "misaligned_pairs", "ts_rcan_registered": "registered_pairs",
                      "ts_rcan_shift": "nearest_pairs", "udean_misaligned": "udean_misaligned",
                      "udean_unpaired": "udean_unpaired"}
    if name == "udean_hcp.yaml":
        assert ds["patches"]["hr_patch"] == [128, 128, 6]
        assert all(cfg["models"][m]["args"]["n_groups"] == 5 and cfg["models"][m]["args"]["n_blocks"] == 5
                   for m in stores)
