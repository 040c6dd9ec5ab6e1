"""UDEAN training: unsupervised 3D SR from unpaired (or misaligned) source HR and target LR.

Networks and paths are in mrisr.models.udean (`UdeanSystem`); this module holds the losses
(paper eqs. 1–10) and the training loop, which reuses `mrisr.train.loop.Trainer` for the run
itself (resume, signals, logging, validation, best-weights selection) and changes only what
differs: two unpaired input streams, two optimisers with alternating updates, and the card.

Losses — our reading of eqs. 1–10 (the paper leaves the weighting of its pixel loss and
where α and β enter implicit; this is the reading implemented and the one the weights fit):
    (1) L1(a, b) = mean |a − b|
    (2) L_SSIM(a, b) = 1 − SSIM3D(a, b)   (Gaussian window σ = 1.5, 11 taps, truncated to the
        axis length on short axes — a 3-voxel-thick LR patch gets a 3-tap window there)
    (3) ℓ(a, b) = α·L1 + (1 − α)·L_SSIM, α = 0.5   — the pixel loss of every image term
    (4) least squares GAN: L_D = ½E[(D(real) − 1)²] + ½E[D(fake)²], L_G = ½E[(D(fake) − 1)²]
    (5) image cycle          L_icyc = ℓ(Y_{s~t~s}, X_s)                      λ1 = 1
    (6) feature cycle        L_fcyc = L1(f_{s~t~s}, f_s)                     λ2 = 0.1
    (7) HR consistency       L_hr   = ℓ(Ŷ_s, X_s)                            λ3 = 1
    (8) LR consistency       L_lr   = ℓ(X̂_t, X_t)                            λ4 = 1
    (9) degradation adapt.   L_da   = β·L_G(D_LR(X_{s~t}))                   λ5 = 0.1
   (10) feature adaptation   L_fa   = β·L_G(D_F(f_s))                        λ6 = 0.1
    generator objective Σ λ_i·L_i; β = 0.01 scales the adversarial terms (net weight 1e-3,
    SRGAN's) so that they refine rather than drive the cycle/consistency reconstruction (the
    paths, with their residual anchors, are in mrisr.models.udean).
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
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from mrisr.errors import InputError
from mrisr.io import atomic_path
from mrisr.models import build_model, count_parameters
from mrisr.models.io import read_model_record
from mrisr.models.udean import UdeanSystem
from mrisr.patches.dataset import PatchDataset, store_attrs
from mrisr.train.card import CardFacts, StoreInfo, render_card
from mrisr.train.checkpoint import restore_rng_states, resumable_state, save_checkpoint
from mrisr.train.config import TrainConfig, fingerprint
from mrisr.train.loop import (Paths, Progress, Trainer, describe_device, memory_format, plain_scale, read_geometry,
                              resolve_device, to_device, validate)
from mrisr.train.sampler import STAGE_TRAIN, augment_batch, augment_plan
from mrisr.train.signals import ignore_stop_signals_in_worker

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
    """Eq. 3: α·L1 + (1 − α)·L_SSIM (in float32 whatever the forward's autocast dtype)."""
    x, y = x.float(), y.float()
    return alpha * torch.nn.functional.l1_loss(x, y) + (1.0 - alpha) * ssim_loss(x, y)


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eq. 4, discriminator side: ½E[(D(real) − 1)²] + ½E[D(fake)²]."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    """Eq. 4, generator side: ½E[(D(fake) − 1)²]."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def generator_terms(system: UdeanSystem, out: dict[str, torch.Tensor], x_s: torch.Tensor, x_t: torch.Tensor,
                    alpha: float, beta: float) -> dict[str, torch.Tensor]:
    """Eqs. 5–10, unweighted by λ (β is part of the adversarial terms' definition)."""
    return {
        "image_cycle": pixel_loss(out["y_sts"], x_s, alpha),
        "feature_cycle": torch.nn.functional.l1_loss(out["f_sts"].float(), out["f_s"].float()),
        "hr_consistency": pixel_loss(out["y_s_hat"], x_s, alpha),
        "lr_consistency": pixel_loss(out["x_t_hat"], x_t, alpha),
        "degradation_adaptation": beta * lsgan_g(system.d_lr(out["x_st"]).float()),
        "feature_adaptation": beta * lsgan_g(system.d_feat(out["f_s"]).float()),
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
    lr_dec_layers: int = 2
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
        for name in ("deg_layers", "lr_dec_layers", "disc_feats", "disc_stages"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"udean.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_min < 0 or len(self.adam_betas) != 2:
            raise ValueError("udean.lr_min must be >= 0 and udean.adam_betas a pair")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d


# ============================================================================ data
@functools.lru_cache(maxsize=8)
def _stream_permutation(seed: int, stream: int, epoch: int, n: int) -> np.ndarray:
    perm = np.random.default_rng([seed, STAGE_TRAIN, stream, epoch]).permutation(n)
    perm.flags.writeable = False
    return perm


def stream_indices(seed: int, stream: int, step: int, n: int, batch_size: int) -> list[int]:
    """Store indices for 0-based `step` of one stream: per-epoch permutations, as sampler.batch_indices."""
    positions = step * batch_size + np.arange(batch_size)
    return [int(_stream_permutation(seed, stream, int(p // n), n)[p % n]) for p in positions]


class UnpairedBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (source index, target index) for steps start..stop−1, a pure function of (seed, step)."""

    def __init__(self, seed: int, n_source: int, n_target: int, batch_size: int, start: int, stop: int) -> None:
        if n_source < 1 or n_target < 1:
            raise ValueError("empty source or target store")
        self.seed, self.n_source, self.n_target = seed, n_source, n_target
        self.batch_size, self.start, self.stop = batch_size, start, stop

    def __iter__(self):
        for step in range(self.start, self.stop):
            src = stream_indices(self.seed, STREAM_SOURCE, step, self.n_source, self.batch_size)
            tgt = stream_indices(self.seed, STREAM_TARGET, step, self.n_target, self.batch_size)
            yield list(zip(src, tgt))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


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


# ============================================================================ optimisers
class Pair:
    """Generator and discriminator optimisers (or schedulers) seen as one by checkpoint helpers."""

    def __init__(self, g, d) -> None:
        self.g, self.d = g, d

    @property
    def param_groups(self) -> list[dict]:  # the generator's learning rate is the one logged
        return self.g.param_groups

    def state_dict(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])


def make_adam(params, cfg: TrainConfig, ucfg: UdeanConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(ucfg.adam_betas), eps=ucfg.adam_eps)


def make_cosine(optimizer, cfg: TrainConfig, ucfg: UdeanConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps, eta_min=ucfg.lr_min)
    return None


def set_requires_grad(params, flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


# ============================================================================ trainer
class UdeanTrainer(Trainer):
    """Trainer with unpaired source/target streams and alternating G/D updates.

    `self.model` is the inference net (`udean`: validated, saved as model.pt); `self.system`
    holds every trained network and is what ckpt/last.pt stores.
    """

    def __init__(self, model_cfg: dict, source_h5: Path, target_h5: Path, val_h5: Path, out_dir: Path, seed: int,
                 device: str | torch.device) -> None:
        self.source_h5, self.train_h5, self.val_h5 = Path(source_h5), Path(target_h5), Path(val_h5)
        self.seed = int(seed)
        self.paths = Paths(Path(out_dir))
        self.arch = model_cfg.get("arch", "udean")
        if self.arch != "udean":
            raise ValueError(f"mrisr.train.udean trains arch 'udean', got {self.arch!r}")
        self.args = dict(model_cfg.get("args") or {})
        self.cfg = TrainConfig.from_dict(dict(model_cfg.get("train") or {}))
        self.ucfg = UdeanConfig.from_dict(model_cfg.get("udean"))
        self.attrs, self.val_attrs = read_geometry(self.train_h5, self.val_h5)
        self.source_attrs = check_source(self.source_h5, self.attrs)
        self.device = resolve_device(device)
        self.geometry = {"scale": plain_scale(self.attrs["scale"]), "dims": int(self.attrs["dims"]),
                         "grid_convention": self.attrs["grid_convention"]}
        self.fmt = memory_format(3) if self.cfg.channels_last else None

        torch.manual_seed(self.seed)  # model init
        sr = build_model(self.arch, **self.geometry, **self.args)
        u = self.ucfg
        self.system = UdeanSystem(sr, grid_convention=self.geometry["grid_convention"], deg_layers=u.deg_layers,
                                  lr_dec_layers=u.lr_dec_layers, disc_feats=u.disc_feats,
                                  disc_stages=u.disc_stages).to(self.device)
        if self.fmt is not None:
            self.system = self.system.to(memory_format=self.fmt)
        self.system.train()
        self.model = self.system.sr
        source_key = stream_key(self.source_h5, "source_hr", "hr")
        target_key = stream_key(self.train_h5, "target_lr", "lr")
        self.source_ds = PatchDataset(self.source_h5, (source_key,))
        self.target_ds = PatchDataset(self.train_h5, (target_key,))
        self.train_ds = UnpairedDataset(self.source_ds, self.target_ds, source_key, target_key)
        self.val_ds = PatchDataset(self.val_h5, ("lr", "hr"))
        self.optimizer = Pair(make_adam(self.system.generator_parameters(), self.cfg, u),
                              make_adam(self.system.discriminator_parameters(), self.cfg, u))
        g_sched, d_sched = make_cosine(self.optimizer.g, self.cfg, u), make_cosine(self.optimizer.d, self.cfg, u)
        self.scheduler = Pair(g_sched, d_sched) if g_sched is not None else None
        data_hash = f"{self.source_attrs.get('config_hash', '')}+{self.attrs.get('config_hash', '')}"
        self.fingerprint = fingerprint(self.arch, {**self.args, "udean": u.to_dict()}, self.cfg, self.seed,
                                       data_hash, str(self.val_attrs.get("config_hash", "")))
        self.progress = Progress()
        self.last_val: float | None = None
        self.term_window: dict[str, list[torch.Tensor]] = {}

    # -- state ---------------------------------------------------------------------------
    def resume_if_possible(self) -> None:
        state = resumable_state(self.paths.last, self.fingerprint)
        if state is None:
            return
        self.system.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"])
        self.progress = Progress(step=state["step"], best_psnr=state["best_psnr"], best_step=state["best_step"],
                                 elapsed_s=state["elapsed_s"])
        self.last_val = state.get("last_val_psnr")
        tqdm.write(f"[train] resuming {self.paths.out_dir} at step {state['step']}/{self.cfg.steps}", file=sys.stderr)

    def save_last(self, elapsed_s: float) -> None:
        save_checkpoint(self.paths.last, fingerprint=self.fingerprint, model=self.system, optimizer=self.optimizer,
                        scheduler=self.scheduler, step=self.progress.step, best_psnr=self.progress.best_psnr,
                        best_step=self.progress.best_step, elapsed_s=elapsed_s, last_val_psnr=self.last_val)

    # -- data ------------------------------------------------------------------------------
    def train_loader(self) -> DataLoader:
        sampler = UnpairedBatchSampler(self.seed, len(self.source_ds), len(self.target_ds), self.cfg.batch_size,
                                       self.progress.step, self.cfg.steps)
        return DataLoader(self.train_ds, batch_sampler=sampler, num_workers=self.cfg.num_workers,
                          pin_memory=self.device.type == "cuda", worker_init_fn=ignore_stop_signals_in_worker)

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

    # -- one step ----------------------------------------------------------------------------
    def optimizer_step(self, batch: dict) -> tuple[torch.Tensor, float]:
        """One generator step (critics frozen), then one critic step on the detached outputs.

        Returns the weighted generator loss (detached, on the device) and the generator lr used.
        """
        x_s, x_t = batch["hr"], batch["lr"]
        u, sys_, opt = self.ucfg, self.system, self.optimizer
        lr = float(opt.g.param_groups[0]["lr"])
        d_params = sys_.discriminator_parameters()
        set_requires_grad(d_params, False)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            out = sys_(x_s, x_t)
            g_terms = generator_terms(sys_, out, x_s, x_t, u.alpha, u.beta)
        g_loss = weighted_sum(g_terms, u.lambdas)
        opt.g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt.g.step()
        set_requires_grad(d_params, True)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            d_terms = discriminator_terms(sys_, out, x_t)
        opt.d.zero_grad(set_to_none=True)
        (d_terms["d_lr"] + d_terms["d_feat"]).backward()
        opt.d.step()
        if self.scheduler is not None:
            self.scheduler.g.step()
            self.scheduler.d.step()
        for k, v in {**g_terms, **d_terms}.items():
            self.term_window.setdefault(k, []).append(v.detach())
        return g_loss.detach(), lr

    def validate_and_keep_best(self, val_loader: DataLoader, baseline: float | None) -> float:
        """The parent's validation, plus the mean of every loss term since the last one (stderr)."""
        val = super().validate_and_keep_best(val_loader, baseline)
        means = {k: float(torch.stack(v).mean()) for k, v in self.term_window.items() if v}
        self.term_window = {}
        if means:
            tqdm.write("[train] udean terms: " + ", ".join(f"{k} {v:.4g}" for k, v in means.items()), file=sys.stderr)
        return val

    # -- finish -----------------------------------------------------------------------------
    def finish(self, val_loader: DataLoader, baseline: float | None, elapsed_s: float) -> Path:
        """card.md, then model.pt (best-validation inference weights) as the very last write."""
        if not self.paths.best.is_file():
            self.validate_and_keep_best(val_loader, baseline)
        best = read_model_record(self.paths.best)
        final_psnr = self.last_val
        if final_psnr is None:
            final_psnr = validate(self.model, val_loader, self.device, self.cfg, self.fmt)
        self.model.load_state_dict(best["state_dict"])
        facts = CardFacts(
            arch=self.arch, args=self.args, n_params=count_parameters(self.model), task=str(self.attrs["task"]),
            scale=float(self.attrs["scale"]), dims=self.geometry["dims"], grid_convention=self.geometry["grid_convention"],
            stores=(StoreInfo("source (hr)", str(self.source_h5), str(self.source_attrs.get("config_hash", "")),
                              len(self.source_ds)),
                    StoreInfo("target (lr)", str(self.train_h5), str(self.attrs.get("config_hash", "")),
                              len(self.target_ds)),
                    StoreInfo("val", str(self.val_h5), str(self.val_attrs.get("config_hash", "")), len(self.val_ds))),
            train=self.cfg, seed=self.seed, device=describe_device(self.device), best_psnr=float(best["val_psnr"]),
            best_step=int(best["step"]), final_psnr=final_psnr, cubic_psnr=baseline, elapsed_s=elapsed_s)
        write_udean_card(self.paths.card, facts, self.ucfg, count_parameters(self.system))
        self.save_weights(self.paths.model, int(best["step"]), float(best["val_psnr"]))
        return self.paths.model


def render_udean_card(facts: CardFacts, ucfg: UdeanConfig, n_params_all: int) -> str:
    """The common card with UDEAN's optimiser row and a section on the unsupervised objective."""
    cfg = facts.train
    optimiser = (f"| optimiser | Adam (β {ucfg.adam_betas[0]:g}, {ucfg.adam_betas[1]:g}; ε {ucfg.adam_eps:g}) for "
                 f"generators and critics, alternating; lr {cfg.lr:g} → {ucfg.lr_min:g} ({cfg.scheduler}); "
                 f"unsupervised UDEAN objective |")
    lines = [optimiser if line.startswith("| optimiser |") else line for line in render_card(facts).splitlines()]
    lam = ", ".join(f"{k} {v:g}" for k, v in ucfg.lambdas.items())
    lines += ["", "## UDEAN", "",
              "Trained without HR/LR pairs: source HR and target LR patches are drawn independently; the val "
              "store (paired) only selects the best weights. Inference = LR encoder + SR decoder.", "",
              f"- pixel loss α·L1 + (1−α)·(1−SSIM3D), α = {ucfg.alpha:g}; adversarial (LSGAN) weight β = {ucfg.beta:g}",
              f"- λ: {lam}",
              f"- training-only networks: E_D {ucfg.deg_layers} convs, LR decoder {ucfg.lr_dec_layers} convs, "
              f"VGG critics {ucfg.disc_stages} stages from {ucfg.disc_feats} feats; "
              f"{n_params_all:,} trainable parameters in all",
              f"- udean settings: `{json.dumps(ucfg.to_dict(), sort_keys=True)}`"]
    return "\n".join(lines) + "\n"


def write_udean_card(path: Path, facts: CardFacts, ucfg: UdeanConfig, n_params_all: int) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(render_udean_card(facts, ucfg, n_params_all))


def train_udean(model_cfg: dict, source_h5: Path, target_h5: Path, val_h5: Path, out_dir: Path, seed: int,
                device: str = "auto") -> Path:
    """Train UDEAN on a source-HR store (its `hr`) and a target-LR store (its `lr`) — or one store
    with `source_hr` and `target_lr`, given as both — validating on a paired store; returns the
    path of model.pt (the `udean` inference net).

    model_cfg: {"arch": "udean", "args": {n_feats, n_groups, n_blocks, reduction, kernel_size},
    "train": TrainConfig keys, "udean": UdeanConfig keys}. Resumes from out_dir/ckpt/last.pt;
    SIGTERM/SIGUSR1 save a checkpoint and raise SystemExit(143).
    """
    return UdeanTrainer(model_cfg, source_h5, target_h5, val_h5, out_dir, seed, device).run()


__all__ = ["UdeanConfig", "UdeanTrainer", "discriminator_terms", "generator_terms", "lsgan_d", "lsgan_g",
           "pixel_loss", "ssim3d", "ssim_loss", "train_udean"]
