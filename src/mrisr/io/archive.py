"""Safe extraction of downloaded archives (zip, tar, tar.gz/bz2/xz).

Archives come from the internet or from a user's hand, so every member is checked
before it is written: absolute names, `..` components, links that point out of the
target, and device files are refused with one line naming the archive and the member.
Tar members additionally pass tarfile's `data` filter (PEP 706) as a second line of
defence. The caller extracts into a fresh temporary folder and renames it into place,
so a refused archive never leaves part of itself where the readers look.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from mrisr.errors import InputError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)


def archive_kind(path: Path) -> str:
    """'zip' or 'tar', from the name, else from the content (signed download URLs often
    carry no useful suffix). Anything else is an InputError naming the type."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if not path.is_file():
        raise InputError(path, "archive not found")
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    suffix = "".join(PurePosixPath(name).suffixes[-2:]) or "(none)"
    raise InputError(path, f"unsupported archive type {suffix}: expected zip or tar (.tar, .tar.gz, .tar.bz2, .tar.xz)")


def check_member_name(archive: Path, name: str) -> PurePosixPath:
    """A member name must be relative and stay below the target: no leading '/', no
    drive letter or backslash tricks, no '..' component."""
    if not name or "\x00" in name:
        raise InputError(archive, f"member {name!r}: empty or NUL in name")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise InputError(archive, f"member {name!r}: absolute path refused")
    rel = PurePosixPath(posix)
    if ".." in rel.parts:
        raise InputError(archive, f"member {name!r}: '..' in path refused")
    return rel


def _inside(root: Path, target: Path) -> bool:
    root = root.resolve()
    target = target.resolve()
    return target == root or root in target.parents


def _check_link(archive: Path, dest: Path, name: PurePosixPath, link: str, hard: bool) -> None:
    """A link must point to a relative place inside the target (for a symlink, relative to
    the link's own folder; for a hard link, to the archive root)."""
    if not link or link.startswith("/") or (len(link) > 1 and link[1] == ":"):
        raise InputError(archive, f"member {str(name)!r}: link to absolute path {link!r} refused")
    base = dest if hard else dest / name.parent
    if not _inside(dest, base / link):
        raise InputError(archive, f"member {str(name)!r}: link {link!r} points out of the target folder")


def _tar_filter(archive: Path, dest: Path):
    def check(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        rel = check_member_name(archive, member.name)
        if member.isdev() or member.isfifo():
            raise InputError(archive, f"member {member.name!r}: device or FIFO refused")
        if member.issym() or member.islnk():
            _check_link(archive, dest, rel, member.linkname, hard=member.islnk())
        if not _inside(dest, dest / rel):  # e.g. through a symlinked folder extracted earlier
            raise InputError(archive, f"member {member.name!r}: resolves outside the target folder")
        try:
            return tarfile.data_filter(member, path)
        except tarfile.FilterError as err:
            raise InputError(archive, f"member {member.name!r}: refused ({err})") from None

    return check


def _extract_tar(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter=_tar_filter(archive, dest))
    except (tarfile.ReadError, EOFError, OSError) as err:  # InputError from the filter passes through
        raise InputError(archive, f"corrupt or truncated tar archive ({type(err).__name__}: {err})") from None


def _extract_zip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:  # check every name first: zip's directory is at the end anyway
                rel = check_member_name(archive, info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise InputError(archive, f"member {info.filename!r}: symbolic link refused")
                if not _inside(dest, dest / rel):
                    raise InputError(archive, f"member {info.filename!r}: resolves outside the target folder")
            for info in members:
                zf.extract(info, dest)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise InputError(archive, f"corrupt or truncated zip archive ({type(err).__name__}: {err})") from None


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract `archive` into the folder `dest` (created; must be empty) and return the
    sorted top-level entry names. Raises InputError on an unsafe member, a corrupt
    archive or an unsupported type."""
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InputError(dest, "extraction folder is not empty")
    (_extract_zip if kind == "zip" else _extract_tar)(archive, dest)
    return sorted(p.name for p in dest.iterdir())
