"""End-to-end: a tiny slices dataset with an arbitrary-scale model (issue 6).

HR-only store → ONE meta_srgan training → evaluation at every scale (one job per method) →
summary.csv rows → scale-sweep table/plot and the ×2 methods table with parameter counts;
edsr/srgan at ×2 through the ordinary pair-store rules.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml
from div2k_fixture import write_div2k
from snakemake_runner import run_snakemake

REPO = Path(__file__).resolve().parents[1]
SCALES = [1.5, 2, 2.5]
DISC = {"n_feats": 4, "n_stages": 2, "fc": 8}
GAN_TRAIN = {"steps": 4, "batch_size": 4, "val_every": 2, "ckpt_every": 2, "scheduler": "step", "val_max_batches": 1}
TINY = {
    "seed": 5,
    "device": "cpu",
    "datasets": {
        "tiny_slices": {
            "kind": "slices", "reader": "brats",
            "reader_options": {"contrasts": ["t2"], "max_info_crop": True, "margin": 6},
            "raw": {"synth": {"kind": "multicontrast", "n_subjects": 4,
                              "params": {"flavour": "brain", "size": [48, 48], "slices": 2}}},
            "target": "t2",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": SCALES,
            "patches": {"hr_patch": [16, 16], "per_slice": 3, "train_per_subject": 8, "val_per_subject": 2},
            "methods": ["bicubic", "meta_srgan", {"name": "edsr", "scales": [2]}, {"name": "srgan", "scales": [2]}],
        },
    },
    "models": {
        "edsr": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 4, "n_blocks": 1},
                 "train": {"steps": 2, "batch_size": 4, "val_every": 2, "ckpt_every": 2}},
        "meta_srgan": {"arch": "meta_srgan", "trainer": "adversarial", "store": "hr", "args": {"n_feats": 4, "n_blocks": 1, "hidden": 8},
                       "disc": DISC, "train": {**GAN_TRAIN, "scales": [1.5, 2.5], "lr_decay_every": 2}},
        "srgan": {"arch": "srgan", "trainer": "adversarial", "args": {"n_feats": 4, "n_blocks": 1}, "disc": DISC, "train": GAN_TRAIN},
    },
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, TINY, *args, cores=1, timeout=900)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("scale_sweep")
    proc = snakemake(wd, "all")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return wd


def test_arbitrary_scale_model_is_trained_once(run: Path) -> None:
    root = run / "results/models/tiny_slices/meta_srgan"
    assert sorted(p.name for p in root.iterdir()) == ["any"]
    card = (root / "any/card.md").read_text()
    assert "perceptual term OFF" in card and "even extension" in card
    with h5py.File(run / "results/tiny_slices/patches/sisr2d-hr_train.h5", "r") as f:
        assert "lr" not in f and f["hr"].shape[1:] == (16, 16) and f.attrs["per_slice"] == 3
    # the baselines train on the ordinary x2 pair store
    for m in ("edsr", "srgan"):
        assert (run / f"results/models/tiny_slices/{m}/x2/model.pt").is_file()
    assert "LR from the pair store" in (run / "results/models/tiny_slices/srgan/x2/card.md").read_text()


def test_every_scale_is_an_ordinary_summary_row_from_one_job_per_method(run: Path) -> None:
    df = pd.read_csv(run / "results/tables/summary.csv", dtype={"scale": str})
    for m in ("bicubic", "meta_srgan"):
        got = set(df[(df["method"] == m) & (df["metric"] == "psnr")]["scale"])
        assert got == {f"{s:g}" for s in SCALES}
        for s in SCALES:
            meta = json.loads((run / f"results/eval/tiny_slices/{m}/x{s:g}/meta.json").read_text())
            assert meta["scale"] == s and meta["method"] == m
    assert set(df[df["scale"] == "2"]["method"]) == {"bicubic", "meta_srgan", "edsr", "srgan"}
    # one evaluation job per sweep method and one degrade job for every subject and scale
    bench = run / "benchmarks/evaluate/tiny_slices"
    assert (bench / "meta_srgan/scales.tsv").is_file() and (bench / "bicubic/scales.tsv").is_file()
    assert not (bench / "meta_srgan/x2.tsv").exists() and not (bench / "bicubic/x1.5.tsv").exists()
    assert not (run / "logs/degrade/tiny_slices/lowpass_bicubic/x2.5.log").exists()
    assert (run / "logs/degrade/tiny_slices/lowpass_bicubic/scales.log").is_file()


def test_sweep_table_and_methods_table_come_from_summary(run: Path) -> None:
    df = pd.read_csv(run / "results/tables/summary.csv", dtype={"scale": str})
    wide = pd.read_csv(run / "results/tables/scale_sweep_tiny_slices.csv", dtype={"scale": str})
    assert list(wide["scale"]) == ["1.5", "2", "2.5"]
    for r in wide.itertuples():
        for m in ("bicubic", "meta_srgan"):
            row = df[(df["method"] == m) & (df["scale"] == r.scale) & (df["metric"] == "psnr")]
            assert getattr(r, f"{m}_psnr_mean") == pytest.approx(float(row["mean"].iloc[0]))
    assert (run / "results/tables/scale_sweep_tiny_slices.png").stat().st_size > 1000
    table = (run / "results/tables/tiny_slices_x2_methods.md").read_text()
    for m in ("bicubic", "edsr", "srgan", "meta_srgan"):
        n = json.loads((run / f"results/eval/tiny_slices/{m}/x2/meta.json").read_text())["n_params"]
        assert f"| {m} |" in table and f"| {n:,} |" in table
    assert len(list((run / "results/tables/figures").glob("tiny_slices_x*.png"))) == len(SCALES)


def test_rerun_is_noop(run: Path) -> None:
    proc = snakemake(run, "-n", "all")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr


def test_paper_config_plans_one_training_and_one_sweep_job_per_method(tmp_path: Path) -> None:
    """config/brats_meta_srgan.yaml (raw pointed at fixture data) plans ONE meta_srgan training and one
    evaluation job per sweep method for its 30 scales."""
    from mrisr.cli import main
    from mrisr.datasets import write_synth

    cfg = yaml.safe_load((REPO / "config/brats_meta_srgan.yaml").read_text(encoding="utf-8"))
    raw = tmp_path / "raw"
    write_synth("multicontrast", raw, 4, 1, {"size": [48, 48], "slices": 2})
    cfg["datasets"]["brats_slices"]["raw"] = {"dir": str(raw)}
    cfg["datasets"]["brats_slices"]["reader_options"]["margin"] = 6
    work = tmp_path / "work"
    assert main(["inventory", "--reader", "brats", "--reader-options", json.dumps({"contrasts": ["t2"]}),
                 "--raw", str(raw), "--out", str(work / "results/brats_slices/inventory.json")]) == 0
    # the DIV2K pretraining set (train_only): 3 + 1 fixture PNGs in its layout, split by ratios
    write_div2k(tmp_path / "div2k", {"DIV2K_train_HR": [1, 2, 3], "DIV2K_valid_HR": [801]}, height=100, width=100)
    cfg["datasets"]["div2k"].update(raw={"dir": str(tmp_path / "div2k")}, split=[3, 1, 0])
    assert main(["inventory", "--reader", "div2k", "--raw", str(tmp_path / "div2k"),
                 "--out", str(work / "results/div2k/inventory.json")]) == 0
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
                           "--directory", str(work), "-n", "all", "--configfile", str(tmp_path / "cfg.yaml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    block = (proc.stdout + proc.stderr).split("Job stats:", 1)[1]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}
    # meta_srgan once (models/.../any/); edsr, srgan at x2; the div2k pretraining of meta_srgan and srgan
    assert counts["train"] == 3 + 2
    assert "results/models/brats_slices/meta_srgan/any/model.pt" in proc.stdout
    assert counts["evaluate_scales_brats_slices_bicubic"] == 1
    assert counts["evaluate_scales_brats_slices_meta_srgan"] == 1
    assert counts["evaluate"] == 2 and counts["degrade_scales_brats_slices"] == 1
    assert counts["degrade"] == 1  # div2k ×2 only (srgan's pairs): brats_slices' scales all go through the batch
