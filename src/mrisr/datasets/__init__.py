"""Built-in data generators, real-format readers, prepare and split.

Names are imported lazily: `mrisr prepare` with one reader must not import the
generators or the other readers' libraries (SimpleITK, h5py, scikit-image).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Reader": "base",
    "Series": "base",
    "get_reader": "readers",
    "make_split": "split",
    "prepare_subject": "prepare",
    "write_synth": "synth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mrisr.datasets' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mrisr.datasets.{_EXPORTS[name]}"), name)
