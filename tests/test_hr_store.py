"""mrisr.patches.hr_store: HR-only stores of random patches per 2D slice (Meta-SRGAN protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrisr.errors import InputError
from mrisr.io import write_json, write_nifti
from mrisr.patches.hr_store import build_hr_store, sample_slice_patches


def write_subject(prepared: Path, subject: str, vol: np.ndarray) -> None:
    write_nifti(prepared / subject / "t2.nii.gz", vol.astype(np.float32), np.eye(4))


@pytest.fixture()
def prepared(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    vols = {s: rng.random((20, 18, 3)).astype(np.float32) for s in ("sub-a", "sub-b", "sub-c")}
    for s, v in vols.items():
        write_subject(tmp_path / "prepared", s, v)
    split = tmp_path / "split.json"
    write_json(split, {"train": ["sub-b", "sub-a"], "val": ["sub-c"], "test": []})
    return tmp_path / "prepared", split, vols


def read(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {"arrays": {k: f[k][()] for k in f}, "attrs": dict(f.attrs)}


def test_every_slice_gives_per_slice_patches_cut_from_it(prepared, tmp_path):
    prep, split, vols = prepared
    n = build_hr_store(tmp_path / "train.h5", "sisr2d", split, "train", prep, "t2", (8, 6), 5, seed=3)
    store = read(tmp_path / "train.h5")
    hr, subj, sl = (store["arrays"][k] for k in ("hr", "subject", "slice"))
    assert n == 2 * 3 * 5 and hr.shape == (30, 8, 6)
    subjects = json.loads(store["attrs"]["subjects"])
    assert subjects == ["sub-a", "sub-b"]  # sorted
    for k in range(n):
        image = vols[subjects[subj[k]]][:, :, sl[k]]
        # the patch occurs in its slice at some corner (independent search over all corners)
        hits = [(r, c) for r in range(20 - 8 + 1) for c in range(18 - 6 + 1)
                if np.array_equal(image[r:r + 8, c:c + 6], hr[k])]
        assert hits, f"patch {k} is not a crop of subject {subjects[subj[k]]} slice {sl[k]}"
    assert np.bincount(sl, minlength=3).tolist() == [10, 10, 10]
    assert store["attrs"]["kind"] == "hr" and json.loads(store["attrs"]["hr_patch"]) == [8, 6]


def test_same_seed_same_store_and_subjects_draw_independently(prepared, tmp_path):
    prep, split, vols = prepared
    build_hr_store(tmp_path / "a.h5", "sisr2d", split, "train", prep, "t2", (8, 6), 4, seed=1)
    build_hr_store(tmp_path / "b.h5", "sisr2d", split, "train", prep, "t2", (8, 6), 4, seed=1)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    # sub-a alone in a split: its patches are the ones it had beside sub-b
    write_json(tmp_path / "solo.json", {"train": ["sub-a"]})
    build_hr_store(tmp_path / "solo.h5", "sisr2d", tmp_path / "solo.json", "train", prep, "t2", (8, 6), 4, seed=1)
    both, solo = read(tmp_path / "a.h5")["arrays"], read(tmp_path / "solo.h5")["arrays"]
    np.testing.assert_array_equal(both["hr"][both["subject"] == 0], solo["hr"])
    build_hr_store(tmp_path / "c.h5", "sisr2d", split, "train", prep, "t2", (8, 6), 4, seed=2)
    assert not np.array_equal(read(tmp_path / "c.h5")["arrays"]["hr"], both["hr"])


def test_corners_are_uniform_over_the_slice():
    rng = np.random.default_rng(0)
    images = np.arange(1 * 10 * 10, dtype=np.float32).reshape(1, 10, 10)
    patches, _ = sample_slice_patches(images, (4, 4), 7000, rng)
    rows = (patches[:, 0, 0] // 10).astype(int)
    counts = np.bincount(rows, minlength=7)
    assert counts.size == 7 and counts.min() > 800  # 7 possible rows, 1000 expected each


def test_errors_name_the_file(prepared, tmp_path):
    prep, split, _ = prepared
    with pytest.raises(InputError, match="sub-a.*larger than its slices"):
        build_hr_store(tmp_path / "x.h5", "sisr2d", split, "train", prep, "t2", (32, 6), 2, seed=0)
    write_json(tmp_path / "empty.json", {"train": []})
    with pytest.raises(InputError, match="empty.json.*no subjects"):
        build_hr_store(tmp_path / "x.h5", "sisr2d", tmp_path / "empty.json", "train", prep, "t2", (8, 6), 2, seed=0)
