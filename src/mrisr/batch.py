"""Many subjects in one job (issue 15): the multi-subject forms of `mrisr prepare / degrade /
degrade-scales / motion / register`.

One Snakemake job per subject cost more than the work (~0.1-0.25 CPU-s of scheduler time per job
plus ~0.5 s of interpreter start), so these stages run one job per dataset (× scale). The job's
declared output is a manifest (the subject list) written LAST, after every subject's files:

* each subject's files are written exactly as the one-subject form writes them (same paths, same
  bytes, each atomically, sidecar last); every random choice is seeded by (seed, stage, subject),
  so a subject's output never depends on which others are in the batch;
* a subject with bad input does not stop the others: the remaining subjects are still written
  (complete files, kept), and the job then fails with one error line naming the first bad
  subject's file (further bad subjects are listed on lines before it). No manifest is written, so nothing downstream takes
  the folder for complete; a rerun (after fixing or excluding the subject) redoes the batch;
* a bug (any other exception) stops the batch at once, as it would a one-subject job.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

from mrisr.errors import InputError, one_line
from mrisr.io import read_json, write_json

# Errors that mean "this subject's input is bad" (mrisr.cli.main reports the same ones as one line).
SUBJECT_ERRORS = (InputError, OSError, ValueError)


class BatchError(ValueError):
    """Some subjects of a batch failed; str() is one line naming the first one's file."""

    def __init__(self, lines: Sequence[str], n_subjects: int) -> None:
        self.lines = list(lines)
        more = f" ({len(lines)} of {n_subjects} subjects failed; the others are listed above)" if len(lines) > 1 else ""
        super().__init__(f"{self.lines[0]}{more}")


def read_subjects(path: Path, key: str = "subjects") -> list[str]:
    """The subject list under `key` of a JSON file (inventory.json, prepared.json, groups.json)."""
    data = read_json(path)
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise InputError(path, f"expected a list of subject IDs under {key!r}")
    return value


def subject_error_line(err: BaseException, source: str) -> str:
    """One line naming a file: the error's own file where it knows one, else the subject's `source`."""
    if isinstance(err, InputError) or (isinstance(err, OSError) and err.filename is not None):
        return one_line(err)
    return f"{source}: {one_line(err)}"


def for_each_subject(
    subjects: Sequence[str],
    work: Callable[[str], object],
    source: Callable[[str], str],
    stage: str,
) -> dict[str, object]:
    """work(subject) for every subject, in order; returns {subject: result}.

    Bad input of one subject (SUBJECT_ERRORS) does not stop the loop. After the last subject,
    BatchError names the first failure (mrisr.cli.main prints it as the job's one error line);
    any further failures are printed before it as `mrisr {stage}: also failed: ...` lines."""
    results: dict[str, object] = {}
    failed: list[str] = []
    for subject in subjects:
        try:
            results[subject] = work(subject)
        except SUBJECT_ERRORS as err:
            failed.append(subject_error_line(err, source(subject)))
    for line in failed[1:]:
        print(f"mrisr {stage}: also failed: {line}", file=sys.stderr, flush=True)
    if failed:
        raise BatchError(failed, len(subjects))
    return results


def write_manifest(path: Path, subjects: Sequence[str], **fields: object) -> None:
    """The batch's declared output, written last: its presence means every listed subject is complete."""
    write_json(Path(path), {**fields, "subjects": list(subjects)})
