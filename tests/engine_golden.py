"""Tiny stores and short runs of every training kind, for the 'same weights as before' guard.

`weights_digest(kind, tmp)` trains one small model of each kind for a few steps (CPU, one
thread) and returns sha256 digests of (a) the saved model.pt state_dict and (b) every
trained network in ckpt/last.pt (discriminators, UDEAN's degradation half included).
The digests recorded in test_engine_golden.py were produced by the training loops as they
were before the engine refactor (commit c9736c6, through the entry points named in run_kind), so equal digests mean the refactor did
not change what a config and seed train to: same init, RNG consumption order, optimizer
settings and step arithmetic. Run this file directly to print the digests of the code as it is.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch

SEED = 5


def _write(path: Path, arrays: dict[str, np.ndarray], attrs: dict) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, chunks=(1, *v.shape[1:]) if v.ndim > 1 else None, track_times=False)
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def pair_store(path: Path, n: int, lr_shape: tuple[int, ...], scale: int, convention: str, tag: str,
               ref: bool = False) -> Path:
    """An ordinary pair store (docs/architecture.md) with random LR and block-upsampled HR."""
    rng = np.random.default_rng(len(tag) * 1000 + n)
    lr = rng.uniform(0, 1, (n, *lr_shape)).astype(np.float32)
    hr = lr
    for axis in range(1, lr.ndim):
        hr = np.repeat(hr, scale, axis=axis)
    arrays = {"lr": lr, "hr": hr.astype(np.float32), "subject": np.arange(n, dtype=np.int32) % 2}
    if ref:
        arrays["ref"] = np.clip(hr + 0.1 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)
    dims = len(lr_shape)
    attrs = {"task": "t", "scale": float(scale), "dims": dims, "axes": json.dumps(list(range(dims))),
             "hr_patch": json.dumps(list(hr.shape[1:])), "lr_patch": json.dumps(list(lr_shape)),
             "grid_convention": convention, "config_hash": tag, "seed": 0, "code_version": "test",
             "subjects": json.dumps(["a", "b"])}
    return _write(path, arrays, attrs)


def hr_store(path: Path, n: int, size: int, tag: str) -> Path:
    rng = np.random.default_rng(n * 7 + size)
    yy, xx = np.mgrid[:size, :size] / size
    hr = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(1, 4) * yy + rng.uniform(1, 4) * xx))
                   for _ in range(n)]).astype(np.float32)
    return _write(path, {"hr": hr}, {"task": "sisr2d", "config_hash": tag})


STEPS = {"steps": 3, "batch_size": 2, "val_every": 2, "ckpt_every": 2, "log_every": 1}

CASES: dict[str, dict] = {
    "edsr": {"trainer": "supervised", "arch": "edsr", "args": {"n_feats": 4, "n_blocks": 1},
             "train": {**STEPS, "lr": 1e-3}},
    "minet": {"trainer": "supervised", "arch": "minet",
              "args": {"n_feats": 4, "n_groups": 1, "n_blocks": 1, "reduction": 2},
              "train": {**STEPS, "lr": 1e-3}},
    "rcan3d": {"trainer": "supervised", "arch": "rcan3d",
               "args": {"n_feats": 4, "n_groups": 1, "n_blocks": 1, "reduction": 2},
               "train": {**STEPS, "lr": 1e-3}},
    "meta_srgan": {"trainer": "adversarial", "arch": "meta_srgan", "args": {"n_feats": 4, "n_blocks": 1, "hidden": 8},
                   "disc": {"n_feats": 4, "n_stages": 2, "fc": 8},
                   "train": {**STEPS, "scales": [1.5, 2.0]}},
    "srgan": {"trainer": "adversarial", "arch": "srgan", "args": {"n_feats": 4, "n_blocks": 1},
              "disc": {"n_feats": 4, "n_stages": 2, "fc": 8}, "train": {**STEPS}},
    "udean": {"trainer": "udean", "arch": "udean", "args": {"n_feats": 4, "n_groups": 1, "n_blocks": 1, "reduction": 2},
              "udean": {"deg_layers": 2, "lr_dec_groups": 1, "lr_dec_blocks": 1, "disc_feats": 4, "disc_stages": 2},
              "train": {**STEPS, "lr": 1e-3}},
}


def stores_for(kind: str, d: Path) -> tuple[Path, Path]:
    if kind == "edsr":
        return (pair_store(d / "t.h5", 8, (6, 6), 2, "center", "tr"), pair_store(d / "v.h5", 2, (6, 6), 2, "center", "va"))
    if kind == "minet":
        return (pair_store(d / "t.h5", 8, (6, 6), 2, "corner", "tr", ref=True),
                pair_store(d / "v.h5", 2, (6, 6), 2, "corner", "va", ref=True))
    if kind in ("rcan3d", "udean"):
        return (pair_store(d / "t.h5", 6, (3, 3, 3), 2, "corner", "tr"),
                pair_store(d / "v.h5", 2, (3, 3, 3), 2, "corner", "va"))
    if kind == "srgan":
        return (pair_store(d / "t.h5", 8, (8, 8), 2, "center", "tr"), pair_store(d / "v.h5", 2, (8, 8), 2, "center", "va"))
    return hr_store(d / "t.h5", 8, 16, "tr"), hr_store(d / "v.h5", 2, 16, "va")


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        if isinstance(v, torch.Tensor):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_kind(cfg: dict, train_h5: Path, val_h5: Path, out: Path) -> Path:
    """Train through the public entry point (`trainer` picks the kind). Before the refactor the
    digests came from mrisr.train.loop.train, train.gan.train_gan and train.udean.train_udean
    (the train store as both source and target) with the same configs minus `trainer`."""
    from mrisr.train import train_model

    return train_model(cfg, train_h5, val_h5, out, SEED, "cpu")


def weights_digest(kind: str, tmp: Path) -> tuple[str, str]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_h5, val_h5 = stores_for(kind, tmp)
        model = run_kind(CASES[kind], train_h5, val_h5, tmp / "out")
        record = torch.load(model, weights_only=True)
        last = torch.load(tmp / "out" / "ckpt" / "last.pt", weights_only=True)
        return digest(record["state_dict"]), digest(last["model"])
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    out = {}
    for kind in (sys.argv[1:] or CASES):
        with tempfile.TemporaryDirectory() as d:
            out[kind] = weights_digest(kind, Path(d))
            print(kind, out[kind], flush=True)
    print(json.dumps(out, indent=1))
