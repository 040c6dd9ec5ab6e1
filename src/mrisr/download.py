"""`mrisr download`: raw data from a URL or a hand-fetched archive into resources/raw/{dataset}/.

Order of events, each step safe to interrupt:

1. fetch: HTTP(S) GET into `{cache}/{name}.part`, resuming with a Range request when a
   partial file is there (a server that ignores Range restarts the file from byte 0);
2. verify: the SHA-256 of the complete file must equal the configured one *before*
   anything is extracted; a mismatch removes the partial file (resuming a corrupt file
   cannot repair it) and says expected vs got;
3. extract: into a hidden temporary folder (mrisr.io.archive.safe_extract refuses
   absolute paths, '..', links out of the target), then the top-level entries are
   renamed into the dataset folder;
4. mark: `download.json` is written last; its presence means the folder is complete.

Credentials: `auth_env` names an environment variable holding either a bearer token or a
whole header line ("Cookie: ...", "Authorization: Basic ..."). Its value is sent as a
header and never printed; URLs are printed without their query string (signed URLs carry
their signature there).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TextIO

from mrisr.errors import InputError
from mrisr.io import read_json, write_json
from mrisr.io.archive import safe_extract

MARKER = "download.json"
CHUNK = 1 << 20
PROGRESS_EVERY_S = 5.0
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):\s+(\S.*)$")  # "Name: value", space required
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def redact(url: str) -> str:
    """The URL as it may appear in logs: no user:password, no query, no fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def auth_headers(auth_env: str | None) -> dict[str, str]:
    """Header from the environment variable `auth_env` (never logged)."""
    if not auth_env:
        return {}
    value = os.environ.get(auth_env)
    if not value:
        raise InputError(f"${auth_env}", "credential environment variable is not set (or empty)")
    m = _HEADER_LINE.match(value.strip())
    if m:
        return {m.group(1): m.group(2)}
    return {"Authorization": f"Bearer {value.strip()}"}


def check_sha256(value: str, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise InputError(where, f"sha256 must be 64 hex digits, got {value!r}")
    return value.lower()


def file_sha256(path: Path, hasher=None) -> str:
    h = hasher or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def file_name_of(url: str) -> str:
    """Local name of a download: the last path component of the URL."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "download"


class _Progress:
    """A line every few seconds: bytes so far, total and percent when known."""

    def __init__(self, out: TextIO, label: str, total: int | None, start: int) -> None:
        self.out, self.label, self.total, self.done = out, label, total, start
        self.last = 0.0

    def update(self, n: int, final: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not final and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        mib = self.done / 2**20
        if self.total:
            print(f"{self.label}: {mib:.1f} of {self.total / 2**20:.1f} MiB ({100 * self.done / self.total:.0f}%)",
                  file=self.out, flush=True)
        else:
            print(f"{self.label}: {mib:.1f} MiB", file=self.out, flush=True)


def _open(url: str, headers: dict[str, str], timeout: float):
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        return err  # the caller decides (416 after a complete partial file is not an error)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise InputError(redact(url), f"cannot connect ({reason})") from None


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"^bytes (\d+)-\d+/(\d+|\*)$", (value or "").strip())
    return int(m.group(1)) if m else None


def fetch(url: str, dest: Path, sha256: str, auth_env: str | None = None, out: TextIO | None = None,
          timeout: float = 60.0) -> Path:
    """Download `url` to `dest` (resuming `dest.part`) and verify its SHA-256.

    A complete `dest` with the right checksum is reused without a request.
    """
    out = sys.stderr if out is None else out  # looked up per call: sys.stderr may be replaced
    dest = Path(dest)
    expected = check_sha256(sha256, redact(url))
    if dest.is_file():
        got = file_sha256(dest)
        if got == expected:
            print(f"{dest.name}: already downloaded, sha256 ok", file=out)
            return dest
        dest.unlink()  # stale (the configured checksum changed): fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "mrisr-download", **auth_headers(auth_env)}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    resp = _open(url, headers, timeout)
    hasher = hashlib.sha256()
    if isinstance(resp, urllib.error.HTTPError):
        if resp.code == 416 and offset:  # nothing left to send: the partial file may be complete
            resp.close()
            return _finish(part, dest, expected, file_sha256(part, hasher), url)
        resp.close()
        raise InputError(redact(url), f"HTTP {resp.code} {resp.reason}")
    with resp:
        if resp.status == 206 and _content_range_start(resp.headers.get("Content-Range")) != offset:
            part.unlink(missing_ok=True)  # a range we did not ask for: start clean next time
            raise InputError(redact(url), f"server answered range {resp.headers.get('Content-Range')!r} "
                                          f"to a request from byte {offset}; partial file removed, rerun")
        if offset and resp.status == 206:
            print(f"{dest.name}: resuming at byte {offset}", file=out)
            file_sha256(part, hasher)  # the hash continues over the bytes already there
            mode = "ab"
        else:
            if offset:
                print(f"{dest.name}: server ignored the range request, starting again", file=out)
            offset, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        progress = _Progress(out, dest.name, total, offset)
        try:
            with open(part, mode) as f:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    f.write(block)
                    hasher.update(block)
                    progress.update(len(block))
        except (OSError, http.client.HTTPException) as err:
            raise InputError(redact(url), f"transfer interrupted after {progress.done} bytes ({err}); "
                                          f"rerun to resume") from None
        progress.update(0, final=True)
    if total is not None and part.stat().st_size != total:
        raise InputError(redact(url), f"transfer ended at {part.stat().st_size} of {total} bytes; rerun to resume")
    return _finish(part, dest, expected, hasher.hexdigest(), url)


def _finish(part: Path, dest: Path, expected: str, got: str, url: str) -> Path:
    if got != expected:
        part.unlink(missing_ok=True)
        raise InputError(redact(url), f"sha256 mismatch: expected {expected}, got {got} (download removed)")
    os.replace(part, dest)
    return dest


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def sources_of(spec: dict) -> list[dict]:
    """[{url, sha256, auth_env} | {archive, sha256?}] from a `raw` config entry; `url`,
    `archive` and `sha256` may each be one value or a list (one checksum per file)."""
    urls, archives, sums = _as_list(spec.get("url")), _as_list(spec.get("archive")), _as_list(spec.get("sha256"))
    if bool(urls) == bool(archives):
        raise InputError("raw", "give either `url` (+ `sha256`) or `archive`")
    files = urls or archives
    if urls and len(sums) != len(urls):
        raise InputError("raw", f"{len(urls)} url(s) need {len(urls)} sha256 value(s), got {len(sums)}")
    if archives and sums and len(sums) != len(archives):
        raise InputError("raw", f"{len(archives)} archive(s) but {len(sums)} sha256 value(s)")
    key = "url" if urls else "archive"
    out = []
    for k, f in enumerate(files):
        src = {key: str(f), "sha256": sums[k] if sums else None}
        if urls:
            src["auth_env"] = spec.get("auth_env")
        out.append(src)
    return out


def local_archive(src: dict, cache_dir: Path, out: TextIO) -> Path:
    """The verified archive file of one source (downloaded, or the user's own)."""
    if "url" in src:
        return fetch(src["url"], Path(cache_dir) / file_name_of(src["url"]), src["sha256"], src.get("auth_env"), out)
    path = Path(src["archive"])
    if not path.is_file():
        raise InputError(path, "archive not found")
    if src.get("sha256"):
        expected = check_sha256(src["sha256"], str(path))
        got = file_sha256(path)
        if got != expected:
            raise InputError(path, f"sha256 mismatch: expected {expected}, got {got}")
    return path


def marker_entries(marker: Path) -> list:
    """The `entries` an earlier run listed in its marker file ([] when absent or unreadable)."""
    if not marker.is_file():
        return []
    try:
        return read_json(marker).get("entries", [])
    except (InputError, AttributeError):
        return []


def _previous_entries(out_dir: Path) -> list[str]:
    """Top-level entries the previous download wrote (its marker's list), safe names only."""
    return [e for e in marker_entries(out_dir / MARKER)
            if isinstance(e, str) and "/" not in e and e not in ("", ".", "..", MARKER)]


def _check_no_clash(out_dir: Path, entries: list[str], previous: list[str]) -> None:
    """An archive entry may replace only what a previous download made: a file or folder of
    the user's with the same name is never deleted (the whole download stops instead)."""
    theirs = [n for n in entries if n not in previous and ((out_dir / n).exists() or (out_dir / n).is_symlink())]
    if theirs:
        raise InputError(out_dir / theirs[0], f"already exists and is not from a previous download; the archive "
                                              f"has a top-level entry of the same name{'s' * (len(theirs) > 1)} "
                                              f"({', '.join(theirs[:5])}): move yours away or pick another folder")


def remove_path(path: Path) -> None:
    """Delete a file, link or folder tree (a no-op when it is not there)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def materialise(spec: dict, out_dir: Path, cache_dir: Path, out: TextIO | None = None) -> dict:
    """Fetch/verify every source of `spec`, extract them into out_dir, write the marker.

    Entries left by a previous run (listed in its marker) are replaced; nothing else in
    out_dir is touched. Returns the marker's content.
    """
    out = sys.stderr if out is None else out  # looked up per call: sys.stderr may be replaced
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sources_of(spec)
    archives = [local_archive(src, cache_dir, out) for src in sources]  # all verified before any extraction
    staging = out_dir / ".extracting"
    remove_path(staging)
    try:
        for k, archive in enumerate(archives):
            print(f"extracting {archive.name}", file=out, flush=True)
            part = staging / f"archive{k}"
            safe_extract(archive, part)
            for entry in part.iterdir():  # merge archives (e.g. DSB train.zip + validate.zip)
                target = staging / "merged" / entry.name
                target.parent.mkdir(parents=True, exist_ok=True)
                remove_path(target)
                os.replace(entry, target)
            shutil.rmtree(part)
        merged = staging / "merged"
        entries = sorted(p.name for p in merged.iterdir()) if merged.exists() else []
        if not entries:
            raise InputError(archives[0], "archive is empty")
        if MARKER in entries:
            raise InputError(archives[0], f"archive holds a top-level {MARKER}, which mrisr reserves")
        previous = _previous_entries(out_dir)
        _check_no_clash(out_dir, entries, previous)  # before anything in out_dir changes
        (out_dir / MARKER).unlink(missing_ok=True)  # from here on the folder is incomplete until the new marker
        for name in set(previous) | set(entries):
            remove_path(out_dir / name)
        for name in entries:
            os.replace(merged / name, out_dir / name)
    finally:
        remove_path(staging)
    record = {"sources": [{**({"url": redact(s["url"])} if "url" in s else {"archive": s["archive"]}),
                           "sha256": file_sha256(a) if not s.get("sha256") else s["sha256"].lower()}
                          for s, a in zip(sources, archives)],
              "entries": entries}
    write_json(out_dir / MARKER, record)
    print(f"{len(entries)} top-level entries in {out_dir}", file=out)
    return record

