"""`mrisr install-scans`: real scans shipped inside installed Python packages -> resources/raw/{dataset}/.

The `installed` raw source (config `raw: {installed: [{package, path, sha256[, subject]}, ...]}`)
takes real MRI files that a pinned package carries in its wheel (nibabel's
`tests/data/example4d.nii.gz`, dipy's `data/files/S0_10slices.nii.gz`), so that they install
offline with `pip install -r requirements.txt` like the code (docs/real_scans.md). Order of
events, each step safe to interrupt:

1. verify: every entry is located and checked before anything is written. The package's
   folder is found without importing it (`importlib.util.find_spec` of the top-level package);
   the file's SHA-256 must equal the configured one. A package that is not installed, a file
   it lacks or a checksum mismatch fails with ONE line naming package and file;
2. copy: each file byte for byte into a hidden staging folder as `{subject}/{file name}`,
   with `{subject}/NOTICE.md` beside it: where it came from (package, version, path, sha256)
   and the package's licence (its metadata and the text of every licence file in its
   dist-info), since the licences ask that the notice travel with every copy;
3. replace: the subject folders of a previous run (listed in its marker) are replaced; a
   folder of the user's with the same name is never touched (the run stops instead);
4. mark: `installed.json` is written last; its presence means the folder is complete.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path, PurePosixPath
from typing import TextIO

from mrisr.download import check_sha256, file_sha256, marker_entries, remove_path
from mrisr.errors import InputError
from mrisr.io import write_json

MARKER = "installed.json"
NOTICE = "NOTICE.md"
STAGING = ".installing"
_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a top-level import name
_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")  # as the readers' subject ids
_LICENCE_FILE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)


def default_subject(package: str, path: str) -> str:
    """`{package}_{file stem}` with anything but letters, digits, '_' and '-' made '_'
    (dipy + data/files/S0_10slices.nii.gz -> dipy_S0_10slices)."""
    stem = PurePosixPath(path).name
    for ext in (".nii.gz", ".nii", ".gz"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return re.sub(r"[^A-Za-z0-9_\-]", "_", f"{package}_{stem}")


def _entries(spec: list) -> list[dict]:
    """The config entries, checked: {package, path, sha256, subject} each, subjects unique."""
    if not isinstance(spec, list) or not spec:
        raise InputError("raw.installed", "needs a non-empty list of {package, path, sha256}")
    out, seen = [], set()
    for k, e in enumerate(spec):
        where = f"raw.installed[{k}]"
        if not isinstance(e, dict) or not {"package", "path", "sha256"} <= set(e):
            raise InputError(where, "needs package, path and sha256")
        unknown = set(e) - {"package", "path", "sha256", "subject"}
        if unknown:
            raise InputError(where, f"unknown key(s) {sorted(unknown)} (package, path, sha256, subject)")
        package, path = str(e["package"]), str(e["path"])
        if not _PACKAGE.match(package):
            raise InputError(where, f"package must be a top-level import name (e.g. nibabel), got {package!r}")
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or ".." in parts or "\\" in path:
            raise InputError(where, f"path must be relative to the package folder, without '..': {path!r}")
        subject = str(e.get("subject") or default_subject(package, path))
        if not _SUBJECT.match(subject):
            raise InputError(where, f"subject {subject!r}: letters, digits, '_' and '-' only")
        if subject in seen:
            raise InputError(where, f"subject {subject!r} is given twice")
        seen.add(subject)
        out.append({"package": package, "path": path, "sha256": check_sha256(e["sha256"], where), "subject": subject})
    return out


def package_dir(package: str) -> Path:
    """The installed package's folder, found without importing (running) the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(package, f"package {package!r} is not installed in this Python ({sys.executable}); "
                                  f"install the pinned requirements (scripts/bootstrap.sh)")
    return Path(list(spec.submodule_search_locations)[0])


def locate(entry: dict) -> Path:
    """The verified file of one entry (InputError naming package and file otherwise)."""
    root = package_dir(entry["package"])
    path = root / entry["path"]
    label = f"{entry['package']}/{entry['path']}"
    if not path.is_file():
        raise InputError(label, f"not found in the installed {entry['package']} {_version(entry['package']) or '?'} "
                                f"({root}); another version of the package? (pinned in requirements.txt)")
    got = file_sha256(path)
    if got != entry["sha256"]:
        raise InputError(label, f"sha256 mismatch: expected {entry['sha256']}, got {got} (installed "
                                f"{entry['package']} {_version(entry['package']) or '?'}; the config's checksum is "
                                f"for the version pinned in requirements.txt)")
    return path


def _distribution(package: str) -> importlib.metadata.Distribution | None:
    names = importlib.metadata.packages_distributions().get(package, [package])
    for name in names:
        try:
            return importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _version(package: str) -> str | None:
    dist = _distribution(package)
    return dist.version if dist is not None else None


def licence_texts(package: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(licence lines from the metadata, [(file, text)] of the licence files in the dist-info)."""
    dist = _distribution(package)
    if dist is None:
        return [], []
    meta = dist.metadata
    lines = []
    if meta.get("License-Expression"):
        lines.append(f"License-Expression: {meta['License-Expression']}")
    licence = (meta.get("License") or "").strip()
    if licence and "\n" not in licence and len(licence) < 200:  # a name, not the whole text (that is a file below)
        lines.append(f"License: {licence}")
    lines += [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    files = []
    for f in dist.files or []:
        if f.parts and f.parts[0].endswith(".dist-info") and _LICENCE_FILE.search(f.name):
            try:
                files.append((str(f), Path(dist.locate_file(f)).read_text(encoding="utf-8", errors="replace")))
            except OSError:
                continue
    if not files and licence and "\n" in licence:  # the metadata field holds the whole text
        files.append(("METADATA License field", licence))
    return lines, files


def notice_text(entry: dict, version: str | None) -> str:
    """NOTICE.md of one copied scan: provenance, then the package's licence."""
    lines, files = licence_texts(entry["package"])
    out = [f"# {entry['subject']}: a real scan copied from the `{entry['package']}` package", "",
           f"- file: `{PurePosixPath(entry['path']).name}` (this folder), a byte-for-byte copy of",
           f"  `{entry['path']}` inside the installed package `{entry['package']}` {version or '(version unknown)'}",
           f"- sha256: `{entry['sha256']}`",
           "- copied by `mrisr install-scans` (the `installed` raw source); see docs/real_scans.md in the",
           "  mrisr repository for what the scan is and why it is used", "",
           f"## Licence of `{entry['package']}` (the scan is distributed under it)", ""]
    out += [f"- {line}" for line in lines] or ["- (no licence field in the package metadata)"]
    for name, text in files:
        out += ["", f"### `{name}`", "", "```", text.rstrip("\n"), "```"]
    if not files:
        out += ["", "(no licence file found in the package's dist-info)"]
    return "\n".join(out) + "\n"


def _previous_subjects(out_dir: Path) -> list[str]:
    """Subject folders the previous run wrote (its marker's list), safe names only."""
    return [e for e in marker_entries(out_dir / MARKER) if isinstance(e, str) and _SUBJECT.match(e)]


def install_scans(spec: list, out_dir: Path, out: TextIO | None = None) -> dict:
    """Verify every entry of `spec`, copy them into out_dir (+ NOTICE.md each), write the marker last.
    Returns the marker's content."""
    out = sys.stderr if out is None else out
    out_dir = Path(out_dir)
    entries = _entries(spec)
    files = [locate(e) for e in entries]  # all verified before anything is written
    previous = _previous_subjects(out_dir)
    theirs = [e["subject"] for e in entries if e["subject"] not in previous
              and ((out_dir / e["subject"]).exists() or (out_dir / e["subject"]).is_symlink())]
    if theirs:
        raise InputError(out_dir / theirs[0], "already exists and is not from a previous install-scans run: "
                                              "move it away or pick another subject name")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / STAGING
    remove_path(staging)
    sources = []
    try:
        for e, src in zip(entries, files):
            folder = staging / e["subject"]
            folder.mkdir(parents=True)
            dest = folder / src.name
            shutil.copyfile(src, dest)
            if file_sha256(dest) != e["sha256"]:  # the copy itself (a full disk, a file changing under us)
                raise InputError(dest, "copy does not match the source's sha256")
            version = _version(e["package"])
            (folder / NOTICE).write_text(notice_text(e, version), encoding="utf-8")
            sources.append({**e, "version": version, "file": f"{e['subject']}/{src.name}"})
            print(f"{e['package']}/{e['path']} -> {e['subject']}/{src.name} (sha256 ok)", file=out, flush=True)
        (out_dir / MARKER).unlink(missing_ok=True)  # from here on the folder is incomplete until the new marker
        for name in set(previous) | {e["subject"] for e in entries}:
            remove_path(out_dir / name)
        for e in entries:
            os.replace(staging / e["subject"], out_dir / e["subject"])
    finally:
        remove_path(staging)
    record = {"sources": sources, "entries": [e["subject"] for e in entries]}
    write_json(out_dir / MARKER, record)
    return record
