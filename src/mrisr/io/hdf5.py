"""Writing HDF5 files so that a failed write (a full disk, a quota) is one clean OSError.

HDF5 buffers metadata and chunks and writes them at flush/close; when such a write fails
with ENOSPC, the library's close fails half way, h5py then retries the flush from every
object's deallocator (pages of "Exception ignored" tracebacks) and the interpreter
segfaults on exit. So HDF5 never sees the failure here: it writes through a Python file
object (h5py's fileobj driver) that records the first OSError and from then on accepts
and discards everything. When h5py has closed cleanly, `h5_writer` raises the recorded
error naming the file; the caller (atomic_path) removes the partial file.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Iterator

import h5py


class _FailSafeFile:
    """An unbuffered file that turns the first OSError into a recorded `error` and then
    behaves as a sink (reads return zeros, so HDF5 can finish its bookkeeping)."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "w+b", buffering=0)  # unbuffered: a failing write fails in write()
        self.error: OSError | None = None
        self._pos = 0

    def _fail(self, err: OSError) -> None:
        if self.error is None:
            self.error = err

    def write(self, b) -> int:
        n = len(memoryview(b).cast("B"))
        if self.error is None:
            try:
                written = self._fh.write(b)
                while written is not None and written < n:  # a short write: finish it (or fail)
                    more = self._fh.write(memoryview(b).cast("B")[written:])
                    if not more:
                        raise OSError(28, "No space left on device (short write)")
                    written += more
            except OSError as err:
                self._fail(err)
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise io.UnsupportedOperation("read() of the whole file")
        buf = bytearray(n)
        return bytes(buf[: self.readinto(buf)])

    def readinto(self, b) -> int:
        if self.error is None:
            try:
                n = self._fh.readinto(b)
                self._pos += n or 0
                return n
            except OSError as err:
                self._fail(err)
        view = memoryview(b).cast("B")
        view[:] = b"\0" * len(view)
        self._pos += len(view)
        return len(view)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.error is None:
            try:
                self._pos = self._fh.seek(offset, whence)
                return self._pos
            except OSError as err:
                self._fail(err)
        self._pos = offset if whence == io.SEEK_SET else self._pos + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self._fh.truncate(size)
            except OSError as err:
                self._fail(err)
        return self._pos if size is None else size

    def flush(self) -> None:
        if self.error is None:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError as err:
                self._fail(err)

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError as err:
            self._fail(err)


@contextlib.contextmanager
def h5_writer(path: str | Path, **kwargs) -> Iterator[h5py.File]:
    """`h5py.File(path, "w", **kwargs)` whose write failures surface, after a clean close,
    as one OSError naming `path` (errno kept, e.g. ENOSPC)."""
    path = Path(path)
    raw = _FailSafeFile(path)
    try:
        with h5py.File(raw, "w", **kwargs) as f:
            yield f
        raw.flush()
    finally:
        raw.close()
    if raw.error is not None:
        raise OSError(raw.error.errno, raw.error.strerror or str(raw.error), str(path))
