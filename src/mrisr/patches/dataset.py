"""torch Dataset over an HDF5 patch store (contract in docs/architecture.md).

The h5py handle is opened lazily in the process that reads, and reopened after a
fork: HDF5 handles must not be shared across processes, and DataLoader workers are
forked from the parent after the Dataset is built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from mrisr.errors import InputError

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


class PatchDataset(Dataset):
    """Item i → {key: float32 tensor (1, *patch)} for the requested store datasets."""

    def __init__(self, path: str | Path, keys: tuple[str, ...] = ("lr", "hr")) -> None:
        self.path = Path(path)
        self.keys = tuple(keys)
        # Read the geometry and close at once: the reading handle is per process.
        with _open(self.path) as f:
            missing = [k for k in self.keys if k not in f]
            if missing:
                raise InputError(self.path, f"no dataset {missing} (has {sorted(f.keys())})")
            lengths = {k: f[k].shape[0] for k in self.keys}
            self.shapes = {k: tuple(f[k].shape[1:]) for k in self.keys}
        if len(set(lengths.values())) != 1:
            raise InputError(self.path, f"datasets differ in length: {lengths}")
        self._len = next(iter(lengths.values())) if lengths else 0
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self._len

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = _open(self.path)  # a forked child gets its own handle
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for {self._len} patches in {self.path}")
        f = self._handle()
        return {k: torch.from_numpy(np.asarray(f[k][int(i)], dtype=np.float32)).unsqueeze(0) for k in self.keys}

    def __getstate__(self) -> dict:
        # Spawned workers get the state pickled: never ship an open handle.
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None
