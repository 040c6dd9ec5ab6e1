"""card.md: what was trained, on what, with which budget, and how well it validated. One card for
every kind; a task only swaps or adds table rows (`Task.card_rows`) and appends sections."""

from __future__ import annotations

import json
from typing import NamedTuple

import torch

from mrisr.models import count_parameters
from mrisr.train.config import TrainConfig


class StoreInfo(NamedTuple):
    role: str  # "train", "val", or UDEAN's "source (hr)", "target (lr)"
    path: str
    config_hash: str
    n_patches: int


AUGMENT_TEXT = {True: "flips/transposes (grid-preserving)", "flips": "flips only (grid-preserving)", False: "none"}


def describe_device(device: torch.device) -> str:
    name = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    return f"{name}, torch {torch.__version__}"


def _db(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} dB"


def loss_text(model: torch.nn.Module) -> str:
    """The model's own description of its training loss (`SRModel.loss_text`); L1 for any other."""
    describe = getattr(model, "loss_text", None)
    return describe() if callable(describe) else "L1 loss"


def budget(cfg: TrainConfig) -> str:
    """The resolved steps × batch, and which key gave the budget."""
    given = f"`train.epochs: {cfg.epochs:g}`" if cfg.epochs is not None else "`train.steps`"
    return f"{cfg.steps} × {cfg.batch_size} (given as {given})"


def render_card(task, rows: dict[str, str | None], sections: list[str], best: dict, final_psnr: float | None,
                elapsed_s: float) -> str:
    """The card of a finished task (`engine.Task`, its model holding the best weights): `rows`
    replace rows by field name (a value may hold several rows; None drops the row), `sections`
    are lines appended at the end."""
    cfg, r = task.cfg, task.record
    decay = f" (× {cfg.lr_decay:g} every {cfg.decay_every()} steps)" if cfg.scheduler == "step" else ""
    lines = [
        f"# Model card: {r['arch']} ×{float(r['scale']):g} ({task.store_task})",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{r['arch']}` |",
        f"| args | `{json.dumps(r['args'], sort_keys=True)}` |",
        f"| trainable parameters | {count_parameters(task.model):,} |",
        f"| task | {task.store_task} |",
        f"| scale | {float(r['scale']):g} |",
        f"| dims | {r['dims']}D |",
        f"| grid convention | {r['grid_convention']} |",
        f"| seed | {task.seed} |",
        f"| device | {describe_device(task.device)} |",
        f"| steps × batch | {budget(cfg)} |",
        f"| optimiser | Adam, lr {cfg.lr:g}, scheduler {cfg.scheduler}{decay}, {loss_text(task.model)} |",
        f"| precision | {'bf16 autocast' if cfg.bf16 else 'float32'}{', channels_last' if cfg.channels_last else ''} |",
        f"| augmentation | {AUGMENT_TEXT[cfg.augment]} |",
        f"| best val PSNR | {_db(float(best['val_psnr']))} at step {int(best['step'])} (these weights) |",
        f"| final val PSNR | {_db(final_psnr)} |",
        f"| cubic baseline val PSNR | {_db(task.baseline_psnr)} |",
        f"| training time | {elapsed_s:.0f} s |",
        "",
        "## Data",
        "",
        "| role | store | config_hash | patches |",
        "|---|---|---|---|",
        *[f"| {s.role} | `{s.path}` | `{s.config_hash}` | {s.n_patches} |" for s in task.stores],
    ]
    notes = [cfg.budget_note] if cfg.budget_note else []
    if cfg.reference_steps is not None and cfg.steps < cfg.reference_steps:  # say plainly: not the paper's
        notes.insert(0, f"reduced budget: {cfg.steps} of the reference {cfg.reference_steps} steps "
                        f"({100 * cfg.steps / cfg.reference_steps:.1f}%); scores are not the paper's")
    if notes:
        lines += ["", "## Note", "", "; ".join(notes)]
    swap = {f"| {k} |": v for k, v in rows.items()}
    lines = [next((v for k, v in swap.items() if line.startswith(k)), line) for line in lines]
    return "\n".join([line for line in lines if line is not None] + sections) + "\n"
