"""The multi-subject forms of prepare / degrade / degrade-scales / motion / register (issue 15).

One job per dataset (× scale) instead of one per subject: the files each subject gets must be
byte for byte those of the one-subject form (which the rules ran before), a subject's output
must not depend on which other subjects are in the batch, and a bad subject must fail the job
with one line naming its file while the others are still written and no manifest claims the
folder complete.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

from mrisr.cli import main
from mrisr.datasets import write_synth
from mrisr.io import read_nifti

SUBJECTS = ["100001", "100002", "100003"]
META = json.dumps({"dataset": "d", "series": "t1w"})


def run(argv: list, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def files(folder: Path) -> list[str]:
    """Every file below `folder`, hidden ones too (a temp file left behind would show)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def same_tree(a: Path, b: Path) -> None:
    assert files(a) == files(b) and files(a)
    for rel in files(a):
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Three HCP-like volumes: raw/, inventory.json, and prepared/ + prepared.json by the batch form."""
    root = tmp_path_factory.mktemp("batch")
    write_synth("volume", root / "raw", 3, 1, {"shape": [24, 30, 24]})
    assert main(["inventory", "--reader", "hcp", "--raw", str(root / "raw"), "--out", str(root / "inventory.json")]) == 0
    assert main(["prepare", "--reader", "hcp", "--raw", str(root / "raw"), "--dataset", "d",
                 "--subjects", str(root / "inventory.json"), "--out-root", str(root / "prepared"),
                 "--manifest", str(root / "prepared.json"), "--crop-axes", "0", "1", "2"]) == 0
    return root


def test_batch_prepare_writes_what_one_subject_jobs_write(prepared: Path, tmp_path: Path) -> None:
    assert json.loads((prepared / "prepared.json").read_text()) == {"dataset": "d", "subjects": SUBJECTS}
    for s in SUBJECTS:
        assert main(["prepare", "--reader", "hcp", "--raw", str(prepared / "raw"), "--dataset", "d",
                     "--subject", s, "--out-dir", str(tmp_path / s), "--crop-axes", "0", "1", "2"]) == 0
    same_tree(prepared / "prepared", tmp_path)
    # the dataset manifest is written after every subject's own manifest
    newest = max((prepared / "prepared" / s / "manifest.json").stat().st_mtime_ns for s in SUBJECTS)
    assert (prepared / "prepared.json").stat().st_mtime_ns >= newest


def test_batch_degrade_writes_what_one_subject_jobs_write(prepared: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(prepared)  # relative paths, as the rules pass them (sidecars record hr_source)
    out = tmp_path / "batch"
    assert main(["degrade", "--subjects", "prepared.json", "--prepared-dir", "prepared", "--out-dir", str(out / "x2"),
                 "--manifest", str(out / "x2.json"), "--mode", "truncate", "--scale", "2", "--axes", "0", "1", "2",
                 "--meta", META]) == 0
    for s in SUBJECTS:
        meta = json.dumps({"dataset": "d", "subject": s, "series": "t1w"})
        assert main(["degrade", "--hr", f"prepared/{s}/t1w.nii.gz", "--out", str(tmp_path / f"one/x2/{s}.nii.gz"),
                     "--mode", "truncate", "--scale", "2", "--axes", "0", "1", "2", "--meta", meta]) == 0
    same_tree(out / "x2", tmp_path / "one/x2")
    assert json.loads((out / "x2/100002.json").read_text())["hr_source"] == "prepared/100002/t1w.nii.gz"
    manifest = json.loads((out / "x2.json").read_text())
    assert manifest["subjects"] == SUBJECTS and manifest["scale"] == 2.0 and manifest["mode"] == "truncate"


def test_batch_degrade_scales_matches_the_one_subject_form(prepared: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(prepared)
    common = ["--mode", "lowpass_bicubic", "--scales", "1.5", "2", "--axes", "0", "1"]
    assert main(["degrade-scales", "--subjects", "prepared.json", "--prepared-dir", "prepared",
                 "--out-root", str(tmp_path / "batch"), "--meta", META, *common]) == 0
    for s in SUBJECTS:
        meta = json.dumps({"dataset": "d", "subject": s, "series": "t1w"})
        assert main(["degrade-scales", "--hr", f"prepared/{s}/t1w.nii.gz", "--subject", s,
                     "--out-root", str(tmp_path / "one"), "--meta", meta, *common]) == 0
    for scale in ("x1.5", "x2"):
        same_tree(tmp_path / "batch" / scale, tmp_path / "one" / scale)
        assert json.loads((tmp_path / "batch" / f"{scale}.json").read_text())["subjects"] == SUBJECTS


def test_a_subjects_motion_does_not_depend_on_the_others_in_its_batch(prepared: Path, tmp_path: Path,
                                                                       monkeypatch) -> None:
    """Seeded by (seed, subject): subject 100003 moves the same alone, in a batch, and one at a time."""
    monkeypatch.chdir(prepared)
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"target": SUBJECTS, "alone": ["100003"]}))
    ranges = json.dumps({"rot_deg": [0, 3], "trans_vox": [0, 2], "shrink_vox": [0, 1]})
    for name, key in (("all", "target"), ("alone", "alone")):
        assert main(["motion", "--subjects", str(groups), "--subjects-key", key, "--prepared-dir", "prepared",
                     "--out-dir", str(tmp_path / name), "--manifest", str(tmp_path / f"{name}.json"),
                     "--ranges", ranges, "--seed", "5", "--meta", META]) == 0
    assert main(["motion", "--hr", "prepared/100003/t1w.nii.gz", "--out", str(tmp_path / "one/100003.nii.gz"),
                 "--subject", "100003", "--ranges", ranges, "--seed", "5", "--meta", META]) == 0
    same_tree(tmp_path / "alone", tmp_path / "one")
    for f in ("100003.nii.gz", "100003.json"):
        assert filecmp.cmp(tmp_path / "all" / f, tmp_path / "one" / f, shallow=False)
    params = {s: json.loads((tmp_path / f"all/{s}.json").read_text())["params"] for s in SUBJECTS}
    assert params["100001"] != params["100002"]  # per-subject draws, not one draw for the batch


def test_batch_register_matches_the_one_subject_form(prepared: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(prepared)
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"target": ["100001"]}))
    assert main(["degrade", "--subjects", str(groups), "--subjects-key", "target", "--prepared-dir", "prepared",
                 "--out-dir", str(tmp_path / "lr"), "--manifest", str(tmp_path / "lr.json"), "--mode", "truncate",
                 "--scale", "2", "--axes", "0", "1", "2", "--meta", META]) == 0
    assert main(["motion", "--subjects", str(groups), "--subjects-key", "target", "--prepared-dir", "prepared",
                 "--out-dir", str(tmp_path / "moved"), "--manifest", str(tmp_path / "moved.json"),
                 "--ranges", json.dumps({"rot_deg": [0, 2], "trans_vox": [0, 1], "shrink_vox": [0, 0]}),
                 "--meta", META]) == 0
    assert main(["register", "--subjects", str(groups), "--subjects-key", "target", "--lr-dir", str(tmp_path / "lr"),
                 "--moving-dir", str(tmp_path / "moved"), "--out-dir", str(tmp_path / "reg"),
                 "--manifest", str(tmp_path / "reg.json")]) == 0
    assert main(["register", "--lr", str(tmp_path / "lr/100001.nii.gz"), "--moving", str(tmp_path / "moved/100001.nii.gz"),
                 "--out", str(tmp_path / "one/100001.nii.gz")]) == 0
    # Registration is reproducible bit for bit (one thread in every ITK filter, mrisr.degrade.register).
    assert files(tmp_path / "reg") == files(tmp_path / "one") == ["100001.json", "100001.nii.gz"]
    batch, one = (json.loads((tmp_path / d / "100001.json").read_text()) for d in ("reg", "one"))
    assert batch == one
    a, _ = read_nifti(tmp_path / "reg/100001.nii.gz", canonical=False)
    b, _ = read_nifti(tmp_path / "one/100001.nii.gz", canonical=False)
    np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "reg.json").read_text())["subjects"] == ["100001"]


def test_a_bad_subject_fails_the_batch_in_one_line_and_the_others_are_still_written(
        prepared: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    work = tmp_path / "work"
    (work / "prepared").mkdir(parents=True)
    for s in SUBJECTS:
        (work / "prepared" / s).symlink_to(prepared / "prepared" / s)
    (work / "prepared.json").write_text((prepared / "prepared.json").read_text())
    (work / "prepared" / "100002").unlink()
    (work / "prepared" / "100002").mkdir()
    (work / "prepared" / "100002" / "t1w.nii.gz").write_bytes(b"not a NIfTI")  # the bad subject
    monkeypatch.chdir(work)
    argv = ["degrade", "--subjects", "prepared.json", "--prepared-dir", "prepared", "--out-dir", "lr/x2",
            "--manifest", "lr/x2.json", "--mode", "truncate", "--scale", "2", "--axes", "0", "1", "2", "--meta", META]
    rc, lines = run(argv, capsys)
    assert rc == 1 and len(lines) == 1, lines
    assert lines[0].startswith("mrisr degrade: error: prepared/100002/t1w.nii.gz: "), lines
    # the others are complete (image and its sidecar, written last); nothing claims the folder complete
    assert files(work / "lr") == ["x2/100001.json", "x2/100001.nii.gz", "x2/100003.json", "x2/100003.nii.gz"]
    # a second bad subject: still one error line (the first), the other listed before it
    (work / "prepared" / "100003").unlink()
    rc, lines = run(argv, capsys)
    assert rc == 1 and len(lines) == 2, lines
    assert lines[0] == "mrisr degrade: also failed: prepared/100003/t1w.nii.gz: file not found"
    assert lines[1].startswith("mrisr degrade: error: prepared/100002/t1w.nii.gz: ")
    assert lines[1].endswith("(2 of 3 subjects failed; the others are listed above)")
    assert not (work / "lr/x2.json").exists()


def test_a_bad_subject_list_and_a_mixed_form_are_one_line(prepared: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "inventory.json"
    bad.write_text(json.dumps({"subjects": "100001"}))
    rc, lines = run(["prepare", "--reader", "hcp", "--raw", prepared / "raw", "--dataset", "d", "--subjects", bad,
                     "--out-root", tmp_path / "p", "--manifest", tmp_path / "p.json"], capsys)
    assert rc == 1 and lines == [f"mrisr prepare: error: {bad}: expected a list of subject IDs under 'subjects'"]
    rc, lines = run(["degrade", "--hr", "x.nii.gz", "--subjects", bad, "--mode", "truncate", "--scale", "2",
                     "--axes", "0", "--out", tmp_path / "x.nii.gz"], capsys)
    assert rc == 1 and len(lines) == 1 and "give either --hr, --out (one subject) or --subjects" in lines[0], lines
    assert not (tmp_path / "p").exists() and not (tmp_path / "x.nii.gz").exists()
