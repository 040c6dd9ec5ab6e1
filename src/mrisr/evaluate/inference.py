"""Whole-volume super-resolution: the cubic baseline or a trained model.

Models see (B, 1, *spatial) tensors in [0, 1]. 2D models get every 2D image
spanned by the grid's two degraded axes as one batch item (slices and frames
flattened into the batch); 3D models get the whole volume, cut into
overlapping tiles only when it does not fit in the memory available (tiles
recompute their context: 2–5× a whole-volume pass at 32-sample cores).
"""

from __future__ import annotations

import weakref
from typing import Literal, Sequence

import numpy as np

from mrisr.grid import Grid, cubic_upsample, integer_scale

CUBIC_METHODS = ("bicubic", "tricubic")
TILE_VOXELS: Literal["auto"] = "auto"  # default: size tiles from the memory available (auto_tile_voxels)
TILE_CORE_LR = 32  # least LR samples each tile contributes, per axis
TILE_OVERLAP_LR = 8  # LR context on each side, discarded (covers the receptive field)
MEMORY_FRACTION = 0.5  # share of the available (device) memory one forward pass may plan to use
LIVE_MAPS = 3  # feature maps alive at once in a no-grad pass (input, output, skip) ...
SAFETY = 2.0  # ... times this margin for allocator slack and workspaces
PROBE_LR = 12  # LR edge of the probe volume that measures feature-map sizes


def image_axes(grid: Grid, ndim: int) -> tuple[int, ...]:
    """Axes that form one model input image: the two degraded axes for 2D tasks,
    else the three degraded axes, else (for a through-plane grid of 1 axis) the
    three spatial axes (0, 1, 2)."""
    if len(grid.axes) in (2, 3):
        return tuple(int(a) for a in grid.axes)
    if ndim >= 3:
        return (0, 1, 2)
    raise ValueError(f"cannot choose image axes for grid axes {grid.axes} on a {ndim}D array")


def to_batch(x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """(..., ) array → (N, 1, *x.shape[axes]): image axes last, the rest flattened."""
    n = len(axes)
    moved = np.moveaxis(x, tuple(axes), tuple(range(x.ndim - n, x.ndim)))
    return moved.reshape(-1, 1, *moved.shape[x.ndim - n :])


def from_batch(b: np.ndarray, axes: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Inverse of to_batch: (N, 1, *image) back to an array of `shape`."""
    n = len(axes)
    others = [s for a, s in enumerate(shape) if a not in axes]
    moved = b.reshape(*others, *b.shape[2:])
    return np.moveaxis(moved, tuple(range(len(shape) - n, len(shape))), tuple(axes))


def _model_inputs(model) -> tuple[str, ...]:
    return tuple(getattr(model, "inputs", ("lr",)))


def _forward(model, lr: np.ndarray, ref: np.ndarray | None, device: str) -> np.ndarray:
    """One forward pass on a numpy batch; returns float32 numpy (N, 1, *hr)."""
    import torch

    kwargs = {"lr": torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32)).to(device)}
    if "ref" in _model_inputs(model):
        # A model may list "ref" yet not use it (MINet's no-reference ablation keeps the
        # two-input signature): the model says whether it needs one; by default it does.
        if ref is None and getattr(model, "needs_ref", True):
            raise ValueError("model needs a reference image ('ref') but none was given")
        if ref is not None:
            kwargs["ref"] = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32)).to(device)
    with torch.no_grad():
        out = model(**kwargs)
    return out.detach().float().cpu().numpy()


def _run_batches(model, lr: np.ndarray, ref: np.ndarray | None, device: str, batch_size: int) -> np.ndarray:
    """Run (N, 1, *lr) through the model in chunks of batch_size (bounded memory)."""
    outs = []
    for start in range(0, lr.shape[0], max(1, batch_size)):
        stop = start + max(1, batch_size)
        outs.append(_forward(model, lr[start:stop], None if ref is None else ref[start:stop], device))
    return np.concatenate(outs, axis=0)


def _axis_tiles(n: int, core: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Per-axis tiles as (tile_start, tile_stop, core_start, core_stop) in LR units:
    cores partition [0, n); each tile adds `overlap` context on both sides."""
    tiles = []
    for cs in range(0, n, core):
        ce = min(n, cs + core)
        tiles.append((max(0, cs - overlap), min(n, ce + overlap), cs, ce))
    return tiles


def available_memory(device: str) -> int:
    """Bytes free for tensors on `device` now (CUDA: free device memory; else host MemAvailable)."""
    import torch

    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    from mrisr.memory import available_memory as host_available

    return host_available()


def bytes_per_hr_voxel(model, factors: Sequence[int], device: str, with_ref: bool) -> float:
    """Peak bytes a no-grad forward pass needs per HR voxel, measured on a small probe:
    the LIVE_MAPS largest module outputs (feature maps scale with the volume) × SAFETY.
    A model the probe cannot run gets a conservative 64 float32 channels × LIVE_MAPS."""
    import torch

    sizes: list[int] = []

    def record(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    hr_probe = [PROBE_LR * f for f in factors]
    handles = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        lr = np.zeros((1, 1, *[PROBE_LR] * len(factors)), np.float32)
        ref = np.zeros((1, 1, *hr_probe), np.float32) if with_ref else None
        _forward(model, lr, ref, device)
        peak = sum(sorted(sizes)[-LIVE_MAPS:])
    except Exception:  # noqa: BLE001 — a probe failure only means "estimate conservatively"
        peak = 0
    finally:
        for h in handles:
            h.remove()
    per_voxel = peak / float(np.prod(hr_probe))
    return SAFETY * max(per_voxel, 4.0 * LIVE_MAPS * (1 if peak else 64))


# model -> {(factors, device, with_ref): bytes per HR voxel}: one probe per model, not per subject.
_PROBED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def auto_tile_voxels(model, factors: Sequence[int], device: str, with_ref: bool) -> int:
    """The most HR voxels one forward pass may take on `device` now."""
    key = (tuple(factors), str(device), with_ref)
    probed = _PROBED.setdefault(model, {})
    if key not in probed:
        probed[key] = bytes_per_hr_voxel(model, factors, device, with_ref)
    per_voxel = probed[key]
    return int(MEMORY_FRACTION * available_memory(device) / per_voxel)


def tile_core_lr(tile_voxels: int, factors: Sequence[int]) -> int:
    """LR core edge of cubic tiles whose full extent (core + context) holds at most
    `tile_voxels` HR voxels; never below TILE_CORE_LR (context would dominate)."""
    lr_voxels, d = tile_voxels // int(np.prod(factors)), len(factors)
    edge = int(round(lr_voxels ** (1.0 / d)))  # the integer d-th root, exact despite rounding
    while edge > 0 and edge**d > lr_voxels:
        edge -= 1
    while (edge + 1) ** d <= lr_voxels:
        edge += 1
    return max(TILE_CORE_LR, edge - 2 * TILE_OVERLAP_LR)


def _run_tiled(model, lr: np.ndarray, ref: np.ndarray | None, factors: Sequence[int], device: str,
               core: int = TILE_CORE_LR) -> np.ndarray:
    """Run one (1, 1, *lr) volume in overlapping tiles; keep each tile's core only.

    Valid for integer factors: LR sample i then maps to HR samples [i*f, (i+1)*f)
    under both grid conventions, exactly as training patches were cut.
    """
    import itertools

    hr_shape = tuple(n * f for n, f in zip(lr.shape[2:], factors))
    out = np.zeros((1, 1, *hr_shape), dtype=np.float32)
    per_axis = [_axis_tiles(n, core, TILE_OVERLAP_LR) for n in lr.shape[2:]]
    for combo in itertools.product(*per_axis):
        lr_sl = tuple(slice(t0, t1) for t0, t1, _, _ in combo)
        hr_sl = tuple(slice(t0 * f, t1 * f) for (t0, t1, _, _), f in zip(combo, factors))
        tile_ref = None if ref is None else ref[(slice(None), slice(None), *hr_sl)]
        pred = _forward(model, lr[(slice(None), slice(None), *lr_sl)], tile_ref, device)
        core_in = tuple(slice((c0 - t0) * f, (c1 - t0) * f) for (t0, _, c0, c1), f in zip(combo, factors))
        core_out = tuple(slice(c0 * f, c1 * f) for (_, _, c0, c1), f in zip(combo, factors))
        out[(slice(None), slice(None), *core_out)] = pred[(slice(None), slice(None), *core_in)]
    return out


def _integer_factors(grid: Grid, axes: Sequence[int]) -> list[int] | None:
    """Per-axis integer HR/LR factors, or None when any axis is not an exact multiple."""
    factors = []
    for a in axes:
        f = integer_scale(grid.hr_shape[a] / grid.lr_shape[a])
        if f is None or f * grid.lr_shape[a] != grid.hr_shape[a]:
            return None
        factors.append(f)
    return factors


def _run_volumes(model, lr_b, ref_b, grid: Grid, axes, device: str,
                 tile_voxels: int | Literal["auto"] | None) -> np.ndarray:
    """3D models: one volume per forward pass, tiled when the volume is too large."""
    factors = _integer_factors(grid, axes)
    hr_voxels = int(np.prod([grid.hr_shape[a] for a in axes]))
    if tile_voxels == "auto" and factors is not None:
        tile_voxels = auto_tile_voxels(model, factors, device, ref_b is not None)
    tile = isinstance(tile_voxels, int) and hr_voxels > tile_voxels and factors is not None
    core = tile_core_lr(tile_voxels, factors) if tile else TILE_CORE_LR
    outs = []
    for i in range(lr_b.shape[0]):
        ref_i = None if ref_b is None else ref_b[i : i + 1]
        if tile:
            outs.append(_run_tiled(model, lr_b[i : i + 1], ref_i, factors, device, core))
        else:
            outs.append(_forward(model, lr_b[i : i + 1], ref_i, device))
    return np.concatenate(outs, axis=0)


def _run_video(model, lr: np.ndarray, grid: Grid, cycle: tuple[int, int] | None, device: str) -> np.ndarray:
    """Video models on a whole (X, Y, Z, T) cine, per slice, as consecutive clips of the
    model's `clip_frames` central frames (the last may be shorter), each with its n warm-up
    frames taken cyclically before and after (the cine is one heart cycle): the clips the
    model was trained on. All slices of a clip go through the model as one batch."""
    import torch

    from mrisr.phase import cyclic_clip_indices, phase_code

    if lr.ndim != 4 or tuple(grid.axes) != (0, 1):
        raise ValueError(f"video models need a 4D cine degraded over axes (0, 1), got {lr.shape}, axes {grid.axes}")
    if cycle is None:
        raise ValueError("video models need the cine's ED/ES frames (prepared sidecar keys 'ed', 'es')")
    n_frames, n_slices = lr.shape[3], lr.shape[2]
    n_warmup = int(getattr(model, "n_warmup", 0))
    length = int(getattr(model, "clip_frames", n_frames))
    out = np.empty(grid.hr_shape, dtype=np.float32)
    for t0 in range(0, n_frames, length):
        central = min(length, n_frames - t0)
        idx = cyclic_clip_indices(t0, central, n_warmup, n_frames)
        phase = torch.from_numpy(phase_code(idx, cycle[0], cycle[1], n_frames)).reshape(1, 1, -1)
        clips = np.moveaxis(lr[:, :, :, idx], (2, 3), (0, 1))[:, None]  # (Z, 1, F, h, w): the store layout
        with torch.no_grad():
            sr = model(lr=torch.from_numpy(np.ascontiguousarray(clips)).to(device),
                       phase=phase.expand(n_slices, 1, -1).to(device))
        out[:, :, :, t0:t0 + central] = np.moveaxis(sr[:, 0].float().cpu().numpy(), (0, 1), (2, 3))
    return out


def super_resolve(
    lr: np.ndarray,
    grid: Grid,
    method: str,
    model=None,
    ref: np.ndarray | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    tile_voxels: int | Literal["auto"] | None = TILE_VOXELS,
    cycle: tuple[int, int] | None = None,
) -> np.ndarray:
    """LR array → SR array of shape grid.hr_shape, float32, NOT clipped.

    `ref` is an HR reference contrast in the HR layout, passed to models whose
    `inputs` include "ref". `cycle` = (ED, ES) 0-based, for video models (inputs "phase"). `tile_voxels`: 3D volumes with more HR voxels run in
    overlapping tiles of at most that many (least core TILE_CORE_LR); "auto" (default) takes
    it from the memory available and the model's feature-map size; None: never tile.
    Tiled and whole-volume outputs are equal (each tile's context covers the receptive field).
    """
    lr = np.asarray(lr, dtype=np.float32)
    if tuple(lr.shape) != tuple(grid.lr_shape):
        raise ValueError(f"LR shape {lr.shape} does not match grid lr_shape {tuple(grid.lr_shape)}")
    if method.lower() in CUBIC_METHODS:
        return cubic_upsample(lr, grid).astype(np.float32, copy=False)
    if model is None:
        raise ValueError(f"method {method!r} needs a model")
    if ref is not None and tuple(ref.shape) != tuple(grid.hr_shape):
        raise ValueError(f"reference shape {ref.shape} does not match HR shape {tuple(grid.hr_shape)}")
    model.to(device)
    model.eval()
    if "phase" in _model_inputs(model):
        return _run_video(model, lr, grid, cycle, device)
    axes = image_axes(grid, lr.ndim)
    lr_b = to_batch(lr, axes)
    ref_b = None if ref is None else to_batch(np.asarray(ref, dtype=np.float32), axes)
    if len(axes) == 2:
        sr_b = _run_batches(model, lr_b, ref_b, device, batch_size)
    else:
        sr_b = _run_volumes(model, lr_b, ref_b, grid, axes, device, tile_voxels)
    expected = tuple(grid.hr_shape[a] for a in axes)
    if tuple(sr_b.shape[2:]) != expected:
        raise ValueError(f"model output image shape {tuple(sr_b.shape[2:])} != expected HR shape {expected}")
    return from_batch(sr_b, axes, grid.hr_shape).astype(np.float32, copy=False)
