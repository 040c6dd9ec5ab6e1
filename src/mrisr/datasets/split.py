"""Subject-level, seeded train/val/test split."""

from __future__ import annotations

import zlib

import numpy as np

STAGE_SPLIT = 3


def split_counts(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """(train, val, test) counts: test and val rounded from their ratios (≥1 each when their
    ratio is > 0: an empty val or test split would break training or evaluation), train the rest."""
    r = np.asarray(ratios, dtype=float)
    if r.shape != (3,) or (r < 0).any() or r.sum() <= 0:
        raise ValueError(f"split ratios must be three non-negative numbers, got {list(ratios)}")
    r = r / r.sum()
    n_test, n_val = (int(round(x * n)) for x in (r[2], r[1]))
    n_test = max(n_test, 1) if r[2] > 0 else 0
    n_val = max(n_val, 1) if r[1] > 0 else 0
    n_train = n - n_test - n_val
    if r[0] > 0 and n_train < 1:
        raise ValueError(f"{n} subjects cannot be split {list(ratios)} with at least one per split")
    if r[0] == 0:
        n_test += n_train
        n_train = 0
    return n_train, n_val, n_test


def make_split(subjects: list[str], ratios: tuple[float, float, float], seed: int, dataset: str) -> dict:
    """Seeded permutation of the sorted subjects -> {"train","val","test"} (each sorted)."""
    subjects = sorted(set(subjects))
    n_train, n_val, _ = split_counts(len(subjects), ratios)
    rng = np.random.default_rng([seed, STAGE_SPLIT, zlib.crc32(dataset.encode())])
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    return {"train": sorted(order[:n_train]), "val": sorted(order[n_train:n_train + n_val]),
            "test": sorted(order[n_train + n_val:]), "seed": seed, "ratios": list(ratios)}
