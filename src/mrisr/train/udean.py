"""UDEAN training (`trainer: udean`): unsupervised 3D SR from unpaired (or misaligned) source HR
and target LR. Networks and paths are in mrisr.models.udean (`UdeanSystem`); here are the losses
(paper eqs. 1–10) and `UdeanTask`, which validates like the supervised task (paired val store)
and differs in its two unpaired input streams, two optimisers ("g", "d") with alternating
updates and its card. Every loss term (and both critics' losses) is a log.csv column.

Losses — eqs. 1–10 as implemented (issue 12). Where the paper (or its unpublished code) does
not settle a detail, docs/fidelity.md marks the row READING.
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
Both critics take one L_D step on the detached outputs of the same forward after every generator
step (CycleGAN's alternation). Adam(β = (0.9, 0.99), ε = 1e-8) for both; cosine learning rate
from `train.lr` (paper 1e-4) to `lr_min` (1e-8) over the run.

Data: one store's `source_hr` and `target_lr` (mrisr.patches.groups), or a pair store's `hr` and
`lr`, drawn as two independent streams (different RNG streams, so that sides cut at the same
places from the same subjects — the misaligned flavour — never come out aligned). The paired
val store only picks the best weights by PSNR, as for every other method (a benchmark
convenience; a truly unsupervised deployment would keep the last weights).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field

import h5py
import torch
from torch.utils.data import Dataset

from mrisr.models import build_model, count_parameters
from mrisr.models.udean import UdeanSystem
from mrisr.patches.dataset import PatchDataset
from mrisr.train.config import checked_config, fingerprint
from mrisr.train.engine import step_loader
from mrisr.train.sampler import StepBatchSampler, augment_batch, augment_plan
from mrisr.train.supervised import SupervisedTask, autocast, make_scheduler, store_info, to_device

STREAM_SOURCE = 2  # RNG stream ids beside sampler.STREAM_ORDER (0) and STREAM_AUGMENT (1)
STREAM_TARGET = 3
SSIM_SIGMA = 1.5
SSIM_TAPS = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03
DEFAULT_LAMBDAS = {"image_cycle": 1.0, "feature_cycle": 0.1, "hr_consistency": 1.0, "lr_consistency": 1.0,
                   "degradation_adaptation": 0.1, "feature_adaptation": 0.1}  # λ1 … λ6
TERMS = tuple(DEFAULT_LAMBDAS)


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
        bad = sorted(set(d.get("lambdas") or {}) - set(TERMS))
        if bad:
            raise ValueError(f"unknown udean loss terms {bad}; accepted: {list(TERMS)}")
        d["lambdas"] = {**DEFAULT_LAMBDAS, **{k: float(v) for k, v in (d.get("lambdas") or {}).items()}}
        if "adam_betas" in d:
            d["adam_betas"] = tuple(float(b) for b in d["adam_betas"])
        return checked_config(cls, d, "udean")

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


# ============================================================================ data
def unpaired_sampler(seed: int, n_source: int, n_target: int, batch_size: int, start: int,
                     stop: int) -> StepBatchSampler:
    """Batches of (source index, target index) for steps start..stop−1, two independent streams."""
    return StepBatchSampler(seed, (n_source, n_target), batch_size, start, stop, streams=(STREAM_SOURCE, STREAM_TARGET))


class UnpairedDataset(Dataset):
    """Item (i, j) → {"hr": source patch i, "lr": target patch j} of one store: its `source_hr`
    and `target_lr` (a UDEAN group store) when present, else its `hr` and `lr`."""

    def __init__(self, path) -> None:
        with h5py.File(path, "r") as f:
            self.keys = ("source_hr", "target_lr") if "source_hr" in f else ("hr", "lr")
        self.source, self.target = (PatchDataset(path, (k,)) for k in self.keys)

    def __len__(self) -> int:
        return max(len(self.source), len(self.target))

    def __getitem__(self, ij: tuple[int, int]) -> dict[str, torch.Tensor]:
        i, j = ij
        return {"hr": self.source[i][self.keys[0]], "lr": self.target[j][self.keys[1]]}


# ============================================================================ task
class UdeanTask(SupervisedTask, kind="udean"):
    """Unpaired source/target streams and alternating G/D updates; validation as supervised.
    `model` is the inference net (`udean`, saved as model.pt); `nets` = `system` holds every
    trained network (ckpt/last.pt)."""

    loss_columns = ("loss", *TERMS, "d_lr", "d_feat")

    def __init__(self, model_cfg: dict, train_h5, val_h5, seed: int, device: torch.device) -> None:
        self.setup_stores(model_cfg, train_h5, val_h5, seed, device)
        if self.arch != "udean":
            raise ValueError(f"trainer udean trains arch 'udean', got {self.arch!r}")
        self.ucfg = u = UdeanConfig.from_dict(model_cfg.get("udean"))
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
        self.train_ds = UnpairedDataset(self.train_h5)
        self.val_ds = PatchDataset(self.val_h5, ("lr", "hr"))
        self.cfg = self.cfg.resolve_steps(len(self.train_ds))  # an epoch: a pass over the larger stream
        params = {"g": self.system.generator_parameters(), "d": self.system.discriminator_parameters()}
        self.optimizers = {k: torch.optim.Adam(v, lr=self.cfg.lr, betas=tuple(u.adam_betas), eps=u.adam_eps)
                           for k, v in params.items()}
        self.schedulers = {k: make_scheduler(opt, self.cfg, u.lr_min) for k, opt in self.optimizers.items()}
        self.stores = (store_info("source (hr)", self.train_h5, self.attrs, len(self.train_ds.source)),
                       store_info("target (lr)", self.train_h5, self.attrs, len(self.train_ds.target)),
                       store_info("val", self.val_h5, self.val_attrs, len(self.val_ds)))
        h = self.attrs.get("config_hash", "")  # source+target hash: one store holds both sides
        self.fingerprint = fingerprint(self.arch, {**self.args, "udean": asdict(u)}, self.cfg, self.seed, f"{h}+{h}",
                                       str(self.val_attrs.get("config_hash", "")))

    def batches(self, start: int):
        sampler = unpaired_sampler(self.seed, len(self.train_ds.source), len(self.train_ds.target),
                                   self.cfg.batch_size, start, self.cfg.steps)
        return step_loader(self.train_ds, sampler, self.cfg, self.device)

    def prepare_batch(self, batch: dict, step: int) -> dict:
        """Grid-preserving flips (and transposes), drawn independently for the source and target halves."""
        if self.cfg.augment:
            b, geometry = len(batch["hr"]), (self.attrs["hr_patch"], self.attrs["lr_patch"])
            plan = augment_plan(self.seed, step, 2 * b, *geometry, self.attrs["grid_convention"],
                                transposes=self.cfg.augment is True)
            batch = {**augment_batch({"hr": batch["hr"]}, plan[:b], geometry),
                     **augment_batch({"lr": batch["lr"]}, plan[b:], geometry)}
        return to_device(batch, self.device, self.fmt)

    def step(self, batch: dict, step: int) -> torch.Tensor:
        """One generator step (critics frozen), then one critic step on the detached outputs."""
        batch = self.prepare_batch(batch, step)
        x_s, x_t = batch["hr"], batch["lr"]
        u, sys_, opt = self.ucfg, self.system, self.optimizers
        critics = torch.nn.ModuleList([sys_.d_lr, sys_.d_feat])
        critics.requires_grad_(False)
        with autocast(self.device, self.cfg.bf16):
            out = sys_(x_s, x_t)
            g_terms = generator_terms(sys_, out, x_s, x_t, u.alpha, u.beta)
        g_loss = weighted_sum(g_terms, u.lambdas)
        opt["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        opt["g"].step()
        critics.requires_grad_(True)
        with autocast(self.device, self.cfg.bf16):
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
                f"- udean settings: `{json.dumps(asdict(u), sort_keys=True)}`"]
