"""Which patches, and which flips/transposes, step k trains on: a pure function of (seed, k).

The training stream is the concatenation of per-epoch permutations drawn from
default_rng([seed, STAGE_TRAIN, stream, epoch]); step k takes stream items [k·B, (k+1)·B).
Augmentations for step k come from default_rng([seed, STAGE_TRAIN, STREAM_AUGMENT, k]). A run
resumed at step k therefore sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

STAGE_TRAIN = 6
STREAM_ORDER = 0
STREAM_AUGMENT = 1
# Further streams of the same stage: 2 = GAN minibatch scale; 2, 3 = UDEAN source, target order.


@functools.lru_cache(maxsize=8)
def _epoch_permutation(seed: int, epoch: int, n: int, stream: int = STREAM_ORDER) -> np.ndarray:
    perm = np.random.default_rng([seed, STAGE_TRAIN, stream, epoch]).permutation(n)
    perm.flags.writeable = False
    return perm


def batch_indices(seed: int, step: int, n: int, batch_size: int, stream: int = STREAM_ORDER) -> list[int]:
    """Store indices of the batch for 0-based step `step` (wraps across epochs) of one stream."""
    positions = step * batch_size + np.arange(batch_size)
    return [int(_epoch_permutation(seed, int(p // n), n, stream)[p % n]) for p in positions]


class StepBatchSampler(Sampler[list]):
    """The batches of steps start..stop-1 for a DataLoader(batch_sampler=...). With several
    stores (`n` a tuple, one stream id each) a batch is a list of index tuples, each store
    drawn from its own stream: UDEAN's unpaired source and target patches, which must never
    come out paired even when the stores are cut at the same places."""

    def __init__(self, seed: int, n: int | tuple[int, ...], batch_size: int, start: int, stop: int,
                 streams: tuple[int, ...] = (STREAM_ORDER,)) -> None:
        sizes = (n,) if isinstance(n, int) else tuple(n)
        if len(sizes) != len(streams):
            raise ValueError(f"one stream per store: sizes {sizes}, streams {streams}")
        if min(sizes) < 1:
            raise ValueError("empty training store")
        self.seed, self.sizes, self.streams = seed, sizes, streams
        self.batch_size, self.start, self.stop = batch_size, start, stop

    def __iter__(self) -> Iterator[list]:
        for step in range(self.start, self.stop):
            per_store = [batch_indices(self.seed, step, n, self.batch_size, s) for n, s in zip(self.sizes, self.streams)]
            yield per_store[0] if len(per_store) == 1 else list(zip(*per_store))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


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
