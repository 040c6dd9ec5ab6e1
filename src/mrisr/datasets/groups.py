"""UDEAN data groups: the train subjects of split.json divided into a *target* group (LR only
is used, plus its motion-simulated HR for the "misaligned" flavour) and a disjoint *source*
group (its HR is the "unpaired" flavour's source). Val and test keep split.json's true pairs.

The paper uses 120 target + 120 source / 30 val / 30 test subjects: split ratios
[0.8, 0.1, 0.1] with source_fraction 0.5 reproduce those proportions at any set size.
The division is a seeded permutation of the sorted train subjects (seed, stage, dataset), so
it never depends on which other files exist.
"""

from __future__ import annotations

import zlib

import numpy as np

STAGE_GROUPS = 6  # stage id in the RNG seed tuple (split = 3, patches = 4, motion = 5)
GROUPS = ("target", "source", "val", "test")


def make_groups(split: dict, source_fraction: float, seed: int, dataset: str) -> dict:
    """{"target", "source", "val", "test": sorted subjects, "seed", "source_fraction"} from a split."""
    if not 0.0 < source_fraction < 1.0:
        raise ValueError(f"source_fraction must lie strictly between 0 and 1, got {source_fraction}")
    train = sorted(set(split["train"]))
    n_source = int(round(source_fraction * len(train)))
    if n_source < 1 or n_source >= len(train):
        raise ValueError(f"{len(train)} train subjects cannot give non-empty target and source groups "
                         f"with source_fraction {source_fraction}")
    rng = np.random.default_rng([seed, STAGE_GROUPS, zlib.crc32(dataset.encode())])
    order = [train[i] for i in rng.permutation(len(train))]
    return {"target": sorted(order[n_source:]), "source": sorted(order[:n_source]),
            "val": sorted(split["val"]), "test": sorted(split["test"]),
            "seed": int(seed), "source_fraction": float(source_fraction)}
