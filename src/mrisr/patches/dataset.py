"""Reading HDF5 patch stores (contract in docs/architecture.md): attributes, torch Datasets
(`PatchDataset`; UDEAN's `UnpairedDataset`), the checks a training task makes of its stores.

Reads are the training loop's inner loop, so the store is opened once per process:
a store that fits in memory (see `fits_in_memory`) is read whole into float32 arrays
at construction (DataLoader workers forked later share those pages); a larger one
keeps its h5py file and dataset objects open, reopened after a fork (HDF5 handles
must not be shared across processes) and never pickled to spawned workers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from mrisr.errors import InputError
from mrisr.memory import available_memory

# A store is loaded into memory when its float32 arrays take at most this share of
# the memory available now (the rest is for the model, the optimizer and the val store).
MEMORY_FRACTION = 0.25

JSON_ATTRS = ("axes", "hr_patch", "lr_patch", "subjects", "clip")


def _decode(name: str, value):
    """bytes → str, numpy scalars → Python, JSON-encoded attributes → lists."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and (name in JSON_ATTRS or value[:1] in ("[", "{")):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            if name in JSON_ATTRS:
                raise
    return value


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise InputError(path, "patch store not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, f"not a readable HDF5 patch store ({err})") from None


def store_attrs(path: str | Path) -> dict:
    """The store's attributes, decoded (JSON attributes become lists)."""
    path = Path(path)
    with _open(path) as f:
        try:
            return {k: _decode(k, v) for k, v in f.attrs.items()}
        except json.JSONDecodeError as err:
            raise InputError(path, f"malformed JSON attribute ({err.msg})") from None


def fits_in_memory(nbytes: int) -> bool:
    return nbytes <= MEMORY_FRACTION * available_memory()


class PatchDataset(Dataset):
    """Item i → {key: float32 tensor (1, *patch)} for the requested store datasets.

    in_memory: True reads the requested datasets whole at construction, False reads
    each item from the open file, None (default) chooses by `fits_in_memory`.
    Both give the same tensors.
    """

    def __init__(self, path: str | Path, keys: tuple[str, ...] = ("lr", "hr"), in_memory: bool | None = None) -> None:
        self.path = Path(path)
        self.keys = tuple(keys)
        with _open(self.path) as f:
            missing = [k for k in self.keys if k not in f]
            if missing:
                raise InputError(self.path, f"no dataset {missing} (has {sorted(f.keys())})")
            lengths = {k: f[k].shape[0] for k in self.keys}
            self.shapes = {k: tuple(f[k].shape[1:]) for k in self.keys}
            if len(set(lengths.values())) != 1:
                raise InputError(self.path, f"datasets differ in length: {lengths}")
            nbytes = sum(4 * int(np.prod(f[k].shape)) for k in self.keys)
            self.in_memory = fits_in_memory(nbytes) if in_memory is None else bool(in_memory)
            # In memory: float32 arrays, shared by forked workers. Else: the open file's datasets.
            self._arrays: dict[str, np.ndarray] | None = (
                {k: np.asarray(f[k][...], dtype=np.float32) for k in self.keys} if self.in_memory else None)
        self._len = next(iter(lengths.values())) if lengths else 0
        self._file: h5py.File | None = None
        self._dsets: dict[str, h5py.Dataset] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return self._len

    def _sources(self) -> dict:
        """key → array-like indexed by sample, valid in this process."""
        if self.in_memory:
            if self._arrays is None:  # a spawned worker: the state came without the arrays
                with _open(self.path) as f:
                    self._arrays = {k: np.asarray(f[k][...], dtype=np.float32) for k in self.keys}
            return self._arrays
        if self._file is None or self._pid != os.getpid():
            self._file = _open(self.path)  # a forked child gets its own handle
            self._dsets = {k: self._file[k] for k in self.keys}  # looked up once, not per read
            self._pid = os.getpid()
        return self._dsets

    def _check(self, i: int) -> int:
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for {self._len} patches in {self.path}")
        return int(i)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = self._check(i)
        src = self._sources()
        if self.in_memory:  # copy: an item never aliases the store (callers may edit it in place)
            return {k: torch.from_numpy(src[k][i][None].copy()) for k in self.keys}
        # h5py returns a fresh array: no second copy unless the store is not float32
        return {k: torch.from_numpy(np.asarray(src[k][i], dtype=np.float32)[None]) for k in self.keys}

    def __getstate__(self) -> dict:
        # Spawned workers get the state pickled: never ship an open handle or the arrays.
        state = self.__dict__.copy()
        state.update(_file=None, _dsets={}, _pid=None, _arrays=None)
        return state

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._dsets = {}
        self._pid = None


class UnpairedDataset(Dataset):
    """Item (i, j) → {"hr": source patch i, "lr": target patch j} of one store: its `source_hr`
    and `target_lr` (a UDEAN group store) when present, else its `hr` and `lr`."""

    def __init__(self, path: str | Path) -> None:
        with _open(Path(path)) as f:
            self.keys = ("source_hr", "target_lr") if "source_hr" in f else ("hr", "lr")
        self.source, self.target = (PatchDataset(path, (k,)) for k in self.keys)

    def __len__(self) -> int:
        return max(len(self.source), len(self.target))

    def __getitem__(self, ij: tuple[int, int]) -> dict[str, torch.Tensor]:
        i, j = ij
        return {"hr": self.source[i][self.keys[0]], "lr": self.target[j][self.keys[1]]}


def train_val_attrs(train_h5: Path, val_h5: Path) -> tuple[dict, dict]:
    """Both stores' attributes; the val store must describe the same problem as the train store."""
    train_attrs, val_attrs = store_attrs(train_h5), store_attrs(val_h5)
    missing = [k for k in ("task", "scale", "dims", "grid_convention", "hr_patch", "lr_patch") if k not in train_attrs]
    if missing:
        raise InputError(train_h5, f"patch store lacks attributes {missing}")
    if len(train_attrs["hr_patch"]) != int(train_attrs["dims"]):
        raise InputError(train_h5, f"hr_patch {train_attrs['hr_patch']} does not have dims={train_attrs['dims']} axes")
    for k in ("task", "scale", "dims", "grid_convention"):
        if val_attrs.get(k) != train_attrs[k]:
            raise InputError(val_h5, f"attribute {k}={val_attrs.get(k)!r} differs from the train store's {train_attrs[k]!r}")
    return train_attrs, val_attrs


def hr_or_pair_dataset(path: Path) -> tuple[PatchDataset, dict]:
    """Dataset over `hr` (and `lr` for a pair store) and the store's attributes; 2D patches
    (the adversarial trainer's stores, which degrade HR on the fly)."""
    with _open(path) as f:
        paired = "lr" in f
    ds = PatchDataset(path, ("lr", "hr") if paired else ("hr",))
    if any(len(shape) != 2 for shape in ds.shapes.values()):
        raise InputError(path, f"GAN training needs 2D HR patches (N, H, W), got per-sample shapes {ds.shapes}")
    if len(ds) < 1:
        raise InputError(path, "empty patch store")
    attrs = store_attrs(path)
    if paired and "scale" not in attrs:
        raise InputError(path, "pair store without a `scale` attribute")
    return ds, attrs


def hr_mean_std(path: Path, chunk: int = 512) -> tuple[float, float]:
    """Mean and (population) std of the store's HR voxels, read in chunks, float64 sums."""
    total, total_sq, count = 0.0, 0.0, 0
    with _open(path) as f:
        hr = f["hr"]
        for start in range(0, hr.shape[0], chunk):
            x = np.asarray(hr[start:start + chunk], dtype=np.float64)
            total, total_sq, count = total + x.sum(), total_sq + (x * x).sum(), count + x.size
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0))
    if not std > 0:
        raise InputError(path, "HR patches are constant (std 0): cannot normalise")
    return mean, std
