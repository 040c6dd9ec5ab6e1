"""`mrisr inventory`: which subjects a raw folder holds — and none dropped without a word.

A reader's list_subjects returns the complete subjects only. A subject that is there but
incomplete (a BraTS-like folder missing one contrast, a fastMRI pair with a file missing,
a folder matching some of the `nifti` patterns) is reported by the reader's optional
`incomplete(raw_dir)`; inventory then fails with one line naming the missing file, unless
the config lists the subject in `exclude_subjects` — the user decides, nothing is lost
silently. A name in `exclude_subjects` that is no subject at all (a typo) fails too.
"""

from __future__ import annotations

from pathlib import Path

from mrisr.datasets.readers import get_reader
from mrisr.errors import InputError


def take_inventory(reader_name: str, reader_options: dict, raw: Path, exclude: list[str] | tuple[str, ...] = ()) -> dict:
    """The inventory record {"reader", "raw", "subjects"}; InputError for a missing folder,
    incomplete subjects not excluded, unknown excluded names or no subjects at all."""
    raw = Path(raw)
    if not raw.is_dir():
        raise InputError(raw, "raw data folder does not exist")
    reader = get_reader(reader_name, **reader_options)
    found = list(reader.list_subjects(raw))
    incomplete = getattr(reader, "incomplete", lambda _raw: {})(raw)
    unknown = sorted(set(exclude) - set(found) - set(incomplete))
    if unknown:
        raise InputError(raw, f"exclude_subjects names {len(unknown)} subject(s) the {reader_name} reader does not "
                              f"find here: {', '.join(unknown[:5])}")
    skipped = {s: v for s, v in incomplete.items() if s not in set(exclude)}
    if skipped:
        first, (path, problem) = next(iter(sorted(skipped.items())))
        others = f" and {len(skipped) - 1} more ({', '.join(sorted(skipped)[1:4])}{', …' if len(skipped) > 4 else ''})" \
            if len(skipped) > 1 else ""
        raise InputError(path, f"subject {first!r} is incomplete: {problem}{others}; complete it, or list "
                               f"{'it' if len(skipped) == 1 else 'them'} in the dataset's exclude_subjects")
    subjects = [s for s in found if s not in set(exclude)]
    if not subjects:
        raise InputError(raw, f"no subjects found for reader {reader_name!r}")
    return {"reader": reader_name, "raw": str(raw), "subjects": subjects}
