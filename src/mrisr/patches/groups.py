"""Patch stores of the UDEAN data groups (mrisr.datasets.groups), `task` sisr3d like the paired
val store they are validated on.

Two store families, both written by `build_group_store`:
* pairs — datasets `hr`, `lr`, `subject` (the ordinary contract), but the HR volume may come
  from another folder than the LR sidecar's `hr_source`: the motion-simulated HR
  ("misaligned pairs"), the same registered back ("registered pairs"). For "nearest pairs" the
  LR folder is the nearest-decimated one and HR the prepared volume.
* source/target — datasets `source_hr` `(Ns, *hr_patch)`, `target_lr` `(Nt, *lr_patch)`,
  `source_subject`, `target_subject` (DESIGN.md's unpaired contract): HR patches of the source
  subjects and LR patches of the target subjects, cut independently (own RNG streams) so that
  even the "misaligned" flavour — the same subjects on both sides — never yields aligned pairs.
  Target patches are chosen by the foreground of the LR patch itself: the target group has no
  HR to look at. HR patch corners sit on multiples of the scale, so a source patch's samples at
  i·s are LR-grid samples ("corner") and its s³ blocks LR-grid cells ("center").
Draws come from numpy.random.default_rng([seed, STAGE_PATCHES, stream, crc32(subject)]), one
stream per role (disjoint from the split ids 0–2 of mrisr.patches.store).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mrisr import __version__
from mrisr.errors import InputError
from mrisr.grid import Grid
from mrisr.io import read_json, read_nifti
from mrisr.patches.sample import FG_LEVEL, MAX_TRIES, PatchSpec, check_grid, sample_pairs
from mrisr.patches.store import STAGE_PATCHES, config_hash, subject_key, write_store

STREAM_PAIRS, STREAM_SOURCE, STREAM_TARGET = 10, 11, 12
PAIR_KINDS = ("misaligned_pairs", "registered_pairs", "nearest_pairs")
UNPAIRED_KINDS = ("udean_misaligned", "udean_unpaired")
KINDS = PAIR_KINDS + UNPAIRED_KINDS


def load_lr(lr_dir: Path, subject: str) -> tuple[np.ndarray, Grid, dict]:
    """(LR volume, its grid, its sidecar) of one subject."""
    side_path = Path(lr_dir) / f"{subject}.json"
    side = read_json(side_path)
    try:
        grid = Grid.from_json(side["grid"])
    except KeyError as err:
        raise InputError(side_path, f"missing key {err}") from None
    lr, _ = read_nifti(Path(lr_dir) / f"{subject}.nii.gz", canonical=False)
    if tuple(lr.shape) != grid.lr_shape:
        raise InputError(side_path, f"grid LR shape {grid.lr_shape} does not match the file's {lr.shape}")
    return lr, grid, side


def load_hr(hr_dir: Path | None, subject: str, side: dict, grid: Grid) -> np.ndarray:
    """HR of a subject: `hr_dir/{subject}.nii.gz` when given, else the LR sidecar's hr_source."""
    path = Path(hr_dir) / f"{subject}.nii.gz" if hr_dir else Path(side["hr_source"])
    hr, _ = read_nifti(path, canonical=False)
    if tuple(hr.shape) != grid.hr_shape:
        raise InputError(path, f"shape {hr.shape} differs from the LR grid's HR shape {grid.hr_shape}")
    return hr


def foreground_corner(rng: np.random.Generator, image: np.ndarray, patch: tuple[int, ...],
                      fg_fraction: float) -> tuple[int, ...]:
    """A random patch corner of `image`, retried until the patch is ≥ fg_fraction foreground."""
    for _ in range(MAX_TRIES):
        corner = tuple(int(rng.integers(n - p + 1)) for n, p in zip(image.shape, patch))
        window = image[tuple(slice(c, c + p) for c, p in zip(corner, patch))]
        if (window > FG_LEVEL).mean() >= fg_fraction:
            break
    return corner


def sample_hr_patches(hr: np.ndarray, grid: Grid, scale: float, spec: PatchSpec,
                      rng: np.random.Generator) -> np.ndarray:
    """spec.n HR patches with corners on multiples of the scale (foreground test on the HR patch)."""
    s = check_grid(grid, scale, spec.hr_patch)
    lr_patch = tuple(p // s for p in spec.hr_patch)
    lr_shape = tuple(n // s for n in hr.shape)
    out = []
    for _ in range(spec.n):
        for _try in range(MAX_TRIES):
            corner = [s * int(rng.integers(n - lp + 1)) for n, lp in zip(lr_shape, lr_patch)]
            patch = hr[tuple(slice(c, c + p) for c, p in zip(corner, spec.hr_patch))]
            if (patch > FG_LEVEL).mean() >= spec.fg_fraction:
                break
        out.append(patch)
    return np.stack(out).astype(np.float32)


def sample_lr_patches(lr: np.ndarray, grid: Grid, scale: float, spec: PatchSpec,
                      rng: np.random.Generator) -> np.ndarray:
    """spec.n LR patches of hr_patch / s (foreground test on the LR patch itself)."""
    s = check_grid(grid, scale, spec.hr_patch)
    lr_patch = tuple(p // s for p in spec.hr_patch)
    if any(p > n for p, n in zip(lr_patch, lr.shape)):
        raise ValueError(f"LR patch {list(lr_patch)} larger than LR image {list(lr.shape)}")
    out = []
    for _ in range(spec.n):
        corner = foreground_corner(rng, lr, lr_patch, spec.fg_fraction)
        out.append(lr[tuple(slice(c, c + p) for c, p in zip(corner, lr_patch))])
    return np.stack(out).astype(np.float32)


def subject_rng(seed: int, stream: int, subject: str) -> np.random.Generator:
    return np.random.default_rng([seed, STAGE_PATCHES, stream, subject_key(subject)])


def pair_arrays(subjects: list[str], lr_dir: Path, hr_dir: Path | None, scale: float, spec: PatchSpec,
                seed: int) -> tuple[dict[str, np.ndarray], Grid]:
    parts, grid = [], None
    for idx, subject in enumerate(subjects):
        lr, grid, side = load_lr(lr_dir, subject)
        hr = load_hr(hr_dir, subject, side, grid)
        pairs = sample_pairs(hr, lr, grid, scale, spec, subject_rng(seed, STREAM_PAIRS, subject))
        pairs["subject"] = np.full(spec.n, idx, dtype=np.int32)
        parts.append(pairs)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, grid


def unpaired_arrays(source: list[str], target: list[str], lr_dir: Path, hr_dir: Path | None, scale: float,
                    spec: PatchSpec, seed: int) -> tuple[dict[str, np.ndarray], Grid]:
    src, tgt, grid = [], [], None
    for subject in source:
        _lr, grid, side = load_lr(lr_dir, subject)
        hr = load_hr(hr_dir, subject, side, grid)
        src.append(sample_hr_patches(hr, grid, scale, spec, subject_rng(seed, STREAM_SOURCE, subject)))
    for subject in target:
        lr, grid, _side = load_lr(lr_dir, subject)
        tgt.append(sample_lr_patches(lr, grid, scale, spec, subject_rng(seed, STREAM_TARGET, subject)))
    arrays = {"source_hr": np.concatenate(src), "target_lr": np.concatenate(tgt),
              "source_subject": np.repeat(np.arange(len(source), dtype=np.int32), spec.n),
              "target_subject": np.repeat(np.arange(len(target), dtype=np.int32), spec.n)}
    return arrays, grid


def group_subjects(kind: str, groups: dict) -> tuple[list[str], list[str]]:
    """(source-or-pair subjects, target subjects) of a store kind."""
    if kind in ("misaligned_pairs", "registered_pairs"):
        return groups["target"], []
    if kind == "nearest_pairs":
        return groups["source"], []  # simulated pairs from the HR one has: the source group's
    if kind == "udean_misaligned":
        return groups["target"], groups["target"]
    return groups["source"], groups["target"]


def build_group_store(out_path: Path, kind: str, groups_file: Path, lr_dir: Path, scale: float,
                      hr_patch: tuple[int, ...], n_per_subject: int, seed: int, hr_dir: Path | None = None,
                      fg_fraction: float = 0.25) -> int:
    """Write one group store atomically; returns its number of (source) patches.

    lr_dir: LR folder of the pairs, or of the target LR (and the source subjects' LR grids);
    hr_dir: HR folder replacing the LR sidecars' hr_source (motion-simulated or registered HR)."""
    if kind not in KINDS:
        raise ValueError(f"unknown group store kind {kind!r}; expected one of {KINDS}")
    groups = read_json(groups_file)
    try:
        first, target = group_subjects(kind, groups)
    except KeyError as err:
        raise InputError(groups_file, f"missing group {err}") from None
    if not first or (kind in UNPAIRED_KINDS and not target):
        raise InputError(groups_file, f"store {kind!r} needs non-empty groups")
    spec = PatchSpec(hr_patch=tuple(hr_patch), n=n_per_subject, fg_fraction=fg_fraction)
    if kind in PAIR_KINDS:
        arrays, grid = pair_arrays(first, Path(lr_dir), hr_dir, scale, spec, seed)
        lr_patch = list(arrays["lr"].shape[1:])
    else:
        arrays, grid = unpaired_arrays(first, target, Path(lr_dir), hr_dir, scale, spec, seed)
        lr_patch = list(arrays["target_lr"].shape[1:])
    params = {"kind": kind, "subjects": first, "target_subjects": target, "scale": scale, "hr_patch": list(hr_patch),
              "n_per_subject": n_per_subject, "seed": seed, "fg_fraction": fg_fraction,
              "hr_dir": str(hr_dir) if hr_dir else None, "lr_dir": str(lr_dir), "grid": grid.convention}
    attrs = {"task": "sisr3d", "group_store": kind, "scale": float(scale), "dims": len(grid.axes),
             "axes": json.dumps(list(grid.axes)), "hr_patch": json.dumps(list(hr_patch)),
             "lr_patch": json.dumps(lr_patch), "grid_convention": grid.convention,
             "config_hash": config_hash(params), "seed": int(seed), "code_version": __version__,
             "subjects": json.dumps(first), "target_subjects": json.dumps(target), "split": "train"}
    write_store(Path(out_path), arrays, attrs)
    return int(next(iter(arrays.values())).shape[0])
