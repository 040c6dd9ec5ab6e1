"""What every reader returns (Series) and promises (Reader), plus the folder search they share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from mrisr.errors import InputError

# Series names become file names (prepared/{subject}/{series}.nii.gz), so keep them plain.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Real archives nest subjects (ACDC: database/training/patient001); look this deep at most.
MAX_SEARCH_DEPTH = 3


@dataclass
class Series:
    """One image series of one subject, as read from raw.

    data is float32 in RAS+ canonical orientation, 3D (X,Y,Z) or 4D cine (X,Y,Z,T);
    meta holds at least {"source", "contrast"}; cine adds {"frames", "ed", "es"} (0-based).
    """

    name: str
    data: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)


@runtime_checkable
class Reader(Protocol):
    """A source adapter: which subjects a raw folder holds, and their series."""

    def list_subjects(self, raw_dir: Path) -> list[str]: ...

    def load(self, raw_dir: Path, subject: str) -> list[Series]: ...


def check_name(name: str, what: str) -> str:
    """Reject names that cannot safely become a file or folder name."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"invalid {what} {name!r}: use letters, digits, '_', '-', '.'")
    return name


def find_subject_dirs(raw_dir: Path, is_subject: Callable[[Path], bool]) -> dict[str, Path]:
    """Map subject id (folder name) -> folder for every folder under raw_dir (depth ≤ 3)
    that `is_subject` accepts. A subject does not contain further subjects, so the search
    stops descending at a match. The same id twice (e.g. in training/ and testing/) is
    ambiguous and raises InputError."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(raw_dir, "raw data folder not found")
    found: dict[str, Path] = {}
    frontier = [raw_dir]
    for _ in range(MAX_SEARCH_DEPTH):
        next_frontier = []
        for folder in frontier:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if is_subject(child):
                    if child.name in found:
                        raise InputError(child, f"subject {child.name!r} also found at {found[child.name]}")
                    found[child.name] = child
                else:
                    next_frontier.append(child)
        frontier = next_frontier
    return dict(sorted(found.items()))


def subject_dir(raw_dir: Path, subject: str, is_subject: Callable[[Path], bool]) -> Path:
    """The folder of one subject; InputError naming raw_dir when it is not there."""
    direct = Path(raw_dir) / subject
    if direct.is_dir() and is_subject(direct):  # the common flat layout, without a tree walk
        return direct
    dirs = find_subject_dirs(raw_dir, is_subject)
    if subject not in dirs:
        raise InputError(raw_dir, f"subject {subject!r} not found (or incomplete)")
    return dirs[subject]


def candidate_dirs(raw_dir: Path, is_subject: Callable[[Path], bool]) -> list[Path]:
    """The folders find_subject_dirs looks at and does not accept: every non-hidden folder
    under raw_dir (depth ≤ MAX_SEARCH_DEPTH) that is neither a subject nor inside one."""
    out, frontier = [], [Path(raw_dir)]
    for _ in range(MAX_SEARCH_DEPTH):
        children = [c for f in frontier for c in sorted(f.iterdir()) if c.is_dir() and not c.name.startswith(".")]
        frontier = [c for c in children if not is_subject(c)]
        out.extend(frontier)
    return out
