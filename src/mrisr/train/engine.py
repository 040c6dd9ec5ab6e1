"""The one training engine: set up (or resume), step, validate, checkpoint, log, finish.

Every training kind — `supervised` (L1/own loss on pair stores, `train.supervised`),
`adversarial` (SRGAN/Meta-SRGAN, `train.gan`), `udean` (unpaired 3D, `train.udean`) — is a
`Task`: it builds its networks, optimizers and schedulers and supplies only its batches, its
step, its validation and its extra model-card rows. The model config's `trainer:` key names the kind
(`KINDS`, the schema's enum). Everything else happens here, once:

* resume from ckpt/last.pt when its fingerprint (model/train config, seed, store hashes)
  matches; another fingerprint is a config edit: that checkpoint is moved to
  ckpt/stale/<fingerprint>.pt and training starts over (`checkpoint.resumable_state`);
* SIGTERM/SIGUSR1 → checkpoint between steps and exit 143 (`signals`);
* log.csv rows (kept in the checkpoint too, so a deleted log.csv is rebuilt on resume),
  progress lines with ETA when stderr is a file, curves.png, optional TensorBoard (`observe`);
* validation every `val_every` steps, ckpt/best.pt = the best-validation weights;
* card.md, then model.pt (the best weights) as the very last write: its presence means the
  run finished.

Reproducibility contract: the weights after step k depend only on (config, data, seed), not
on interruptions. Batches and augmentations are pure functions of (seed, k) (`sampler`),
init is seeded by the task, and ckpt/last.pt holds every network, optimizer, scheduler and
the RNG states, so a resumed run ends with tensors identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterable, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from mrisr.errors import InputError
from mrisr.io import atomic_path
from mrisr.models import count_parameters, save_model
from mrisr.models.io import read_model_record
from mrisr.train.card import CardFacts, StoreInfo, render_card
from mrisr.train.checkpoint import restore_rng_states, resumable_state, save_checkpoint
from mrisr.train.config import TrainConfig, resolve_bf16, with_init
from mrisr.train.log import TrainLog, format_row
from mrisr.train.observe import ProgressLines, TensorBoard, write_curves
from mrisr.train.signals import EXIT_STATUS, StopRequest, ignore_stop_signals_in_worker


# ---------------------------------------------------------------------------- small helpers
def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    return f"cpu ({torch.get_num_threads()} threads), torch {torch.__version__}"


def step_loader(dataset: Dataset, sampler: Sampler, cfg: TrainConfig, device: torch.device) -> DataLoader:
    """The training DataLoader over a per-step batch sampler (workers leave signals to the main process)."""
    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                      worker_init_fn=ignore_stop_signals_in_worker)


def window_means(window: list[torch.Tensor], columns: tuple[str, ...], step: int) -> dict[str, float]:
    """Mean of each loss column since the last log row; a non-finite one stops the run."""
    means = torch.stack(window).mean(dim=0).tolist()
    if not all(math.isfinite(v) for v in means):
        raise FloatingPointError(f"non-finite training loss before step {step}: {dict(zip(columns, means))}")
    return dict(zip(columns, means))


# ---------------------------------------------------------------------------- the kind interface
class Task(ABC):
    """One training kind. The constructor seeds torch and builds everything (same order every
    run: init is part of the reproducibility contract); the engine does the rest.

    Attributes a task sets: `cfg`, `seed`, `device`, `model` (the inference network saved as
    model.pt), `nets` (every trained network: what ckpt/last.pt holds), `optimizers` and
    `schedulers` (dicts by name; the first optimizer's lr is the one logged), `fingerprint`,
    `record` (arch, args, scale, dims, grid_convention for the model file), `stores` (the
    card's data table), `baseline_psnr` (the cubic baseline's val PSNR, or None).
    """

    loss_columns: ClassVar[tuple[str, ...]] = ("loss",)  # what step() returns, in order; first: the total
    cfg: TrainConfig
    seed: int
    device: torch.device
    model: torch.nn.Module
    nets: torch.nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, object | None]
    fingerprint: str
    record: dict
    stores: tuple[StoreInfo, ...]
    store_task: str  # the patch store's task, for the card's title
    baseline_psnr: float | None = None

    @abstractmethod
    def __init__(self, model_cfg: dict, train_h5: Path, val_h5: Path, seed: int, device: torch.device) -> None: ...

    def prepare(self) -> None:
        """After resume, before the first step (e.g. fixed validation sets, baselines, messages)."""

    @abstractmethod
    def batches(self, start: int) -> Iterable:
        """The batches of 0-based steps start, start+1, …, cfg.steps − 1."""

    @abstractmethod
    def step(self, batch, step: int) -> torch.Tensor:
        """One optimisation step on the batch of 0-based step `step` (schedulers included);
        returns the detached loss values of `loss_columns`, a 1-D tensor left on the device."""

    @abstractmethod
    def validate(self) -> tuple[float, str]:
        """(val PSNR that selects the best weights, detail for the log line) of `model`."""

    def card_rows(self) -> dict[str, str | None]:
        """Card table rows this kind replaces, by field name (`card.render_card`); `model` holds
        the best weights when this is called."""
        return {}

    def card_sections(self) -> list[str]:
        """Lines appended to the card (called after card_rows)."""
        return []

    def init_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Start `model` from another run's weights (`init_from`; shapes already checked). A kind
        whose model holds data-derived buffers (the GAN's normalisation) re-derives them here."""
        self.model.load_state_dict(state_dict, strict=True)

    @property
    def label(self) -> str:
        return str(self.record["arch"])


KINDS: dict[str, type[Task]] = {}
T = TypeVar("T", bound=type[Task])


def register_kind(name: str) -> Callable[[T], T]:
    """Class decorator: `trainer: name` in a model config trains with this task."""

    def decorate(cls: T) -> T:
        if name in KINDS and KINDS[name] is not cls:
            raise ValueError(f"training kind {name!r} already registered by {KINDS[name].__qualname__}")
        KINDS[name] = cls
        return cls

    return decorate


# ---------------------------------------------------------------------------- init_from
@dataclass(frozen=True)
class InitFrom:
    """Initial weights from another trained model (`models.<m>.init_from`): the file and its digest."""

    path: Path
    sha256: str


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def init_source(path: Path) -> InitFrom:
    if not path.is_file():
        raise InputError(path, "init_from model file not found (train the source model first)")
    return InitFrom(path, file_digest(path))


def fitting_state_dict(task: Task, init: InitFrom) -> dict[str, torch.Tensor]:
    """The source model's weights, checked to fit the task's model exactly (same arch, same keys,
    same shapes): a partial or reshaped load would silently train something else."""
    record = read_model_record(init.path)
    if record["arch"] != task.record["arch"]:
        raise InputError(init.path, f"init_from model is arch {record['arch']!r}, this model is {task.record['arch']!r}")
    own, src = task.model.state_dict(), record["state_dict"]
    missing, unexpected = sorted(set(own) - set(src)), sorted(set(src) - set(own))
    shapes = [f"{k} {tuple(src[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in src and tuple(src[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        problems = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                    f"shapes differ: {'; '.join(shapes[:3])}" if shapes else ""]
        raise InputError(init.path, "init_from weights do not fit this model (" + ", ".join(p for p in problems if p)
                         + "); check the source's args and scale")
    return src


# ---------------------------------------------------------------------------- the engine
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

    model = property(lambda self: self.out_dir / "model.pt")
    log = property(lambda self: self.out_dir / "log.csv")
    card = property(lambda self: self.out_dir / "card.md")
    curves = property(lambda self: self.out_dir / "curves.png")
    tensorboard = property(lambda self: self.out_dir / "tb")
    last = property(lambda self: self.out_dir / "ckpt" / "last.pt")
    best = property(lambda self: self.out_dir / "ckpt" / "best.pt")


class Engine:
    """One training run of a task into out_dir."""

    def __init__(self, task: Task, out_dir: Path, init: InitFrom | None = None) -> None:
        self.task, self.paths, self.init = task, Paths(Path(out_dir)), init
        self.progress = Progress()
        self.last_val: float | None = None
        self.history: list[dict] = []
        self.log: TrainLog | None = None
        self.curves_drawn = time.monotonic()  # the first curves.png a minute in (or at the end)

    # -- state ---------------------------------------------------------------------------
    def lr(self) -> float:
        return float(next(iter(self.task.optimizers.values())).param_groups[0]["lr"])

    def resume_if_possible(self) -> bool:
        task = self.task
        state = resumable_state(self.paths.last, task.fingerprint)
        if state is None:
            return False
        task.nets.load_state_dict(state["model"])
        for name, opt in task.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in task.schedulers.items():
            if sched is not None:
                sched.load_state_dict(state["schedulers"][name])
        restore_rng_states(state["rng"])
        self.progress = Progress(step=state["step"], best_psnr=state["best_psnr"], best_step=state["best_step"],
                                 elapsed_s=state["elapsed_s"])
        self.last_val = state["last_val_psnr"]
        self.history = list(state["history"])
        tqdm.write(f"[train] resuming {self.paths.out_dir} at step {state['step']}/{task.cfg.steps}", file=sys.stderr)
        return True

    def apply_init(self) -> None:
        """Load the init_from weights before step 0 (a resumed run has its own weights)."""
        self.task.init_weights(fitting_state_dict(self.task, self.init))
        tqdm.write(f"[train] initialised from {self.init.path} (sha256 {self.init.sha256[:12]})", file=sys.stderr)

    def save_last(self, elapsed_s: float) -> None:
        """ckpt/last.pt (+ curves.png, at most once a minute: drawing takes a moment)."""
        p = self.progress
        save_checkpoint(self.paths.last, fingerprint=self.task.fingerprint, nets=self.task.nets,
                        optimizers=self.task.optimizers, schedulers=self.task.schedulers,
                        progress={"step": p.step, "best_psnr": float(p.best_psnr), "best_step": p.best_step,
                                  "elapsed_s": float(elapsed_s),
                                  "last_val_psnr": None if self.last_val is None else float(self.last_val)},
                        history=self.log.rows if self.log is not None else self.history)
        if time.monotonic() - self.curves_drawn >= 60.0:
            self.draw_curves()

    def save_weights(self, path: Path, step: int, val_psnr: float) -> None:
        save_model(path, self.task.model, step=step, val_psnr=val_psnr, **self.task.record)

    def draw_curves(self) -> None:
        self.curves_drawn = time.monotonic()
        if self.log is not None and self.log.rows:
            write_curves(self.paths.curves, self.log.rows, f"{self.task.label}: {self.paths.out_dir}",
                         self.task.baseline_psnr)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> Path:
        tensorboard = TensorBoard(self.paths.tensorboard, self.task.cfg.tensorboard)  # fails before any work
        # Handlers first: a signal during set-up or the baseline pass still ends in a checkpoint.
        with StopRequest() as stop:
            if self.paths.model.exists():
                self.paths.model.unlink()  # an old model.pt beside a new run would look complete
            if not self.resume_if_possible() and self.init is not None:
                self.apply_init()
            self.task.prepare()
            t0, elapsed0 = time.monotonic(), self.progress.elapsed_s

            def elapsed() -> float:
                return elapsed0 + time.monotonic() - t0

            try:
                with TrainLog(self.paths.log, self.task.loss_columns, self.history) as self.log:
                    self.steps(stop, tensorboard, elapsed)
            finally:
                tensorboard.close()
            # A signal from here on is not acted upon: the remaining writes take a moment
            # and the run is then complete (exit 0 with every output in place).
            return self.finish(elapsed())

    def write_row(self, tensorboard: TensorBoard, losses: dict[str, float] | None, lr: float, val: float | None,
                  elapsed_s: float) -> None:
        row = format_row(self.progress.step, losses, lr, val, elapsed_s)
        self.log.write(row)
        tensorboard.write(row)

    def steps(self, stop: StopRequest, tensorboard: TensorBoard, elapsed: Callable[[], float]) -> None:
        """Optimizer steps from the current step to cfg.steps, with validation, logging, checkpoints."""
        task, cfg, prog = self.task, self.task.cfg, self.progress
        bar = tqdm(total=cfg.steps, initial=prog.step, file=sys.stderr, disable=not sys.stderr.isatty(),
                   dynamic_ncols=True, desc=f"train {task.label}")
        lines = ProgressLines(task.label, cfg.steps, prog.step, enabled=bar.disable)
        window: list[torch.Tensor] = []
        batches = iter(task.batches(prog.step)) if prog.step < cfg.steps else iter(())
        for step in range(prog.step + 1, cfg.steps + 1):
            if stop.requested:
                self.stop_now(stop, tensorboard, window, elapsed())
            lr = self.lr()
            window.append(task.step(next(batches), step - 1))
            prog.step = step
            bar.update(1)
            is_val = step % cfg.val_every == 0 or step == cfg.steps
            is_ckpt = step % cfg.ckpt_every == 0 or step == cfg.steps
            val = self.validate_and_keep_best() if is_val else None
            if is_val or is_ckpt or step % cfg.log_every == 0:
                means = window_means(window, task.loss_columns, step)
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                lines.maybe_print(step, means, lr)
                self.write_row(tensorboard, means, lr, val, elapsed())
                window = []
            if is_ckpt:
                self.save_last(elapsed())
        bar.close()
        if stop.requested:
            self.stop_now(stop, tensorboard, window, elapsed())

    def stop_now(self, stop: StopRequest, tensorboard: TensorBoard, window: list[torch.Tensor],
                 elapsed_s: float) -> None:
        """Checkpoint and leave with a non-zero status (SIGTERM/SIGUSR1 arrived)."""
        if window:
            means = window_means(window, self.task.loss_columns, self.progress.step)
            self.write_row(tensorboard, means, self.lr(), None, elapsed_s)
        self.save_last(elapsed_s)
        tqdm.write(f"[train] signal {stop.signum}: saved {self.paths.last} at step {self.progress.step}; exiting",
                   file=sys.stderr)
        raise SystemExit(EXIT_STATUS)

    def validate_and_keep_best(self) -> float:
        prog = self.progress
        val, detail = self.task.validate()
        self.last_val = val
        if val > prog.best_psnr or not self.paths.best.is_file():
            prog.best_psnr, prog.best_step = val, prog.step
            self.save_weights(self.paths.best, prog.step, val)
        tqdm.write(f"[train] step {prog.step}/{self.task.cfg.steps} val PSNR {val:.2f} dB{detail}, "
                   f"best {prog.best_psnr:.2f} dB at step {prog.best_step}", file=sys.stderr)
        return val

    def init_lines(self) -> list[str]:
        if self.init is None:
            return []
        return ["", "## Initial weights", "",
                f"Initialised before step 0 from `{self.init.path}` (sha256 {self.init.sha256}), not from a seeded draw."]

    def finish(self, elapsed_s: float) -> Path:
        """card.md and curves.png, then model.pt (best-validation weights) as the very last write."""
        task = self.task
        if not self.paths.best.is_file():  # e.g. ckpt/best.pt deleted by hand after the run
            self.validate_and_keep_best()
        best = read_model_record(self.paths.best)
        final_psnr = self.last_val if self.last_val is not None else task.validate()[0]
        task.model.load_state_dict(best["state_dict"])
        r = task.record
        facts = CardFacts(arch=r["arch"], args=r["args"], n_params=count_parameters(task.model), task=task.store_task,
                          scale=float(r["scale"]), dims=r["dims"], grid_convention=r["grid_convention"],
                          stores=task.stores, train=task.cfg, seed=task.seed, device=describe_device(task.device),
                          best_psnr=float(best["val_psnr"]), best_step=int(best["step"]), final_psnr=final_psnr,
                          cubic_psnr=task.baseline_psnr, elapsed_s=elapsed_s)
        rows = task.card_rows()
        with atomic_path(self.paths.card) as tmp:
            tmp.write_text(render_card(facts, rows, task.card_sections() + self.init_lines()))
        self.draw_curves()
        self.save_weights(self.paths.model, int(best["step"]), float(best["val_psnr"]))
        return self.paths.model


def train_model(model_cfg: dict, train_h5: Path, val_h5: Path, out_dir: Path, seed: int,
                device: str | torch.device = "auto", init_from: Path | None = None) -> Path:
    """Train the model config's `trainer` kind on the stores into out_dir; returns model.pt's path.

    Resumes from out_dir/ckpt/last.pt when present. SIGTERM/SIGUSR1 save a checkpoint and
    raise SystemExit(143); model.pt exists only after a complete run. init_from: a model.pt
    whose weights (same arch and shapes) replace the seeded init before step 0; its digest
    is part of the fingerprint and the card.
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
