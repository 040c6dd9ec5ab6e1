"""Built-in data generators, real-format readers, prepare and split.

Names are imported lazily: `mrisr prepare` with one reader must not import the
generators or the other readers' libraries (SimpleITK, h5py, scikit-image).
"""

from __future__ import annotations

from mrisr.lazy import lazy_exports

_EXPORTS = {
    "Reader": "base",
    "Series": "base",
    "get_reader": "readers",
    "make_split": "split",
    "prepare_subject": "prepare",
    "write_synth": "synth",
}

__getattr__, __all__ = lazy_exports("mrisr.datasets", _EXPORTS)
