"""The training loop: L1 + Adam on a patch store, validation PSNR, checkpoint/resume.

Reproducibility contract: the weights after step k depend only on (config, data, seed),
not on interruptions. Batches and augmentations are pure functions of (seed, k)
(`sampler`), model init is seeded, and ckpt/last.pt carries optimizer, scheduler and
RNG state, so a resumed run ends with tensors identical to an uninterrupted one.
Outputs: ckpt/last.pt, ckpt/best.pt, log.csv and card.md as it goes; model.pt (the
best-validation weights) is written last, so its presence means the run finished.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mrisr.errors import InputError
from mrisr.models import build_model, count_parameters, save_model
from mrisr.models.common import CubicUpsample
from mrisr.models.io import read_model_record
from mrisr.grid import integer_scale
from mrisr.patches.dataset import PatchDataset, store_attrs
from mrisr.train.card import CardFacts, StoreInfo, write_card
from mrisr.train.checkpoint import restore_rng_states, resumable_state, save_checkpoint
from mrisr.train.config import TrainConfig, fingerprint
from mrisr.train.log import TrainLog
from mrisr.train.losses import compute_loss, psnr_per_sample
from mrisr.train.sampler import StepBatchSampler, augment_batch, augment_plan
from mrisr.train.signals import EXIT_STATUS, StopRequest, ignore_stop_signals_in_worker

GEOMETRY_ATTRS = ("task", "scale", "dims", "grid_convention", "hr_patch", "lr_patch")


@dataclass
class Progress:
    """What a checkpoint records about the run besides tensors."""

    step: int = 0
    best_psnr: float = -math.inf
    best_step: int = 0
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class Paths:
    out_dir: Path

    @property
    def model(self) -> Path:
        return self.out_dir / "model.pt"

    @property
    def log(self) -> Path:
        return self.out_dir / "log.csv"

    @property
    def card(self) -> Path:
        return self.out_dir / "card.md"

    @property
    def last(self) -> Path:
        return self.out_dir / "ckpt" / "last.pt"

    @property
    def best(self) -> Path:
        return self.out_dir / "ckpt" / "best.pt"


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    return f"cpu ({torch.get_num_threads()} threads), torch {torch.__version__}"


def read_geometry(train_h5: Path, val_h5: Path) -> tuple[dict, dict]:
    """Both stores' attributes; the val store must describe the same problem as the train store."""
    train_attrs, val_attrs = store_attrs(train_h5), store_attrs(val_h5)
    missing = [k for k in GEOMETRY_ATTRS if k not in train_attrs]
    if missing:
        raise InputError(train_h5, f"patch store lacks attributes {missing}")
    if len(train_attrs["hr_patch"]) != int(train_attrs["dims"]):
        raise InputError(train_h5, f"hr_patch {train_attrs['hr_patch']} does not have dims={train_attrs['dims']} axes")
    for k in ("task", "scale", "dims", "grid_convention"):
        if val_attrs.get(k) != train_attrs[k]:
            raise InputError(val_h5, f"attribute {k}={val_attrs.get(k)!r} differs from the train store's {train_attrs[k]!r}")
    return train_attrs, val_attrs


def plain_scale(scale: float) -> int | float:
    s = integer_scale(scale)
    return s if s is not None else float(scale)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps)
    return None


def memory_format(dims: int) -> torch.memory_format:
    return torch.channels_last if dims == 2 else torch.channels_last_3d


def to_device(batch: dict[str, torch.Tensor], device: torch.device, fmt: torch.memory_format | None) -> dict:
    out = {}
    for k, v in batch.items():
        v = v.to(device, non_blocking=True)
        out[k] = v.contiguous(memory_format=fmt) if fmt is not None else v
    return out


def forward(model: torch.nn.Module, batch: dict, device: torch.device, bf16: bool) -> torch.Tensor:
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(**{k: batch[k] for k in model.inputs})
    return out.float()  # loss and metrics in float32


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, device: torch.device, cfg: TrainConfig,
             fmt: torch.memory_format | None) -> float:
    """Mean per-patch PSNR of the model on (the first val_max_batches batches of) the val store."""
    model.eval()
    scores = []
    for i, batch in enumerate(loader):
        if cfg.val_max_batches is not None and i >= cfg.val_max_batches:
            break
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
    for i, batch in enumerate(loader):
        if cfg.val_max_batches is not None and i >= cfg.val_max_batches:
            break
        lr, hr = batch["lr"], batch["hr"]
        if attrs.get("clip"):  # video store: cubic of the central frames, scored per clip like the model
            frames, warmup = attrs["clip"]
            central = lr[:, :, warmup:warmup + frames].transpose(1, 2).flatten(0, 1)  # (B·F, 1, h, w)
            sr = up(central).reshape(hr.shape[0], frames, 1, *hr.shape[3:]).transpose(1, 2)
        else:
            sr = up(lr)
        scores.append(psnr_per_sample(sr, hr))
    return float(torch.cat(scores).mean())


def window_mean(losses: list[torch.Tensor], step: int) -> float:
    """Mean training loss since the last log row; a non-finite one stops the run."""
    mean = float(torch.stack(losses).mean())
    if not math.isfinite(mean):
        raise FloatingPointError(f"non-finite training loss before step {step}")
    return mean


class Trainer:
    """One training run: set up (or resume), step, validate, checkpoint, finish."""

    def __init__(self, model_cfg: dict, train_h5: Path, val_h5: Path, out_dir: Path, seed: int,
                 device: str | torch.device) -> None:
        self.train_h5, self.val_h5, self.seed = Path(train_h5), Path(val_h5), int(seed)
        self.paths = Paths(Path(out_dir))
        self.arch = model_cfg["arch"]
        self.args = dict(model_cfg.get("args") or {})
        self.cfg = TrainConfig.from_dict(dict(model_cfg.get("train") or {}))
        self.attrs, self.val_attrs = read_geometry(self.train_h5, self.val_h5)
        self.device = resolve_device(device)
        self.geometry = {"scale": plain_scale(self.attrs["scale"]), "dims": int(self.attrs["dims"]),
                         "grid_convention": self.attrs["grid_convention"]}
        self.fmt = memory_format(self.geometry["dims"]) if self.cfg.channels_last else None

        torch.manual_seed(self.seed)  # model init
        self.model = build_model(self.arch, **self.geometry, **self.args).to(self.device)
        if self.fmt is not None:
            self.model = self.model.to(memory_format=self.fmt)
        self.model.train()
        keys = tuple(dict.fromkeys((*self.model.inputs, "hr")))
        self.train_ds, self.val_ds = PatchDataset(self.train_h5, keys), PatchDataset(self.val_h5, keys)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = make_scheduler(self.optimizer, self.cfg)
        self.fingerprint = fingerprint(self.arch, self.args, self.cfg, self.seed,
                                       str(self.attrs.get("config_hash", "")), str(self.val_attrs.get("config_hash", "")))
        self.progress = Progress()
        self.last_val: float | None = None

    # -- state ---------------------------------------------------------------------------
    def resume_if_possible(self) -> None:
        state = resumable_state(self.paths.last, self.fingerprint)
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"])
        self.progress = Progress(step=state["step"], best_psnr=state["best_psnr"], best_step=state["best_step"],
                                 elapsed_s=state["elapsed_s"])
        self.last_val = state.get("last_val_psnr")
        tqdm.write(f"[train] resuming {self.paths.out_dir} at step {state['step']}/{self.cfg.steps}", file=sys.stderr)

    def save_last(self, elapsed_s: float) -> None:
        save_checkpoint(self.paths.last, fingerprint=self.fingerprint, model=self.model, optimizer=self.optimizer,
                        scheduler=self.scheduler, step=self.progress.step, best_psnr=self.progress.best_psnr,
                        best_step=self.progress.best_step, elapsed_s=elapsed_s, last_val_psnr=self.last_val)

    def save_weights(self, path: Path, step: int, val_psnr: float) -> None:
        save_model(path, self.model, arch=self.arch, args=self.args, step=step, val_psnr=val_psnr, **self.geometry)

    # -- loaders ---------------------------------------------------------------------------
    def train_loader(self) -> DataLoader:
        sampler = StepBatchSampler(self.seed, len(self.train_ds), self.cfg.batch_size, self.progress.step, self.cfg.steps)
        return DataLoader(self.train_ds, batch_sampler=sampler, num_workers=self.cfg.num_workers,
                          pin_memory=self.device.type == "cuda", worker_init_fn=ignore_stop_signals_in_worker)

    def val_loader(self) -> DataLoader:
        return DataLoader(self.val_ds, batch_size=self.cfg.batch_size, shuffle=False,
                          num_workers=self.cfg.num_workers, persistent_workers=self.cfg.num_workers > 0,
                          pin_memory=self.device.type == "cuda", worker_init_fn=ignore_stop_signals_in_worker)

    # -- one step ----------------------------------------------------------------------------
    def prepare_batch(self, batch: dict, step: int) -> dict:
        """Augment on the CPU (a function of seed and step only), then move to the device."""
        if self.cfg.augment:
            plan = augment_plan(self.seed, step, len(batch["hr"]), self.attrs["hr_patch"], self.attrs["lr_patch"],
                                self.attrs["grid_convention"])
            batch = augment_batch(batch, plan, (self.attrs["hr_patch"], self.attrs["lr_patch"]))
        return to_device(batch, self.device, self.fmt)

    def optimizer_step(self, batch: dict) -> tuple[torch.Tensor, float]:
        """One Adam step on L1 (or the model's loss); returns (detached loss on the device, lr used).

        The loss stays on the device: reading it every step would stall a GPU pipeline.
        """
        out = forward(self.model, batch, self.device, self.cfg.bf16)
        if out.shape != batch["hr"].shape:
            raise InputError(self.train_h5, f"model output {tuple(out.shape)} does not match HR patches "
                                            f"{tuple(batch['hr'].shape)}")
        loss = compute_loss(self.model, out, batch)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach(), float(lr)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> Path:
        # Handlers first: a signal during set-up or the baseline pass still ends in a checkpoint.
        with StopRequest() as stop:
            if self.paths.model.exists():
                self.paths.model.unlink()  # an old model.pt beside a new run would look complete
            self.resume_if_possible()
            val_loader = self.val_loader()
            baseline = cubic_psnr(val_loader, self.attrs, self.cfg)
            t0, elapsed0 = time.monotonic(), self.progress.elapsed_s

            def elapsed() -> float:
                return elapsed0 + time.monotonic() - t0

            with TrainLog(self.paths.log, self.progress.step) as log:
                self.steps(stop, log, val_loader, baseline, elapsed)
            # A signal from here on is not acted upon: the remaining writes take a moment
            # and the run is then complete (exit 0 with every output in place).
            return self.finish(val_loader, baseline, elapsed())

    def steps(self, stop: StopRequest, log: TrainLog, val_loader: DataLoader, baseline: float | None,
              elapsed) -> None:
        """Optimizer steps from the current step to cfg.steps, with validation, logging, checkpoints."""
        cfg, prog = self.cfg, self.progress
        bar = tqdm(total=cfg.steps, initial=prog.step, file=sys.stderr, disable=not sys.stderr.isatty(),
                   dynamic_ncols=True, desc=f"train {self.arch}")
        window: list[torch.Tensor] = []
        batches = iter(self.train_loader()) if prog.step < cfg.steps else iter(())
        for step in range(prog.step + 1, cfg.steps + 1):
            if stop.requested:
                self.stop_now(stop, log, window, elapsed())
            loss, lr = self.optimizer_step(self.prepare_batch(next(batches), step - 1))
            prog.step = step
            window.append(loss)
            bar.update(1)
            is_val = step % cfg.val_every == 0 or step == cfg.steps
            is_ckpt = step % cfg.ckpt_every == 0 or step == cfg.steps
            val = self.validate_and_keep_best(val_loader, baseline) if is_val else None
            if is_val or is_ckpt or step % cfg.log_every == 0:
                mean_loss = window_mean(window, step)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                log.write(step, mean_loss, lr, val, elapsed())
                window = []
            if is_ckpt:
                self.save_last(elapsed())
        bar.close()
        if stop.requested:
            self.stop_now(stop, log, window, elapsed())

    def stop_now(self, stop: StopRequest, log: TrainLog, window: list[torch.Tensor], elapsed_s: float) -> None:
        """Checkpoint and leave with a non-zero status (SIGTERM/SIGUSR1 arrived)."""
        if window:
            log.write(self.progress.step, window_mean(window, self.progress.step),
                      self.optimizer.param_groups[0]["lr"], None, elapsed_s)
        self.save_last(elapsed_s)
        tqdm.write(f"[train] signal {stop.signum}: saved {self.paths.last} at step {self.progress.step}; exiting",
                   file=sys.stderr)
        raise SystemExit(EXIT_STATUS)

    def validate_and_keep_best(self, val_loader: DataLoader, baseline: float | None) -> float:
        prog = self.progress
        val = validate(self.model, val_loader, self.device, self.cfg, self.fmt)
        self.last_val = val
        if val > prog.best_psnr or not self.paths.best.is_file():
            prog.best_psnr, prog.best_step = val, prog.step
            self.save_weights(self.paths.best, prog.step, val)
        base = "" if baseline is None else f" (cubic {baseline:.2f} dB)"
        tqdm.write(f"[train] step {prog.step}/{self.cfg.steps} val PSNR {val:.2f} dB{base}, "
                   f"best {prog.best_psnr:.2f} dB at step {prog.best_step}", file=sys.stderr)
        return val

    def finish(self, val_loader: DataLoader, baseline: float | None, elapsed_s: float) -> Path:
        """card.md, then model.pt (best-validation weights) as the very last write."""
        if not self.paths.best.is_file():  # e.g. ckpt/best.pt deleted by hand after the run
            self.validate_and_keep_best(val_loader, baseline)
        best = read_model_record(self.paths.best)
        final_psnr = self.last_val
        if final_psnr is None:
            final_psnr = validate(self.model, val_loader, self.device, self.cfg, self.fmt)
        self.model.load_state_dict(best["state_dict"])
        write_card(self.paths.card, CardFacts(
            arch=self.arch, args=self.args, n_params=count_parameters(self.model), task=str(self.attrs["task"]),
            scale=float(self.attrs["scale"]), dims=self.geometry["dims"], grid_convention=self.geometry["grid_convention"],
            stores=(StoreInfo("train", str(self.train_h5), str(self.attrs.get("config_hash", "")), len(self.train_ds)),
                    StoreInfo("val", str(self.val_h5), str(self.val_attrs.get("config_hash", "")), len(self.val_ds))),
            train=self.cfg, seed=self.seed, device=describe_device(self.device), best_psnr=float(best["val_psnr"]),
            best_step=int(best["step"]), final_psnr=final_psnr, cubic_psnr=baseline, elapsed_s=elapsed_s))
        self.save_weights(self.paths.model, int(best["step"]), float(best["val_psnr"]))
        return self.paths.model


def train(model_cfg: dict, train_h5: Path, val_h5: Path, out_dir: Path, seed: int, device: str = "auto") -> Path:
    """Train `model_cfg["arch"]` on a patch store; returns the path of model.pt.

    Resumes from out_dir/ckpt/last.pt when present. SIGTERM/SIGUSR1 save a checkpoint and
    raise SystemExit(143); model.pt exists only after a complete run.
    """
    return Trainer(model_cfg, train_h5, val_h5, out_dir, seed, device).run()
