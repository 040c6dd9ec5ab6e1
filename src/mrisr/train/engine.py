"""The one training engine: set up (or resume), step, validate, checkpoint, log, finish.

Every training kind (`trainer:` in the model config; `KINDS`, the schema's enum) is a `Task`
that builds its networks, optimizers and schedulers and supplies only its batches, step,
validation and card rows. The engine does the rest, once: resume from ckpt/last.pt when its
fingerprint matches (else it is moved to ckpt/stale/, `checkpoint.resumable_state`);
SIGTERM/SIGUSR1 → checkpoint between steps and exit 143 (`signals`); log.csv (also kept in
the checkpoint), progress lines, curves.png, TensorBoard (`observe`); validation every
`val_every` steps with ckpt/best.pt = the best weights; card.md, then model.pt (the best
weights) as the very last write, so that its presence means the run finished.

Reproducibility: the weights after step k depend only on (config, data, seed). Batches and
augmentations are pure functions of (seed, k) (`patches.sampler`, `patches.augment`), init is seeded by the task, and
ckpt/last.pt holds every network, optimizer, scheduler and the RNG states.
"""

from __future__ import annotations

import math
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from mrisr.io import atomic_path
from mrisr.models import save_model
from mrisr.models.io import InitFrom, fitting_state_dict, init_source, read_model_record
from mrisr.patches.sampler import StepBatchSampler
from mrisr.train.card import StoreInfo, render_card
from mrisr.train.checkpoint import restore_rng_states, resumable_state, save_checkpoint
from mrisr.train.config import TrainConfig, resolve_bf16, with_init
from mrisr.train.observe import ProgressLines, TensorBoard, TrainLog, format_row, write_curves
from mrisr.train.signals import EXIT_STATUS, StopRequest, ignore_stop_signals_in_worker


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def step_loader(dataset: Dataset, sampler: Sampler, cfg: TrainConfig, device: torch.device) -> DataLoader:
    """The training DataLoader over a per-step batch sampler (workers leave signals to the main process)."""
    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                      worker_init_fn=ignore_stop_signals_in_worker)


def close_workers(*loaders) -> None:
    """Stop the worker processes of DataLoaders or their iterators now. torch has no public call
    for it: `_shutdown_workers` is what an iterator's __del__ runs, and a persistent-workers
    loader keeps its iterator in `_iterator`. (`signals` SIGKILLs leftovers at exit.)"""
    for it in loaders:
        shutdown = getattr(getattr(it, "_iterator", it), "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def window_means(window: list[torch.Tensor], columns: tuple[str, ...], step: int) -> dict[str, float]:
    """Mean of each loss column since the last log row; a non-finite one stops the run."""
    means = dict(zip(columns, torch.stack(window).mean(dim=0).tolist()))
    if not all(math.isfinite(v) for v in means.values()):
        raise FloatingPointError(f"non-finite training loss before step {step}: {means}")
    return means


KINDS: dict[str, type[Task]] = {}


class Task(ABC):
    """One training kind (`class K(Task, kind="name")`: `trainer: name` trains with K). Its
    constructor seeds torch and builds everything in a fixed order (init is part of the
    reproducibility contract), setting these attributes (`cfg.steps` resolved: `resolve_steps`)."""

    loss_columns: ClassVar[tuple[str, ...]] = ("loss",)  # what step() returns, in order; first: the total
    cfg: TrainConfig
    seed: int
    device: torch.device
    model: torch.nn.Module  # saved as model.pt
    train_ds: Dataset  # what `batches` draws from
    nets: torch.nn.Module  # every trained network: what ckpt/last.pt holds
    optimizers: dict[str, torch.optim.Optimizer]  # by name; the first one's lr is logged
    schedulers: dict[str, object | None]
    fingerprint: str
    record: dict  # arch, args, scale, dims, grid_convention of the model file
    stores: tuple[StoreInfo, ...]  # the card's data table
    store_task: str
    baseline_psnr: float | None = None  # the cubic baseline's val PSNR

    def __init_subclass__(cls, kind: str | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            KINDS[kind] = cls

    @abstractmethod
    def __init__(self, model_cfg: dict, train_h5: Path, val_h5: Path, seed: int, device: torch.device) -> None: ...

    def prepare(self) -> None:
        """After resume, before the first step (fixed validation sets, baselines, messages)."""

    def batches(self, start: int) -> Iterable:
        """The batches of 0-based steps start … cfg.steps − 1 (here: one stream over `train_ds`)."""
        sampler = StepBatchSampler(self.seed, len(self.train_ds), self.cfg.batch_size, start, self.cfg.steps)
        return step_loader(self.train_ds, sampler, self.cfg, self.device)

    @abstractmethod
    def step(self, batch, step: int) -> torch.Tensor:
        """One optimisation step (schedulers included) on the batch of 0-based step `step`; returns
        the detached `loss_columns` as a 1-D tensor left on the device (reading it would stall a GPU)."""

    @abstractmethod
    def validate(self) -> tuple[float, str]:
        """(val PSNR that selects the best weights, detail for the log line) of `model`."""

    def card_rows(self) -> dict[str, str | None]:
        """Card rows this kind replaces, by field (`card.render_card`); `model` holds the best weights."""
        return {}

    def card_sections(self) -> list[str]:
        return []

    def init_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Start `model` from another run's weights (`init_from`; shapes already checked)."""
        self.model.load_state_dict(state_dict, strict=True)


class Engine:
    """One training run of a task into out_dir."""

    def __init__(self, task: Task, out_dir: Path, init: InitFrom | None = None) -> None:
        self.task, self.out, self.init = task, Path(out_dir), init
        self.last, self.best = self.out / "ckpt" / "last.pt", self.out / "ckpt" / "best.pt"
        # What a checkpoint records besides tensors.
        self.state = {"step": 0, "best_psnr": -math.inf, "best_step": 0, "elapsed_s": 0.0, "last_val_psnr": None}
        self.history: list[dict] = []  # log rows of a resumed run
        self.curves_drawn = time.monotonic()  # the first curves.png a minute in (or at the end)

    def lr(self) -> float:
        return float(next(iter(self.task.optimizers.values())).param_groups[0]["lr"])

    def resume_if_possible(self) -> bool:
        task = self.task
        ckpt = resumable_state(self.last, task.fingerprint)
        if ckpt is None:
            return False
        task.nets.load_state_dict(ckpt["model"])
        for name, opt in task.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        for name, sched in task.schedulers.items():
            if sched is not None:
                sched.load_state_dict(ckpt["schedulers"][name])
        restore_rng_states(ckpt["rng"])
        self.state = {k: ckpt[k] for k in self.state}
        self.history = list(ckpt["history"])
        tqdm.write(f"[train] resuming {self.out} at step {ckpt['step']}/{task.cfg.steps}", file=sys.stderr)
        return True

    def apply_init(self) -> None:
        """Load the init_from weights before step 0 (a resumed run has its own weights)."""
        self.task.init_weights(fitting_state_dict(self.init.path, self.task.model, self.task.record["arch"]))
        tqdm.write(f"[train] initialised from {self.init.path} (sha256 {self.init.sha256[:12]})", file=sys.stderr)

    def save_last(self) -> None:
        """ckpt/last.pt (+ curves.png, at most once a minute: drawing takes a moment)."""
        self.state["elapsed_s"] = self.elapsed()
        save_checkpoint(self.last, fingerprint=self.task.fingerprint, nets=self.task.nets,
                        optimizers=self.task.optimizers, schedulers=self.task.schedulers, progress=self.state,
                        history=self.log.rows)
        if time.monotonic() - self.curves_drawn >= 60.0:
            self.draw_curves()

    def save_weights(self, path: Path, step: int, val_psnr: float) -> None:
        save_model(path, self.task.model, step=step, val_psnr=val_psnr, **self.task.record)

    def draw_curves(self) -> None:
        self.curves_drawn = time.monotonic()
        if self.log.rows:
            write_curves(self.out / "curves.png", self.log.rows, f"{self.task.record['arch']}: {self.out}",
                         self.task.baseline_psnr)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def run(self) -> Path:
        self.tensorboard = TensorBoard(self.out / "tb", self.task.cfg.tensorboard)  # fails before any work
        # Handlers first: a signal during set-up or the baseline pass still ends in a checkpoint.
        with StopRequest() as self.stop:
            batches = iter(())
            try:
                (self.out / "model.pt").unlink(missing_ok=True)  # an old model.pt beside a new run looks complete
                if not self.resume_if_possible() and self.init is not None:
                    self.apply_init()
                self.task.prepare()
                self.t0 = time.monotonic() - self.state["elapsed_s"]
                if self.state["step"] < self.task.cfg.steps:
                    batches = iter(self.task.batches(self.state["step"]))
                try:
                    with TrainLog(self.out / "log.csv", self.task.loss_columns, self.history) as self.log:
                        self.steps(batches)
                finally:
                    self.tensorboard.close()
                # A signal from here on is not acted upon: the remaining writes take a moment
                # and the run is then complete (exit 0 with every output in place).
                return self.finish(self.elapsed())
            finally:  # the task's loaders (e.g. persistent val workers) and the training batches
                close_workers(batches, *(v for v in vars(self.task).values() if isinstance(v, DataLoader)))

    def write_row(self, losses: dict[str, float], lr: float, val: float | None) -> None:
        row = format_row(self.state["step"], losses, lr, val, self.elapsed())
        self.log.write(row)
        self.tensorboard.write(row)

    def steps(self, batches) -> None:
        """Optimizer steps from the current step to cfg.steps, with validation, logging, checkpoints."""
        task, cfg, start = self.task, self.task.cfg, self.state["step"]
        label = task.record["arch"]
        bar = tqdm(total=cfg.steps, initial=start, file=sys.stderr, disable=not sys.stderr.isatty(),
                   dynamic_ncols=True, desc=f"train {label}")
        lines = ProgressLines(label, cfg.steps, start, enabled=bar.disable)
        window: list[torch.Tensor] = []
        for step in range(start + 1, cfg.steps + 1):
            if self.stop.requested:
                break
            lr = self.lr()
            window.append(task.step(next(batches), step - 1))
            self.state["step"] = step
            bar.update(1)
            is_val = step % cfg.val_every == 0 or step == cfg.steps
            is_ckpt = step % cfg.ckpt_every == 0 or step == cfg.steps
            val = self.validate_and_keep_best() if is_val else None
            if is_val or is_ckpt or step % cfg.log_every == 0:
                means = window_means(window, task.loss_columns, step)
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                lines.maybe_print(step, means, lr)
                self.write_row(means, lr, val)
                window = []
            if is_ckpt:
                self.save_last()
        bar.close()
        if self.stop.requested:  # SIGTERM/SIGUSR1: checkpoint and leave with a non-zero status
            if window:
                self.write_row(window_means(window, task.loss_columns, self.state["step"]), self.lr(), None)
            self.save_last()
            tqdm.write(f"[train] signal {self.stop.signum}: saved {self.last} at step {self.state['step']}; exiting",
                       file=sys.stderr)
            raise SystemExit(EXIT_STATUS)

    def validate_and_keep_best(self) -> float:
        s = self.state
        val, detail = self.task.validate()
        s["last_val_psnr"] = val
        if val > s["best_psnr"] or not self.best.is_file():
            s["best_psnr"], s["best_step"] = val, s["step"]
            self.save_weights(self.best, s["step"], val)
        tqdm.write(f"[train] step {s['step']}/{self.task.cfg.steps} val PSNR {val:.2f} dB{detail}, "
                   f"best {s['best_psnr']:.2f} dB at step {s['best_step']}", file=sys.stderr)
        return val

    def finish(self, elapsed_s: float) -> Path:
        """card.md and curves.png, then model.pt (best-validation weights) as the very last write."""
        task = self.task
        if not self.best.is_file():  # e.g. ckpt/best.pt deleted by hand after the run
            self.validate_and_keep_best()
        best = read_model_record(self.best)
        final_psnr = self.state["last_val_psnr"]
        if final_psnr is None:
            final_psnr = task.validate()[0]
        task.model.load_state_dict(best["state_dict"])
        rows, sections = task.card_rows(), task.card_sections()
        if self.init is not None:
            sections += ["", "## Initial weights", "", f"Initialised before step 0 from `{self.init.path}` "
                         f"(sha256 {self.init.sha256}), not from a seeded draw."]
        with atomic_path(self.out / "card.md") as tmp:
            tmp.write_text(render_card(task, rows, sections, best, final_psnr, elapsed_s))
        self.draw_curves()
        self.save_weights(self.out / "model.pt", int(best["step"]), float(best["val_psnr"]))
        return self.out / "model.pt"


def train_model(model_cfg: dict, train_h5: Path, val_h5: Path, out_dir: Path, seed: int,
                device: str | torch.device = "auto", init_from: Path | None = None) -> Path:
    """Train the model config's `trainer` kind on the stores into out_dir; returns model.pt's path.

    Resumes from out_dir/ckpt/last.pt when present; SIGTERM/SIGUSR1 save a checkpoint and raise
    SystemExit(143). init_from: a model.pt whose weights (same arch and shapes) replace the
    seeded init before step 0; its digest is part of the fingerprint and the card.
    """
    kind = model_cfg.get("trainer")
    if kind not in KINDS:
        raise ValueError(f"model config needs `trainer:` one of {sorted(KINDS)}, got {kind!r}")
    device = resolve_device(device)
    train = dict(model_cfg.get("train") or {})
    if train.get("bf16") == "auto":
        model_cfg = {**model_cfg, "train": {**train, "bf16": resolve_bf16("auto", device.type)}}
    init = init_source(Path(init_from)) if init_from is not None else None
    task = KINDS[kind](model_cfg, Path(train_h5), Path(val_h5), int(seed), device)
    if init is not None:
        task.fingerprint = with_init(task.fingerprint, str(init.path), init.sha256)
    return Engine(task, Path(out_dir), init).run()
