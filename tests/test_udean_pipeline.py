"""End-to-end UDEAN experiment on a tiny config: data groups (split → target/source groups,
motion-simulated HR, registration, nearest LR, group stores) → udean / ts_rcan training →
evaluation on the true test pairs → Tables I and II."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from snakemake_runner import run_snakemake

TRAIN = {"steps": 4, "batch_size": 2, "val_every": 2, "ckpt_every": 2, "log_every": 2}
ARGS = {"n_feats": 4, "n_groups": 1, "n_blocks": 1, "reduction": 2}
METHODS = ["tricubic", "ts_rcan_registered", "ts_rcan_shift", "udean_misaligned", "udean_unpaired"]
TINY = {
    "seed": 3,
    "device": "cpu",
    "datasets": {
        "tiny_udean_volume": {
            "kind": "volume", "reader": "hcp",
            "raw": {"synth": {"kind": "volume", "n_subjects": 6, "params": {"shape": [24, 24, 24]}}},
            "target": "t1w",
            "prepare": {"crop_axes": [0, 1, 2]},
            "split": [0.5, 0.25, 0.25],  # 6 subjects: 2 train (→ 1 target + 1 source), 2 val, 2 test
            "motion": {"rot_deg": [0, 2], "trans_vox": [0, 2], "shrink_vox": [0, 2]},
            "degradation": {"mode": "truncate", "axes": [0, 1, 2]},
            "scales": [2],
            "patches": {"hr_patch": [8, 8, 4], "train_per_subject": 4, "val_per_subject": 2},
            "methods": METHODS,
        },
    },
    "models": {
        "ts_rcan_registered": {"arch": "rcan3d", "trainer": "supervised", "store": "registered_pairs", "args": ARGS, "train": TRAIN},
        "ts_rcan_shift": {"arch": "rcan3d", "trainer": "supervised", "store": "nearest_pairs", "args": ARGS, "train": TRAIN},
        "udean_misaligned": {"arch": "udean", "trainer": "udean", "store": "udean_misaligned", "args": ARGS, "train": TRAIN,
                             "udean": {"deg_layers": 2, "disc_feats": 4, "disc_stages": 2}},
        "udean_unpaired": {"arch": "udean", "trainer": "udean", "store": "udean_unpaired", "args": ARGS, "train": TRAIN,
                           "udean": {"deg_layers": 2, "disc_feats": 4, "disc_stages": 2}},
    },
}
DS = "tiny_udean_volume"


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, config, *args, cores=1, timeout=900)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("udean_pipeline")
    done = snakemake(work, TINY, "all")
    assert done.returncode == 0, done.stderr[-6000:]
    return work


@pytest.mark.slow
def test_groups_motion_and_registration(run: Path) -> None:
    res = run / "results" / DS
    groups = json.loads((res / "groups.json").read_text())
    split = json.loads((res / "split.json").read_text())
    assert len(groups["target"]) == len(groups["source"]) == 1 and groups["test"] == split["test"]
    assert sorted(groups["target"] + groups["source"]) == split["train"]
    # Only the target group is moved (and registered back); only the source group is decimated.
    moved = sorted(p.name for p in (res / "motion").glob("*.nii.gz"))
    assert moved == [f"{groups['target'][0]}.nii.gz"]
    side = json.loads((res / "motion" / f"{groups['target'][0]}.json").read_text())
    assert side["seed"] == TINY["seed"] and all(0 <= abs(v) <= 2 for v in side["params"].values())
    assert (res / "registered" / "x2" / f"{groups['target'][0]}.json").is_file()
    assert sorted(p.name for p in (res / "lr/nearest/x2").glob("*.nii.gz")) == [f"{groups['source'][0]}.nii.gz"]
    with h5py.File(res / "patches/groups/udean_unpaired-x2_train.h5") as f:
        assert f["source_hr"].shape == (4, 8, 8, 4) and f["target_lr"].shape == (4, 4, 4, 2)
        assert json.loads(f.attrs["subjects"]) == groups["source"]


@pytest.mark.slow
def test_models_train_and_evaluate_into_tables_one_and_two(run: Path) -> None:
    for method in METHODS[1:]:
        rec = torch.load(run / f"results/models/{DS}/{method}/x2/model.pt", weights_only=True)
        assert rec["arch"] == TINY["models"][method]["arch"] and rec["grid_convention"] == "corner"
    card = (run / f"results/models/{DS}/udean_unpaired/x2/card.md").read_text()
    assert "## UDEAN" in card and "source (hr)" in card
    summary = pd.read_csv(run / "results/tables/summary.csv")
    assert set(summary.method) == set(METHODS)
    assert (summary.n == 2).all() and np.isfinite(summary["mean"]).all()
    md = (run / "results/tables/summary.md").read_text()
    table_i = md.split("Table I —")[1].split("Table II —")[0]
    table_ii = md.split("Table II —")[1]
    assert "udean_misaligned" in table_i and "ts_rcan_registered" in table_i and "udean_unpaired" not in table_i
    assert "udean_unpaired" in table_ii and "| method | n | PSNR (dB) ↑ | SSIM ↑ |" in table_ii


@pytest.mark.slow
def test_rerun_is_noop(run: Path) -> None:
    again = snakemake(run, TINY, "all", "-n")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr
