"""The `train` section of a model config, validated, with defaults; the run's fingerprint."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import ClassVar


AUGMENTS = (True, False, "flips")


def checked_config(cls, d: dict, label: str):
    """cls(**d), validated. Unknown keys are an error: a typo must not silently fall back to a default."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {label} settings {unknown}; accepted: {sorted(known)}")
    missing = [k for k in getattr(cls, "REQUIRED", ()) if k not in d]
    if missing:
        raise ValueError(f"{label} settings lack {missing}")
    cfg = cls(**d)
    cfg.validate()
    return cfg


@dataclass(frozen=True)
class TrainConfig:
    """Settings every training kind shares; a kind with more subclasses it (`gan.GanConfig`)."""

    batch_size: int
    lr: float
    # The budget: `steps`, or `epochs` (passes over the train store) that the task turns into
    # steps = ceil(epochs × store length / batch_size) once the store is known (`resolve_steps`).
    steps: int | None = None
    epochs: float | None = None
    val_every: int = 1000
    ckpt_every: int = 1000
    log_every: int = 50
    num_workers: int = 0
    bf16: bool | str = False  # "auto": resolved by `resolve_bf16` before a task is built
    channels_last: bool = False
    scheduler: str = "cosine"
    val_max_batches: int | None = None
    augment: bool | str = True  # AUGMENTS: true = flips + transposes, "flips" = flips only, false = none
    # The paper's budget, when `steps` is a reduced one (the model card says so).
    reference_steps: int | None = None
    budget_note: str | None = None
    tensorboard: bool = False  # event files in <model folder>/tb/ (needs the `tensorboard` package)
    # scheduler "step": lr × lr_decay every lr_decay_every steps (None: steps // 6).
    lr_decay: float | None = None
    lr_decay_every: int | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = ("batch_size", "lr")
    SCHEDULERS: ClassVar[tuple[str, ...]] = ("cosine", "none", "step")
    LABEL: ClassVar[str] = "train"
    # Settings that change neither the batches nor the arithmetic: a run may be resumed with
    # other values. `epochs` is here because the identity holds the steps it resolves to.
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = (
        "val_every", "ckpt_every", "log_every", "num_workers", "val_max_batches", "budget_note", "reference_steps",
        "tensorboard", "epochs")
    # Settings added after runs existed: left out of the run identity while unset, so the
    # fingerprint (and the resumability) of a config that does not use them is unchanged.
    OMIT_IF_UNSET: ClassVar[tuple[str, ...]] = ("lr_decay", "lr_decay_every")

    @classmethod
    def from_dict(cls, d: dict):
        return checked_config(cls, d, cls.LABEL)

    def validate(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("train.steps and train.epochs are both given: give one of them" if self.steps is not None
                             else f"{self.LABEL} settings lack ['steps'] (or ['epochs'])")
        for name in ("batch_size", "val_every", "ckpt_every", "log_every") + (("steps",) if self.epochs is None else ()):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"train.epochs must be > 0, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.num_workers < 0:
            raise ValueError(f"train.num_workers must be >= 0, got {self.num_workers}")
        if self.scheduler not in self.SCHEDULERS:
            raise ValueError(f"train.scheduler must be one of {list(self.SCHEDULERS)}, got {self.scheduler!r}")
        if self.val_max_batches is not None and self.val_max_batches < 1:
            raise ValueError(f"train.val_max_batches must be >= 1 or null, got {self.val_max_batches}")
        if self.scheduler == "step":
            if self.lr_decay is None or not 0 < self.lr_decay <= 1:
                raise ValueError(f"train.lr_decay must lie in (0, 1] with scheduler: step, got {self.lr_decay}")
            if self.lr_decay_every is not None and self.lr_decay_every < 1:
                raise ValueError(f"train.lr_decay_every must be >= 1 or null, got {self.lr_decay_every}")
        elif self.lr_decay is not None or self.lr_decay_every is not None:
            # Ignored otherwise: a config that sets them most likely meant scheduler: step.
            raise ValueError(f"train.lr_decay / lr_decay_every need scheduler: step (got {self.scheduler!r})")
        if self.augment not in AUGMENTS:
            raise ValueError(f"train.augment must be one of {list(AUGMENTS)}, got {self.augment!r}")

    def resolve_steps(self, n_samples: int):
        """This config with `steps` set: given, or ceil(epochs × n_samples / batch_size)."""
        if self.epochs is None:
            return self
        return replace(self, steps=max(1, math.ceil(self.epochs * n_samples / self.batch_size)))

    def decay_every(self) -> int:
        """Steps between two step-schedule decays (default: six decays over the run)."""
        return int(self.lr_decay_every or max(1, self.steps // 6))

    def run_identity(self) -> dict:
        """The settings a checkpoint must share with the run that resumes it."""
        return {k: v for k, v in asdict(self).items()
                if k not in self.RESUMABLE_CHANGES and not (k in self.OMIT_IF_UNSET and v is None)}


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16). Without it, torch's
    CPU bf16 autocast is emulated and ~10× slower than float32 (measured on an AVX2 EPYC)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:  # not Linux: assume no native bf16 (the safe, merely slower choice)
            return False
    return bool(set(cpuinfo.split()) & {"avx512_bf16", "amx_bf16"})


def resolve_bf16(value: bool | str, device_type: str) -> bool:
    """`train.bf16` as used: true/false as given; "auto" = bf16 where the hardware has it (a CUDA
    device that supports it, a CPU with AVX512-BF16/AMX). Resolved before the fingerprint, so a
    checkpoint never resumes under the other precision."""
    if value != "auto":
        return bool(value)
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return device_type == "cpu" and cpu_has_native_bf16()


def fingerprint(arch: str, args: dict, cfg: TrainConfig, seed: int, train_hash: str, val_hash: str) -> str:
    """One string naming everything that decides the trained weights (cfg with steps resolved)."""
    return json.dumps({"arch": arch, "args": args, "train": cfg.run_identity(), "seed": int(seed),
                       "train_store": train_hash, "val_store": val_hash}, sort_keys=True)


def with_init(fp: str, init_path: str, init_sha256: str) -> str:
    """The fingerprint of a run that starts from another model's weights: a retrained source
    makes this run's checkpoint stale."""
    return json.dumps({**json.loads(fp), "init_from": {"path": init_path, "sha256": init_sha256}}, sort_keys=True)
