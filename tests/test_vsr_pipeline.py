"""Cine video SR in the workflow: clip stores, the DAG of a phase_vsr config (external
test set, per-method scales, inference sweeps, cost table) and the sweep/cost outputs."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from mrisr.errors import InputError
from mrisr.evaluate.cost import COST_COLUMNS, MethodSpec, measure_costs, parse_method_spec, write_cost_csv
from mrisr.evaluate.sweep import SWEEP_COLUMNS, write_sweep_tables
from mrisr.io import read_json, read_nifti
from mrisr.models import build_model, count_parameters, save_model
from mrisr.phase import phase_code
from snakemake_runner import run_snakemake

LR_DIR = "results/tiny_cine/lr/lowpass_bicubic/x2"
STORE = "results/tiny_cine/patches/vsr2w1-x2_train.h5"
FRAMES, SLICES = 6, 2

PHASE_ARGS = {"n_feats": 4, "n_layers": 1, "n_warmup": 1, "fusion_n": 1, "omega": 1}
TRAIN = {"steps": 2, "batch_size": 2, "val_every": 1, "ckpt_every": 1, "clip_frames": 2}
TINY = {
    "seed": 3,
    "device": "cpu",
    "datasets": {
        "tiny_cine": {
            "kind": "cine", "reader": "acdc",
            "raw": {"synth": {"kind": "cine", "n_subjects": 3,
                              "params": {"size": [24, 24], "slices": SLICES, "frames": FRAMES}}},
            "target": "cine",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": [2],
            "patches": {"hr_patch": [12, 12], "train_per_subject": 5, "val_per_subject": 2},
            "methods": ["bicubic", "phase_vsr", {"name": "phase_vsr_nomem", "scales": [2]}],
        },
        "tiny_cine_ext": {
            "kind": "cine", "reader": "acdc", "train_from": "tiny_cine",
            "raw": {"synth": {"kind": "cine", "n_subjects": 3, "params": {"size": [36, 36], "slices": 1, "frames": 8}}},
            "target": "cine",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": [2],
            "methods": ["bicubic", "phase_vsr"],
        },
    },
    "models": {
        "phase_vsr": {"arch": "phase_vsr", "trainer": "supervised", "store": "clips", "args": PHASE_ARGS, "train": TRAIN,
                      "sweeps": {"omega": [0, 2], "n_warmup": [0, 2]}},
        "phase_vsr_nomem": {"arch": "phase_vsr", "trainer": "supervised", "store": "clips", "train": TRAIN,
                            "args": {**PHASE_ARGS, "n_warmup": 0, "omega": 0, "memory": False,
                                     "bidirectional": False, "fusion": False}},
    },
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, TINY, *args, cores=2, timeout=600)


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """Data up to one clip store, and both inventories (so a dry run sees the whole DAG)."""
    work = tmp_path_factory.mktemp("vsr")
    run = snakemake(work, STORE, "results/tiny_cine_ext/inventory.json")
    assert run.returncode == 0, run.stderr[-4000:]
    return work


def job_counts(out: str) -> dict[str, int]:
    block = out.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M) if m.group(1) != "total"}


def job_blocks(out: str, rule: str) -> list[str]:
    """The dry-run text (input, output, ...) of every job of one rule."""
    return [m.group(2) for m in re.finditer(rf"^(local)?rule {rule}:\n(.*?)(?=^\S|\Z)", out, re.M | re.S)]


def rule_block(out: str, rule: str) -> str:
    blocks = job_blocks(out, rule)
    assert len(blocks) == 1, f"expected one {rule} job in the dry run, got {len(blocks)}"
    return blocks[0]


def test_dag_runs_sweeps_cost_and_external_set(staged: Path) -> None:
    run = snakemake(staged, "all", "-n", "-p")
    assert run.returncode == 0, run.stderr[-4000:]
    counts = job_counts(run.stdout)
    # 2 swept keys × 2 values; models trained once (none for the external set); evaluations:
    # 3 methods on tiny_cine + 2 on tiny_cine_ext.
    assert counts["study_evaluate"] == 4 and counts["study_table"] == 1 and counts["cost"] == 1
    assert counts["train"] == 2 and counts["evaluate"] == 5
    assert "results/models/tiny_cine_ext" not in run.stdout
    # the external set is evaluated with the model trained on tiny_cine
    ext_eval = [b for b in job_blocks(run.stdout, "evaluate") if "results/eval/tiny_cine_ext/phase_vsr/x2/" in b]
    assert len(ext_eval) == 1 and "results/models/tiny_cine/phase_vsr/x2/model.pt" in ext_eval[0]
    # the main summary never reads sweep folders; sweeps go to their own table
    assert "/sweep/" not in rule_block(run.stdout, "tables")
    assert "results/eval/tiny_cine/phase_vsr/x2/sweep/omega2/metrics.csv" in rule_block(run.stdout, "study_table")
    assert "vsr2w0-x2_train.h5" in run.stdout  # the no-memory rung has its own (warm-up free) store
    # clip stores come from the `clips` rule, its frames/warm-up read from the path's wildcards
    assert "--clip 2 0 --out results/tiny_cine/patches/vsr2w0-x2_train.h5" in run.stdout


def test_clip_store_holds_cyclic_clips_of_the_lr_cine(staged: Path) -> None:
    with h5py.File(staged / STORE) as f:
        lr, hr, phase = f["lr"][:], f["hr"][:], f["phase"][:]
        assert f.attrs["task"] == "vsr2w1" and json.loads(f.attrs["clip"]) == [2, 1]
        subjects = json.loads(f.attrs["subjects"])
        subj_idx = f["subject"][:]
    n = len(lr)
    assert lr.shape == (n, 4, 6, 6) and hr.shape == (n, 2, 12, 12) and phase.shape == (n, 4)
    for k in range(n):
        name = subjects[int(subj_idx[k])]
        lr_cine, _ = read_nifti(staged / LR_DIR / f"{name}.nii.gz", canonical=False)
        side = read_json(staged / f"results/tiny_cine/prepared/{name}/cine.json")
        hr_cine, _ = read_nifti(staged / f"results/tiny_cine/prepared/{name}/cine.nii.gz", canonical=False)
        # Find where this clip came from by exhaustive search, then check every array.
        hits = [(z, t0, cx, cy) for z in range(SLICES) for t0 in range(FRAMES) for cx in range(7) for cy in range(7)
                if np.array_equal(lr[k], np.moveaxis(lr_cine[cx:cx + 6, cy:cy + 6, z][..., (t0 + np.arange(-1, 3)) % FRAMES], -1, 0))]
        assert hits, f"clip {k} is not 4 cyclically consecutive frames of {name}'s LR cine"
        z, t0, cx, cy = hits[0]
        centre = (t0 + np.arange(2)) % FRAMES
        assert np.array_equal(hr[k], np.moveaxis(hr_cine[2 * cx:2 * cx + 12, 2 * cy:2 * cy + 12, z][..., centre], -1, 0))
        idx = (t0 + np.arange(-1, 3)) % FRAMES
        np.testing.assert_allclose(phase[k], phase_code(idx, side["ed"], side["es"], FRAMES), atol=1e-6)
        assert math.isclose(float(phase_code(side["ed"], side["ed"], side["es"], FRAMES)), 1.0)


def test_workflow_writes_sweep_and_cost_tables(staged: Path) -> None:
    """The real rules (2-step models): tables/sweeps.csv + .png and the cost table + .png."""
    cost_csv = "results/tables/cost_tiny_cine_x2.csv"
    run = snakemake(staged, "results/tables/sweeps.csv", cost_csv)
    assert run.returncode == 0, run.stderr[-4000:]
    n_test = len(read_json(staged / "results/tiny_cine/split.json")["test"])
    sweeps = pd.read_csv(staged / "results/tables/sweeps.csv")
    assert list(sweeps.columns) == SWEEP_COLUMNS
    assert set(map(tuple, sweeps[["key", "value"]].drop_duplicates().to_numpy())) == {
        ("omega", 0), ("omega", 2), ("n_warmup", 0), ("n_warmup", 2)}
    assert set(sweeps.method) == {"phase_vsr"} and set(sweeps.dataset) == {"tiny_cine"}  # no external set
    assert {"psnr", "ssim", "cardiac_psnr", "cardiac_ssim"} <= set(sweeps.metric)
    assert (sweeps.n == n_test).all() and np.isfinite(sweeps["mean"]).all()
    # Ω changes the output at inference: the swept PSNRs of one model differ
    omega = sweeps[(sweeps.key == "omega") & (sweeps.metric == "psnr")].set_index("value")["mean"]
    assert omega[0] != omega[2]
    assert (staged / "results/tables/sweeps.png").stat().st_size > 1000

    cost = pd.read_csv(staged / cost_csv)
    assert list(cost.columns) == list(COST_COLUMNS)
    assert list(cost.method) == ["bicubic", "phase_vsr", "phase_vsr_nomem"]
    record = torch.load(staged / "results/models/tiny_cine/phase_vsr/x2/model.pt", weights_only=True)
    trained = build_model(record["arch"], scale=2, dims=2, grid_convention="center", **json.loads(record["args"]))
    by_method = cost.set_index("method")["n_params"]
    assert by_method["bicubic"] == 0 and by_method["phase_vsr"] == count_parameters(trained) > 0
    assert by_method["phase_vsr_nomem"] < by_method["phase_vsr"]  # no backward memory, no PF
    assert (cost.frames == SLICES * FRAMES).all() and (cost.frames_per_s > 0).all()
    assert (staged / cost_csv.replace(".csv", ".png")).stat().st_size > 1000


def test_training_cubic_baseline_on_a_clip_store_scores_the_central_frames(staged: Path) -> None:
    """The loop's cubic reference on a video store: cubic of the central LR frames (numpy
    reference), clamped, PSNR per clip, mean over clips."""
    from torch.utils.data import DataLoader

    from mrisr.grid import Grid, cubic_upsample
    from mrisr.patches.dataset import PatchDataset, store_attrs
    from mrisr.train.config import TrainConfig
    from mrisr.train.supervised import cubic_psnr

    attrs = store_attrs(staged / STORE)
    assert attrs["clip"] == [2, 1]
    got = cubic_psnr(DataLoader(PatchDataset(staged / STORE, ("lr", "hr")), batch_size=4), attrs,
                     TrainConfig.from_dict({"steps": 1, "batch_size": 4, "lr": 1e-3}))
    with h5py.File(staged / STORE) as f:
        lr, hr = f["lr"][:], f["hr"][:]
    grid = Grid("center", axes=(0, 1), hr_shape=(12, 12), lr_shape=(6, 6))
    ref = [-10 * np.log10(np.mean((np.clip(np.stack([cubic_upsample(lr[k, 1 + j], grid) for j in range(2)]), 0, 1)
                                   - hr[k]) ** 2)) for k in range(len(lr))]
    assert got == pytest.approx(float(np.mean(ref)), abs=1e-3)


def _fake_sweep_dir(root: Path, key: str, value: int, scores: dict[str, float]) -> Path:
    d = root / f"{key}{value}"
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"dataset": "ds", "task": "sisr2d", "scale": 4.0, "method": "phase_vsr",
                                             "overrides": {key: value}}))
    lines = ["subject,psnr,cardiac_psnr"] + [f"{s},{v},{v - 1}" for s, v in scores.items()]
    (d / "metrics.csv").write_text("\n".join(lines) + "\n")
    return d


def test_sweep_table_contract(tmp_path: Path) -> None:
    dirs = [_fake_sweep_dir(tmp_path, "omega", 0, {"a": 20.0, "b": 22.0}),
            _fake_sweep_dir(tmp_path, "omega", 3, {"a": 25.0, "b": 25.0}),
            _fake_sweep_dir(tmp_path, "n_warmup", 6, {"a": 30.0})]
    df = write_sweep_tables(dirs, tmp_path / "sweeps.csv", tmp_path / "sweeps.png")
    back = pd.read_csv(tmp_path / "sweeps.csv")
    assert list(back.columns) == SWEEP_COLUMNS and len(back) == len(df) == 6
    row = back[(back.key == "omega") & (back.value == 0) & (back.metric == "psnr")].iloc[0]
    assert row["mean"] == pytest.approx(21.0) and row["std"] == pytest.approx(math.sqrt(2.0)) and row["n"] == 2
    row = back[(back.key == "n_warmup") & (back.metric == "cardiac_psnr")].iloc[0]
    assert row["mean"] == pytest.approx(29.0) and row["std"] == 0.0 and row["n"] == 1
    assert (tmp_path / "sweeps.png").stat().st_size > 1000


def test_sweep_folder_needs_one_override(tmp_path: Path) -> None:
    d = _fake_sweep_dir(tmp_path, "omega", 1, {"a": 20.0})
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "overrides": {"omega": 1, "n_warmup": 2}}))
    with pytest.raises(InputError, match="exactly one"):
        write_sweep_tables([d], tmp_path / "s.csv", tmp_path / "s.png")


def test_cost_counts_parameters_and_every_frame(staged: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(staged)  # LR sidecars name their HR source relative to the workflow directory
    torch.manual_seed(0)
    model = build_model("phase_vsr", scale=2, dims=2, grid_convention="center", **PHASE_ARGS)
    path = tmp_path / "model.pt"
    save_model(path, model, arch="phase_vsr", args=PHASE_ARGS, scale=2, dims=2, grid_convention="center",
               step=0, val_psnr=0.0)
    specs = [parse_method_spec("bicubic"), parse_method_spec(f"phase_vsr={path}")]
    assert specs[1] == MethodSpec("phase_vsr", path)
    rows = measure_costs(specs, staged / "results/tiny_cine/split.json", staged / LR_DIR, "tiny_cine", 2, repeats=1)
    assert [r["method"] for r in rows] == ["bicubic", "phase_vsr"]
    assert rows[0]["n_params"] == 0 and rows[1]["n_params"] == count_parameters(model) > 0
    assert all(r["frames"] == SLICES * FRAMES and r["frames_per_s"] > 0 for r in rows)
    write_cost_csv(tmp_path / "cost.csv", rows)
    assert list(pd.read_csv(tmp_path / "cost.csv").columns) == list(COST_COLUMNS)


def test_cost_method_spec_needs_a_model_for_networks() -> None:
    with pytest.raises(ValueError, match="needs a model file"):
        parse_method_spec("phase_vsr")


def test_init_cubic_starts_at_the_cubic_baseline_and_still_trains() -> None:
    """init_cubic: the untrained model returns the cubic upsample of the central frames
    (numpy reference), yet every parameter still receives a gradient path via the decoder."""
    from mrisr.grid import Grid, cubic_upsample

    torch.manual_seed(0)
    model = build_model("phase_vsr", scale=2, dims=2, grid_convention="center", **PHASE_ARGS, init_cubic=True)
    lr, phase = torch.rand(1, 4, 1, 5, 5), torch.rand(1, 4) * 2 - 1  # n_warmup=1 → central frames 1, 2
    out = model(lr, phase)
    grid = Grid("center", axes=(0, 1), hr_shape=(10, 10), lr_shape=(5, 5))
    for k, t in enumerate((1, 2)):
        np.testing.assert_allclose(out[0, k, 0].detach().numpy(), cubic_upsample(lr[0, t, 0].numpy(), grid), atol=1e-5)
    model.loss(out, {"hr": torch.rand_like(out)}).backward()
    assert float(model.up[-1].weight.grad.abs().sum()) > 0  # the zeroed conv learns from step 1
    torch.manual_seed(0)
    plain = build_model("phase_vsr", scale=2, dims=2, grid_convention="center", **PHASE_ARGS)
    assert count_parameters(plain) == count_parameters(model)
