"""HDF5 patch stores: one file per task, scale and split (contract in docs/architecture.md)."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np

from mrisr import __version__
from mrisr.errors import InputError
from mrisr.grid import Grid
from mrisr.io import atomic_path, read_json, read_nifti
from mrisr.io.hdf5 import h5_writer
from mrisr.patches.sample import ClipSpec, PatchSpec, sample_clips, sample_pairs

STAGE_PATCHES = 4  # stage id in the RNG seed tuple (seed, stage, split, subject)
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def subject_key(subject: str) -> int:
    """Stable integer for a subject id (Python's hash() is salted per process)."""
    return zlib.crc32(subject.encode("utf-8"))


def config_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def load_subject(lr_dir: Path, subject: str, reference: str | None):
    """(hr, lr, grid, ref) of one subject from its LR sidecar and the prepared files it names."""
    sidecar_path = lr_dir / f"{subject}.json"
    side = read_json(sidecar_path)
    try:
        grid = Grid.from_json(side["grid"])
        hr_path = Path(side["hr_source"])
    except KeyError as err:
        raise InputError(sidecar_path, f"missing key {err}") from None
    lr, _ = read_nifti(lr_dir / f"{subject}.nii.gz", canonical=False)
    hr, _ = read_nifti(hr_path, canonical=False)
    if tuple(hr.shape) != grid.hr_shape or tuple(lr.shape) != grid.lr_shape:
        raise InputError(sidecar_path, f"grid shapes {grid.hr_shape}/{grid.lr_shape} do not match files {hr.shape}/{lr.shape}")
    ref = None
    if reference:
        ref_path = hr_path.with_name(f"{reference}.nii.gz")
        ref, _ = read_nifti(ref_path, canonical=False)
        if ref.shape != hr.shape:
            raise InputError(ref_path, f"reference shape {ref.shape} differs from target {hr.shape}")
    return hr, lr, grid, ref


def cycle_of(lr_dir: Path, subject: str) -> tuple[int, int]:
    """0-based (ED, ES) of a cine from the prepared sidecar its LR sidecar names."""
    hr_source = Path(read_json(lr_dir / f"{subject}.json")["hr_source"])
    side_path = hr_source.with_name(hr_source.name.removesuffix(".nii.gz") + ".json")
    side = read_json(side_path)
    try:
        return int(side["ed"]), int(side["es"])
    except KeyError as err:
        raise InputError(side_path, f"missing cine key {err} (ED/ES frame indices)") from None


def build_store(
    out_path: Path,
    task: str,
    split_file: Path,
    split: str,
    lr_dir: Path,
    scale: float,
    hr_patch: tuple[int, ...],
    n_per_subject: int,
    seed: int,
    reference: str | None = None,
    fg_fraction: float = 0.25,
    clip: tuple[int, int] | None = None,
) -> int:
    """Sample patches (or, with clip=(frames, warmup), cine clips + phase codes) for every
    subject of `split` and write the store atomically. Returns N."""
    split_data = read_json(split_file)
    if not isinstance(split_data, dict) or not isinstance(split_data.get(split), list):
        keys = sorted(split_data) if isinstance(split_data, dict) else type(split_data).__name__
        raise InputError(split_file, f"no {split!r} subject list (has {keys})")
    subjects = sorted(split_data[split])
    if not subjects:
        raise InputError(split_file, f"split {split!r} has no subjects")
    spec = PatchSpec(hr_patch=tuple(hr_patch), n=n_per_subject, fg_fraction=fg_fraction)
    parts: list[dict[str, np.ndarray]] = []
    grid = None
    for idx, subject in enumerate(subjects):
        hr, lr, grid, ref = load_subject(lr_dir, subject, reference)
        rng = np.random.default_rng([seed, STAGE_PATCHES, SPLIT_IDS[split], subject_key(subject)])
        if clip is None:
            pairs = sample_pairs(hr, lr, grid, scale, spec, rng, ref)
        else:
            ed, es = cycle_of(lr_dir, subject)
            cspec = ClipSpec(tuple(hr_patch), n_per_subject, clip[0], clip[1], fg_fraction)
            pairs = sample_clips(hr, lr, grid, scale, cspec, ed, es, rng)
        pairs["subject"] = np.full(spec.n, idx, dtype=np.int32)
        parts.append(pairs)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    params = {"task": task, "split": split, "subjects": subjects, "scale": scale, "hr_patch": list(hr_patch),
              "n_per_subject": n_per_subject, "seed": seed, "reference": reference, "fg_fraction": fg_fraction,
              "grid": grid.to_json()["convention"], "clip": list(clip) if clip else None}
    attrs = {
        "task": task,
        "scale": float(scale),
        "dims": len(grid.axes),
        "axes": json.dumps(list(grid.axes)),
        "hr_patch": json.dumps(list(hr_patch)),
        "lr_patch": json.dumps(list(arrays["lr"].shape[-len(hr_patch):])),
        "grid_convention": grid.convention,
        "config_hash": config_hash(params),
        "seed": int(seed),
        "code_version": __version__,
        "subjects": json.dumps(subjects),
        "split": split,
        "clip": json.dumps(list(clip) if clip else None),  # (central frames, warm-up frames) for video stores
    }
    write_store(out_path, arrays, attrs)
    return int(arrays["hr"].shape[0])


def write_store(path: Path, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    """One chunk per sample, no compression (random single-sample reads ~150x faster
    than gzip chunks of 64 here), no timestamps (so identical inputs give identical files).
    A write that fails (disk full) is one InputError naming the store, and no file is left
    (mrisr.io.hdf5.h5_writer, atomic_path)."""
    try:
        with atomic_path(path) as tmp:
            with h5_writer(tmp, track_order=True) as f:
                for name, arr in arrays.items():
                    chunks = (1,) + arr.shape[1:] if arr.ndim > 1 else None
                    f.create_dataset(name, data=arr, chunks=chunks, track_times=False)
                for k, v in attrs.items():
                    f.attrs[k] = v
    except OSError as err:  # the partial temporary file is gone already (atomic_path)
        raise InputError(path, f"cannot write the patch store ({err.strerror or err}); nothing was written") from None
