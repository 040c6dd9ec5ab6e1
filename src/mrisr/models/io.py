"""Model files: plain-data torch.save (loadable with weights_only=True), written atomically.

Layout (docs/architecture.md): {"arch", "args" (JSON str), "scale", "dims",
"grid_convention", "state_dict", "step", "val_psnr"}. Storing the architecture name and
args instead of a pickled module lets `load_model` rebuild it through the registry and
keeps the file safe to load. A model config's `init_from` names a model file whose weights start
another run: `init_source` pins it by its digest, `fitting_state_dict` checks they fit exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mrisr.errors import InputError
from mrisr.grid import integer_scale
from mrisr.io import atomic_path
from mrisr.models.registry import build_model

MODEL_KEYS = ("arch", "args", "scale", "dims", "grid_convention", "state_dict", "step", "val_psnr")


def plain_scale(scale: float) -> int | float:
    """2.0 → 2 (so the file says what the model was built with), 2.5 stays a float."""
    s = integer_scale(scale)
    return s if s is not None else float(scale)


def model_record(model: nn.Module, *, arch: str, args: dict, scale, dims: int, grid_convention: str,
                 step: int, val_psnr: float) -> dict:
    """The dict written to a model file; tensors are detached CPU copies."""
    return {
        "arch": str(arch),
        "args": json.dumps(args, sort_keys=True),
        "scale": plain_scale(scale),
        "dims": int(dims),
        "grid_convention": str(grid_convention),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "step": int(step),
        "val_psnr": float(val_psnr),
    }


def save_model(path, model: nn.Module, *, arch: str, args: dict, scale, dims: int, grid_convention: str,
               step: int, val_psnr: float) -> None:
    record = model_record(model, arch=arch, args=args, scale=scale, dims=dims, grid_convention=grid_convention,
                          step=step, val_psnr=val_psnr)
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def read_model_record(path, device: str | torch.device = "cpu") -> dict:
    """The raw model-file dict; InputError naming the file if it is missing or not a model file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    try:
        record = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe pickles
        raise InputError(path, f"unreadable model file ({type(err).__name__}: {err})") from None
    missing = [k for k in MODEL_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise InputError(path, f"not a model file (missing keys {missing})")
    return record


def load_model(path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model through the registry, load its weights, move to `device`, eval mode."""
    record = read_model_record(path, device)
    try:
        model = build_model(record["arch"], scale=record["scale"], dims=record["dims"],
                            grid_convention=record["grid_convention"], **json.loads(record["args"]))
        model.load_state_dict(record["state_dict"])
    except (ValueError, RuntimeError) as err:
        raise InputError(path, f"cannot rebuild model: {err}") from None
    return model.to(device).eval()


@dataclass(frozen=True)
class InitFrom:
    """Initial weights from another trained model (`models.<m>.init_from`): the file and its digest."""

    path: Path
    sha256: str


def init_source(path: Path) -> InitFrom:
    if not path.is_file():
        raise InputError(path, "init_from model file not found (train the source model first)")
    with open(path, "rb") as f:
        return InitFrom(path, hashlib.file_digest(f, "sha256").hexdigest())


def fitting_state_dict(path: Path, model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """The weights of model file `path`, checked to fit `model` (of `arch`) exactly (arch, keys,
    shapes): a partial or reshaped load would silently train something else."""
    record = read_model_record(path)
    if record["arch"] != arch:
        raise InputError(path, f"init_from model is arch {record['arch']!r}, this model is {arch!r}")
    own, src = model.state_dict(), record["state_dict"]
    problems = [f"missing {sorted(set(own) - set(src))[:3]}" if set(own) - set(src) else "",
                f"unexpected {sorted(set(src) - set(own))[:3]}" if set(src) - set(own) else ""]
    shapes = [f"{k} {tuple(src[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in src and src[k].shape != v.shape]
    problems.append(f"shapes differ: {'; '.join(shapes[:3])}" if shapes else "")
    if any(problems):
        raise InputError(path, "init_from weights do not fit this model (" + ", ".join(p for p in problems if p)
                         + "); check the source's args and scale")
    return src
