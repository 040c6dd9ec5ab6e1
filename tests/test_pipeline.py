"""End-to-end: a tiny config through the whole Snakemake chain, then reruns.

Asserts the pipeline's outputs against their contracts, that a rerun is a no-op,
and that config edits rerun exactly the affected jobs.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from snakemake_runner import REPO, run_snakemake


TINY = {
    "seed": 7,
    "device": "cpu",
    "datasets": {
        "tiny_cine": {
            "kind": "cine", "reader": "acdc",
            "raw": {"synth": {"kind": "cine", "n_subjects": 4, "params": {"size": [48, 48], "slices": 2, "frames": 8}}},
            "target": "cine",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": [2],
            "patches": {"hr_patch": [24, 24], "train_per_subject": 16, "val_per_subject": 4},
            "methods": ["bicubic", "edsr"],
        },
        "tiny_multicontrast": {
            "kind": "multicontrast", "reader": "brats", "reader_options": {"contrasts": ["t1", "t2"]},
            "raw": {"synth": {"kind": "multicontrast", "n_subjects": 4,
                              "params": {"flavour": "brain", "size": [48, 48], "slices": 2}}},
            "target": "t2", "reference": "t1",
            "degradation": {"mode": "truncate", "axes": [0, 1]},
            "scales": [2],
            "patches": {"hr_patch": [24, 24], "train_per_subject": 16, "val_per_subject": 4},
            "methods": ["bicubic", "edsr"],
        },
        "tiny_volume": {
            "kind": "volume", "reader": "hcp",
            "raw": {"synth": {"kind": "volume", "n_subjects": 4, "params": {"shape": [36, 36, 36]}}},
            "target": "t1w",
            "prepare": {"crop_axes": [0, 1, 2]},
            "degradation": {"mode": "truncate", "axes": [0, 1, 2]},
            "scales": [2],
            "patches": {"hr_patch": [16, 16, 16], "train_per_subject": 4, "val_per_subject": 2},
            "methods": ["tricubic", "edsr"],
        },
    },
    "models": {"edsr": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 8, "n_blocks": 1},
                        "train": {"steps": 6, "batch_size": 4, "val_every": 3, "ckpt_every": 3}}},
}


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, config, *args, cores=2, timeout=900)


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    block = dry_run_output.split("Job stats:", 1)
    if len(block) < 2:
        return counts
    for line in block[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    counts.pop("total", None)
    return counts


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pipeline")
    run = snakemake(work, TINY, "all")
    assert run.returncode == 0, run.stderr[-6000:]
    return work


@pytest.mark.slow
def test_summary_contract(pipeline: Path) -> None:
    summary = pd.read_csv(pipeline / "results/tables/summary.csv")
    assert list(summary.columns) == ["dataset", "task", "scale", "method", "metric", "mean", "std", "n"]
    expected = {(d, m) for d, c in TINY["datasets"].items() for m in c["methods"]}
    assert set(zip(summary.dataset, summary.method)) == expected
    assert set(summary.metric) >= {"psnr", "ssim", "nmse"}
    assert (summary.n == 1).all()  # 4 subjects, 7:1:2 -> one test subject
    assert np.isfinite(summary["mean"]).all()
    md = (pipeline / "results/tables/summary.md").read_text()
    assert "edsr" in md and "bicubic" in md
    for d in TINY["datasets"]:
        assert (pipeline / f"results/tables/figures/{d}_x2.png").stat().st_size > 1000


@pytest.mark.slow
def test_stage_contracts(pipeline: Path) -> None:
    prepared = pipeline / "results/tiny_multicontrast/prepared"
    subject = sorted(p.name for p in prepared.iterdir())[0]
    assert (prepared / subject / "t1.nii.gz").exists() and (prepared / subject / "t2.json").exists()
    with h5py.File(pipeline / "results/tiny_multicontrast/patches/mcsr-x2_train.h5") as f:
        assert f["hr"].shape[1:] == (24, 24) and f["lr"].shape[1:] == (12, 12) and "ref" in f
        assert f["hr"].chunks == (1, 24, 24) and f["hr"].compression is None
        assert f.attrs["grid_convention"] == "corner"
    model = pipeline / "results/models/tiny_volume/edsr/x2/model.pt"
    ckpt = torch.load(model, weights_only=True)
    assert ckpt["arch"] == "edsr" and ckpt["dims"] == 3 and ckpt["step"] <= 6
    assert not list(pipeline.rglob("*.tmp*")), "temporary files left behind"


@pytest.mark.slow
def test_rerun_is_noop(pipeline: Path) -> None:
    run = snakemake(pipeline, TINY, "all")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in run.stdout + run.stderr


@pytest.mark.slow
def test_param_change_reruns_only_that_model(pipeline: Path) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["datasets"]["tiny_cine"]["overrides"] = {"edsr": {"train": {"steps": 8}}}
    run = snakemake(pipeline, cfg, "all", "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert job_counts(run.stdout) == {"train": 1, "evaluate": 1, "tables": 1, "figure": 1, "all": 1}
    assert "results/models/tiny_cine/edsr/x2/model.pt" in run.stdout


@pytest.mark.slow
def test_new_scale_reruns_only_that_dataset(pipeline: Path) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["datasets"]["tiny_multicontrast"]["scales"] = [2, 4]
    run = snakemake(pipeline, cfg, "all", "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    assert counts == {"degrade": 1, "patches": 2, "train": 1, "evaluate": 2, "tables": 1, "figure": 1, "all": 1}
    assert "dataset=tiny_cine" not in run.stdout and "dataset=tiny_volume" not in run.stdout


@pytest.mark.slow
def test_deleted_model_is_retrained(pipeline: Path, tmp_path: Path) -> None:
    """`all` asks for every model's weights and card: a deleted model folder is planned again."""
    work = tmp_path / "work"
    shutil.copytree(pipeline, work, symlinks=True)  # copy2 keeps mtimes: the copy is up to date
    shutil.rmtree(work / "results/models/tiny_volume/edsr/x2")
    run = snakemake(work, TINY, "all", "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    assert counts["train"] == 1 and "results/models/tiny_volume/edsr/x2/model.pt" in run.stdout
    assert "dataset=tiny_cine" not in run.stdout


def test_bad_config_key_fails_with_its_name(tmp_path: Path) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["datasets"]["tiny_cine"]["scalez"] = [2]
    run = snakemake(tmp_path, cfg, "all", "-n")
    assert run.returncode != 0
    assert "scalez" in run.stdout + run.stderr


def test_bad_config_type_fails_with_its_name(tmp_path: Path) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["models"]["edsr"]["train"]["steps"] = "many"
    run = snakemake(tmp_path, cfg, "all", "-n")
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "steps" in out and "many" in out


def test_bad_override_fails_with_dataset_and_method(tmp_path: Path) -> None:
    """A per-dataset override is merged into the model block and validated (once per pair)."""
    cfg = copy.deepcopy(TINY)
    cfg["datasets"]["tiny_cine"]["overrides"] = {"edsr": {"train": {"batch_size": "large"}}}
    run = snakemake(tmp_path, cfg, "all", "-n")
    assert run.returncode != 0
    assert "datasets.tiny_cine.overrides.edsr" in run.stdout + run.stderr


@pytest.mark.slow
def test_html_report_embeds_tables_and_figures(pipeline: Path) -> None:
    report = pipeline / "results/report.html"
    # as documented: no --cores (threads are a callable, so nothing asks for workflow.cores)
    cfg = pipeline / "report_config.yaml"  # TINY itself: other tests leave edited configs in config.yaml
    cfg.write_text(yaml.safe_dump(TINY))
    run = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                          "--directory", str(pipeline), "--configfile", str(cfg),
                          "--report", str(report)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "summary.csv" in html and "tiny_cine_x2.png" in html
