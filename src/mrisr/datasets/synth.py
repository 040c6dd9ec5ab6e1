"""`mrisr synth`: write built-in data in the layout of the real source it stands in for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from dataclasses import dataclass, field
from typing import Callable

from mrisr.datasets.synth_cine import generate_cine, write_cine_subject
from mrisr.datasets.synth_dsb import write_dsb_subject
from mrisr.datasets.synth_fastmri import DEFAULTS as FASTMRI_DEFAULTS
from mrisr.datasets.synth_fastmri import finish_fastmri, write_fastmri_subject
from mrisr.datasets.synth_multicontrast import generate_multicontrast, write_multicontrast_subject
from mrisr.datasets.synth_volume import generate_volume, write_volume_subject
from mrisr.io import write_json

KINDS = {  # kind: (kind id for the RNG, subject id pattern, generator, writer)
    "cine": (1, "patient{:03d}", generate_cine, write_cine_subject),
    "multicontrast": (2, "SYN_{:04d}", generate_multicontrast, write_multicontrast_subject),
    "volume": (3, "{:06d}", generate_volume, write_volume_subject),
}
VOLUME_ID_BASE = 100000  # HCP-like six-digit ids


@dataclass(frozen=True)
class Format:
    """A file layout the generated subjects can be written in (`params.format`).

    The subject's content comes from the kind's generator either way (same seed → same
    anatomy); only the writer, the subject ids and a few writer-only params differ.
    """

    subject_id: Callable[[int], str] | None  # k -> id; None: the kind's pattern
    writer: Callable | None  # None: the kind's writer
    defaults: dict = field(default_factory=dict)  # writer-only params
    finish: Callable | None = None  # (out_dir, subjects, **params) after all subjects
    generator_defaults: dict = field(default_factory=dict)  # e.g. fastMRI is a knee


FORMATS = {  # kind -> format name -> Format; the first is the default
    "cine": {"acdc": Format(None, None),
             "dsb": Format(lambda k: str(k + 1), write_dsb_subject)},  # Kaggle DSB 2015 DICOM
    "multicontrast": {"brats": Format(None, None),
                      "fastmri": Format(lambda k: f"file{1000001 + 2 * k:07d}", write_fastmri_subject,
                                        dict(FASTMRI_DEFAULTS), finish_fastmri, {"flavour": "knee"})},  # fastMRI HDF5
    "volume": {"hcp": Format(None, None)},
}


def subject_id(kind: str, k: int, fmt: str | None = None) -> str:
    custom = FORMATS[kind][fmt].subject_id if fmt else None
    if custom is not None:
        return custom(k)
    pattern = KINDS[kind][1]
    return pattern.format(k + 1 + (VOLUME_ID_BASE if kind == "volume" else 0))


def split_format(kind: str, params: dict | None) -> tuple[str, Format, dict, dict]:
    """(format name, Format, generator params, writer params) from a kind's params."""
    params = dict(params or {})
    names = list(FORMATS[kind])
    name = params.pop("format", names[0])
    if name not in FORMATS[kind]:
        raise ValueError(f"synth param 'format' for kind {kind!r} must be one of {names}, got {name!r}")
    fmt = FORMATS[kind][name]
    writer_params = {**fmt.defaults, **{k: params.pop(k) for k in list(params) if k in fmt.defaults}}
    return name, fmt, {**fmt.generator_defaults, **params}, writer_params


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
    fmt_name, fmt, gen_params, writer_params = split_format(kind, params)
    write = fmt.writer or write
    out_dir = Path(out_dir)
    subjects = [subject_id(kind, k, fmt_name) for k in range(n_subjects)]
    _remove_previous_run(out_dir, keep=set(subjects))
    for k, sid in enumerate(subjects):
        rng = np.random.default_rng([seed, kind_id, k])
        write(out_dir, sid, generate(rng, gen_params), **writer_params)
    if fmt.finish is not None:
        fmt.finish(out_dir, subjects, **writer_params)
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
