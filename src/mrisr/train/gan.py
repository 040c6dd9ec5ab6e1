"""Adversarial training (`trainer: adversarial`: SRGAN, Meta-SRGAN), LR made on the fly from HR.

Each step: draw the step's scale r (uniform over `train.scales`, a pure function of (seed, step);
Meta-SR: 1.1, 1.2, …, 4.0), flip/transpose the HR patches, degrade them to LR at r with the
configured mode (`mrisr.degrade.patch.degrade_patches`: the k-space modes filter an even
extension of the patch, so the DFT's wrap-around does not ring at its borders), then one
discriminator update (BCE on HR vs. detached SR) and one generator update on

    L1(SR, HR) + adv_weight · BCE(D(SR), real) + perceptual_weight · MSE(VGG19(SR), VGG19(HR))

(paper weights 0.001 and 0.006). Adam (lr 1e-4) for both; both learning rates × lr_decay (0.8)
every lr_decay_every steps (paper: 60k of 360k, so steps/6 by default). The losses are in
`mrisr.losses` (`adversarial`, `perceptual`). The perceptual term needs a local VGG19 weights file
(`train.vgg_weights`, `mrisr.models.vgg19`); without one the run says so on stderr and in card.md
and trains without it.

Stores (`patches.dataset.hr_or_pair_dataset`): HR-only `hr` (N, H, W) in [0, 1]
(`mrisr.patches.hr_store`), or an ordinary pair store (`lr`, `hr`, attr `scale`: the fixed-×s
baselines), whose LR and scale are used as they are. The generator normalises by the train
store's HR mean/std (model buffers, `models.meta_srgan`). Validation: mean PSNR over
`val_scales`. model.pt's `scale` is the largest training scale (an arbitrary-scale model's
default r; any r ≥ 1 runs).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import ClassVar

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
from mrisr.losses.adversarial import bce_d, bce_g
from mrisr.losses.perceptual import PerceptualLoss
from mrisr.models import build_model, count_parameters
from mrisr.models.common import CubicUpsample
from mrisr.models.io import plain_scale
from mrisr.models.srgan import Discriminator  # (importing registers srgan; meta_srgan via mrisr.models)
from mrisr.models.vgg19 import load_vgg19_features
from mrisr.patches.augment import augment_batch, augment_plan
from mrisr.patches.dataset import hr_mean_std, hr_or_pair_dataset
from mrisr.patches.sampler import STAGE_TRAIN, STREAM_SCALE
from mrisr.train.card import AUGMENT_TEXT
from mrisr.train.config import TrainConfig, fingerprint
from mrisr.train.engine import Task
from mrisr.train.supervised import autocast, make_scheduler, psnr_per_sample, store_info

META_SR_SCALES: tuple[float, ...] = tuple(round(1.0 + 0.1 * k, 1) for k in range(1, 31))  # 1.1 … 4.0


@dataclass(frozen=True)
class GanConfig(TrainConfig):
    """The `train` section of an adversarial model config, with the paper's defaults."""

    lr: float = 1e-4
    scheduler: str = "step"
    lr_decay: float = 0.8
    lr_decay_every: int | None = None  # None: steps // 6 (paper: every 60k of 360k updates)
    scales: list[float] | None = None  # None: 1.1…4.0 for arbitrary-scale models, [2] otherwise
    val_scales: list[float] | None = None  # None: smallest, middle and largest of `scales`
    degradation: str = "lowpass_bicubic"
    window: str = "none"
    adv_weight: float = 1e-3
    perceptual_weight: float = 6e-3
    vgg_weights: str | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = ("batch_size",)
    SCHEDULERS: ClassVar[tuple[str, ...]] = ("step",)
    LABEL: ClassVar[str] = "GAN train"
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = (*TrainConfig.RESUMABLE_CHANGES, "val_scales")
    OMIT_IF_UNSET: ClassVar[tuple[str, ...]] = ()  # GAN fingerprints always held lr_decay_every

    def validate(self) -> None:
        if self.scheduler != "step":
            raise ValueError(f"train.scheduler: GAN training decays the learning rate stepwise (× lr_decay every "
                             f"lr_decay_every steps); set scheduler: step, got {self.scheduler!r}")
        super().validate()
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
        if self.channels_last:
            raise ValueError("train.channels_last is not supported by the GAN loop; set it to false")


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


class GanTask(Task, kind="adversarial"):
    """Generator + discriminator, alternating updates, LR per step at the step's scale."""

    loss_columns = ("loss", "loss_l1", "loss_adv", "loss_perc", "loss_d")

    def __init__(self, model_cfg: dict, train_h5: Path, val_h5: Path, seed: int, device: torch.device) -> None:
        self.train_h5, self.val_h5, self.seed, self.device = Path(train_h5), Path(val_h5), int(seed), device
        self.arch = model_cfg["arch"]
        self.args = dict(model_cfg.get("args") or {})
        self.disc_args = dict(model_cfg.get("disc") or {})
        unknown = sorted(set(model_cfg) - {"trainer", "arch", "args", "disc", "train"})
        if unknown:
            raise ValueError(f"unknown GAN model config keys {unknown}; accepted: trainer, arch, args, disc, train")
        self.cfg = GanConfig.from_dict(dict(model_cfg.get("train") or {}))
        self.train_ds, self.attrs = hr_or_pair_dataset(self.train_h5)
        self.val_ds, self.val_attrs = hr_or_pair_dataset(self.val_h5)
        self.cfg = self.cfg.resolve_steps(len(self.train_ds))
        self.hr_patch = self.lr_patch = list(self.train_ds.shapes["hr"])
        self.paired = "lr" in self.train_ds.shapes
        if ("lr" in self.val_ds.shapes) != self.paired:
            raise InputError(self.val_h5, "train and val stores must both be pair stores or both HR-only")
        for key in ("hr", "lr") if self.paired else ("hr",):
            if self.val_ds.shapes[key] != self.train_ds.shapes[key]:
                raise InputError(self.val_h5, f"{key.upper()} patch {list(self.val_ds.shapes[key])} differs from the "
                                              f"train store's {list(self.train_ds.shapes[key])}")
        # A pair store's LR was made on its own grid: its convention rules, not the config's mode.
        self.convention = (str(self.attrs.get("grid_convention", "")) if self.paired
                           else CONVENTION_OF_MODE[self.cfg.degradation])
        if self.convention not in CONVENTION_OF_MODE.values():
            raise InputError(self.train_h5, f"pair store has no valid grid_convention attribute ({self.convention!r})")

        # Which scales apply depends on the architecture: ask a throw-away instance (×2 suits both kinds).
        probe = build_model(self.arch, scale=2, dims=2, grid_convention=self.convention, **self.args)
        self.arbitrary = bool(getattr(probe, "arbitrary_scale", False))
        if self.paired:  # a pair store trains at its own scale only (train.scales, if given, must say the same)
            scale = float(self.attrs["scale"])
            if float(self.val_attrs.get("scale", scale)) != scale:
                raise InputError(self.val_h5, f"scale {self.val_attrs.get('scale')} differs from the train store's {scale}")
            if self.cfg.scales is not None and {float(s) for s in self.cfg.scales} != {scale}:
                raise ValueError(f"train.scales {self.cfg.scales} disagrees with the pair store's scale {scale:g}")
            self.lr_patch = list(self.train_ds.shapes["lr"])
            self.scales = training_scales(replace(self.cfg, scales=[scale]), self.arbitrary)
        else:
            self.scales = training_scales(self.cfg, self.arbitrary)
        self.val_scales = validation_scales(self.cfg, self.scales)
        self.model_scale = plain_scale(max(self.scales))
        self.record = {"arch": self.arch, "args": self.args, "scale": self.model_scale, "dims": 2,
                       "grid_convention": self.convention}
        torch.manual_seed(self.seed)  # init of both networks
        self.model = build_model(self.arch, scale=self.model_scale, dims=2, grid_convention=self.convention,
                                 **self.args)
        if not hasattr(self.model, "set_normalization"):
            raise ValueError(f"model {self.arch!r} has no set_normalization(); GAN training supports srgan, meta_srgan")
        self.disc = Discriminator(**self.disc_args)
        self.norm = hr_mean_std(self.train_h5)
        self.model.set_normalization(*self.norm)
        self.model.to(self.device).train()
        self.disc.to(self.device).train()
        self.perceptual = None
        self.perceptual_status = ("perceptual term OFF: no VGG19 weights file configured (train.vgg_weights); "
                                  "training with L1 + adversarial only")
        if self.cfg.vgg_weights:
            self.perceptual = PerceptualLoss(load_vgg19_features(self.cfg.vgg_weights)).to(self.device)
            self.perceptual_status = f"perceptual term ON: VGG19 features[:36] from {self.cfg.vgg_weights}"
        self.cubic = CubicUpsample(None, 2, self.convention)

        self.nets = torch.nn.ModuleDict({"g": self.model, "d": self.disc})
        self.optimizers = {"g": torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr),
                           "d": torch.optim.Adam(self.disc.parameters(), lr=self.cfg.lr)}
        self.schedulers = {k: make_scheduler(opt, self.cfg) for k, opt in self.optimizers.items()}
        self.fingerprint = fingerprint(self.arch, {"generator": self.args, "discriminator": self.disc_args}, self.cfg,
                                       self.seed, str(self.attrs.get("config_hash", "")),
                                       str(self.val_attrs.get("config_hash", "")))
        self.store_task = str(self.attrs.get("task", "sisr2d"))
        self.stores = (store_info("train", self.train_h5, self.attrs, len(self.train_ds)),
                       store_info("val", self.val_h5, self.val_attrs, len(self.val_ds)))

    def init_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """The source's weights with this training set's normalisation (the paper's training-set
        mean/std), not the source data's."""
        super().init_weights(state_dict)
        self.model.set_normalization(*self.norm)

    def lr_of(self, batch: dict, r: float) -> torch.Tensor:
        """The batch's LR: a pair store's own, else made from HR at scale r."""
        return batch["lr"] if self.paired else make_lr(batch["hr"], r, self.cfg.degradation, self.cfg.window)

    def prepare(self) -> None:
        """Per val scale, the fixed (lr, hr) batches and the cubic baseline's PSNR on them."""
        tqdm.write(f"[train] {self.perceptual_status}", file=sys.stderr)
        loader = DataLoader(self.val_ds, batch_size=self.cfg.batch_size, shuffle=False)
        batches = list(islice(loader, self.cfg.val_max_batches))
        self.val_sets = {r: [(self.lr_of(b, r), b["hr"]) for b in batches] for r in self.val_scales}
        self.baseline = {r: float(torch.cat([psnr_per_sample(self.cubic(lr, hr.shape[2:]), hr) for lr, hr in pairs]).mean())
                         for r, pairs in self.val_sets.items()}
        self.baseline_psnr = float(np.mean(list(self.baseline.values())))

    def step(self, batch: dict, step: int) -> torch.Tensor:
        """One D update then one G update on (flipped HR, its LR at the step's scale); returns the
        detached loss parts (loss_columns order)."""
        if self.cfg.augment:
            plan = augment_plan(self.seed, step, len(batch["hr"]), self.hr_patch, self.lr_patch, self.convention,
                                transposes=self.cfg.augment is True)
            batch = augment_batch(batch, plan, (self.hr_patch, self.lr_patch))
        r = step_scale(self.seed, step, self.scales)
        lr, hr = self.lr_of(batch, r).to(self.device), batch["hr"].to(self.device)
        cfg, opt, sched = self.cfg, self.optimizers, self.schedulers
        with autocast(self.device, cfg.bf16):
            sr = generate(self.model, lr, r, hr.shape[2:]).float()
        zero = torch.zeros((), device=hr.device)
        loss_d = loss_adv = loss_perc = zero
        adversarial = cfg.adv_weight > 0
        if adversarial:
            with autocast(self.device, cfg.bf16):
                real, fake = self.disc(hr).float(), self.disc(sr.detach()).float()
            loss_d = bce_d(real, fake)
            opt["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            opt["d"].step()
        loss_l1 = F.l1_loss(sr, hr)
        if adversarial:
            self.disc.requires_grad_(False)  # G's step needs gradients through D, not D's own
            with autocast(self.device, cfg.bf16):
                logits = self.disc(sr).float()
            loss_adv = bce_g(logits)
            self.disc.requires_grad_(True)
        if self.perceptual is not None and cfg.perceptual_weight > 0:
            loss_perc = self.perceptual(sr, hr)
        loss = loss_l1 + cfg.adv_weight * loss_adv + cfg.perceptual_weight * loss_perc
        opt["g"].zero_grad(set_to_none=True)
        loss.backward()
        opt["g"].step()
        sched["g"].step()
        if adversarial:  # D's schedule advances with D's updates (none when adv_weight is 0)
            sched["d"].step()
        return torch.stack([loss, loss_l1, loss_adv, loss_perc, loss_d]).detach()

    @torch.no_grad()
    def validate_per_scale(self) -> dict[float, float]:
        self.model.eval()
        out = {r: float(torch.cat([psnr_per_sample(generate(self.model, lr.to(self.device), r, hr.shape[2:]),
                                                   hr.to(self.device)).cpu() for lr, hr in pairs]).mean())
               for r, pairs in self.val_sets.items()}
        self.model.train()
        return out

    def validate(self) -> tuple[float, str]:
        per_scale = self.validate_per_scale()
        detail = ", ".join(f"x{format_scale(r)} {v:.2f} (cubic {self.baseline[r]:.2f})" for r, v in per_scale.items())
        return float(np.mean(list(per_scale.values()))), f" [{detail}]"

    def card_rows(self) -> dict[str, str | None]:
        cfg = self.cfg
        lo, hi = format_scale(min(self.scales)), format_scale(max(self.scales))
        degradation = ("LR from the pair store (made by the degrade stage on whole images)" if self.paired else
                       f"{cfg.degradation} (window {cfg.window}), LR made on the fly from HR patches (k-space modes "
                       f"on the patch's even extension: no wrap-around at its borders)")
        return {
            "architecture": f"| architecture | `{self.arch}`, discriminator `{json.dumps(self.disc_args, sort_keys=True)}` |",
            "trainable parameters": f"| trainable parameters | {count_parameters(self.model):,} (generator), "
                                    f"{count_parameters(self.disc):,} (discriminator) |",
            "scale": "\n".join([
                f"| training scales | {lo if lo == hi else f'{len(self.scales)} scales {lo}…{hi}, one per minibatch'} |",
                f"| model file scale | {format_scale(self.model_scale)} (default r at inference) |",
                f"| degradation | {degradation} |",
                f"| normalisation | train-store HR mean {self.norm[0]:.4f}, std {self.norm[1]:.4f} |"]),
            "optimiser": "\n".join([
                f"| generator loss | L1 + {cfg.adv_weight:g}·adversarial + {cfg.perceptual_weight:g}·perceptual |",
                f"| perceptual | {self.perceptual_status} |",
                f"| optimiser | Adam lr {cfg.lr:g} (G and D), × {cfg.lr_decay:g} every {cfg.decay_every()} steps |"]),
            "augmentation": f"| augmentation | {AUGMENT_TEXT[cfg.augment] + ' of HR before degrading' if cfg.augment else 'none'} |",
            "cubic baseline val PSNR": f"| cubic baseline val PSNR | {self.baseline_psnr:.2f} dB (mean over the val "
                                       f"scales) |",
        }

    def card_sections(self) -> list[str]:
        """Per-scale validation of the best weights (loaded by now); the perceptual term's status."""
        per_scale = self.validate_per_scale()
        lines = ["", "## Validation by scale (these weights)", "", "| scale | model PSNR | cubic PSNR |", "|---|---|---|",
                 *[f"| {format_scale(r)} | {v:.2f} dB | {self.baseline[r]:.2f} dB |" for r, v in sorted(per_scale.items())]]
        if self.perceptual is None:
            lines += ["", self.perceptual_status]
        return lines
