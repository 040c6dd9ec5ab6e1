"""End-to-end: DIV2K pretraining then fine-tuning, as config/brats_meta_srgan.yaml does it, in miniature.

The two official HR zips (fixture PNGs in their layout) are extracted by the download rule, the
train-only `div2k` set trains meta_srgan and srgan for a few steps, and a tiny BraTS-like slices
set starts both from those weights (init_from overrides) and is evaluated; div2k is not.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from div2k_fixture import write_div2k
from snakemake_runner import run_snakemake

from mrisr.models.io import init_source

DISC = {"n_feats": 4, "n_stages": 2, "fc": 8}
GAN_TRAIN = {"steps": 2, "batch_size": 2, "val_every": 2, "ckpt_every": 2, "scheduler": "step", "val_max_batches": 1}
PATCHES = {"hr_patch": [16, 16], "per_slice": 2, "train_per_subject": 4, "val_per_subject": 2}


def official_zips(tmp_path: Path) -> tuple[list[str], list[str]]:
    """DIV2K_train_HR.zip (4 images) and DIV2K_valid_HR.zip (1), each holding its top-level folder."""
    src = tmp_path / "png"
    write_div2k(src, {"DIV2K_train_HR": [1, 2, 3, 4], "DIV2K_valid_HR": [801]}, height=64, width=64)
    archives, digests = [], []
    for folder in ("DIV2K_train_HR", "DIV2K_valid_HR"):
        archive = tmp_path / f"{folder}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted((src / folder).iterdir()):
                zf.write(p, f"{folder}/{p.name}")
        archives.append(str(archive))
        digests.append(hashlib.sha256(archive.read_bytes()).hexdigest())
    return archives, digests


def tiny_config(archives: list[str], digests: list[str]) -> dict:
    common = {"kind": "slices", "degradation": {"mode": "bicubic", "axes": [0, 1]}, "scales": [2], "patches": PATCHES}
    return {
        "seed": 3, "device": "cpu",
        "datasets": {
            "div2k": {**common, "reader": "div2k", "raw": {"archive": archives, "sha256": digests}, "target": "y",
                      "train_only": True, "split": [4, 1, 0], "methods": ["meta_srgan", "srgan"]},
            "slices": {**common, "reader": "brats", "reader_options": {"contrasts": ["t2"], "max_info_crop": True,
                                                                        "margin": 6},
                       "raw": {"synth": {"kind": "multicontrast", "n_subjects": 4,
                                         "params": {"flavour": "brain", "size": [48, 48], "slices": 2}}},
                       "target": "t2", "methods": ["bicubic", "meta_srgan", "srgan"],
                       "overrides": {"meta_srgan": {"init_from": {"dataset": "div2k", "method": "meta_srgan"}},
                                     "srgan": {"init_from": {"dataset": "div2k", "method": "srgan"}}}},
        },
        "models": {
            "meta_srgan": {"arch": "meta_srgan", "trainer": "adversarial", "store": "hr",
                           "args": {"n_feats": 4, "n_blocks": 1, "hidden": 8}, "disc": DISC,
                           "train": {**GAN_TRAIN, "scales": [1.5, 2], "lr_decay_every": 2}},
            "srgan": {"arch": "srgan", "trainer": "adversarial", "args": {"n_feats": 4, "n_blocks": 1}, "disc": DISC,
                      "train": GAN_TRAIN},
        },
    }


@pytest.mark.slow
def test_pretrain_on_div2k_then_fine_tune(tmp_path: Path) -> None:
    archives, digests = official_zips(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    proc = run_snakemake(work, tiny_config(archives, digests), "all", timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    results = work / "results"
    assert (work / "resources/raw/div2k/DIV2K_valid_HR/0801.png").is_file()  # both zips extracted side by side
    for method, scale_dir in (("meta_srgan", "any"), ("srgan", "x2")):
        source = results / "models/div2k" / method / scale_dir / "model.pt"
        card = (results / "models/slices" / method / scale_dir / "card.md").read_text()
        assert f"model.pt` (sha256 {init_source(source).sha256})" in card  # started from the div2k weights
        assert "## Initial weights" not in (source.parent / "card.md").read_text()  # the source: a seeded init
    summary = pd.read_csv(results / "tables/summary.csv", dtype={"scale": str})
    assert set(summary["dataset"]) == {"slices"} and not (results / "eval/div2k").exists()
    assert set(summary["method"]) == {"bicubic", "meta_srgan", "srgan"}
