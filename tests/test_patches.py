"""Patch stores: alignment of LR/HR pairs, determinism, contract, bad input."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrisr.errors import InputError
from mrisr.grid import Grid
from mrisr.io import write_json, write_nifti
from mrisr.patches.store import build_store

SUBJECTS = ["s01", "s02", "s03"]


def smooth_volume(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.clip(gaussian_filter(rng.random(shape), 2.0) * 3 - 1, 0, 1).astype(np.float32)


def write_subject(root: Path, subject: str, shape: tuple[int, ...], axes: tuple[int, ...], s: int, ref: bool) -> None:
    """HR in prepared/, and an LR made by plain subsampling (corner grid: LR i == HR i*s exactly)."""
    rng = np.random.default_rng(zlib.crc32(subject.encode()))
    hr = smooth_volume(rng, shape)
    hr_path = root / "prepared" / subject / "t2.nii.gz"
    write_nifti(hr_path, hr, np.eye(4))
    if ref:
        write_nifti(hr_path.with_name("t1.nii.gz"), 1 - hr, np.eye(4))
    sl = tuple(slice(None, None, s) if a in axes else slice(None) for a in range(hr.ndim))
    lr = hr[sl]
    grid = Grid("corner", axes, hr.shape, lr.shape)
    write_nifti(root / "lr" / f"{subject}.nii.gz", lr, np.eye(4))
    write_json(root / "lr" / f"{subject}.json", {"hr_source": str(hr_path), "grid": grid.to_json()})


@pytest.fixture
def data2d(tmp_path: Path) -> Path:
    for subj in SUBJECTS:
        write_subject(tmp_path, subj, (40, 40, 3), (0, 1), 2, ref=True)
    write_json(tmp_path / "split.json", {"train": SUBJECTS[:2], "val": [], "test": SUBJECTS[2:]})
    return tmp_path


def build(root: Path, out: Path, seed: int = 1, split: str = "train") -> int:
    return build_store(out, "mcsr", root / "split.json", split, root / "lr", 2, (16, 16), 10, seed, reference="t1")


def test_pairs_are_aligned_on_the_grid(data2d: Path) -> None:
    n = build(data2d, data2d / "p.h5")
    with h5py.File(data2d / "p.h5") as f:
        hr, lr, ref = f["hr"][:], f["lr"][:], f["ref"][:]
        assert n == 20 and hr.shape == (20, 16, 16) and lr.shape == (20, 8, 8)
        assert f["subject"][:].tolist() == [0] * 10 + [1] * 10
        assert json.loads(f.attrs["subjects"]) == SUBJECTS[:2]
        assert f.attrs["scale"] == 2.0 and f.attrs["dims"] == 2 and f.attrs["grid_convention"] == "corner"
    np.testing.assert_array_equal(lr, hr[:, ::2, ::2])  # LR sample i sits at HR i*s
    np.testing.assert_allclose(ref, 1 - hr, atol=1e-6)  # reference cut at the same place


def test_same_config_same_arrays_and_seed_matters(data2d: Path) -> None:
    build(data2d, data2d / "a.h5")
    build(data2d, data2d / "b.h5")
    build(data2d, data2d / "c.h5", seed=2)
    with h5py.File(data2d / "a.h5") as a, h5py.File(data2d / "b.h5") as b, h5py.File(data2d / "c.h5") as c:
        for key in ("hr", "lr", "ref", "subject"):
            np.testing.assert_array_equal(a[key][:], b[key][:])
        assert dict(a.attrs) == dict(b.attrs)
        assert not np.array_equal(a["hr"][:], c["hr"][:])
        assert a.attrs["config_hash"] != c.attrs["config_hash"]
        assert a["hr"].chunks == (1, 16, 16) and a["hr"].compression is None


def test_one_subject_does_not_depend_on_the_others(data2d: Path) -> None:
    build(data2d, data2d / "both.h5")
    write_json(data2d / "split.json", {"train": SUBJECTS[1:2], "val": [], "test": []})
    build(data2d, data2d / "one.h5")
    with h5py.File(data2d / "both.h5") as both, h5py.File(data2d / "one.h5") as one:
        np.testing.assert_array_equal(both["hr"][10:], one["hr"][:])


def test_3d_patches(tmp_path: Path) -> None:
    for subj in SUBJECTS[:1]:
        write_subject(tmp_path, subj, (24, 24, 24), (0, 1, 2), 2, ref=False)
    write_json(tmp_path / "split.json", {"train": SUBJECTS[:1]})
    build_store(tmp_path / "v.h5", "sisr3d", tmp_path / "split.json", "train", tmp_path / "lr", 2, (8, 8, 8), 5, 0)
    with h5py.File(tmp_path / "v.h5") as f:
        assert f["hr"].shape == (5, 8, 8, 8) and f["lr"].shape == (5, 4, 4, 4)
        np.testing.assert_array_equal(f["lr"][:], f["hr"][:, ::2, ::2, ::2])


def test_bad_sidecar_names_the_file_and_leaves_no_store(data2d: Path) -> None:
    write_json(data2d / "lr" / "s02.json", {"grid": {}})
    with pytest.raises(InputError, match=r"s02\.json: missing key"):
        build(data2d, data2d / "p.h5")
    assert not list(data2d.glob("*.h5")) and not list(data2d.glob(".*tmp*"))


def test_scale_must_divide_patch(data2d: Path) -> None:
    with pytest.raises(ValueError, match="divisible"):
        build_store(data2d / "p.h5", "mcsr", data2d / "split.json", "train", data2d / "lr", 2, (15, 15), 2, 0)


# ---------------------------------------------------------------------------- PatchDataset reads
@pytest.mark.parametrize("in_memory", [True, False])
def test_dataset_reads_match_the_store_in_memory_or_not(data2d: Path, in_memory: bool) -> None:
    """Items, batches, forked workers and a pickled copy all
    return the store's arrays exactly, whether the store is held in memory or read per item."""
    import pickle

    import torch
    from torch.utils.data import DataLoader

    from mrisr.patches.dataset import PatchDataset

    build(data2d, data2d / "p.h5")
    with h5py.File(data2d / "p.h5") as f:
        want = {k: f[k][:].astype(np.float32) for k in ("lr", "ref", "hr")}
    ds = PatchDataset(data2d / "p.h5", ("lr", "ref", "hr"), in_memory=in_memory)
    assert ds.in_memory is in_memory
    item = ds[7]
    for k in want:
        assert item[k].dtype == torch.float32 and item[k].shape == (1, *want[k].shape[1:])
        np.testing.assert_array_equal(item[k][0].numpy(), want[k][7])
    item["hr"] += 1  # an item is a copy: editing it leaves the dataset unchanged
    np.testing.assert_array_equal(ds[7]["hr"][0].numpy(), want["hr"][7])
    order = [5, 0, 19, 5, -1]
    batch = next(iter(DataLoader(ds, batch_sampler=[order])))
    np.testing.assert_array_equal(batch["ref"][:, 0].numpy(), want["ref"][order])
    with pytest.raises(IndexError):
        ds[20]
    workers = list(DataLoader(ds, batch_size=6, num_workers=2))  # forked after the parent read
    np.testing.assert_array_equal(torch.cat([b["lr"] for b in workers])[:, 0].numpy(), want["lr"])
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned worker gets: no handle, no arrays
    assert clone._file is None and clone._arrays is None
    np.testing.assert_array_equal(clone[19]["hr"][0].numpy(), want["hr"][19])


def test_dataset_chooses_memory_by_available_memory(data2d: Path, monkeypatch) -> None:
    from mrisr.patches import dataset

    build(data2d, data2d / "p.h5")
    monkeypatch.setattr(dataset, "available_memory", lambda: 10**12)
    assert dataset.PatchDataset(data2d / "p.h5").in_memory
    monkeypatch.setattr(dataset, "available_memory", lambda: 1000)  # 20 patches × (8² + 16²) × 4 B > 250 B
    assert not dataset.PatchDataset(data2d / "p.h5").in_memory
