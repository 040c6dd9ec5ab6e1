"""card.md: what was trained, on what, with which budget, and how well it validated.

The engine renders one card for every kind; a training kind only swaps or adds table rows
(`Task.card_rows`, by field name) and appends sections (`Task.card_sections`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mrisr.train.config import TrainConfig


@dataclass(frozen=True)
class StoreInfo:
    role: str  # "train" | "val"
    path: str
    config_hash: str
    n_patches: int


@dataclass(frozen=True)
class CardFacts:
    arch: str
    args: dict
    n_params: int
    task: str
    scale: float
    dims: int
    grid_convention: str
    stores: tuple[StoreInfo, ...]
    train: TrainConfig
    seed: int
    device: str
    best_psnr: float
    best_step: int
    final_psnr: float | None
    cubic_psnr: float | None
    elapsed_s: float


AUGMENT_TEXT = {True: "flips/transposes (grid-preserving)", "flips": "flips only (grid-preserving)", False: "none"}


def _decay(cfg: TrainConfig) -> str:
    """The step schedule's factor and period (nothing for the other schedules)."""
    return f" (× {cfg.lr_decay:g} every {cfg.decay_every()} steps)" if cfg.scheduler == "step" else ""


def _db(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} dB"


def budget_note(cfg: TrainConfig) -> str | None:
    """Say plainly when the run is shorter than the paper's schedule."""
    parts = []
    if cfg.reference_steps is not None and cfg.steps < cfg.reference_steps:
        parts.append(f"reduced budget: {cfg.steps} of the reference {cfg.reference_steps} steps "
                     f"({100 * cfg.steps / cfg.reference_steps:.1f}%); scores are not the paper's")
    if cfg.budget_note:
        parts.append(cfg.budget_note)
    return "; ".join(parts) or None


def render_card(f: CardFacts, rows: dict[str, str] | None = None, sections: list[str] | None = None) -> str:
    """The card; `rows` replaces table rows by field name (a value may hold several rows; None
    drops the row), `sections` are lines appended at the end."""
    cfg = f.train
    lines = [
        f"# Model card: {f.arch} ×{f.scale:g} ({f.task})",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{f.arch}` |",
        f"| args | `{json.dumps(f.args, sort_keys=True)}` |",
        f"| trainable parameters | {f.n_params:,} |",
        f"| task | {f.task} |",
        f"| scale | {f.scale:g} |",
        f"| dims | {f.dims}D |",
        f"| grid convention | {f.grid_convention} |",
        f"| seed | {f.seed} |",
        f"| device | {f.device} |",
        f"| steps × batch | {cfg.steps} × {cfg.batch_size} |",
        f"| optimiser | Adam, lr {cfg.lr:g}, scheduler {cfg.scheduler}{_decay(cfg)}, L1 loss |",
        f"| precision | {'bf16 autocast' if cfg.bf16 else 'float32'}{', channels_last' if cfg.channels_last else ''} |",
        f"| augmentation | {AUGMENT_TEXT[cfg.augment]} |",
        f"| best val PSNR | {_db(f.best_psnr)} at step {f.best_step} (these weights) |",
        f"| final val PSNR | {_db(f.final_psnr)} |",
        f"| cubic baseline val PSNR | {_db(f.cubic_psnr)} |",
        f"| training time | {f.elapsed_s:.0f} s |",
        "",
        "## Data",
        "",
        "| role | store | config_hash | patches |",
        "|---|---|---|---|",
        *[f"| {s.role} | `{s.path}` | `{s.config_hash}` | {s.n_patches} |" for s in f.stores],
    ]
    note = budget_note(cfg)
    if note:
        lines += ["", "## Note", "", note]
    swap = {f"| {k} |": v for k, v in (rows or {}).items()}
    lines = [next((v for k, v in swap.items() if line.startswith(k)), line) for line in lines]
    return "\n".join([line for line in lines if line is not None] + list(sections or [])) + "\n"
