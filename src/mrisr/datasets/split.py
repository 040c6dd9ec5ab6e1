"""Subject-level train/val/test split: a seeded draw by ratios, or the lists of a split file."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import yaml

from mrisr.errors import InputError

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


SPLITS = ("train", "val", "test")


def read_split_file(path: Path) -> dict[str, list[str]]:
    """A split file: YAML or JSON {train: [...], val: [...], test: [...]} of subject IDs (e.g. a
    published pair list). One InputError line naming the file for any problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "split file not found") from None
    except (OSError, yaml.YAMLError) as err:
        raise InputError(path, f"unreadable split file ({type(err).__name__})") from None
    if not isinstance(data, dict) or sorted(data) != sorted(SPLITS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise InputError(path, f"a split file maps exactly train, val, test to lists of subject IDs, got {got}")
    lists = {}
    for k in SPLITS:
        v = data[k] or []
        if not isinstance(v, list) or not all(isinstance(s, (str, int)) for s in v):
            raise InputError(path, f"{k}: expected a list of subject IDs")
        lists[k] = [str(s) for s in v]
    return lists


def split_from_file(subjects: list[str], path: Path) -> dict:
    """The split.json of a split file: exactly its lists (subjects of the inventory it does not
    name are left out); every listed subject must be in the inventory and in one list only."""
    lists = read_split_file(path)
    known = set(subjects)
    seen: dict[str, str] = {}
    for k in SPLITS:
        for s in lists[k]:
            if s in seen:
                raise InputError(path, f"subject {s!r} is listed in both {seen[s]} and {k}")
            seen[s] = k
    unknown = sorted(set(seen) - known)
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InputError(path, f"{len(unknown)} listed subjects are not in the dataset's inventory: "
                               f"{unknown[:5]}{more}")
    return {**{k: sorted(lists[k]) for k in SPLITS}, "file": str(path), "n_unlisted": len(known - set(seen))}
