"""`mrisr synth`: write built-in data in the layout of the real source it stands in for."""

from __future__ import annotations

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
    """Write n_subjects of `kind`; subject k depends only on (seed, kind, k). manifest.json last."""
    if kind not in KINDS:
        raise ValueError(f"unknown synth kind {kind!r}; known: {sorted(KINDS)}")
    kind_id, _, generate, write = KINDS[kind]
    subjects = []
    for k in range(n_subjects):
        rng = np.random.default_rng([seed, kind_id, k])
        sid = subject_id(kind, k)
        write(Path(out_dir), sid, generate(rng, params))
        subjects.append(sid)
    write_json(Path(out_dir) / "manifest.json",
               {"kind": kind, "n_subjects": n_subjects, "seed": seed, "params": params or {}, "subjects": subjects})
    return subjects
