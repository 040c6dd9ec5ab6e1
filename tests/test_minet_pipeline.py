"""MINet in the pipeline: inference with and without a reference contrast, the default
config's MINet entries, and a tiny knee config run through train → evaluate for the full
model and the no-reference ablation, whose dry run then schedules the ablations at ×2 only."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mrisr.evaluate.inference import super_resolve
from mrisr.grid import Grid
from mrisr.models.minet import MINet
from mrisr.models.registry import build_model
from snakemake_runner import run_snakemake

REPO = Path(__file__).resolve().parents[1]
TINY_ARGS = dict(n_feats=4, n_groups=1, n_blocks=1, reduction=2)


def tiny_minet(**switches) -> MINet:
    torch.manual_seed(0)
    return MINet(scale=2, dims=2, grid_convention="corner", **TINY_ARGS, **switches).eval()


def volume_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, Grid]:
    """LR (6, 5, 3) target and HR (12, 10, 3) reference, degraded over axes (0, 1)."""
    rng = np.random.default_rng(seed)
    grid = Grid(convention="corner", axes=(0, 1), hr_shape=(12, 10, 3), lr_shape=(6, 5, 3))
    return rng.random(grid.lr_shape, dtype=np.float32), rng.random(grid.hr_shape, dtype=np.float32), grid


def direct_slices(model: MINet, lr: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
    """Reference result: the model on each axial slice by hand, stacked back along axis 2."""
    out = []
    with torch.no_grad():
        for z in range(lr.shape[2]):
            x = torch.from_numpy(np.ascontiguousarray(lr[None, None, :, :, z]))
            r = None if ref is None else torch.from_numpy(np.ascontiguousarray(ref[None, None, :, :, z]))
            out.append(model(lr=x, ref=r)[0, 0].numpy())
    return np.stack(out, axis=-1)


def test_no_aux_ablation_runs_without_reference():
    model = tiny_minet(use_ref=False)
    assert not model.needs_ref and "ref" in model.inputs  # same store keys, but no reference needed
    lr, ref, grid = volume_case()
    sr = super_resolve(lr, grid, "minet_no_aux", model=model, ref=None)
    np.testing.assert_allclose(sr, direct_slices(model, lr, None), rtol=1e-5, atol=1e-6)
    # a reference, when the dataset has one, is accepted and has no effect
    np.testing.assert_allclose(super_resolve(lr, grid, "minet_no_aux", model=model, ref=ref), sr, rtol=0, atol=0)


def test_full_minet_uses_reference_and_requires_it():
    model = tiny_minet()
    assert model.needs_ref
    lr, ref, grid = volume_case()
    sr = super_resolve(lr, grid, "minet", model=model, ref=ref)
    np.testing.assert_allclose(sr, direct_slices(model, lr, ref), rtol=1e-5, atol=1e-6)
    other = super_resolve(lr, grid, "minet", model=model, ref=np.zeros_like(ref))
    assert np.abs(other - sr).max() > 1e-4  # the reference changes the output
    with pytest.raises(ValueError, match="reference"):
        super_resolve(lr, grid, "minet", model=model, ref=None)


class RefOnly(torch.nn.Module):
    """A model listing "ref" without saying whether it needs it: treated as needing it."""

    inputs = ("lr", "ref")

    def forward(self, lr, ref):
        return ref


def test_model_without_needs_ref_attribute_still_requires_reference():
    lr, _, grid = volume_case()
    with pytest.raises(ValueError, match="reference"):
        super_resolve(lr, grid, "refonly", model=RefOnly(), ref=None)


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("name, needs_ref, has_integration, has_attention", [
    ("minet", True, True, True),
    ("minet_no_aux", False, True, True),
    ("minet_no_int", True, False, True),
    ("minet_no_att", True, True, False),
])
def test_default_config_minet_entries_build_their_ablation(name, needs_ref, has_integration, has_attention):
    entry = default_config()["models"][name]
    model = build_model(entry["arch"], scale=2, dims=2, grid_convention="corner", **entry["args"])
    assert model.needs_ref is needs_ref
    assert (model.integration is not None) is has_integration
    assert (model.tgt_att is not None) is has_attention
    # ablations differ from the full model in their one switch only, and train alike
    full = default_config()["models"]["minet"]
    assert entry["train"] == full["train"]
    assert {k: v for k, v in entry["args"].items() if not k.startswith("use_")} == full["args"]


TINY_MC = {
    "seed": 3,
    "device": "cpu",
    "datasets": {
        "tiny_knee_multicontrast": {
            "kind": "multicontrast", "reader": "brats", "reader_options": {"contrasts": ["pd", "pdfs"]},
            "raw": {"synth": {"kind": "multicontrast", "n_subjects": 4,
                              "params": {"flavour": "knee", "size": [24, 24], "slices": 1}}},
            "target": "pdfs", "reference": "pd",
            "degradation": {"mode": "truncate", "axes": [0, 1]},
            "scales": [2, 4],
            "patches": {"hr_patch": [16, 16], "train_per_subject": 2, "val_per_subject": 1},
            "methods": ["bicubic", "edsr", "minet", {"name": "minet_no_aux", "scales": [2]},
                       {"name": "minet_no_int", "scales": [2]}, {"name": "minet_no_att", "scales": [2]}],
        },
    },
    "models": {
        "edsr": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 4, "n_blocks": 1}, "train": {"steps": 2, "batch_size": 2}},
        **{name: {"arch": "minet", "trainer": "supervised", "args": {**TINY_ARGS, **switch},
                  "train": {"steps": 2, "batch_size": 2, "val_every": 2, "ckpt_every": 2}}
           for name, switch in [("minet", {}), ("minet_no_aux", {"use_ref": False}),
                                ("minet_no_int", {"use_integration": False}),
                                ("minet_no_att", {"use_attention": False})]},
    },
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, TINY_MC, *args, cores=1, timeout=600)


@pytest.mark.slow
def test_tiny_knee_schedules_ablations_at_x2_only_then_minet_trains_and_evaluates(tmp_path):
    # Every job is planned before any subject is listed (per-subject stages are one job per dataset).
    dry = snakemake(tmp_path, "-n", "all")
    assert dry.returncode == 0, dry.stderr[-4000:]
    trained = set(re.findall(r"results/models/tiny_knee_multicontrast/(\w+)/x(\d+)/model\.pt", dry.stdout))
    evaluated = set(re.findall(r"results/eval/tiny_knee_multicontrast/(\w+)/x(\d+)/metrics\.csv", dry.stdout))
    ablations = {"minet_no_aux", "minet_no_int", "minet_no_att"}
    assert trained == {("edsr", "2"), ("edsr", "4"), ("minet", "2"), ("minet", "4")} | {(a, "2") for a in ablations}
    assert evaluated == trained | {("bicubic", "2"), ("bicubic", "4")}

    # Train → evaluate for real: the full model and the no-reference ablation at ×2 (2 steps each).
    eval_dir = tmp_path / "results/eval/tiny_knee_multicontrast"
    targets = [f"results/eval/tiny_knee_multicontrast/{m}/x2/metrics.csv" for m in ("minet", "minet_no_aux")]
    run = snakemake(tmp_path, *targets)
    assert run.returncode == 0, run.stderr[-4000:]
    with h5py.File(tmp_path / "results/tiny_knee_multicontrast/patches/mcsr-x2_train.h5") as f:
        assert f["ref"].shape == f["hr"].shape and f["lr"].shape[1:] == (8, 8)
    for m in ("minet", "minet_no_aux"):
        metrics = pd.read_csv(eval_dir / m / "x2/metrics.csv")
        assert list(metrics.columns) == ["subject", "psnr", "ssim", "nmse"] and len(metrics) == 1
        assert np.isfinite(metrics[["psnr", "ssim", "nmse"]].to_numpy()).all()
        meta = json.loads((eval_dir / m / "x2/meta.json").read_text())
        assert meta["task"] == "mcsr" and meta["method"] == m
        state = torch.load(tmp_path / f"results/models/tiny_knee_multicontrast/{m}/x2/model.pt", weights_only=True)
        assert state["arch"] == "minet" and json.loads(state["args"]).get("use_ref", True) is (m == "minet")
