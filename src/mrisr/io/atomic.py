"""Atomic file writing: write to a temporary name in the target folder, then rename.

A killed job therefore never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mrisr.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    The temporary name keeps the final suffix(es) so that libraries which infer
    the format from the extension (nibabel: .nii.gz) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    # mkstemp creates mode 0600; outputs must be readable like any other file (shared clusters).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically, keys sorted, so reruns give identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or malformed file is an InputError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON ({err.msg} at line {err.lineno})") from None
