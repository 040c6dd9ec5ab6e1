"""Which flips/transposes step k applies to each patch: a pure function of (seed, k), drawn from
default_rng([seed, STAGE_TRAIN, STREAM_AUGMENT, k]) (`sampler`), and only moves that keep the LR
samples on the HR grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from mrisr.patches.sampler import STAGE_TRAIN, STREAM_AUGMENT


@dataclass(frozen=True)
class Augment:
    """Spatial axis permutation then flips, applied identically to lr, hr and ref."""

    perm: tuple[int, ...]
    flips: tuple[int, ...]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., *spatial) — the last len(perm) axes are the patch axes."""
        lead = x.ndim - len(self.perm)
        x = x.permute(*range(lead), *(lead + a for a in self.perm))
        return x.flip([lead + a for a in self.flips]) if self.flips else x


def allowed_moves(hr_patch: Sequence[int], lr_patch: Sequence[int], convention: str) -> tuple[list[list[int]], list[int]]:
    """(groups of interchangeable axes, flippable axes) for this patch geometry.

    Axes may be swapped only when both their HR and LR sizes match. A flip keeps the LR samples
    on the HR grid only for the centre convention (x = (i+½)s−½ is symmetric under i → n−1−i);
    under the corner convention (x = i·s) a flipped pair is offset by s−1 HR pixels, so degraded
    axes are not flipped there.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for a, sizes in enumerate(zip(hr_patch, lr_patch)):
        groups.setdefault(sizes, []).append(a)
    flippable = [a for a, (h, l) in enumerate(zip(hr_patch, lr_patch)) if convention == "center" or h == l]
    return list(groups.values()), flippable


def augment_plan(seed: int, step: int, batch_size: int, hr_patch: Sequence[int], lr_patch: Sequence[int],
                 convention: str, transposes: bool = True) -> list[Augment]:
    """One Augment per sample of step `step`'s batch; transposes=False: flips only (`train.augment:
    flips`, e.g. the cine paper's random horizontal and vertical flips)."""
    rng = np.random.default_rng([seed, STAGE_TRAIN, STREAM_AUGMENT, step])
    groups, flippable = allowed_moves(hr_patch, lr_patch, convention)
    plan = []
    for _ in range(batch_size):
        perm = list(range(len(hr_patch)))
        for g in groups if transposes else ():
            for src, dst in zip(g, rng.permutation(g)):
                perm[src] = int(dst)
        flips = tuple(a for a in flippable if rng.random() < 0.5)
        plan.append(Augment(perm=tuple(perm), flips=flips))
    return plan


def augment_batch(batch: dict[str, torch.Tensor], plan: list[Augment],
                  patch_shapes: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """Each sample's Augment on every image key of a collated (B, ..., *spatial) batch; keys whose
    trailing axes are not one of `patch_shapes` (e.g. per-frame phase codes) pass through."""
    shapes = {tuple(int(n) for n in s) for s in patch_shapes}
    d = len(plan[0].perm) if plan else 0

    def is_image(v: torch.Tensor) -> bool:
        return v.ndim > d and tuple(v.shape[v.ndim - d:]) in shapes

    return {k: torch.stack([aug.apply(x) for aug, x in zip(plan, v)]) if is_image(v) else v
            for k, v in batch.items()}
