"""mrisr.train.gan and the perceptual loss (mrisr.losses.perceptual, mrisr.models.vgg19): per-batch scales, on-the-fly LR, resume, outputs."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrisr.degrade import degrade_array
from mrisr.degrade.patch import degrade_patches
from mrisr.errors import InputError
from mrisr.losses.perceptual import PerceptualLoss
from mrisr.models import load_model
from mrisr.models.io import read_model_record
from mrisr.train import gan, train_model
from mrisr.train.gan import META_SR_SCALES, GanConfig, make_lr, step_scale, training_scales, validation_scales
from mrisr.models.vgg19 import FEATURE_LAYERS, load_vgg19_features, vgg19_features

PATCH = 24
TINY = {"trainer": "adversarial", "arch": "meta_srgan", "args": {"n_feats": 8, "n_blocks": 1, "hidden": 16},
        "disc": {"n_feats": 8, "n_stages": 2, "fc": 16}}


# ---------------------------------------------------------------------------- stores
def smooth_images(rng: np.random.Generator, n: int, size: int = PATCH) -> np.ndarray:
    """Random sums of a few plane waves in [0.1, 0.9]: band-limited content cubic does not ace."""
    yy, xx = np.mgrid[:size, :size] / size
    out = np.empty((n, size, size), np.float32)
    for k in range(n):
        f = rng.uniform(1, 5, (3, 2))
        ph = rng.uniform(0, 2 * np.pi, 3)
        out[k] = 0.5 + 0.4 * np.mean([np.sin(2 * np.pi * (a * yy + b * xx) + p) for (a, b), p in zip(f, ph)], axis=0)
    return out


def write_hr_store(path: Path, hr: np.ndarray, config_hash: str) -> Path:
    """An HR-only patch store: dataset `hr` (N, H, W), chunk = one sample, as docs/architecture.md."""
    with h5py.File(path, "w") as f:
        f.create_dataset("hr", data=hr, chunks=(1, *hr.shape[1:]), track_times=False)
        f.attrs["task"] = "sisr2d"
        f.attrs["config_hash"] = config_hash
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("gan_stores")
    rng = np.random.default_rng(0)
    return (write_hr_store(d / "train.h5", smooth_images(rng, 48), "h-train"),
            write_hr_store(d / "val.h5", smooth_images(rng, 8), "h-val"))


def cfg(**train_kw) -> dict:
    t = {"steps": 4, "batch_size": 4, "val_every": 2, "ckpt_every": 2, "log_every": 1, "scales": [1.5, 2.0, 3.0]}
    return {**TINY, "train": {**t, **train_kw}}


def read_log(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- config / draws
def test_default_scales_are_the_meta_sr_grid():
    assert len(META_SR_SCALES) == 30 and META_SR_SCALES[0] == 1.1 and META_SR_SCALES[-1] == 4.0
    assert np.allclose(np.diff(META_SR_SCALES), 0.1)
    c = GanConfig.from_dict({"steps": 600, "batch_size": 2})
    assert training_scales(c, arbitrary=True) == META_SR_SCALES
    assert training_scales(c, arbitrary=False) == (2.0,)
    assert validation_scales(c, META_SR_SCALES) == (1.1, 2.6, 4.0)
    assert c.decay_every() == 100  # paper: every 60k of 360k updates
    assert (c.lr, c.lr_decay, c.adv_weight, c.perceptual_weight) == (1e-4, 0.8, 1e-3, 6e-3)


def test_fixed_scale_generator_takes_one_integer_scale():
    with pytest.raises(ValueError, match="one integer scale"):
        training_scales(GanConfig.from_dict({"steps": 1, "batch_size": 1, "scales": [2.0, 3.0]}), arbitrary=False)
    with pytest.raises(ValueError, match="one integer scale"):
        training_scales(GanConfig.from_dict({"steps": 1, "batch_size": 1, "scales": [2.5]}), arbitrary=False)


def test_config_rejects_typos_and_bad_values():
    with pytest.raises(ValueError, match="unknown GAN train settings"):
        GanConfig.from_dict({"steps": 1, "batch_size": 1, "adv_wieght": 0.1})
    with pytest.raises(ValueError, match="degradation"):
        GanConfig.from_dict({"steps": 1, "batch_size": 1, "degradation": "blur"})
    with pytest.raises(ValueError, match="scales"):
        GanConfig.from_dict({"steps": 1, "batch_size": 1, "scales": [0.5]})


def test_step_scale_is_uniform_and_a_pure_function_of_seed_and_step():
    draws = [step_scale(3, k, META_SR_SCALES) for k in range(6000)]
    assert draws[:50] == [step_scale(3, k, META_SR_SCALES) for k in range(50)]
    assert draws[:50] != [step_scale(4, k, META_SR_SCALES) for k in range(50)]
    counts = Counter(draws)
    assert set(counts) == set(META_SR_SCALES)
    # 200 expected per scale; binomial sd ≈ 13.9, so ±70 is a 5-sigma band.
    assert all(130 <= c <= 270 for c in counts.values())


@pytest.mark.parametrize("mode", ["lowpass_bicubic", "truncate", "bicubic"])
def test_make_lr_degrades_each_patch_over_its_two_axes(mode):
    """Each patch on its own, on the grid degrade_array gives it; the k-space modes through the
    wrap-free even extension (tests/test_degrade_patch.py), bicubic exactly as degrade_array."""
    hr = torch.from_numpy(smooth_images(np.random.default_rng(5), 3, 20))[:, None]
    lr = make_lr(hr, 2.7, mode, "none")
    for k in range(3):
        ref, grid = degrade_array(hr[k, 0].numpy(), mode, 2.7, (0, 1))
        own, own_grid = degrade_patches(hr[k, 0].numpy(), mode, 2.7, (0, 1))
        assert own_grid == grid
        assert lr.shape == (3, 1, *grid.lr_shape) == (3, 1, 7, 7)
        np.testing.assert_allclose(lr[k, 0].numpy(), own, atol=1e-6)
        if mode == "bicubic":
            np.testing.assert_allclose(lr[k, 0].numpy(), ref, atol=1e-6)


# ---------------------------------------------------------------------------- runs
def test_meta_srgan_run_writes_outputs_and_says_perceptual_is_off(stores, tmp_path, capsys):
    train_h5, val_h5 = stores
    path = train_model(cfg(), train_h5, val_h5, tmp_path, seed=0, device="cpu")
    assert path == tmp_path / "model.pt"
    record = read_model_record(path)
    assert (record["arch"], record["scale"], record["dims"], record["grid_convention"]) == \
        ("meta_srgan", 3, 2, "center")
    model = load_model(path)
    with h5py.File(train_h5) as f:
        hr = f["hr"][:].astype(np.float64)
    assert float(model.norm_mean) == pytest.approx(hr.mean(), abs=1e-6)
    assert float(model.norm_std) == pytest.approx(hr.std(), abs=1e-6)
    rows = read_log(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss_d"]) > 0 and float(r["loss_perc"]) == 0 for r in rows)
    assert rows[1]["val_psnr"] and not rows[0]["val_psnr"]
    for r in rows:  # the logged total is L1 + 0.001·adversarial
        assert float(r["loss"]) == pytest.approx(float(r["loss_l1"]) + 1e-3 * float(r["loss_adv"]), rel=1e-4)
    card = (tmp_path / "card.md").read_text()
    assert "perceptual term OFF" in card and "train.vgg_weights" in card
    assert "| 1.5 |" in card and "| 3 |" in card  # per-scale validation table
    assert "perceptual term OFF" in capsys.readouterr().err


def test_learning_rate_decays_by_the_factor_at_fixed_intervals(stores, tmp_path):
    train_h5, val_h5 = stores
    train_model(cfg(steps=5, lr=1e-3, lr_decay=0.5, lr_decay_every=2, val_every=5, ckpt_every=5), train_h5, val_h5,
              tmp_path, seed=0, device="cpu")
    lrs = [float(r["lr"]) for r in read_log(tmp_path / "log.csv")]
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


# Resume after SIGTERM: tests/test_train.py::test_resume_after_sigterm_matches_uninterrupted_run[adversarial].


def test_a_config_edit_retrains_from_scratch(stores, tmp_path):
    """Snakemake reruns train after a config edit: the old checkpoint is moved aside, not resumed."""
    train_h5, val_h5 = stores
    train_model(cfg(steps=2), train_h5, val_h5, tmp_path / "run", seed=0, device="cpu")
    edited = read_model_record(train_model(cfg(steps=2, adv_weight=0.01), train_h5, val_h5, tmp_path / "run",
                                         seed=0, device="cpu"))
    fresh = read_model_record(train_model(cfg(steps=2, adv_weight=0.01), train_h5, val_h5, tmp_path / "fresh",
                                        seed=0, device="cpu"))
    assert all(torch.equal(v, edited["state_dict"][k]) for k, v in fresh["state_dict"].items())
    assert len(list((tmp_path / "run" / "ckpt" / "stale").glob("*.pt"))) == 2  # last.pt and best.pt, kept
    assert [r["step"] for r in read_log(tmp_path / "run" / "log.csv")] == [r["step"] for r in read_log(tmp_path / "fresh" / "log.csv")]


def test_srgan_baseline_trains_at_its_fixed_scale(stores, tmp_path):
    train_h5, val_h5 = stores
    c = {"trainer": "adversarial", "arch": "srgan", "args": {"n_feats": 8, "n_blocks": 1}, "disc": TINY["disc"],
         "train": {"steps": 2, "batch_size": 4, "val_every": 2, "ckpt_every": 2, "scales": [2]}}
    record = read_model_record(train_model(c, train_h5, val_h5, tmp_path, seed=0, device="cpu"))
    assert (record["arch"], record["scale"]) == ("srgan", 2)
    with pytest.raises(ValueError, match="one integer scale"):
        train_model({**c, "train": {**c["train"], "scales": [2.5]}}, train_h5, val_h5, tmp_path / "x", 0, "cpu")


def test_l1_only_training_beats_cubic_at_every_val_scale(stores, tmp_path):
    """adv_weight 0: the generator starts as cubic (zero last layer) and must improve on it."""
    train_h5, val_h5 = stores
    c = cfg(steps=40, batch_size=8, lr=2e-3, adv_weight=0.0, val_every=40, ckpt_every=40, log_every=10,
            scales=[2.0, 3.0], degradation="bicubic")
    train_model(c, train_h5, val_h5, tmp_path, seed=0, device="cpu")
    rows = [line for line in (tmp_path / "card.md").read_text().splitlines() if line.startswith("| 2 |")
            or line.startswith("| 3 |")]
    assert len(rows) == 2
    for line in rows:
        model_db, cubic_db = (float(cell.split()[0]) for cell in line.strip("|").split("|")[1:3])
        assert model_db > cubic_db + 0.3, line
    assert all(float(r["loss_d"]) == 0 for r in read_log(tmp_path / "log.csv"))  # no D updates


def test_hr_store_must_hold_2d_patches(tmp_path):
    bad = write_hr_store(tmp_path / "bad.h5", np.zeros((2, 4, 4, 4), np.float32), "x")
    with pytest.raises(InputError, match="2D HR patches"):
        train_model(cfg(), bad, bad, tmp_path / "out", 0, "cpu")


# ---------------------------------------------------------------------------- perceptual
def fake_vgg_file(path: Path, torchvision_layout: bool) -> dict:
    """Random VGG19 weights in torchvision's full-model layout (+ classifier keys) or features-only."""
    torch.manual_seed(0)
    state = vgg19_features(37).state_dict()  # all 37 feature modules (the last pool has no weights)
    if torchvision_layout:
        state = {f"features.{k}": v for k, v in state.items()}
        state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("torchvision_layout", [True, False])
def test_vgg19_features_load_from_a_local_file(tmp_path, torchvision_layout):
    state = fake_vgg_file(tmp_path / "vgg.pth", torchvision_layout)
    net = load_vgg19_features(tmp_path / "vgg.pth")
    assert len(net) == FEATURE_LAYERS and isinstance(net[-1], torch.nn.ReLU)  # up to relu5_4, no last pool
    prefix = "features." if torchvision_layout else ""
    torch.testing.assert_close(net[34].weight, state[f"{prefix}34.weight"])  # conv5_4
    assert not any(p.requires_grad for p in net.parameters())
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 512, 2, 2)  # four pools: /16


def test_vgg19_weights_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_vgg19_features(tmp_path / "missing.pth")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="wrong.pth: not VGG19 weights"):
        load_vgg19_features(tmp_path / "wrong.pth")


def test_perceptual_loss_is_feature_mse_with_gradient_to_sr_only(tmp_path):
    fake_vgg_file(tmp_path / "vgg.pth", True)
    net = load_vgg19_features(tmp_path / "vgg.pth")
    loss_fn = PerceptualLoss(net)
    hr = torch.rand(2, 1, 32, 32)
    sr = hr.clone().requires_grad_(True)
    assert float(loss_fn(sr, hr).detach()) == 0.0
    other = torch.rand(2, 1, 32, 32, requires_grad=True)
    loss = loss_fn(other, hr)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    def features(x: torch.Tensor) -> torch.Tensor:  # grey → RGB, ImageNet standardisation, VGG
        return net((x.detach().repeat(1, 3, 1, 1) - mean) / std)

    expected = F.mse_loss(features(other), features(hr))
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    assert other.grad is not None and float(other.grad.abs().sum()) > 0


def test_configured_vgg_weights_switch_the_perceptual_term_on(stores, tmp_path):
    train_h5, val_h5 = stores
    fake_vgg_file(tmp_path / "vgg.pth", True)
    train_model(cfg(steps=1, val_every=1, ckpt_every=1, vgg_weights=str(tmp_path / "vgg.pth")), train_h5, val_h5,
              tmp_path / "out", seed=0, device="cpu")
    card = (tmp_path / "out" / "card.md").read_text()
    assert "perceptual term ON" in card and "perceptual term OFF" not in card
    row = read_log(tmp_path / "out" / "log.csv")[0]
    assert float(row["loss_perc"]) > 0
    assert float(row["loss"]) == pytest.approx(float(row["loss_l1"]) + 1e-3 * float(row["loss_adv"])
                                               + 6e-3 * float(row["loss_perc"]), rel=1e-4)


# ---------------------------------------------------------------------------- pair stores (fixed-scale baselines)
def write_pair_store(path: Path, hr: np.ndarray, scale: int, config_hash: str) -> Path:
    """An ordinary pair store as `patches` writes it: lr, hr and the scale/grid attributes."""
    lr, grid = degrade_array(hr, "lowpass_bicubic", float(scale), (1, 2))
    with h5py.File(path, "w") as f:
        f.create_dataset("hr", data=hr, chunks=(1, *hr.shape[1:]))
        f.create_dataset("lr", data=lr, chunks=(1, *lr.shape[1:]))
        f.attrs.update({"task": "sisr2d", "config_hash": config_hash, "scale": float(scale),
                        "grid_convention": grid.convention})
    return path


@pytest.fixture(scope="module")
def pair_stores(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pair_stores")
    rng = np.random.default_rng(1)
    return (write_pair_store(d / "train.h5", smooth_images(rng, 16), 2, "p-train"),
            write_pair_store(d / "val.h5", smooth_images(rng, 4), 2, "p-val"))


def test_srgan_on_a_pair_store_trains_on_the_stored_lr(pair_stores, tmp_path, monkeypatch):
    def no_on_the_fly_lr(*a, **k):
        raise AssertionError("a pair store's LR must be used as stored")

    monkeypatch.setattr(gan, "make_lr", no_on_the_fly_lr)
    srgan = {"trainer": "adversarial", "arch": "srgan", "args": {"n_feats": 8, "n_blocks": 1}, "disc": TINY["disc"],
             "train": {"steps": 2, "batch_size": 4, "val_every": 2, "ckpt_every": 2, "log_every": 1}}
    train_model(srgan, *pair_stores, tmp_path, 0, "cpu")
    rec = read_model_record(tmp_path / "model.pt")
    assert rec["arch"] == "srgan" and rec["scale"] == 2
    assert "LR from the pair store" in (tmp_path / "card.md").read_text()
    with pytest.raises(ValueError, match="pair store's scale 2"):
        train_model({**srgan, "train": {**srgan["train"], "scales": [3]}}, *pair_stores, tmp_path / "b", 0, "cpu")


def test_bf16_autocast_trains_and_other_schedulers_are_refused(stores, tmp_path):
    train_model(cfg(steps=2, bf16=True), *stores, tmp_path, 0, "cpu")
    assert (tmp_path / "model.pt").is_file()
    with pytest.raises(ValueError, match="scheduler: step"):
        GanConfig.from_dict({"steps": 2, "batch_size": 2, "scheduler": "cosine"})
