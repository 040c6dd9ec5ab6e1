"""Which patches training step k draws: a pure function of (seed, k).

The training stream is the concatenation of per-epoch permutations drawn from
default_rng([seed, STAGE_TRAIN, stream, epoch]); step k takes stream items [k·B, (k+1)·B).
A run resumed at step k therefore sees exactly the batches an uninterrupted run would. Every
per-step draw of training (order, flips `augment`, a GAN's scale) has its stream id here.
"""

from __future__ import annotations

import functools
from typing import Iterator

import numpy as np
from torch.utils.data import Sampler

STAGE_TRAIN = 6
STREAM_ORDER = 0
STREAM_AUGMENT = 1  # `augment.augment_plan`
STREAM_SCALE = 2  # `train.gan.step_scale`: an adversarial minibatch's scale
STREAM_SOURCE, STREAM_TARGET = 2, 3  # UDEAN's unpaired source and target order (`unpaired_sampler`)


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


def unpaired_sampler(seed: int, n_source: int, n_target: int, batch_size: int, start: int,
                     stop: int) -> StepBatchSampler:
    """Batches of (source index, target index) for steps start..stop−1, two independent streams."""
    return StepBatchSampler(seed, (n_source, n_target), batch_size, start, stop, streams=(STREAM_SOURCE, STREAM_TARGET))
