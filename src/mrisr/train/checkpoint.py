"""ckpt/last.pt: everything needed to continue a run bit-for-bit, as plain data.

All values are tensors, numbers, strings, lists and dicts so that
torch.load(weights_only=True) reads them (no pickled objects: a checkpoint is data,
not code). Written atomically; a rerun resumes from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from mrisr.errors import InputError
from mrisr.io import atomic_path

CKPT_FORMAT = 1


def numpy_rng_state() -> dict:
    """np.random's legacy global state as lists/ints (weights_only cannot load ndarrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached)}


def set_numpy_rng_state(state: dict) -> None:
    np.random.set_state((state["name"], np.asarray(state["keys"], dtype=np.uint32), state["pos"],
                         state["has_gauss"], state["cached_gaussian"]))


def rng_states() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": numpy_rng_state(),
    }


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    set_numpy_rng_state(states["numpy"])


def save_checkpoint(path: Path, *, fingerprint: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, step: int, best_psnr: float, best_step: int, elapsed_s: float,
                    last_val_psnr: float | None) -> None:
    state = {
        "format": CKPT_FORMAT,
        "fingerprint": fingerprint,
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "best_psnr": float(best_psnr),
        "best_step": int(best_step),
        "elapsed_s": float(elapsed_s),
        "last_val_psnr": None if last_val_psnr is None else float(last_val_psnr),
        "rng": rng_states(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, fingerprint: str) -> dict:
    """The checkpoint dict; InputError if unreadable or made by a different run config."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or unsafe pickle
        raise InputError(path, f"unreadable checkpoint ({type(err).__name__}: {err}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise InputError(path, "not a training checkpoint of this format; delete it to start over")
    if state["fingerprint"] != fingerprint:
        raise InputError(path, "checkpoint was made with a different model/train config, seed or data; "
                               "delete the ckpt/ folder to start over")
    return state


def resumable_state(path: Path, fingerprint: str) -> dict | None:
    """The state to resume from, or None to start fresh.

    A checkpoint of the same run (same config, seed and data) resumes. One made under a
    different config is what Snakemake leaves behind when a config edit reruns `train`:
    the edit means "train this again", so that checkpoint is moved aside to
    `ckpt/stale/` (kept, never silently deleted) and training starts from step 0.
    A corrupt file still fails with InputError: that is damage, not an edit.
    """
    if not path.is_file():
        return None
    try:
        return load_checkpoint(path, fingerprint)
    except InputError as err:
        if "different model/train config" not in str(err):
            raise
    stale = path.parent / "stale"
    stale.mkdir(exist_ok=True)
    for old in sorted(path.parent.glob("*.pt")):
        old.replace(stale / old.name)
    print(f"[train] {path}: made under a different config, seed or data; moved to {stale}/ and starting fresh",
          file=sys.stderr)
    return None
