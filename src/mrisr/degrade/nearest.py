"""Nearest-neighbour downsampling (decimation): the LR image keeps every s-th HR sample.

Grid convention: "corner" — LR sample i on a degraded axis *is* HR sample i·s (offset 0,
step s), the same placement as k-space truncation (mrisr.degrade.kspace). That is why the
UDEAN ts_rcan_shift benchmark can train on decimated LR and be tested on truncated LR with one
model and one cubic residual: only the degradation kernel differs between the two (no
anti-aliasing here, an ideal sinc there), never the sample positions. A "center"-convention
nearest neighbour would have to choose between the two HR samples at distance 0.5 of every
LR position for even s, so mrisr does not offer it.

Integer scales only, and every degraded axis must be a multiple of the scale (prepare's
crop_multiple makes it so); the result then has lr_size(n, s) = n / s samples.
"""

from __future__ import annotations

import numpy as np

from mrisr.grid import integer_scale


def nearest_decimate(x: np.ndarray, scale: float, axes: tuple[int, ...]) -> np.ndarray:
    """x[..., ::s, ...] on every axis in `axes` (float32 copy)."""
    s = integer_scale(scale)
    if s is None:
        raise ValueError(f"nearest (decimation) needs an integer scale, got {scale}")
    x = np.asarray(x)
    bad = [(a, x.shape[a]) for a in axes if x.shape[a] % s]
    if bad:
        raise ValueError(f"nearest (decimation) ×{s}: axis sizes {bad} are not multiples of the scale")
    index = [slice(None)] * x.ndim
    for a in axes:
        index[a] = slice(0, None, s)
    return np.array(x[tuple(index)], dtype=np.float32, copy=True)
