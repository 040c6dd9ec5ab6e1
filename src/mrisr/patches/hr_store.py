"""HR-only patch stores for arbitrary-scale models (Meta-SRGAN protocol).

An arbitrary-scale model trains on one minibatch scale at a time, drawn from 1.1…4.0, so its
LR cannot come from a per-scale `lr/` folder: the store holds HR patches only and the trainer
degrades each minibatch at its scale (`mrisr.train.gan`, `mrisr.degrade.patch`).

Sampling (the paper's BraTS protocol): every 2D slice of the prepared target series (the two
in-plane axes; slices along the remaining axis) contributes `per_slice` patches of `hr_patch`
whose corners are uniform over the slice (paper: 16 random 96×96 patches per slice). Draws
come from `default_rng([seed, STAGE_HR_PATCHES, split_id, crc32(subject)])`, so one subject's
patches never depend on which other subjects exist.

Store layout (docs/architecture.md): `hr` (N, H, W) float32, `subject` (N,) index into attr
`subjects`, `slice` (N,) slice index; attrs `task, kind="hr", dims, axes, hr_patch,
per_slice, config_hash, seed, code_version, subjects, split`. Reads `split.json` and
`prepared/{subject}/{series}.nii.gz` only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mrisr import __version__
from mrisr.errors import InputError
from mrisr.io import read_json, read_nifti
from mrisr.patches.sample import as_images
from mrisr.patches.store import SPLIT_IDS, config_hash, subject_key, write_store

STAGE_HR_PATCHES = 7  # stage id in the RNG seed tuple; distinct from the pair stores' STAGE_PATCHES


def sample_slice_patches(images: np.ndarray, hr_patch: tuple[int, int], per_slice: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(patches (S·per_slice, h, w), slice index of each) from images (S, H, W)."""
    n_slices, height, width = images.shape
    h, w = hr_patch
    if h > height or w > width:
        raise ValueError(f"hr_patch {[h, w]} is larger than the slices {[height, width]}")
    rows = rng.integers(0, height - h + 1, size=(n_slices, per_slice))
    cols = rng.integers(0, width - w + 1, size=(n_slices, per_slice))
    patches = np.empty((n_slices * per_slice, h, w), dtype=np.float32)
    slices = np.repeat(np.arange(n_slices, dtype=np.int32), per_slice)
    for k, (z, r, c) in enumerate(zip(slices, rows.ravel(), cols.ravel())):
        patches[k] = images[z, r:r + h, c:c + w]
    return patches, slices


def build_hr_store(out_path: Path, task: str, split_file: Path, split: str, prepared_dir: Path, series: str,
                   hr_patch: tuple[int, int], per_slice: int, seed: int, axes: tuple[int, int] = (0, 1)) -> int:
    """Sample HR patches of every 2D slice of every subject of `split`; write the store
    atomically. Returns N."""
    if len(hr_patch) != 2 or len(axes) != 2:
        raise ValueError(f"HR-only stores are 2D: hr_patch {list(hr_patch)} and axes {list(axes)} need 2 entries")
    if per_slice < 1:
        raise ValueError(f"per_slice must be >= 1, got {per_slice}")
    subjects = sorted(read_json(split_file).get(split) or [])
    if not subjects:
        raise InputError(split_file, f"split {split!r} has no subjects")
    hr_parts, subj_parts, slice_parts = [], [], []
    for idx, subject in enumerate(subjects):
        path = Path(prepared_dir) / subject / f"{series}.nii.gz"
        vol, _ = read_nifti(path, canonical=False)
        if vol.ndim != 3:
            raise InputError(path, f"HR-only stores take 3D series (slices of 2D images), got shape {vol.shape}")
        images = as_images(vol, tuple(axes))
        if any(p > n for p, n in zip(hr_patch, images.shape[1:])):
            raise InputError(path, f"hr_patch {list(hr_patch)} is larger than its slices {list(images.shape[1:])}")
        rng = np.random.default_rng([seed, STAGE_HR_PATCHES, SPLIT_IDS[split], subject_key(subject)])
        patches, slices = sample_slice_patches(images, tuple(hr_patch), per_slice, rng)
        hr_parts.append(patches)
        subj_parts.append(np.full(len(patches), idx, dtype=np.int32))
        slice_parts.append(slices)
    arrays = {"hr": np.concatenate(hr_parts), "subject": np.concatenate(subj_parts),
              "slice": np.concatenate(slice_parts)}
    params = {"task": task, "kind": "hr", "split": split, "subjects": subjects, "series": series,
              "hr_patch": list(hr_patch), "per_slice": per_slice, "seed": seed, "axes": list(axes)}
    attrs = {
        "task": task,
        "kind": "hr",
        "dims": 2,
        "axes": json.dumps(list(axes)),
        "hr_patch": json.dumps(list(hr_patch)),
        "per_slice": int(per_slice),
        "config_hash": config_hash(params),
        "seed": int(seed),
        "code_version": __version__,
        "subjects": json.dumps(subjects),
        "split": split,
    }
    write_store(Path(out_path), arrays, attrs)
    return int(arrays["hr"].shape[0])
