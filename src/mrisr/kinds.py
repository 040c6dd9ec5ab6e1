"""The kinds the workflow branches on, each defined once as a table.

The config schema's enums (workflow/schemas/config.schema.yaml) list the same names; a test
asserts they are equal, so adding a kind means adding a row here and the name there.
Pure data: the Snakefile imports it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Degradation:
    """One `degradation.mode`: how the LR is made and where its samples lie."""

    convention: str  # mrisr.grid convention of the LR samples: "corner" or "center"
    any_scale: bool  # non-integer scales allowed (False: the HR axes must divide by the scale)
    batched: bool  # `mrisr degrade-scales` accepts it (the scale-sweep batch)


DEGRADATIONS: dict[str, Degradation] = {
    "truncate": Degradation(convention="corner", any_scale=True, batched=True),
    "lowpass_bicubic": Degradation(convention="center", any_scale=True, batched=True),
    "bicubic": Degradation(convention="center", any_scale=True, batched=True),
    "nearest": Degradation(convention="corner", any_scale=False, batched=False),
}

# `degradation.window`: applied to the kept k-space band; not "none" adds "-{window}" to the LR folder name.
WINDOWS: tuple[str, ...] = ("none", "hamming")


def degradation_name(mode: str, window: str) -> str:
    """The LR folder name of a degradation: lr/{name}/x{scale}/."""
    return mode if window == "none" else f"{mode}-{window}"


@dataclass(frozen=True)
class Store:
    """One `models.<name>.store`: which train/val stores a model reads."""

    train: str  # "pairs" (patches/{task}-x{s}_{split}.h5), "clips" (patches/vsr{f}w{w}-x{s}_...),
    #             "hr" (patches/{task}-hr_{split}.h5, one model for all scales) or
    #             "group" (patches/groups/{store}-x{s}_train.h5; val is the ordinary pair store)


STORES: dict[str, Store] = {
    "patches": Store(train="pairs"),
    "clips": Store(train="clips"),
    "hr": Store(train="hr"),
    "misaligned_pairs": Store(train="group"),
    "registered_pairs": Store(train="group"),
    "nearest_pairs": Store(train="group"),
    "udean_misaligned": Store(train="group"),
    "udean_unpaired": Store(train="group"),
}

GROUP_STORES: tuple[str, ...] = tuple(name for name, s in STORES.items() if s.train == "group")
