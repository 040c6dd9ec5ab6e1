"""ckpt/last.pt: everything needed to continue a run bit-for-bit, as plain data.

Only tensors, numbers, strings, lists and dicts, so that torch.load(weights_only=True) reads
it (a checkpoint is data, not code); written atomically. Optimizers and schedulers are dicts
by name ("model", or "g" and "d"), and the log history travels with the weights, so log.csv
can be rebuilt on resume even after Snakemake deleted it.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from mrisr.errors import InputError
from mrisr.io import atomic_path

CKPT_FORMAT = 2  # 2: dicts of optimizers/schedulers, log history


def rng_states() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # as lists/ints: weights_only loads no ndarray
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)}}


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))


def save_checkpoint(path: Path, *, fingerprint: str, nets: torch.nn.Module, optimizers: dict, schedulers: dict,
                    progress: dict, history: list[dict]) -> None:
    """`progress`: step, best_psnr, best_step, elapsed_s, last_val_psnr (plain numbers)."""
    state = {
        "format": CKPT_FORMAT,
        "fingerprint": fingerprint,
        "model": {k: v.detach().cpu().clone() for k, v in nets.state_dict().items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: None if s is None else s.state_dict() for name, s in schedulers.items()},
        **progress,
        "history": [dict(row) for row in history],
        "rng": rng_states(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def fingerprint_name(fingerprint: str) -> str:
    """A short file-name-safe name for a run's fingerprint."""
    return hashlib.sha256(str(fingerprint).encode()).hexdigest()[:16]


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """folder/stem+suffix, or stem-2, stem-3, … if taken: a stale checkpoint is never overwritten."""
    path, k = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, k = folder / f"{stem}-{k}{suffix}", k + 1
    return path


def resumable_state(path: Path, fingerprint: str) -> dict | None:
    """The checkpoint to resume from, or None to start fresh.

    A checkpoint of another run (config, seed, data or format) is what Snakemake leaves behind
    when a config edit reruns `train`: the edit means "train this again", so last.pt (and
    best.pt beside it) is moved to `ckpt/stale/<its fingerprint>.pt` (`.best.pt`) — kept, never
    overwritten — and training starts from step 0. An unreadable file is damage, not an edit:
    InputError.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or unsafe pickle
        raise InputError(path, f"unreadable checkpoint ({type(err).__name__}: {err}); delete it to start over") from None
    if not isinstance(state, dict) or "fingerprint" not in state or "format" not in state:
        raise InputError(path, "not a training checkpoint; delete it to start over")
    if state["format"] == CKPT_FORMAT and state["fingerprint"] == fingerprint:
        return state
    stale = path.parent / "stale"
    stale.mkdir(exist_ok=True)
    moved = free_name(stale, fingerprint_name(state["fingerprint"]), ".pt")
    path.replace(moved)
    best = path.parent / "best.pt"
    if best.is_file():
        best.replace(free_name(stale, moved.stem, ".best.pt"))
    print(f"[train] {path}: made under a different config, seed or data; moved to {moved} and starting fresh",
          file=sys.stderr)
    return None
