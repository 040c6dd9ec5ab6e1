"""`mrisr synth`: write built-in data in the layout of the real source it stands in for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mrisr.datasets.synth_cine import generate_cine, write_cine_subject
from mrisr.datasets.synth_multicontrast import generate_multicontrast, write_multicontrast_subject
from mrisr.datasets.synth_volume import generate_volume, write_volume_subject
from mrisr.io import write_json

KINDS = {  # kind: (kind id for the RNG, subject id pattern, generator, writer)
    "cine": (1, "patient{:03d}", generate_cine, write_cine_subject),
    "multicontrast": (2, "SYN_{:04d}", generate_multicontrast, write_multicontrast_subject),
    "volume": (3, "{:06d}", generate_volume, write_volume_subject),
}
VOLUME_ID_BASE = 100000  # HCP-like six-digit ids


def subject_id(kind: str, k: int) -> str:
    pattern = KINDS[kind][1]
    return pattern.format(k + 1 + (VOLUME_ID_BASE if kind == "volume" else 0))


def write_synth(kind: str, out_dir: Path, n_subjects: int, seed: int, params: dict | None = None) -> list[str]:
    """Write n_subjects of `kind`; subject k depends only on (seed, kind, k). manifest.json last.

    The manifest is the completion marker, so an old one is removed before anything is
    written (an interrupted rerun must not look complete), and subject folders that an
    earlier run listed but this one does not are removed (the readers list folders, so a
    smaller rerun would otherwise still see them). Nothing else in out_dir is touched.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown synth kind {kind!r}; known: {sorted(KINDS)}")
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int) or n_subjects < 1:
        raise ValueError(f"n_subjects must be a positive integer, got {n_subjects!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    kind_id, _, generate, write = KINDS[kind]
    out_dir = Path(out_dir)
    subjects = [subject_id(kind, k) for k in range(n_subjects)]
    _remove_previous_run(out_dir, keep=set(subjects))
    for k, sid in enumerate(subjects):
        rng = np.random.default_rng([seed, kind_id, k])
        write(out_dir, sid, generate(rng, params))
    write_json(out_dir / "manifest.json",
               {"kind": kind, "n_subjects": n_subjects, "seed": seed, "params": params or {}, "subjects": subjects})
    return subjects


def _remove_previous_run(out_dir: Path, keep: set[str]) -> None:
    """Drop the old manifest, then the subject folders it listed that are not kept."""
    manifest = out_dir / "manifest.json"
    if not manifest.exists():
        return
    try:
        previous = json.loads(manifest.read_text()).get("subjects", [])
    except (json.JSONDecodeError, AttributeError):
        previous = []
    manifest.unlink()
    for sid in previous:
        folder = out_dir / str(sid)
        if sid not in keep and "/" not in str(sid) and sid not in ("", ".", "..") and folder.is_dir():
            shutil.rmtree(folder)
