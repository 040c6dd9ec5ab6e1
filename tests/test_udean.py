"""UDEAN and 3D RCAN: architecture, grid alignment, losses (eqs. 1–10), the unpaired training loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from mrisr.degrade.kspace import kspace_truncate
from mrisr.errors import InputError
from mrisr.evaluate.metrics import ssim as ssim_reference
from mrisr.grid import Grid, cubic_upsample
from mrisr.losses import adversarial as A, pixel as P, udean as L
from mrisr.models import build_model, load_model, save_model
from mrisr.models.udean import UDEAN, ConvEncoder, RCANDecoder, UdeanSystem, VGGDiscriminator3D
from mrisr.patches.sampler import unpaired_sampler
from mrisr.train import train_model
from mrisr.train import udean as U

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def plain_cpu_convolutions():
    """oneDNN's per-call overhead dominates on these tiny 3D tensors (5× slower than the
    native kernels here); production sizes keep it on."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before
TINY_ARGS = {"n_feats": 4, "n_groups": 1, "n_blocks": 1, "reduction": 2}
TINY_UDEAN = {"deg_layers": 2, "lr_dec_groups": 1, "lr_dec_blocks": 1, "disc_feats": 4, "disc_stages": 2}
LR_PATCH, SCALE = (4, 4, 4), 2
HR_PATCH = tuple(SCALE * n for n in LR_PATCH)


# ---------------------------------------------------------------------------- data
def smooth_volumes(rng: np.random.Generator, n: int, shape) -> np.ndarray:
    v = np.stack([gaussian_filter(rng.uniform(0, 1, shape), 1.2, mode="wrap") for _ in range(n)])
    return ((v - v.min()) / (v.max() - v.min())).astype(np.float32)


def write_store(path: Path, hr: np.ndarray, config_hash: str, scale: int = SCALE) -> Path:
    """A sisr3d patch store (contract in docs/architecture.md): LR by 3D k-space truncation."""
    lr = np.stack([kspace_truncate(h, scale, (0, 1, 2)) for h in hr]).astype(np.float32)
    attrs = {"task": "sisr3d", "scale": float(scale), "dims": 3, "axes": json.dumps([0, 1, 2]),
             "hr_patch": json.dumps(list(hr.shape[1:])), "lr_patch": json.dumps(list(lr.shape[1:])),
             "grid_convention": "corner", "config_hash": config_hash, "seed": 0, "code_version": "test",
             "subjects": json.dumps(["a", "b"])}
    with h5py.File(path, "w") as f:
        for k, v in (("hr", hr), ("lr", lr)):
            f.create_dataset(k, data=v, chunks=(1, *v.shape[1:]), track_times=False)
        f.create_dataset("subject", data=np.arange(len(hr), dtype=np.int32) % 2)
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Unpaired source HR and target LR stores (disjoint volumes) and a paired val store."""
    d = tmp_path_factory.mktemp("udean_stores")
    rng = np.random.default_rng(0)
    return (write_store(d / "source.h5", smooth_volumes(rng, 8, HR_PATCH), "h-src"),
            write_store(d / "target.h5", smooth_volumes(rng, 8, HR_PATCH), "h-tgt"),
            write_store(d / "val.h5", smooth_volumes(rng, 2, HR_PATCH), "h-val"))


def udean_cfg(**train_kw) -> dict:
    t = {"steps": 4, "batch_size": 2, "lr": 2e-3, "val_every": 2, "ckpt_every": 2, "log_every": 1}
    return {"trainer": "udean", "arch": "udean", "args": dict(TINY_ARGS), "train": {**t, **train_kw}, "udean": dict(TINY_UDEAN)}


def tiny_system(seed: int = 0) -> UdeanSystem:
    torch.manual_seed(seed)
    sr = build_model("udean", scale=SCALE, dims=3, grid_convention="corner", **TINY_ARGS)
    return UdeanSystem(sr, grid_convention="corner", reduction=TINY_ARGS["reduction"], **TINY_UDEAN)


# ---------------------------------------------------------------------------- architecture
def test_rcan3d_without_learned_detail_is_the_tricubic_baseline():
    torch.manual_seed(0)
    model = build_model("rcan3d", scale=2, dims=3, grid_convention="corner", n_feats=8, n_groups=2, n_blocks=2)
    lr = torch.rand(2, 1, 5, 6, 3)
    assert model(lr).shape == (2, 1, 10, 12, 6)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        out = model(lr).numpy()
    grid = Grid("corner", (0, 1, 2), (10, 12, 6), (5, 6, 3))
    for b in range(2):
        np.testing.assert_allclose(out[b, 0], cubic_upsample(lr[b, 0].numpy().astype(np.float64), grid), atol=1e-5)
    with pytest.raises(ValueError, match="dims must be 3"):
        build_model("rcan3d", scale=2, dims=2, grid_convention="corner")


def test_udean_inference_is_encoder_then_sr_decoder_and_round_trips(tmp_path):
    torch.manual_seed(1)
    model = build_model("udean", scale=2, dims=3, grid_convention="corner", **TINY_ARGS)
    assert model.inputs == ("lr",)
    convs = [m for m in model.encoder.body if isinstance(m, torch.nn.Conv3d)]
    acts = [m for m in model.encoder.body if isinstance(m, torch.nn.LeakyReLU)]
    assert len(convs) == len(acts) == 6  # E_LR: 6 × (conv + LeakyReLU), the paper's encoder
    assert isinstance(model.decoder, RCANDecoder) and len(model.decoder.groups) == TINY_ARGS["n_groups"]
    lr = torch.rand(1, 1, 4, 6, 3)
    with torch.no_grad():
        np.testing.assert_array_equal(model(lr).numpy(), model.decode(model.encode(lr), lr).numpy())
    save_model(tmp_path / "m.pt", model, arch="udean", args=TINY_ARGS, scale=2, dims=3, grid_convention="corner",
               step=1, val_psnr=30.0)
    loaded = load_model(tmp_path / "m.pt")
    assert type(loaded) is UDEAN
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(lr).numpy(), model(lr).numpy())


def test_downsampling_head_reads_the_hr_samples_the_corner_grid_keeps():
    """A delta head kernel must return HR at i·s: E_D's output shares the real LR's grid."""
    ed = ConvEncoder(n_feats=1, n_layers=1, scale=2, convention="corner")
    head = ed.body[0]
    assert head.kernel_size == (3, 3, 3) and head.stride == (2, 2, 2)  # 2s − 1 taps centred on i·s
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0, 1, 1, 1] = 1.0  # centre of the 3-tap (2s−1) kernel
        head.bias.zero_()
        hr = torch.rand(1, 1, 8, 6, 4)  # non-negative: the LeakyReLU after the head passes it unchanged
        np.testing.assert_array_equal(ed(hr).numpy(), hr[:, :, ::2, ::2, ::2].numpy())
    # and k-space truncation indeed keeps HR at i·s for a band-limited signal (the corner convention)
    x = np.cos(2 * np.pi * np.arange(16) / 16)[:, None, None] * np.ones((16, 8, 8))
    np.testing.assert_allclose(kspace_truncate(x, 2, (0, 1, 2)), x[::2, ::2, ::2], atol=1e-10)
    with pytest.raises(ValueError, match="multiple of the scale"):
        ed(torch.rand(1, 1, 7, 6, 4))


def test_encoders_are_six_conv_leaky_relu_layers_and_decoders_ts_rcan():
    system = UdeanSystem(build_model("udean", scale=2, dims=3, grid_convention="corner", n_feats=4, n_groups=5,
                                     n_blocks=5, reduction=2), grid_convention="corner", deg_layers=6,
                         lr_dec_groups=5, lr_dec_blocks=5, reduction=2, disc_feats=4, disc_stages=2)
    for enc in (system.sr.encoder, system.degrader):
        kinds = [type(m).__name__ for m in enc.body]
        assert kinds == ["Conv3d", "LeakyReLU"] * 6
    for dec in (system.sr.decoder, system.lr_decoder):
        assert len(dec.groups) == 5 and all(len(g.body) == 5 + 1 for g in dec.groups)  # 5 RCABs + conv each
    assert system.sr.decoder.scale == 2 and system.lr_decoder.scale == 1


def test_untrained_system_is_decimation_autoencoding_and_tricubic():
    """Identity-channel init: generated LR = the HR samples the corner grid keeps, the LR
    auto-encoder reproduces X_t, and the SR paths = tricubic upsampling of their LR input."""
    system = tiny_system()
    hr, lr = torch.rand(2, 1, 8, 8, 8), torch.rand(2, 1, 4, 4, 4)  # ≥ 0: LeakyReLU passes channel 0 unchanged
    with torch.no_grad():
        out = system(hr, lr)
    decimated = hr[:, :, ::2, ::2, ::2]
    np.testing.assert_allclose(out["x_st"].numpy(), decimated.numpy(), atol=1e-6)
    np.testing.assert_allclose(out["x_t_hat"].numpy(), lr.numpy(), atol=1e-6)
    grid = Grid("corner", (0, 1, 2), (8, 8, 8), (4, 4, 4))
    tricubic = cubic_upsample(out["x_st"][0, 0].numpy().astype(np.float64), grid)
    np.testing.assert_allclose(out["y_sts"][0, 0].numpy(), tricubic, atol=1e-5)
    np.testing.assert_allclose(out["y_s_hat"][0, 0].numpy(), tricubic, atol=1e-5)


def test_lr_consistency_is_not_satisfied_by_a_shortcut():
    """X̂_t is decoded from f_t alone: with D_LR's weights zeroed it is 0 (an identity shortcut
    from X_t would keep X̂_t = X_t and the consistency loss ~0), and it changes when only f_t does."""
    system = tiny_system()
    hr, lr = torch.rand(2, 1, 8, 8, 8), 0.2 + torch.rand(2, 1, 4, 4, 4)
    with torch.no_grad():
        for p in system.lr_decoder.parameters():
            p.zero_()
        out = system(hr, lr)
        assert float(out["x_t_hat"].abs().max()) == 0.0
        loss = float(P.pixel_loss(out["x_t_hat"], lr, 0.5))
        assert loss > float(lr.abs().mean())  # L1 term alone = mean |X_t| > 0.2
        fresh = tiny_system()
        f_t = fresh.sr.encode(lr)
        np.testing.assert_array_equal(fresh(hr, lr)["x_t_hat"].numpy(), fresh.lr_decoder(f_t).numpy())
        for p in fresh.sr.encoder.parameters():  # E_LR zeroed: f_t = 0, so X̂_t no longer depends on X_t
            p.zero_()
        a, b = fresh(hr, lr)["x_t_hat"], fresh(hr, 2 * lr)["x_t_hat"]
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_discriminator_scores_thin_and_cubic_patches():
    d = VGGDiscriminator3D(in_channels=3, n_feats=4, n_stages=3)
    assert d(torch.rand(2, 3, 16, 16, 3)).shape == (2,)  # thin axis keeps stride 1
    assert d(torch.rand(1, 3, 4, 4, 4)).shape == (1,)


# ---------------------------------------------------------------------------- losses
def numpy_ssim_valid(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference for short axes: separable 'valid' Gaussian windows with np.convolve."""
    def filt(a):
        for axis, n in enumerate(a.shape):
            k = min(11, n if n % 2 else n - 1)
            t = np.arange(k) - (k - 1) / 2
            w = np.exp(-t**2 / (2 * 1.5**2))
            a = np.apply_along_axis(lambda v: np.convolve(v, w / w.sum(), mode="valid"), axis, a)
        return a
    ux, uy = filt(x), filt(y)
    vx, vy, vxy = filt(x * x) - ux**2, filt(y * y) - uy**2, filt(x * y) - ux * uy
    c1, c2 = 0.01**2, 0.03**2
    return float((((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))).mean())


def test_ssim3d_matches_the_evaluation_ssim_and_handles_thin_patches():
    rng = np.random.default_rng(3)
    x = gaussian_filter(rng.uniform(0, 1, (16, 15, 14)), 1.0)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    assert float(P.ssim3d(t(x), t(y))[0]) == pytest.approx(ssim_reference(x, y), abs=1e-10)
    xs, ys = x[:12, :10, :3], y[:12, :10, :3]  # an LR-like patch 3 voxels thick: 3-tap window there
    assert float(P.ssim3d(t(xs), t(ys))[0]) == pytest.approx(numpy_ssim_valid(xs, ys), abs=1e-10)
    assert float(P.ssim_loss(t(xs), t(xs))) == pytest.approx(0.0, abs=1e-12)


def test_pixel_loss_is_l1_plus_half_ssim_loss_by_hand():
    """Eq. 3: ℓ = L1 + α·(1 − SSIM), α = 0.5."""
    a = torch.zeros(1, 1, 4, 4, 4)
    b = torch.full((1, 1, 4, 4, 4), 0.5)
    # constant images: SSIM = (2·0·0.5 + c1)/(0 + 0.25 + c1) · (c2 / c2), L1 = 0.5
    c1 = 0.01**2
    ssim = c1 / (0.25 + c1)
    assert float(P.pixel_loss(a, b, 0.5)) == pytest.approx(0.5 + 0.5 * (1 - ssim), rel=1e-6)
    assert float(P.pixel_loss(a, b, 0.0)) == pytest.approx(0.5)
    x, y = torch.rand(2, 1, 12, 12, 12), torch.rand(2, 1, 12, 12, 12)
    assert float(P.pixel_loss(x, y, 0.5)) == pytest.approx(float((x - y).abs().mean() + 0.5 * P.ssim_loss(x, y)),
                                                           rel=1e-6)


def test_adversarial_losses_by_hand():
    """Eqs. 4/6 (LSGAN critic and generator) and eq. 7 (|D − 0.5|)."""
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert float(A.lsgan_d(real, fake)) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert float(A.lsgan_g(fake)) == pytest.approx(0.25)
    assert float(A.lsgan_d(torch.ones(3), torch.zeros(3))) == 0.0
    assert float(A.confusion(torch.tensor([0.5, 0.5]))) == 0.0
    assert float(A.confusion(torch.tensor([1.0, 0.0, 0.25]))) == pytest.approx((0.5 + 0.5 + 0.25) / 3)


class ConstantCritic(torch.nn.Module):
    """A critic returning a fixed score per sample, for hand-computed adversarial terms."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.value)


def test_generator_terms_by_hand_on_tiny_tensors():
    """Each term of eqs. 4–10 against its hand value, on outputs whose differences are constants."""
    system = tiny_system()
    system.d_lr, system.d_feat = ConstantCritic(0.2), ConstantCritic(0.9)
    x_s, x_t = torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 4, 4, 4)
    c1 = 0.01**2
    ssim_at = lambda d: c1 / (d * d + c1)  # noqa: E731  SSIM of 0 against the constant d
    out = {"y_sts": torch.full_like(x_s, 0.1), "y_s_hat": torch.full_like(x_s, 0.3), "x_t_hat": torch.full_like(x_t, 0.2),
           "f_s": torch.zeros(1, 4, 4, 4, 4), "f_sts": torch.full((1, 4, 4, 4, 4), 0.4), "f_t": torch.ones(1, 4, 4, 4, 4),
           "x_st": torch.zeros_like(x_t)}
    t = L.generator_terms(system, out, x_s, x_t, alpha=0.5, beta=0.01)
    assert float(t["image_cycle"]) == pytest.approx(0.1 + 0.5 * (1 - ssim_at(0.1)), rel=1e-5)
    assert float(t["hr_consistency"]) == pytest.approx(0.3 + 0.5 * (1 - ssim_at(0.3)), rel=1e-5)
    assert float(t["lr_consistency"]) == pytest.approx(0.2 + 0.5 * (1 - ssim_at(0.2)), rel=1e-5)
    assert float(t["feature_cycle"]) == pytest.approx(0.4)
    assert float(t["degradation_adaptation"]) == pytest.approx(0.01 * 0.5 * (0.2 - 1) ** 2)  # β·L_G, eq. 4
    assert float(t["feature_adaptation"]) == pytest.approx(0.01 * (0.4 + 0.4))  # β·(|0.9−.5| for f_s and f_t)
    lam = dict(L.DEFAULT_LAMBDAS)
    total = float(L.weighted_sum(t, lam))
    assert total == pytest.approx(sum(lam[k] * float(t[k]) for k in L.TERMS))
    d = L.discriminator_terms(system, out, x_t)
    assert float(d["d_lr"]) == pytest.approx(0.5 * (0.2 - 1) ** 2 + 0.5 * 0.2**2)
    assert float(d["d_feat"]) == pytest.approx(0.5 * (0.9 - 1) ** 2 + 0.5 * 0.9**2)


def make_task(stores, cfg: dict, seed: int = 0) -> U.UdeanTask:
    """The task on the target store (its `hr` and `lr` as the two unpaired streams)."""
    _, target_h5, val_h5 = stores
    return U.UdeanTask(cfg, target_h5, val_h5, seed, torch.device("cpu"))


def batch_of(stores, n: int = 2) -> dict[str, torch.Tensor]:
    source_h5, target_h5, _ = stores
    with h5py.File(source_h5) as fs, h5py.File(target_h5) as ft:
        return {"hr": torch.from_numpy(fs["hr"][:n])[:, None], "lr": torch.from_numpy(ft["lr"][:n])[:, None]}


def test_every_loss_term_is_finite_and_decreases_in_a_tiny_overfit_run(stores, tmp_path):
    """The real alternating step on one fixed unpaired batch: every term stays finite, the
    reconstruction terms and both critics' losses fall. The other terms are then overfit alone
    (critics frozen), which must lower them: in the joint run the adversarial generator terms
    legitimately rise as the critics learn, and the feature cycle chases moving features."""
    task = make_task(stores, udean_cfg(steps=25, lr=3e-3, scheduler="none", augment=False))
    batch = batch_of(stores, n=1)
    values = torch.stack([task.step(batch, k) for k in range(25)]).numpy()
    history = dict(zip(task.loss_columns, values.T))
    assert set(history) == {"loss", *L.TERMS, "d_lr", "d_feat"}
    for k, v in history.items():
        assert np.all(np.isfinite(v)), k
    for k in ("image_cycle", "hr_consistency", "lr_consistency", "d_lr", "d_feat"):
        assert history[k][-5:].mean() < 0.9 * history[k][:5].mean(), (k, history[k])

    for term in ("feature_cycle", "degradation_adaptation", "feature_adaptation"):  # the others fell above
        system = tiny_system()
        if term != "feature_cycle":  # a critic that has learnt to tell real from fake first
            train_critics(system, batch, steps=10)
        opt = torch.optim.Adam(system.generator_parameters(), lr=3e-3)
        values = []
        for _ in range(10):
            out = system(batch["hr"], batch["lr"])
            loss = L.generator_terms(system, out, batch["hr"], batch["lr"], 0.5, 0.01)[term]
            opt.zero_grad()
            loss.backward()
            opt.step()
            values.append(float(loss.detach()))
        assert all(math.isfinite(v) for v in values) and values[-1] < 0.85 * values[0], (term, values)


def train_critics(system: UdeanSystem, batch: dict, steps: int) -> None:
    opt = torch.optim.Adam(system.discriminator_parameters(), lr=3e-3)
    with torch.no_grad():
        out = system(batch["hr"], batch["lr"])
    for _ in range(steps):
        d = L.discriminator_terms(system, out, batch["lr"])
        opt.zero_grad()
        (d["d_lr"] + d["d_feat"]).backward()
        opt.step()


# ---------------------------------------------------------------------------- data streams, config
def test_unpaired_streams_are_reproducible_and_not_paired():
    a = list(unpaired_sampler(5, 16, 16, 4, 0, 8))
    assert a[3:] == list(unpaired_sampler(5, 16, 16, 4, 3, 8))  # resume mid-epoch
    src = [i for batch in a for i, _ in batch]
    tgt = [j for batch in a for _, j in batch]
    assert sorted(src[:16]) == list(range(16)) and sorted(tgt[:16]) == list(range(16))  # epochs
    assert src != tgt  # same-sized stores from one set of subjects must not come out paired


def test_config_typos_and_mismatched_stores_are_refused(stores, tmp_path):
    with pytest.raises(ValueError, match="unknown udean settings"):
        U.UdeanConfig.from_dict({"alfa": 0.5})
    with pytest.raises(ValueError, match="unknown udean loss terms"):
        U.UdeanConfig.from_dict({"lambdas": {"cycle": 1.0}})
    assert U.UdeanConfig.from_dict({"lambdas": {"image_cycle": 2}}).lambdas["feature_cycle"] == 0.1
    rng = np.random.default_rng(1)
    x4 = write_store(tmp_path / "x4.h5", smooth_volumes(rng, 2, (16, 16, 16)), "h-x4", scale=4)
    with pytest.raises(InputError, match="scale"):
        make_task((None, x4, stores[2]), udean_cfg())


# ---------------------------------------------------------------------------- the run
def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_training_run_outputs_and_a_config_edit(stores, tmp_path):
    """Outputs of a run; resume after SIGTERM: tests/test_train.py::test_resume_after_sigterm_matches_uninterrupted_run[udean]."""
    cfg = udean_cfg()
    full = train_model(cfg, *stores[1:], tmp_path / "full", seed=2, device="cpu")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["card.md", "ckpt", "curves.png", "log.csv",
                                                                      "model.pt"]
    model = load_model(full)
    assert type(model) is UDEAN and model.inputs == ("lr",)
    record = _load(full)
    assert not any(k.startswith(("degrader", "lr_decoder", "d_")) for k in record["state_dict"])
    last = _load(tmp_path / "full" / "ckpt" / "last.pt")
    assert any(k.startswith("degrader.") for k in last["model"]) and set(last["optimizers"]) == {"g", "d"}
    card = (tmp_path / "full" / "card.md").read_text()
    assert "## UDEAN" in card and "source (hr)" in card and "L1 loss" not in card and "| optimiser | Adam (β" in card
    rows = (tmp_path / "full" / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,val_psnr,elapsed_s," + ",".join((*L.TERMS, "d_lr", "d_feat")) and len(rows) == 5

    # A config edit (what makes Snakemake rerun train) starts over instead of resuming the old run.
    out = tmp_path / "full"
    train_model({**cfg, "udean": {**TINY_UDEAN, "beta": 0.1}}, *stores[1:], out, seed=2, device="cpu")
    assert len(list((out / "ckpt" / "stale").glob("*.pt"))) == 2  # last.pt and best.pt, kept


def test_bf16_step_keeps_losses_in_float32(stores, tmp_path):
    task = make_task(stores, udean_cfg(bf16=True, augment=False))
    losses = task.step(batch_of(stores, n=1), 0)
    assert losses.dtype == torch.float32 and losses.shape == (len(task.loss_columns),)
    assert all(math.isfinite(v) for v in losses.tolist())


def test_flips_only_augmentation_never_transposes(stores):
    """`augment: flips` works for udean: no transposes (and on these corner-convention stores, whose
    every axis is degraded, no grid-preserving flip either), while `true` transposes."""
    batch = batch_of(stores, n=4)
    flips = make_task(stores, udean_cfg(augment="flips"))
    full = make_task(stores, udean_cfg())
    assert all(torch.equal(flips.prepare_batch(batch, k)[key], batch[key]) for k in range(4) for key in ("hr", "lr"))
    assert any(not torch.equal(full.prepare_batch(batch, k)["hr"], batch["hr"]) for k in range(4))
