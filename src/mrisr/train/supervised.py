"""Supervised training (`trainer: supervised`): L1 (or the model's own `loss`) + Adam on a pair store:
EDSR, MINet (`ref` input), phase_vsr (clips), rcan3d (ts_rcan_*). Validation = mean per-patch
PSNR on the val store; the card also gives the cubic baseline on the same patches.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mrisr.errors import InputError
from mrisr.grid import integer_scale
from mrisr.models import build_model
from mrisr.models.common import CubicUpsample
from mrisr.models.io import plain_scale
from mrisr.patches.augment import augment_batch, augment_plan
from mrisr.patches.dataset import PatchDataset, train_val_attrs
from mrisr.train.card import StoreInfo
from mrisr.train.config import TrainConfig, fingerprint
from mrisr.train.engine import Task
from mrisr.train.signals import ignore_stop_signals_in_worker

PSNR_MSE_FLOOR = 1e-10  # caps a perfect patch at 100 dB instead of inf


def psnr_per_sample(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, data_range 1) of each sample, output clamped to [0, 1] as at evaluation."""
    err = (output.float().clamp(0, 1) - target.float()) ** 2
    return -10.0 * torch.log10(err.flatten(1).mean(dim=1).clamp_min(PSNR_MSE_FLOOR))


def memory_format(dims: int) -> torch.memory_format:
    return torch.channels_last if dims == 2 else torch.channels_last_3d


def to_device(batch: dict[str, torch.Tensor], device: torch.device, fmt: torch.memory_format | None) -> dict:
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch if fmt is None else {k: v.contiguous(memory_format=fmt) for k, v in batch.items()}


def autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast of the forward passes when train.bf16 (every kind; losses in float32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


def forward(model: torch.nn.Module, batch: dict, device: torch.device, bf16: bool) -> torch.Tensor:
    with autocast(device, bf16):
        out = model(**{k: batch[k] for k in model.inputs})
    return out.float()  # loss and metrics in float32


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, device: torch.device, cfg: TrainConfig,
             fmt: torch.memory_format | None) -> float:
    """Mean per-patch PSNR of the model on (the first val_max_batches batches of) the val store."""
    model.eval()
    scores = []
    for batch in islice(loader, cfg.val_max_batches):  # None: every batch
        batch = to_device(batch, device, fmt)
        scores.append(psnr_per_sample(forward(model, batch, device, cfg.bf16), batch["hr"]).cpu())
    model.train()
    return float(torch.cat(scores).mean())


@torch.no_grad()
def cubic_psnr(loader: DataLoader, attrs: dict, cfg: TrainConfig) -> float | None:
    """The cubic baseline's val PSNR on the same patches, for the card (None if not defined)."""
    scale = integer_scale(attrs["scale"])
    if scale is None or scale < 2 or attrs["hr_patch"] != [n * scale for n in attrs["lr_patch"]]:
        return None
    up = CubicUpsample(scale, int(attrs["dims"]), attrs["grid_convention"])
    scores = []
    for batch in islice(loader, cfg.val_max_batches):
        lr, hr = batch["lr"], batch["hr"]
        if attrs.get("clip"):  # video store: cubic of the central frames, scored per clip like the model
            frames, warmup = attrs["clip"]
            central = lr[:, :, warmup:warmup + frames].transpose(1, 2).flatten(0, 1)  # (B·F, 1, h, w)
            sr = up(central).reshape(hr.shape[0], frames, 1, *hr.shape[3:]).transpose(1, 2)
        else:
            sr = up(lr)
        scores.append(psnr_per_sample(sr, hr))
    return float(torch.cat(scores).mean())


def store_info(role: str, path: Path, attrs: dict, n_patches: int) -> StoreInfo:
    return StoreInfo(role, str(path), str(attrs.get("config_hash", "")), n_patches)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, eta_min: float = 0.0):
    """The `train.scheduler` of every kind, stepped once per optimizer step: cosine to eta_min over
    the run, step (× lr_decay every decay_every() steps: EDSR's halving, the GAN papers' decay) or none."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps, eta_min=eta_min)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.decay_every(), cfg.lr_decay)
    return None


class SupervisedTask(Task, kind="supervised"):
    """One network, one Adam, L1 (or `model.loss`) on the store's pairs."""

    def __init__(self, model_cfg: dict, train_h5: Path, val_h5: Path, seed: int, device: torch.device) -> None:
        self.setup_stores(model_cfg, train_h5, val_h5, seed, device)
        torch.manual_seed(self.seed)  # model init
        self.model = build_model(self.arch, **self.geometry, **self.args).to(self.device)
        if self.fmt is not None:
            self.model = self.model.to(memory_format=self.fmt)
        self.model.train()
        self.nets = self.model
        keys = tuple(dict.fromkeys((*self.model.inputs, "hr")))
        self.train_ds, self.val_ds = PatchDataset(self.train_h5, keys), PatchDataset(self.val_h5, keys)
        self.cfg = self.cfg.resolve_steps(len(self.train_ds))
        self.optimizers = {"model": torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)}
        self.schedulers = {"model": make_scheduler(self.optimizers["model"], self.cfg)}
        self.fingerprint = fingerprint(self.arch, self.args, self.cfg, self.seed,
                                       str(self.attrs.get("config_hash", "")), str(self.val_attrs.get("config_hash", "")))
        self.stores = (store_info("train", self.train_h5, self.attrs, len(self.train_ds)),
                       store_info("val", self.val_h5, self.val_attrs, len(self.val_ds)))

    def setup_stores(self, model_cfg: dict, train_h5: Path, val_h5: Path, seed: int, device: torch.device) -> None:
        """Config, store geometry and device (shared with UDEAN, which validates the same way)."""
        self.train_h5, self.val_h5, self.seed, self.device = Path(train_h5), Path(val_h5), int(seed), device
        self.arch = model_cfg["arch"]
        self.args = dict(model_cfg.get("args") or {})
        self.cfg = TrainConfig.from_dict(dict(model_cfg.get("train") or {}))
        self.attrs, self.val_attrs = train_val_attrs(self.train_h5, self.val_h5)
        self.geometry = {"scale": plain_scale(self.attrs["scale"]), "dims": int(self.attrs["dims"]),
                         "grid_convention": self.attrs["grid_convention"]}
        self.record = {"arch": self.arch, "args": self.args, **self.geometry}
        self.store_task = str(self.attrs["task"])
        self.fmt = memory_format(self.geometry["dims"]) if self.cfg.channels_last else None

    def prepare(self) -> None:
        self.val_loader = DataLoader(self.val_ds, batch_size=self.cfg.batch_size, shuffle=False,
                                     num_workers=self.cfg.num_workers, persistent_workers=self.cfg.num_workers > 0,
                                     pin_memory=self.device.type == "cuda",
                                     worker_init_fn=ignore_stop_signals_in_worker)
        self.baseline_psnr = cubic_psnr(self.val_loader, self.attrs, self.cfg)

    def prepare_batch(self, batch: dict, step: int) -> dict:
        """Augment on the CPU (a function of seed and step only), then move to the device."""
        if self.cfg.augment:
            geometry = (self.attrs["hr_patch"], self.attrs["lr_patch"])
            plan = augment_plan(self.seed, step, len(batch["hr"]), *geometry, self.attrs["grid_convention"],
                                transposes=self.cfg.augment is True)
            batch = augment_batch(batch, plan, geometry)
        return to_device(batch, self.device, self.fmt)

    def step(self, batch: dict, step: int) -> torch.Tensor:
        """One Adam step on L1, or on the model's own `loss(output, batch)` when it has one."""
        batch = self.prepare_batch(batch, step)
        out = forward(self.model, batch, self.device, self.cfg.bf16)
        if out.shape != batch["hr"].shape:
            raise InputError(self.train_h5, f"model output {tuple(out.shape)} does not match HR patches "
                                            f"{tuple(batch['hr'].shape)}")
        loss_fn = getattr(self.model, "loss", None)
        loss = loss_fn(out, batch) if callable(loss_fn) else F.l1_loss(out, batch["hr"])
        optimizer, scheduler = self.optimizers["model"], self.schedulers["model"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss.detach().reshape(1)

    def validate(self) -> tuple[float, str]:
        val = validate(self.model, self.val_loader, self.device, self.cfg, self.fmt)
        return val, "" if self.baseline_psnr is None else f" (cubic {self.baseline_psnr:.2f} dB)"
