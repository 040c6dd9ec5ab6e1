"""The project's error types: the CLI turns each into one line naming the file (or config key)."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Raised when an input file is unreadable or violates its contract.

    str(err) is the single line shown to the user: "<path>: <problem>".
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(ValueError):
    """A configuration error known before any job runs (mrisr.config_check).

    str(err) is the single line shown to the user: "config: <key.path>: <problem>".
    A ValueError subclass so that callers which already treat config problems as
    ValueError keep working.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config: {key}: {problem}")


def one_line(err: BaseException) -> str:
    """The message of `err` as one line naming the file where the error type knows it.

    OSError carries the file in `filename` (open, rename, h5py); its message then reads
    "<file>: <strerror>" like InputError's. Anything spanning lines is joined, so that a
    log shows exactly one line per failed job.
    """
    if isinstance(err, OSError) and not isinstance(err, InputError) and err.filename is not None:
        where = str(err.filename) + (f" -> {err.filename2}" if err.filename2 is not None else "")
        text = f"{where}: {err.strerror or err}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
