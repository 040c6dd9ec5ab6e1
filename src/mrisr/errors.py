"""One error type for bad input: the CLI turns it into one line naming the file."""

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
