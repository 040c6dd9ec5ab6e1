"""Adversarial training (SRGAN / Meta-SRGAN) on HR-only patch stores, LR made on the fly.

Each step: draw the step's scale r (uniform over `train.scales`; Meta-SR: 1.1, 1.2, …, 4.0),
flip/transpose the HR patches, degrade them to LR at r with `mrisr.degrade.degrade_array`
(the configured mode: k-space low-pass + cubic resize, k-space truncation, or bicubic),
then one discriminator update (BCE on HR vs. detached SR) and one generator update on

    L1(SR, HR) + adv_weight · BCE(D(SR), real) + perceptual_weight · MSE(VGG19(SR), VGG19(HR))

(paper weights 0.001 and 0.006). Adam (lr 1e-4) for both; both learning rates × lr_decay
(0.8) every lr_decay_every steps (paper: 60k of 360k, so steps/6 by default). The
perceptual term needs a local VGG19 weights file (`train.vgg_weights`); without one the run
says so on stderr and in card.md and trains without it (`mrisr.train.perceptual`).

Stores: `hr` (N, H, W) float32 in [0, 1] (attributes optional; `task` and `config_hash` are
used when present). HR-only stores (`mrisr.patches.hr_store`) get their LR on the fly, by
`mrisr.degrade.patch.degrade_patches`: the k-space modes filter an even extension of the
patch, so the DFT's wrap-around does not ring at the patch borders. An ordinary pair store
(`lr` and `hr`, attr `scale`; the fixed-×s baselines) is used as it is: LR from the store,
the one training scale the store's, no on-the-fly degradation. The generator's intensity
normalisation is the train store's HR mean/std, kept in the model's buffers
(`models.meta_srgan`).

Reproducibility as in `train.loop`: batches, flips and the step's scale are pure functions
of (seed, step) (`train.sampler` streams plus STREAM_SCALE), init is seeded and ckpt/last.pt
holds both networks, both optimizers and schedulers, and the RNG states, so an interrupted
and resumed run ends with the same weights as an uninterrupted one.

Outputs: ckpt/last.pt, ckpt/best.pt (best mean val PSNR over `val_scales`), log.csv (the
loop's columns + loss_l1, loss_adv, loss_perc, loss_d), card.md, and model.pt last — the
best-validation generator, its `scale` field the largest training scale for an
arbitrary-scale model (its default r; any r ≥ 1 runs) or the fixed scale otherwise.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from mrisr.degrade.kspace import WINDOWS
from mrisr.degrade.patch import degrade_patches
from mrisr.degrade.pipeline import CONVENTION_OF_MODE, MODES
from mrisr.errors import InputError
from mrisr.grid import format_scale, integer_scale
from mrisr.io import atomic_path
from mrisr.models import build_model, count_parameters, save_model
from mrisr.models.io import plain_scale, read_model_record
from mrisr.models.meta_srgan import Discriminator, GridCubicUpsample  # (importing registers meta_srgan, srgan)
from mrisr.patches.dataset import PatchDataset, store_attrs
from mrisr.train.card import budget_note
from mrisr.train.checkpoint import restore_rng_states, resumable_state, save_checkpoint
from mrisr.train.config import fingerprint
from mrisr.train.loop import Paths, Progress, describe_device, resolve_device
from mrisr.train.losses import psnr_per_sample
from mrisr.train.perceptual import perceptual_from_config
from mrisr.train.sampler import STAGE_TRAIN, StepBatchSampler, augment_batch, augment_plan
from mrisr.train.signals import EXIT_STATUS, StopRequest, ignore_stop_signals_in_worker

STREAM_SCALE = 2  # after sampler's STREAM_ORDER (0) and STREAM_AUGMENT (1)
META_SR_SCALES: tuple[float, ...] = tuple(round(1.0 + 0.1 * k, 1) for k in range(1, 31))  # 1.1 … 4.0
GAN_ARCHS: tuple[str, ...] = ("meta_srgan", "srgan")  # what `mrisr train` hands to train_gan
LOSS_PARTS = ("loss", "loss_l1", "loss_adv", "loss_perc", "loss_d")
LOG_COLUMNS = ("step", "loss", "lr", "val_psnr", "elapsed_s", "loss_l1", "loss_adv", "loss_perc", "loss_d")


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True)
class GanConfig:
    """The `train` section of a GAN model config, validated, with the paper's defaults."""

    steps: int
    batch_size: int
    lr: float = 1e-4
    lr_decay: float = 0.8
    lr_decay_every: int | None = None  # None: steps // 6 (paper: every 60k of 360k updates)
    scales: list[float] | None = None  # None: 1.1…4.0 for arbitrary-scale models, [2] otherwise
    val_scales: list[float] | None = None  # None: smallest, middle and largest of `scales`
    degradation: str = "lowpass_bicubic"
    window: str = "none"
    adv_weight: float = 1e-3
    perceptual_weight: float = 6e-3
    vgg_weights: str | None = None
    val_every: int = 1000
    ckpt_every: int = 1000
    log_every: int = 50
    num_workers: int = 0
    val_max_batches: int | None = None
    augment: bool = True
    reference_steps: int | None = None
    budget_note: str | None = None
    # Keys the pipeline's config schema gives every model: the GAN schedule is the paper's
    # step decay (scheduler "step"); bf16 = bfloat16 autocast of both networks' forward passes.
    scheduler: str = "step"
    bf16: bool = False
    channels_last: bool = False

    RESUMABLE_CHANGES = ("val_every", "ckpt_every", "log_every", "num_workers", "val_max_batches", "budget_note",
                         "reference_steps", "val_scales")

    @classmethod
    def from_dict(cls, d: dict) -> "GanConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown GAN train settings {unknown}; accepted: {sorted(known)}")
        missing = [k for k in ("steps", "batch_size") if k not in d]
        if missing:
            raise ValueError(f"GAN train settings lack {missing}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name in ("steps", "batch_size", "val_every", "ckpt_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 < self.lr_decay <= 1:
            raise ValueError(f"train.lr must be > 0 and train.lr_decay in (0, 1], got {self.lr}, {self.lr_decay}")
        if self.lr_decay_every is not None and self.lr_decay_every < 1:
            raise ValueError(f"train.lr_decay_every must be >= 1 or null, got {self.lr_decay_every}")
        for name in ("scales", "val_scales"):
            v = getattr(self, name)
            if v is not None and (not v or any(float(s) < 1.0 for s in v)):
                raise ValueError(f"train.{name} must be a non-empty list of scales >= 1, got {v}")
        if self.degradation not in MODES:
            raise ValueError(f"train.degradation must be one of {MODES}, got {self.degradation!r}")
        if self.window not in WINDOWS:
            raise ValueError(f"train.window must be one of {WINDOWS}, got {self.window!r}")
        if self.adv_weight < 0 or self.perceptual_weight < 0:
            raise ValueError("train.adv_weight and train.perceptual_weight must be >= 0")
        if self.num_workers < 0 or (self.val_max_batches is not None and self.val_max_batches < 1):
            raise ValueError("train.num_workers must be >= 0 and train.val_max_batches >= 1 or null")
        if self.scheduler != "step":
            raise ValueError(f"train.scheduler: GAN training decays the learning rate stepwise (× lr_decay every "
                             f"lr_decay_every steps); set scheduler: step, got {self.scheduler!r}")
        if self.channels_last:
            raise ValueError("train.channels_last is not supported by the GAN loop; set it to false")

    def decay_every(self) -> int:
        return int(self.lr_decay_every or max(1, self.steps // 6))

    def to_dict(self) -> dict:
        return asdict(self)

    def run_identity(self) -> dict:
        """Settings a checkpoint must share with the run that resumes it (`config.fingerprint`)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE_CHANGES}


def training_scales(cfg: GanConfig, arbitrary: bool) -> tuple[float, ...]:
    """The scales minibatches draw from; a fixed-scale generator gets exactly one integer scale."""
    scales = tuple(float(s) for s in (cfg.scales or (META_SR_SCALES if arbitrary else (2.0,))))
    if not arbitrary and (len(set(scales)) != 1 or (integer_scale(scales[0]) or 0) < 2):
        raise ValueError(f"a fixed-scale generator trains at one integer scale >= 2; got train.scales {list(scales)}")
    return scales


def validation_scales(cfg: GanConfig, scales: tuple[float, ...]) -> tuple[float, ...]:
    if cfg.val_scales:
        return tuple(float(s) for s in cfg.val_scales)
    ordered = sorted(set(scales))
    return tuple(sorted({ordered[0], ordered[len(ordered) // 2], ordered[-1]}))


def step_scale(seed: int, step: int, scales: tuple[float, ...]) -> float:
    """The scale of 0-based step `step`: uniform over `scales`, a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, STAGE_TRAIN, STREAM_SCALE, step])
    return float(scales[int(rng.integers(len(scales)))])


# ---------------------------------------------------------------------------- data
def is_pair_store(path: Path) -> bool:
    with h5py.File(path, "r") as f:
        return "lr" in f


def hr_store(path: Path) -> tuple[PatchDataset, dict]:
    """Dataset over `hr` (and `lr` for a pair store) and the store's attributes; patches
    must be 2D (N, H, W)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "patch store not found")
    paired = is_pair_store(path)
    ds = PatchDataset(path, ("lr", "hr") if paired else ("hr",))
    if len(ds.shapes["hr"]) != 2 or (paired and len(ds.shapes["lr"]) != 2):
        raise InputError(path, f"GAN training needs 2D HR patches (N, H, W), got per-sample shapes {ds.shapes}")
    if len(ds) < 1:
        raise InputError(path, "empty patch store")
    attrs = store_attrs(path)
    if paired and "scale" not in attrs:
        raise InputError(path, "pair store without a `scale` attribute")
    return ds, attrs


def store_mean_std(path: Path, chunk: int = 512) -> tuple[float, float]:
    """Mean and (population) std of the store's HR voxels, read in chunks, float64 sums."""
    total, total_sq, count = 0.0, 0.0, 0
    with h5py.File(path, "r") as f:
        hr = f["hr"]
        for start in range(0, hr.shape[0], chunk):
            x = np.asarray(hr[start:start + chunk], dtype=np.float64)
            total, total_sq, count = total + x.sum(), total_sq + (x * x).sum(), count + x.size
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0))
    if not std > 0:
        raise InputError(path, "HR patches are constant (std 0): cannot normalise")
    return mean, std


def make_lr(hr: torch.Tensor, scale: float, mode: str, window: str) -> torch.Tensor:
    """(B, 1, H, W) HR patches → (B, 1, h, w) LR by the configured degradation, on the CPU,
    without wrap-around at the patch borders (`degrade.patch`)."""
    lr, _ = degrade_patches(hr[:, 0].detach().cpu().numpy(), mode, scale, (1, 2), window=window)
    return torch.from_numpy(lr).unsqueeze(1)


def generate(model: torch.nn.Module, lr: torch.Tensor, scale: float, out_shape) -> torch.Tensor:
    """SR of an LR batch onto out_shape: arbitrary-scale models get r and the shape."""
    if getattr(model, "arbitrary_scale", False):
        return model(lr, scale=scale, out_shape=tuple(out_shape))
    out = model(lr)
    if tuple(out.shape[2:]) != tuple(out_shape):
        raise ValueError(f"generator output {tuple(out.shape[2:])} does not match HR patches {tuple(out_shape)}")
    return out


# ---------------------------------------------------------------------------- bookkeeping
class StatePair:
    """Two optimizers (or schedulers) checkpointed as one `save_checkpoint` argument."""

    def __init__(self, g, d) -> None:
        self.g, self.d = g, d

    def state_dict(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])


class GanLog:
    """log.csv as `train.log.TrainLog` writes it (rows after a resumed step dropped, flushed
    per row), with the loss parts as extra columns."""

    def __init__(self, path: Path, resume_step: int) -> None:
        rows = self.kept_rows(path, resume_step) if resume_step > 0 else []
        with atomic_path(path) as tmp:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=LOG_COLUMNS)

    @staticmethod
    def kept_rows(path: Path, upto_step: int) -> list[dict]:
        if not path.is_file():
            return []
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        kept = []
        for row in rows:
            try:
                if int(row["step"]) <= upto_step:
                    kept.append({c: row.get(c, "") for c in LOG_COLUMNS})
            except (KeyError, TypeError, ValueError):
                continue  # a torn last line from a killed run
        return kept

    def write(self, step: int, losses: dict[str, float] | None, lr: float, val_psnr: float | None,
              elapsed_s: float) -> None:
        row = {"step": step, "lr": f"{lr:.6g}", "val_psnr": "" if val_psnr is None else f"{val_psnr:.4f}",
               "elapsed_s": f"{elapsed_s:.2f}"}
        row.update({k: "" if losses is None else f"{losses[k]:.6g}" for k in LOSS_PARTS})
        self._writer.writerow(row)
        self._file.flush()

    def __enter__(self) -> "GanLog":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def window_means(window: list[torch.Tensor], step: int) -> dict[str, float]:
    """Mean of each loss part since the last log row; a non-finite one stops the run."""
    means = torch.stack(window).mean(dim=0).tolist()
    if not all(math.isfinite(v) for v in means):
        raise FloatingPointError(f"non-finite training loss before step {step}: {dict(zip(LOSS_PARTS, means))}")
    return dict(zip(LOSS_PARTS, means))


@dataclass(frozen=True)
class GanCardFacts:
    arch: str
    args: dict
    disc_args: dict
    n_params: int
    n_params_disc: int
    task: str
    scales: tuple[float, ...]
    model_scale: float
    grid_convention: str
    cfg: GanConfig
    perceptual_status: str
    norm: tuple[float, float]
    stores: tuple[tuple[str, str, str, int], ...]  # (role, path, config_hash, n_patches)
    seed: int
    device: str
    best_psnr: float
    best_step: int
    per_scale: dict[float, tuple[float, float]]  # val scale → (model PSNR, cubic PSNR), best weights
    elapsed_s: float
    paired: bool = False  # LR from a pair store instead of made on the fly


def render_gan_card(f: GanCardFacts) -> str:
    cfg = f.cfg
    lo, hi = format_scale(min(f.scales)), format_scale(max(f.scales))
    scale_text = lo if lo == hi else f"{len(f.scales)} scales {lo}…{hi}, one per minibatch"
    lines = [
        f"# Model card: {f.arch} (adversarial, {f.task})",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{f.arch}`, discriminator `{json.dumps(f.disc_args, sort_keys=True)}` |",
        f"| args | `{json.dumps(f.args, sort_keys=True)}` |",
        f"| trainable parameters | {f.n_params:,} (generator), {f.n_params_disc:,} (discriminator) |",
        f"| training scales | {scale_text} |",
        f"| model file scale | {format_scale(f.model_scale)} (default r at inference) |",
        (f"| degradation | LR from the pair store (made by the degrade stage on whole images) |" if f.paired else
         f"| degradation | {cfg.degradation} (window {cfg.window}), LR made on the fly from HR patches "
         f"(k-space modes on the patch's even extension: no wrap-around at its borders) |"),
        f"| grid convention | {f.grid_convention} |",
        f"| normalisation | train-store HR mean {f.norm[0]:.4f}, std {f.norm[1]:.4f} |",
        f"| generator loss | L1 + {cfg.adv_weight:g}·adversarial + {cfg.perceptual_weight:g}·perceptual |",
        f"| perceptual | {f.perceptual_status} |",
        f"| optimiser | Adam lr {cfg.lr:g} (G and D), × {cfg.lr_decay:g} every {cfg.decay_every()} steps |",
        f"| steps × batch | {cfg.steps} × {cfg.batch_size} |",
        f"| augmentation | {'flips/transposes of HR before degrading' if cfg.augment else 'none'} |",
        f"| seed | {f.seed} |",
        f"| device | {f.device} |",
        f"| best mean val PSNR | {f.best_psnr:.2f} dB at step {f.best_step} (these weights) |",
        f"| training time | {f.elapsed_s:.0f} s |",
        "",
        "## Validation by scale (these weights)",
        "",
        "| scale | model PSNR | cubic PSNR |",
        "|---|---|---|",
        *[f"| {format_scale(s)} | {m:.2f} dB | {c:.2f} dB |" for s, (m, c) in sorted(f.per_scale.items())],
        "",
        "## Data",
        "",
        "| role | store | config_hash | patches |",
        "|---|---|---|---|",
        *[f"| {role} | `{path}` | `{h}` | {n} |" for role, path, h, n in f.stores],
    ]
    notes = [n for n in (budget_note(cfg),) if n]
    if f.perceptual_status.startswith("perceptual term OFF"):
        notes.append(f.perceptual_status)
    if notes:
        lines += ["", "## Note", "", *notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- trainer
class GanTrainer:
    """One adversarial run: set up (or resume), step, validate, checkpoint, finish."""

    def __init__(self, model_cfg: dict, train_h5: Path, val_h5: Path, out_dir: Path, seed: int,
                 device: str | torch.device) -> None:
        self.train_h5, self.val_h5, self.seed = Path(train_h5), Path(val_h5), int(seed)
        self.paths = Paths(Path(out_dir))
        self.arch = model_cfg["arch"]
        self.args = dict(model_cfg.get("args") or {})
        self.disc_args = dict(model_cfg.get("disc") or {})
        unknown = sorted(set(model_cfg) - {"arch", "args", "disc", "train"})
        if unknown:
            raise ValueError(f"unknown GAN model config keys {unknown}; accepted: arch, args, disc, train")
        self.cfg = GanConfig.from_dict(dict(model_cfg.get("train") or {}))
        self.device = resolve_device(device)
        self.train_ds, self.attrs = hr_store(self.train_h5)
        self.val_ds, self.val_attrs = hr_store(self.val_h5)
        self.hr_patch = list(self.train_ds.shapes["hr"])
        if list(self.val_ds.shapes["hr"]) != self.hr_patch:
            raise InputError(self.val_h5, f"HR patch {list(self.val_ds.shapes['hr'])} differs from the train "
                                          f"store's {self.hr_patch}")
        self.paired = "lr" in self.train_ds.shapes
        if ("lr" in self.val_ds.shapes) != self.paired:
            raise InputError(self.val_h5, "train and val stores must both be pair stores or both HR-only")
        # A pair store's LR was made on its own grid: its convention rules, not the config's mode.
        self.convention = (str(self.attrs.get("grid_convention", "")) if self.paired
                           else CONVENTION_OF_MODE[self.cfg.degradation])
        if self.convention not in CONVENTION_OF_MODE.values():
            raise InputError(self.train_h5, f"pair store has no valid grid_convention attribute ({self.convention!r})")

        # Which scales apply depends on the architecture: ask a throw-away instance (×2 suits both kinds).
        probe = build_model(self.arch, scale=2, dims=2, grid_convention=self.convention, **self.args)
        self.arbitrary = bool(getattr(probe, "arbitrary_scale", False))
        self.scales = self.pair_scales() if self.paired else training_scales(self.cfg, self.arbitrary)
        self.val_scales = validation_scales(self.cfg, self.scales)
        self.model_scale = plain_scale(max(self.scales))
        torch.manual_seed(self.seed)  # init of both networks
        self.model = build_model(self.arch, scale=self.model_scale, dims=2, grid_convention=self.convention,
                                 **self.args)
        if not hasattr(self.model, "set_normalization"):
            raise ValueError(f"model {self.arch!r} has no set_normalization(); GAN training supports srgan, meta_srgan")
        self.disc = Discriminator(**self.disc_args)
        self.norm = store_mean_std(self.train_h5)
        self.model.set_normalization(*self.norm)
        self.model.to(self.device).train()
        self.disc.to(self.device).train()
        self.perceptual, self.perceptual_status = perceptual_from_config(self.cfg.vgg_weights)
        if self.perceptual is not None:
            self.perceptual.to(self.device)
        self.cubic = GridCubicUpsample(self.convention)

        self.nets = torch.nn.ModuleDict({"g": self.model, "d": self.disc})
        opt_g = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=self.cfg.lr)
        self.optimizers = StatePair(opt_g, opt_d)
        every = self.cfg.decay_every()
        self.schedulers = StatePair(torch.optim.lr_scheduler.StepLR(opt_g, every, self.cfg.lr_decay),
                                    torch.optim.lr_scheduler.StepLR(opt_d, every, self.cfg.lr_decay))
        self.fingerprint = fingerprint(self.arch, {"generator": self.args, "discriminator": self.disc_args}, self.cfg,
                                       self.seed, str(self.attrs.get("config_hash", "")),
                                       str(self.val_attrs.get("config_hash", "")))
        self.progress = Progress()
        self.last_val: float | None = None
        self._val_sets: dict[float, list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        self.baseline: dict[float, float] = {}

    def pair_scales(self) -> tuple[float, ...]:
        """A pair store trains at its own scale only (train.scales, if given, must say the same)."""
        scale = float(self.attrs["scale"])
        if float(self.val_attrs.get("scale", scale)) != scale:
            raise InputError(self.val_h5, f"scale {self.val_attrs.get('scale')} differs from the train store's {scale}")
        if self.cfg.scales is not None and {float(s) for s in self.cfg.scales} != {scale}:
            raise ValueError(f"train.scales {self.cfg.scales} disagrees with the pair store's scale {scale:g}")
        lr_patch = list(self.train_ds.shapes["lr"])
        if list(self.val_ds.shapes["lr"]) != lr_patch:
            raise InputError(self.val_h5, f"LR patch {list(self.val_ds.shapes['lr'])} differs from the train "
                                          f"store's {lr_patch}")
        self.lr_patch = lr_patch
        return training_scales(GanConfig.from_dict({"steps": 1, "batch_size": 1, "scales": [scale]}), self.arbitrary)

    def amp(self):
        """bfloat16 autocast of the networks' forward passes when train.bf16 (losses in float32)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    # -- state -----------------------------------------------------------------------------
    def resume_if_possible(self) -> None:
        state = resumable_state(self.paths.last, self.fingerprint)
        if state is None:
            return
        self.nets.load_state_dict(state["model"])
        self.optimizers.load_state_dict(state["optimizer"])
        self.schedulers.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"])
        self.progress = Progress(step=state["step"], best_psnr=state["best_psnr"], best_step=state["best_step"],
                                 elapsed_s=state["elapsed_s"])
        self.last_val = state.get("last_val_psnr")
        tqdm.write(f"[train_gan] resuming {self.paths.out_dir} at step {state['step']}/{self.cfg.steps}",
                   file=sys.stderr)

    def save_last(self, elapsed_s: float) -> None:
        save_checkpoint(self.paths.last, fingerprint=self.fingerprint, model=self.nets, optimizer=self.optimizers,
                        scheduler=self.schedulers, step=self.progress.step, best_psnr=self.progress.best_psnr,
                        best_step=self.progress.best_step, elapsed_s=elapsed_s, last_val_psnr=self.last_val)

    def save_weights(self, path: Path, step: int, val_psnr: float) -> None:
        save_model(path, self.model, arch=self.arch, args=self.args, scale=self.model_scale, dims=2,
                   grid_convention=self.convention, step=step, val_psnr=val_psnr)

    def lr_now(self) -> float:
        return float(self.optimizers.g.param_groups[0]["lr"])

    # -- data --------------------------------------------------------------------------------
    def train_loader(self) -> DataLoader:
        sampler = StepBatchSampler(self.seed, len(self.train_ds), self.cfg.batch_size, self.progress.step,
                                   self.cfg.steps)
        return DataLoader(self.train_ds, batch_sampler=sampler, num_workers=self.cfg.num_workers,
                          pin_memory=self.device.type == "cuda", worker_init_fn=ignore_stop_signals_in_worker)

    def prepare_batch(self, batch: dict, step: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(lr, hr, r) for 0-based step `step`: flips on HR, then LR at the step's scale (pair
        stores: the same flips on the stored LR)."""
        lr_patch = self.lr_patch if self.paired else self.hr_patch
        if self.cfg.augment:
            plan = augment_plan(self.seed, step, len(batch["hr"]), self.hr_patch, lr_patch, self.convention)
            batch = augment_batch(batch, plan, (self.hr_patch, lr_patch))
        r = step_scale(self.seed, step, self.scales)
        lr = batch["lr"] if self.paired else make_lr(batch["hr"], r, self.cfg.degradation, self.cfg.window)
        return lr.to(self.device), batch["hr"].to(self.device), r

    def val_sets(self) -> dict[float, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per val scale, the (lr, hr) batches (degradation is deterministic: built once, with the
        cubic baseline's PSNR on them)."""
        if self._val_sets is None:
            loader = DataLoader(self.val_ds, batch_size=self.cfg.batch_size, shuffle=False)
            batches = [b for i, b in enumerate(loader)
                       if self.cfg.val_max_batches is None or i < self.cfg.val_max_batches]
            self._val_sets = {}
            for r in self.val_scales:
                pairs = [(b["lr"] if self.paired else make_lr(b["hr"], r, self.cfg.degradation, self.cfg.window),
                          b["hr"]) for b in batches]
                self._val_sets[r] = pairs
                scores = [psnr_per_sample(self.cubic(lr, hr.shape[2:]), hr) for lr, hr in pairs]
                self.baseline[r] = float(torch.cat(scores).mean())
        return self._val_sets

    # -- one step ----------------------------------------------------------------------------
    def optimizer_step(self, lr: torch.Tensor, hr: torch.Tensor, r: float) -> torch.Tensor:
        """One D update then one G update; returns the detached loss parts (LOSS_PARTS order)."""
        cfg = self.cfg
        with self.amp():
            sr = generate(self.model, lr, r, hr.shape[2:]).float()
        zero = torch.zeros((), device=hr.device)
        loss_d = zero
        adversarial = cfg.adv_weight > 0
        if adversarial:
            with self.amp():
                real, fake = self.disc(hr).float(), self.disc(sr.detach()).float()
            loss_d = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
            self.optimizers.d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.optimizers.d.step()
        loss_l1 = F.l1_loss(sr, hr)
        loss_adv = zero
        if adversarial:
            self.disc.requires_grad_(False)  # G's step needs gradients through D, not D's own
            with self.amp():
                logits = self.disc(sr).float()
            loss_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            self.disc.requires_grad_(True)
        loss_perc = zero
        if self.perceptual is not None and cfg.perceptual_weight > 0:
            loss_perc = self.perceptual(sr, hr)
        loss = loss_l1 + cfg.adv_weight * loss_adv + cfg.perceptual_weight * loss_perc
        self.optimizers.g.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers.g.step()
        self.schedulers.g.step()
        if adversarial:  # D's schedule advances with D's updates (none when adv_weight is 0)
            self.schedulers.d.step()
        return torch.stack([loss, loss_l1, loss_adv, loss_perc, loss_d]).detach()

    # -- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def validate_per_scale(self) -> dict[float, float]:
        self.model.eval()
        out = {}
        for r, pairs in self.val_sets().items():
            scores = [psnr_per_sample(generate(self.model, lr.to(self.device), r, hr.shape[2:]),
                                      hr.to(self.device)).cpu() for lr, hr in pairs]
            out[r] = float(torch.cat(scores).mean())
        self.model.train()
        return out

    def validate_and_keep_best(self) -> float:
        prog = self.progress
        per_scale = self.validate_per_scale()
        val = float(np.mean(list(per_scale.values())))
        self.last_val = val
        if val > prog.best_psnr or not self.paths.best.is_file():
            prog.best_psnr, prog.best_step = val, prog.step
            self.save_weights(self.paths.best, prog.step, val)
        detail = ", ".join(f"x{format_scale(r)} {v:.2f} (cubic {self.baseline[r]:.2f})" for r, v in per_scale.items())
        tqdm.write(f"[train_gan] step {prog.step}/{self.cfg.steps} val PSNR {val:.2f} dB [{detail}], "
                   f"best {prog.best_psnr:.2f} dB at step {prog.best_step}", file=sys.stderr)
        return val

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> Path:
        with StopRequest() as stop:
            if self.paths.model.exists():
                self.paths.model.unlink()  # an old model.pt beside a new run would look complete
            tqdm.write(f"[train_gan] {self.perceptual_status}", file=sys.stderr)
            self.resume_if_possible()
            self.val_sets()
            t0, elapsed0 = time.monotonic(), self.progress.elapsed_s

            def elapsed() -> float:
                return elapsed0 + time.monotonic() - t0

            with GanLog(self.paths.log, self.progress.step) as log:
                self.steps(stop, log, elapsed)
            return self.finish(elapsed())

    def steps(self, stop: StopRequest, log: GanLog, elapsed) -> None:
        cfg, prog = self.cfg, self.progress
        bar = tqdm(total=cfg.steps, initial=prog.step, file=sys.stderr, disable=not sys.stderr.isatty(),
                   dynamic_ncols=True, desc=f"train {self.arch}")
        window: list[torch.Tensor] = []
        batches = iter(self.train_loader()) if prog.step < cfg.steps else iter(())
        for step in range(prog.step + 1, cfg.steps + 1):
            if stop.requested:
                self.stop_now(stop, log, window, elapsed())
            lr_used = self.lr_now()
            window.append(self.optimizer_step(*self.prepare_batch(next(batches), step - 1)))
            prog.step = step
            bar.update(1)
            is_val = step % cfg.val_every == 0 or step == cfg.steps
            is_ckpt = step % cfg.ckpt_every == 0 or step == cfg.steps
            val = self.validate_and_keep_best() if is_val else None
            if is_val or is_ckpt or step % cfg.log_every == 0:
                means = window_means(window, step)
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                log.write(step, means, lr_used, val, elapsed())
                window = []
            if is_ckpt:
                self.save_last(elapsed())
        bar.close()
        if stop.requested:
            self.stop_now(stop, log, window, elapsed())

    def stop_now(self, stop: StopRequest, log: GanLog, window: list[torch.Tensor], elapsed_s: float) -> None:
        if window:
            log.write(self.progress.step, window_means(window, self.progress.step), self.lr_now(), None, elapsed_s)
        self.save_last(elapsed_s)
        tqdm.write(f"[train_gan] signal {stop.signum}: saved {self.paths.last} at step {self.progress.step}; exiting",
                   file=sys.stderr)
        raise SystemExit(EXIT_STATUS)

    def finish(self, elapsed_s: float) -> Path:
        """card.md, then model.pt (best-validation generator) as the very last write."""
        if not self.paths.best.is_file():
            self.validate_and_keep_best()
        best = read_model_record(self.paths.best)
        self.model.load_state_dict(best["state_dict"])
        model_psnr = self.validate_per_scale()
        card = render_gan_card(GanCardFacts(
            arch=self.arch, args=self.args, disc_args=self.disc_args, n_params=count_parameters(self.model),
            n_params_disc=count_parameters(self.disc), task=str(self.attrs.get("task", "sisr2d")), scales=self.scales,
            model_scale=float(self.model_scale), grid_convention=self.convention, cfg=self.cfg,
            perceptual_status=self.perceptual_status, norm=self.norm,
            stores=(("train", str(self.train_h5), str(self.attrs.get("config_hash", "")), len(self.train_ds)),
                    ("val", str(self.val_h5), str(self.val_attrs.get("config_hash", "")), len(self.val_ds))),
            seed=self.seed, device=describe_device(self.device), best_psnr=float(best["val_psnr"]),
            best_step=int(best["step"]), per_scale={r: (model_psnr[r], self.baseline[r]) for r in model_psnr},
            elapsed_s=elapsed_s, paired=self.paired))
        with atomic_path(self.paths.card) as tmp:
            tmp.write_text(card)
        self.save_weights(self.paths.model, int(best["step"]), float(best["val_psnr"]))
        return self.paths.model


def train_gan(model_cfg: dict, train_h5: Path, val_h5: Path, out_dir: Path, seed: int,
              device: str | torch.device = "auto") -> Path:
    """Adversarially train `model_cfg["arch"]` (meta_srgan or srgan) on HR-only patch stores;
    returns the path of model.pt.

    model_cfg: {"arch", "args" (generator), "disc" (Discriminator kwargs: n_feats, n_stages,
    fc), "train" (GanConfig)}. Resumes from out_dir/ckpt/last.pt when present;
    SIGTERM/SIGUSR1 save a checkpoint and raise SystemExit(143).
    """
    return GanTrainer(model_cfg, train_h5, val_h5, out_dir, seed, device).run()
