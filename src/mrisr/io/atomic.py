"""Atomic file writing: write to a temporary name in the target folder, then rename.

A killed job therefore never leaves a file that looks complete. The temporary name is
recognisable, `.{name}.tmp-{pid}{suffixes}` (hidden, beside its target, with the pid of the
writer), so that the next write of the same target removes what a killed writer (SIGKILL,
out of memory, a node lost) left behind: nothing accumulates beside the outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from mrisr.errors import InputError


def temp_name(path: Path, pid: int | None = None) -> Path:
    """The temporary file beside `path` written by process `pid` (default: this one).

    It keeps the final suffix(es) so that libraries which infer the format from the
    extension (nibabel: .nii.gz) still work."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid() if pid is None else pid}{''.join(path.suffixes)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


def stale_temps(path: Path) -> list[Path]:
    """Temporary files of `path` left by writers that no longer run: ours
    (`.{name}.tmp-{pid}…` of a dead pid) and the older mkstemp form (`.{name}.XXXXXXXX.tmp…`)."""
    path = Path(path)
    suffix = re.escape("".join(path.suffixes))
    ours = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(\d+){suffix}$")
    legacy = re.compile(rf"^\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp{suffix}$")
    found = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        m = ours.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            found.append(Path(entry.path))
        elif legacy.match(entry.name):
            found.append(Path(entry.path))
    return sorted(found)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    On any error (a full disk included) the temporary file is removed and the error
    propagates: `path` is either the old file or the complete new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temps(path):
        stale.unlink(missing_ok=True)
    tmp_path = temp_name(path)
    # A file of this name under our own pid is a leftover of an earlier process that had
    # the same pid (one process writes one target at a time): replace it.
    tmp_path.unlink(missing_ok=True)
    # Created with 0o666 minus the umask, like any other output (mkstemp's 0600 is not
    # readable by the group on a shared cluster).
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        # A failed write (ENOSPC, EDQUOT) often carries no file name, or the temporary one:
        # name the output the user asked for, so the error line says which file failed.
        if err.errno is not None and err.filename in (None, str(tmp_path)):
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
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
