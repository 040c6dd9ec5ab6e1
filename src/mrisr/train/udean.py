"""UDEAN training: unsupervised 3D SR from unpaired (or misaligned) source HR and target LR.

Networks and paths are in mrisr.models.udean (`UdeanSystem`); this module holds the losses
(paper eqs. 1–10) and `UdeanTask` (`trainer: udean`), which the engine (`train.engine`) runs
like every kind (resume, signals, logging, best-weights selection); it reuses the supervised
task's validation on the paired val store and changes only what differs: two unpaired input
streams, two optimisers ("g", "d") with alternating updates, and the card. Every loss term
(and both critics' losses) is a log.csv column.

Losses — eqs. 1–10 as implemented (issue 12; paths in mrisr.models.udean). Where the paper
(or its unpublished code) does not settle a detail, docs/fidelity.md marks the row READING.
    (1) L1(a, b) = mean |a − b|
    (2) L_SSIM(a, b) = 1 − SSIM3D(a, b)   (Gaussian window σ = 1.5, 11 taps, truncated to the
        axis length on short axes — a 3-voxel-thick LR patch gets a 3-tap window there)
    (3) ℓ(a, b) = L1(a, b) + α·L_SSIM(a, b), α = 0.5   — the pixel loss of every image term
    (4) LR-domain adversarial (LSGAN), D_LR: X_t real, X_{s~t} fake:
        L_D = ½E[(D(X_t) − 1)²] + ½E[D(X_{s~t})²];   generator L_G = ½E[(D(X_{s~t}) − 1)²]
    (5) image cycle          L_icyc = ℓ(Y_{s~t~s}, X_s)                      λ1 = 1
        feature cycle        L_fcyc = L1(f_{s~t~s}, f_s)                     λ2 = 0.1
    (6) feature critic D_F (LSGAN): f_t real, f_s fake, L_DF = ½E[(D_F(f_t) − 1)²] + ½E[D_F(f_s)²]
    (7) feature adaptation (encoders): both encoders drive D_F to its point of confusion,
        L_fa = E|D_F(f_s) − 0.5| + E|D_F(f_t) − 0.5|
    (8) HR consistency       L_hr   = ℓ(Ŷ_s, X_s)                            λ3 = 1
    (9) LR consistency       L_lr   = ℓ(X̂_t, X_t)   (X̂_t = D_LR(f_t): no shortcut from X_t)  λ4 = 1
   (10) generator objective  λ1·L_icyc + λ2·L_fcyc + λ3·L_hr + λ4·L_lr + β·(λ5·L_G + λ6·L_fa),
        β = 0.01, λ5 = λ6 = 0.1: β weights only the adversarial terms (eqs. 4, 7); the log's
        degradation_adaptation / feature_adaptation columns hold β·L_G and β·L_fa.
Discriminators (D_LR: X_t real vs X_{s~t} fake; D_F: f_t real vs f_s fake) take one L_D step on
the detached outputs of the same forward after every generator step (CycleGAN's alternation).
Adam(β = (0.9, 0.99), ε = 1e-8) for both; cosine learning rate from `train.lr` (paper 1e-4) to
`lr_min` (1e-8) over `train.steps`.

Data: the source store's `hr` and the target store's `lr` — or `source_hr` and `target_lr` of one
unpaired store (mrisr.patches.groups; pass it as both) — are drawn as two independent streams
(different RNG streams, so that even stores cut at the same places from the same subjects —
the misaligned flavour — never yield aligned pairs). The paired val store is used only to
pick the best weights by PSNR, as for every other method (a benchmark convenience; a truly
unsupervised deployment would keep the last weights).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import h5py
import torch
from torch.utils.data import Dataset

from mrisr.errors import InputError
from mrisr.models import build_model, count_parameters
from mrisr.models.udean import UdeanSystem
from mrisr.patches.dataset import PatchDataset, store_attrs
from mrisr.train.config import fingerprint
from mrisr.train.engine import Engine, register_kind, resolve_device, step_loader
from mrisr.train.sampler import StepBatchSampler, augment_batch, augment_plan
from mrisr.train.supervised import SupervisedTask, make_scheduler, memory_format, store_info, to_device

STREAM_SOURCE = 2  # RNG stream ids beside sampler.STREAM_ORDER (0) and STREAM_AUGMENT (1)
STREAM_TARGET = 3
SSIM_SIGMA = 1.5
SSIM_TAPS = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03
TERMS = ("image_cycle", "feature_cycle", "hr_consistency", "lr_consistency", "degradation_adaptation",
         "feature_adaptation")
DEFAULT_LAMBDAS = {"image_cycle": 1.0, "feature_cycle": 0.1, "hr_consistency": 1.0, "lr_consistency": 1.0,
                   "degradation_adaptation": 0.1, "feature_adaptation": 0.1}


# ============================================================================ losses
def gaussian_taps(n: int, taps: int = SSIM_TAPS, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised Gaussian window for an axis of n samples: `taps` long, or the longest odd
    length that fits (a thin axis still gets a valid, centred window)."""
    k = min(taps, n if n % 2 else n - 1)
    x = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


@functools.lru_cache(maxsize=32)
def valid_filter_matrix(n: int) -> torch.Tensor:
    """(n − k + 1) × n band matrix M with (M @ v)[i] = Σ_j w[j]·v[i + j]: the 'valid' Gaussian
    filter of one axis. A matmul per axis is far cheaper on CPU than a grouped 1-tap-wide
    conv3d, and its cost does not depend on patch thinness."""
    w = gaussian_taps(n)
    k = w.numel()
    m = torch.zeros(n - k + 1, n, dtype=torch.float64)
    for i in range(n - k + 1):
        m[i, i:i + k] = w
    return m


def gaussian_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter over the last three axes of x, keeping only the 'valid' region."""
    for axis in range(x.ndim - 3, x.ndim):
        m = valid_filter_matrix(x.shape[axis]).to(dtype=x.dtype, device=x.device)
        x = torch.movedim(torch.movedim(x, axis, -1) @ m.T, -1, axis)
    return x


def ssim3d(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean 3D SSIM per sample (B,) of (B, C, X, Y, Z) tensors (Wang et al.; population
    covariance; mean over the valid region — mrisr.evaluate.metrics.ssim where the full
    11-tap window fits)."""
    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(f"ssim3d needs two (B, C, X, Y, Z) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    # float32 even under bf16 autocast: the variances are differences of nearly equal moments.
    with torch.autocast(device_type=x.device.type, enabled=False):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # float64 for reference tests
        x, y = x.to(dtype), y.to(dtype)
        ux, uy, xx, yy, xy = gaussian_valid(torch.stack([x, y, x * x, y * y, x * y]))  # one pass for all moments
        vx, vy, vxy = xx - ux * ux, yy - uy * uy, xy - ux * uy
        c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        return s.flatten(1).mean(dim=1)


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 2: 1 − SSIM3D, averaged over the batch."""
    return 1.0 - ssim3d(x, y).mean()


def pixel_loss(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 3: L1 + α·L_SSIM (in float32 whatever the forward's autocast dtype)."""
    x, y = x.float(), y.float()
    return torch.nn.functional.l1_loss(x, y) + alpha * ssim_loss(x, y)


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eqs. 4 and 6, critic side: ½E[(D(real) − 1)²] + ½E[D(fake)²]."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    """Eq. 4, generator side: ½E[(D(fake) − 1)²]."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def confusion(scores: torch.Tensor) -> torch.Tensor:
    """Eq. 7 for one feature batch: E|D_F(f) − 0.5| — zero where the critic cannot tell."""
    return (scores - 0.5).abs().mean()


def generator_terms(system: UdeanSystem, out: dict[str, torch.Tensor], x_s: torch.Tensor, x_t: torch.Tensor,
                    alpha: float, beta: float) -> dict[str, torch.Tensor]:
    """Eqs. 4, 5, 7, 8, 9, unweighted by λ; β (eq. 10) is applied here to the two adversarial terms."""
    return {
        "image_cycle": pixel_loss(out["y_sts"], x_s, alpha),
        "feature_cycle": torch.nn.functional.l1_loss(out["f_sts"].float(), out["f_s"].float()),
        "hr_consistency": pixel_loss(out["y_s_hat"], x_s, alpha),
        "lr_consistency": pixel_loss(out["x_t_hat"], x_t, alpha),
        "degradation_adaptation": beta * lsgan_g(system.d_lr(out["x_st"]).float()),
        "feature_adaptation": beta * sum(confusion(s) for s in critic_scores(system.d_feat, out["f_t"], out["f_s"])),
    }


def critic_scores(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of real and fake in one forward (the critics have no batch statistics, so this
    equals two calls and halves the number of small convolutions)."""
    scores = critic(torch.cat([real, fake.to(real.dtype)])).float()
    return scores[: len(real)], scores[len(real):]


def discriminator_terms(system: UdeanSystem, out: dict[str, torch.Tensor], x_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_D of both critics on detached generator outputs."""
    return {
        "d_lr": lsgan_d(*critic_scores(system.d_lr, x_t, out["x_st"].detach())),
        "d_feat": lsgan_d(*critic_scores(system.d_feat, out["f_t"].detach(), out["f_s"].detach())),
    }


def weighted_sum(terms: dict[str, torch.Tensor], lambdas: dict[str, float]) -> torch.Tensor:
    return sum(lambdas[k] * terms[k] for k in TERMS)


# ============================================================================ config
@dataclass(frozen=True)
class UdeanConfig:
    """The `udean` section of the model config: the training-only networks and the loss weights."""

    alpha: float = 0.5
    beta: float = 0.01
    lambdas: dict = field(default_factory=lambda: dict(DEFAULT_LAMBDAS))
    deg_layers: int = 6
    lr_dec_groups: int = 2
    lr_dec_blocks: int = 2
    disc_feats: int = 16
    disc_stages: int = 3
    lr_min: float = 1e-8
    adam_betas: tuple = (0.9, 0.99)
    adam_eps: float = 1e-8

    @classmethod
    def from_dict(cls, d: dict | None) -> "UdeanConfig":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown udean settings {unknown}; accepted: {sorted(known)}")
        lambdas = dict(DEFAULT_LAMBDAS)
        bad = sorted(set(d.get("lambdas") or {}) - set(TERMS))
        if bad:
            raise ValueError(f"unknown udean loss terms {bad}; accepted: {list(TERMS)}")
        lambdas.update({k: float(v) for k, v in (d.get("lambdas") or {}).items()})
        d["lambdas"] = lambdas
        if "adam_betas" in d:
            d["adam_betas"] = tuple(float(b) for b in d["adam_betas"])
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"udean.alpha must lie in [0, 1], got {self.alpha}")
        if self.beta < 0 or any(v < 0 for v in self.lambdas.values()):
            raise ValueError("udean.beta and udean.lambdas must be >= 0")
        for name in ("deg_layers", "lr_dec_groups", "lr_dec_blocks", "disc_feats", "disc_stages"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"udean.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_min < 0 or len(self.adam_betas) != 2:
            raise ValueError("udean.lr_min must be >= 0 and udean.adam_betas a pair")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d


# ============================================================================ data
def unpaired_sampler(seed: int, n_source: int, n_target: int, batch_size: int, start: int,
                     stop: int) -> StepBatchSampler:
    """Batches of (source index, target index) for steps start..stop−1, two independent streams."""
    return StepBatchSampler(seed, (n_source, n_target), batch_size, start, stop, streams=(STREAM_SOURCE, STREAM_TARGET))


class UnpairedDataset(Dataset):
    """Item (i, j) → {"hr": source[i] HR patch, "lr": target[j] LR patch}."""

    def __init__(self, source: PatchDataset, target: PatchDataset, source_key: str = "hr",
                 target_key: str = "lr") -> None:
        self.source, self.target = source, target
        self.source_key, self.target_key = source_key, target_key

    def __len__(self) -> int:
        return max(len(self.source), len(self.target))

    def __getitem__(self, ij: tuple[int, int]) -> dict[str, torch.Tensor]:
        i, j = ij
        return {"hr": self.source[i][self.source_key], "lr": self.target[j][self.target_key]}


def stream_key(path: Path, unpaired: str, paired: str) -> str:
    """The dataset a stream reads: the unpaired store's `source_hr`/`target_lr` (one file holding
    both, DESIGN.md) when present, else a paired store's `hr`/`lr`."""
    with h5py.File(path, "r") as f:
        return unpaired if unpaired in f else paired


def check_source(source_h5: Path, target_attrs: dict) -> dict:
    """The source store's attributes; it must share scale and dims with the target and have
    HR patches divisible by the scale (E_D brings them onto the LR grid by striding)."""
    attrs = store_attrs(source_h5)
    for k in ("scale", "dims"):
        if attrs.get(k) != target_attrs[k]:
            raise InputError(source_h5, f"attribute {k}={attrs.get(k)!r} differs from the target store's {target_attrs[k]!r}")
    s = round(float(attrs["scale"]))
    hr_patch = [int(n) for n in attrs.get("hr_patch", [])]
    if len(hr_patch) != 3 or any(n % s for n in hr_patch):
        raise InputError(source_h5, f"hr_patch {hr_patch} must be three sizes divisible by the scale {s}")
    return attrs


# ============================================================================ task
def set_requires_grad(params, flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


@register_kind("udean")
class UdeanTask(SupervisedTask):
    """Unpaired source/target streams and alternating G/D updates; validation as supervised.

    `self.model` is the inference net (`udean`: validated, saved as model.pt); `self.nets` =
    `self.system` holds every trained network and is what ckpt/last.pt stores. The train
    store is both source (`source_hr`, or `hr` of `source_h5`) and target (`target_lr`/`lr`).
    """

    loss_columns = ("loss", *TERMS, "d_lr", "d_feat")

    def __init__(self, model_cfg: dict, train_h5: Path, val_h5: Path, seed: int, device: torch.device,
                 source_h5: Path | None = None) -> None:
        self.setup_stores(model_cfg, train_h5, val_h5, seed, device)
        if self.arch != "udean":
            raise ValueError(f"trainer udean trains arch 'udean', got {self.arch!r}")
        self.source_h5 = Path(source_h5 or train_h5)
        self.ucfg = u = UdeanConfig.from_dict(model_cfg.get("udean"))
        self.source_attrs = check_source(self.source_h5, self.attrs)
        self.fmt = memory_format(3) if self.cfg.channels_last else None

        torch.manual_seed(self.seed)  # model init
        sr = build_model(self.arch, **self.geometry, **self.args)
        self.system = UdeanSystem(sr, grid_convention=self.geometry["grid_convention"], deg_layers=u.deg_layers,
                                  lr_dec_groups=u.lr_dec_groups, lr_dec_blocks=u.lr_dec_blocks,
                                  reduction=int(self.args.get("reduction", 4)), disc_feats=u.disc_feats,
                                  disc_stages=u.disc_stages).to(self.device)
        if self.fmt is not None:
            self.system = self.system.to(memory_format=self.fmt)
        self.system.train()
        self.model, self.nets = self.system.sr, self.system
        source_key = stream_key(self.source_h5, "source_hr", "hr")
        target_key = stream_key(self.train_h5, "target_lr", "lr")
        self.source_ds = PatchDataset(self.source_h5, (source_key,))
        self.target_ds = PatchDataset(self.train_h5, (target_key,))
        self.train_ds = UnpairedDataset(self.source_ds, self.target_ds, source_key, target_key)
        self.val_ds = PatchDataset(self.val_h5, ("lr", "hr"))
        params = {"g": self.system.generator_parameters(), "d": self.system.discriminator_parameters()}
        self.optimizers = {k: torch.optim.Adam(v, lr=self.cfg.lr, betas=tuple(u.adam_betas), eps=u.adam_eps)
                           for k, v in params.items()}
        self.schedulers = {k: make_scheduler(opt, self.cfg, u.lr_min) for k, opt in self.optimizers.items()}
        self.stores = (store_info("source (hr)", self.source_h5, self.source_attrs, len(self.source_ds)),
                       store_info("target (lr)", self.train_h5, self.attrs, len(self.target_ds)),
                       store_info("val", self.val_h5, self.val_attrs, len(self.val_ds)))
        data_hash = f"{self.source_attrs.get('config_hash', '')}+{self.attrs.get('config_hash', '')}"
        self.fingerprint = fingerprint(self.arch, {**self.args, "udean": u.to_dict()}, self.cfg, self.seed,
                                       data_hash, str(self.val_attrs.get("config_hash", "")))

    def batches(self, start: int):
        sampler = unpaired_sampler(self.seed, len(self.source_ds), len(self.target_ds), self.cfg.batch_size, start,
                                   self.cfg.steps)
        return step_loader(self.train_ds, sampler, self.cfg, self.device)

    def prepare_batch(self, batch: dict, step: int) -> dict:
        """Grid-preserving flips/transposes, drawn independently for the source and target halves."""
        if self.cfg.augment:
            b, s = len(batch["hr"]), round(float(self.attrs["scale"]))
            src_hr = list(self.source_attrs["hr_patch"])
            src_geometry = (src_hr, [n // s for n in src_hr])
            tgt_geometry = (self.attrs["hr_patch"], self.attrs["lr_patch"])
            conv = self.attrs["grid_convention"]
            src_plan = augment_plan(self.seed, step, 2 * b, *src_geometry, conv)[:b]
            tgt_plan = augment_plan(self.seed, step, 2 * b, *tgt_geometry, conv)[b:]
            batch = {**augment_batch({"hr": batch["hr"]}, src_plan, src_geometry),
                     **augment_batch({"lr": batch["lr"]}, tgt_plan, tgt_geometry)}
        return to_device(batch, self.device, self.fmt)

    def step(self, batch: dict, step: int | None = None) -> torch.Tensor:
        """One generator step (critics frozen), then one critic step on the detached outputs.

        `step` None: the batch is used as it is (already on the device, not augmented). Returns
        the weighted generator loss, each term and both critics' losses (loss_columns order).
        """
        if step is not None:
            batch = self.prepare_batch(batch, step)
        x_s, x_t = batch["hr"], batch["lr"]
        u, sys_, opt = self.ucfg, self.system, self.optimizers
        d_params = sys_.discriminator_parameters()
        set_requires_grad(d_params, False)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            out = sys_(x_s, x_t)
            g_terms = generator_terms(sys_, out, x_s, x_t, u.alpha, u.beta)
        g_loss = weighted_sum(g_terms, u.lambdas)
        opt["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        opt["g"].step()
        set_requires_grad(d_params, True)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            d_terms = discriminator_terms(sys_, out, x_t)
        opt["d"].zero_grad(set_to_none=True)
        (d_terms["d_lr"] + d_terms["d_feat"]).backward()
        opt["d"].step()
        for sched in self.schedulers.values():
            if sched is not None:
                sched.step()
        return torch.stack([g_loss, *(g_terms[k] for k in TERMS), d_terms["d_lr"], d_terms["d_feat"]]).detach()

    def card_rows(self) -> dict[str, str | None]:
        u, cfg = self.ucfg, self.cfg
        return {"optimiser": f"| optimiser | Adam (β {u.adam_betas[0]:g}, {u.adam_betas[1]:g}; ε {u.adam_eps:g}) for "
                             f"generators and critics, alternating; lr {cfg.lr:g} → {u.lr_min:g} ({cfg.scheduler}); "
                             f"unsupervised UDEAN objective |"}

    def card_sections(self) -> list[str]:
        u = self.ucfg
        lam = ", ".join(f"{k} {v:g}" for k, v in u.lambdas.items())
        return ["", "## UDEAN", "",
                "Trained without HR/LR pairs: source HR and target LR patches are drawn independently; the val "
                "store (paired) only selects the best weights. Inference = LR encoder + SR decoder.", "",
                f"- pixel loss L1 + α·(1−SSIM3D), α = {u.alpha:g}; adversarial weight β = {u.beta:g} (LSGAN on LR "
                f"images, |D_F − 0.5| on features)",
                f"- λ: {lam}",
                f"- training-only networks: E_D {u.deg_layers} × (conv + LeakyReLU), LR decoder TS-RCAN "
                f"{u.lr_dec_groups} groups × {u.lr_dec_blocks} blocks, "
                f"VGG critics {u.disc_stages} stages from {u.disc_feats} feats; "
                f"{count_parameters(self.system):,} trainable parameters in all",
                f"- udean settings: `{json.dumps(u.to_dict(), sort_keys=True)}`"]


def train_udean(model_cfg: dict, source_h5: Path, target_h5: Path, val_h5: Path, out_dir: Path, seed: int,
                device: str = "auto") -> Path:
    """Train UDEAN on a source-HR store (its `hr`) and a target-LR store (its `lr`) — or one store
    with `source_hr` and `target_lr`, given as both — validating on a paired store; returns the
    path of model.pt (the `udean` inference net). `mrisr train` runs the one-store form through
    `engine.train_model` (`trainer: udean`)."""
    task = UdeanTask(model_cfg, Path(target_h5), Path(val_h5), int(seed), resolve_device(device), Path(source_h5))
    return Engine(task, Path(out_dir)).run()


__all__ = ["UdeanConfig", "UdeanTask", "discriminator_terms", "generator_terms", "lsgan_d", "lsgan_g",
           "pixel_loss", "ssim3d", "ssim_loss", "train_udean"]
