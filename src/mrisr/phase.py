"""Cardiac phase code and cyclic clip indexing for cine video SR (numpy only).

The phase code is eq. 1 of Lin et al., "Efficient and Phase-aware Video
Super-resolution for Cardiac MRI" (MICCAI 2020): a scalar per frame that tells the
network where in the heart cycle the frame lies, so that frames of similar shape
(early systole / late diastole) get similar codes although they are far apart in time:

    P^t = cos(π (t − ED) / (ES − ED))                      ED < t ≤ ES   (systole)
    P^t = cos(π (1 + ((t − ES) mod T) / (T − (ES − ED))))   otherwise     (diastole)

Systole runs 1 (ED) → −1 (ES); diastole runs −1 (ES) → back to 1 at the next ED,
wrapping around the end of the cine. Everything here works modulo T, so ES may come
before ED in frame order (the acquisition started mid-cycle) and t may lie outside
[0, T) (a clip taken cyclically). Frame indices are 0-based, as in the prepared
sidecars (`ed`, `es`).

Numpy only (no torch), and outside `mrisr.models` (whose package import loads torch and every
architecture), so that the clip sampler (`mrisr patches --clip`) never imports torch.
"""

from __future__ import annotations

import numpy as np


def _check_cycle(ed: int, es: int, n_frames: int) -> None:
    if int(n_frames) != n_frames or n_frames < 2:
        raise ValueError(f"n_frames must be an integer >= 2, got {n_frames}")
    for name, v in (("ed", ed), ("es", es)):
        if int(v) != v or not 0 <= v < n_frames:
            raise ValueError(f"{name} must be a frame index in [0, {n_frames}), got {v}")
    if ed == es:
        raise ValueError(f"ed and es must differ (both {ed}): the cycle would have no systole")


def _as_frame_indices(t: int | np.ndarray) -> np.ndarray:
    arr = np.asarray(t)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"frame indices must be integers, got {t!r}")
        arr = arr.astype(np.int64)
    return arr.astype(np.int64)


def phase_code(t: int | np.ndarray, ed: int, es: int, n_frames: int) -> np.ndarray:
    """Phase code P^t (float32, shape of `t`) of frame(s) t in a cine of n_frames frames.

    ed, es: 0-based end-diastole / end-systole frames (es < ed allowed: cyclic).
    """
    _check_cycle(ed, es, n_frames)
    t = _as_frame_indices(t)
    n_systole = (es - ed) % n_frames  # frames from ED to ES, 1 .. T-1
    tau = (t - ed) % n_frames  # position after ED, 0 .. T-1
    in_systole = (tau > 0) & (tau <= n_systole)
    systole = np.cos(np.pi * tau / n_systole)
    since_es = (t - es) % n_frames  # ED itself gives T - n_systole → cos(2π) = 1
    diastole = np.cos(np.pi * (1.0 + since_es / (n_frames - n_systole)))
    return np.where(in_systole, systole, diastole).astype(np.float32)


def cyclic_clip_indices(t0: int, length: int, n_warmup: int, n_frames: int) -> np.ndarray:
    """Frame indices of a clip of `length` central frames starting at frame t0, with
    n_warmup memory warm-up frames before and after, taken cyclically from the cine.

    A cine covers one heart cycle, so the frame before frame 0 is frame T-1: the
    warm-up frames of a clip at the start of the cine come from its end. The clip may
    be longer than the cine (whole-cine inference with warm-up wraps more than once).
    Example: t0=0, length=3, n_warmup=2, n_frames=10 → [8, 9, 0, 1, 2, 3, 4].
    """
    for name, v, lo in (("length", length, 1), ("n_warmup", n_warmup, 0), ("n_frames", n_frames, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    if int(t0) != t0:
        raise ValueError(f"t0 must be an integer, got {t0}")
    offsets = np.arange(-int(n_warmup), int(length) + int(n_warmup), dtype=np.int64)
    return (int(t0) + offsets) % int(n_frames)
