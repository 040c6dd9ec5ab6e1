"""Bad input and faults, tried as a hostile new user would (issue 14): nothing lost, nothing silent.

Every case runs a stage the way a Snakemake rule does — `mrisr.cli.main([...])`, in process —
and asserts the contract of docs/architecture.md ("bad input = one clear line naming the file
and the problem"): the exit status, ONE line on stderr naming the file (or the config key),
and that no partial output is left where the next stage would look.

The first tests are the regressions of the issue's failed cases, named after them
(`test_case02_…` is case 2 of issue 14); the parametrized suite follows, by input kind.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import yaml

from mrisr.cli import main

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ helpers
def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """(exit status, non-empty stderr lines) of one in-process `mrisr` call."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: usage errors exit 2
        rc = exc.code
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_one_line(rc: int, lines: list[str], *needles, code: int = 1) -> str:
    """Exit status `code` and exactly one error line on stderr, the last one, containing every
    needle (progress lines before it, e.g. "extracting x.zip", are the job's log); no traceback."""
    assert rc == code, lines
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert not any("Traceback" in line or line.startswith("  File ") for line in lines), lines
    if code == 1:  # argparse (code 2) prints its usage first
        assert errors[0].startswith("mrisr "), errors
    for needle in needles:
        assert str(needle) in errors[0], (needle, errors[0])
    return errors[0]


def files_under(folder: Path) -> list[str]:
    """Every file below `folder` (hidden ones too), relative; [] when it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def phantom(shape=(24, 24, 4), seed: int = 0) -> np.ndarray:
    """A bright disc on a dark background with some noise: a preparable 3D (or 4D) image."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    disc = ((x - shape[0] / 2) ** 2 + (y - shape[1] / 2) ** 2 < (shape[0] / 3) ** 2).astype(np.float32)
    out = disc.reshape(disc.shape + (1,) * (len(shape) - 2)) * 100 + rng.random(shape).astype(np.float32)
    return out.astype(np.float32)


def hcp_file(raw: Path, subject: str = "100001") -> Path:
    return raw / subject / "T1w" / "T1w_acpc_dc_restore.nii.gz"


def prepare_argv(raw: Path, out: Path, reader: str = "hcp", subject: str = "100001", options: dict | None = None,
                 crop_axes=(0, 1)) -> list:
    return ["prepare", "--reader", reader, "--reader-options", json.dumps(options or {}), "--raw", raw,
            "--subject", subject, "--dataset", "d", "--out-dir", out, "--crop-multiple", "12",
            "--crop-axes", *map(str, crop_axes)]


def write_brats(raw: Path, subject: str, contrasts=("t1", "t2"), shape=(24, 24, 4)) -> None:
    for k, c in enumerate(contrasts):
        save_nifti(raw / subject / f"{subject}_{c}.nii.gz", phantom(shape, seed=k))


# ------------------------------------------------------------------ a small config for the start-up checks
def check_config(config: dict, archs=None) -> None:
    """mrisr.config_check.check_config, imported per call: the other cases of this file run
    (and show what they show) on a tree without it."""
    from mrisr.config_check import check_config as check

    check(config, archs)


def config_error() -> type:
    """mrisr.errors.ConfigError, imported late for the same reason."""
    from mrisr.errors import ConfigError

    return ConfigError


def base_config() -> dict:
    """Two datasets and two models: passes check_config (asserted below)."""
    return {
        "datasets": {
            "a": {"kind": "cine", "reader": "acdc", "raw": {"dir": "x"}, "target": "cine",
                  "scales": [2, 4], "patches": {"hr_patch": [24, 24]}, "degradation": {"axes": [0, 1]},
                  "methods": ["bicubic", "edsr", {"name": "srgan", "scales": [2]}]},
            "ext": {"kind": "cine", "reader": "acdc", "raw": {"dir": "y"}, "target": "cine",
                    "scales": [2], "train_from": "a", "methods": ["bicubic", "edsr"]},
        },
        "models": {"edsr": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 8, "n_blocks": 1}},
                   "srgan": {"arch": "srgan", "trainer": "adversarial", "args": {"n_blocks": 2}}},
    }


def test_base_config_and_every_shipped_config_pass_the_startup_check() -> None:
    check_config(base_config())
    for path in sorted((REPO / "config").glob("*.yaml")):
        check_config(yaml.safe_load(path.read_text()))


def test_static_registry_reading_equals_the_live_registry() -> None:
    """config_check reads the registry without importing torch; it must say what
    inspect.signature of the imported classes says, arch by arch."""
    from mrisr.config_check import live_arch_specs, registry_arch_specs

    static, live = dict(registry_arch_specs()), live_arch_specs()
    assert static == live
    assert static["meta_srgan"].arbitrary_scale and not static["edsr"].arbitrary_scale
    assert "n_feats" in static["edsr"].args and "scale" not in static["edsr"].args


# ================================================================== regressions of issue 14's cases
def test_case02_download_keeps_a_user_file_with_the_name_of_an_archive_entry(tmp_path: Path, capsys) -> None:
    """`mrisr download` deleted the user's own file when the archive had a top-level entry of
    the same name; docs/datasets.md promises a rerun "leaves anything else alone"."""
    out = tmp_path / "raw"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "mine.txt").write_text("my notes")
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("notes/readme.txt", b"theirs")
        zf.writestr("subj1/a.txt", b"A")
    rc, lines = run_cli(["download", "--spec", json.dumps({"archive": str(archive)}), "--out-dir", out,
                         "--cache-dir", tmp_path / "cache"], capsys)
    assert_one_line(rc, lines, out / "notes", "not from a previous download")
    assert (out / "notes" / "mine.txt").read_text() == "my notes"
    assert files_under(out) == ["notes/mine.txt"]  # nothing extracted, no marker, no staging folder


def test_case04_complex_valued_nifti_is_refused_not_cast(tmp_path: Path, capsys) -> None:
    """A complex NIfTI was accepted (exit 0) with its imaginary part silently dropped."""
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    data = phantom() + 1j * phantom(seed=1)
    path = save_nifti(hcp_file(raw), data.astype(np.complex64))
    rc, lines = run_cli(prepare_argv(raw, out), capsys)
    assert_one_line(rc, lines, path, "complex")
    assert files_under(out) == []


def test_case05_override_for_an_unknown_model_fails_at_startup() -> None:
    """`overrides.<typo>` was silently ignored and the default model trained."""
    cfg = base_config()
    cfg["datasets"]["a"]["overrides"] = {"edsrr": {"train": {"steps": 5}}}
    with pytest.raises(config_error(), match=r"^config: datasets\.a\.overrides\.edsrr: no model named 'edsrr'"):
        check_config(cfg)


@pytest.mark.parametrize("edit, key, problem", [
    (lambda c: c["datasets"]["a"].update(scales=[1, 2, 4]), "datasets.a.scales", "scale 1 for method 'edsr'"),
    (lambda c: c["datasets"]["a"].update(scales=[2, 2.5, 4]), "datasets.a.scales", "scale 2.5 for method 'edsr'"),
    (lambda c: c["datasets"]["a"].update(scales=[2, 100]), "datasets.a.patches.hr_patch", "not divisible by scale 100"),
    (lambda c: c["models"]["edsr"].update(arch="edsr3d"), "models.edsr.arch", "unknown arch 'edsr3d'"),
    (lambda c: c["models"]["edsr"]["args"].update(n_feat=8), "models.edsr.args.n_feat", "no argument 'n_feat'"),
    (lambda c: c["datasets"]["a"]["patches"].update(hr_patch=[24, 26]), "datasets.a.patches.hr_patch",
     "not divisible by scale 4"),
], ids=["scale1", "scale2.5", "scale100", "unknown_arch", "unknown_arg", "hr_patch_not_divisible"])
def test_case06_config_errors_are_caught_at_startup(edit, key: str, problem: str) -> None:
    """These passed the start-up check and failed minutes later with a traceback."""
    cfg = base_config()
    edit(cfg)
    with pytest.raises(config_error()) as err:
        check_config(cfg)
    assert str(err.value).startswith(f"config: {key}: ") and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_case06_snakemake_stops_at_startup_with_the_key(tmp_path: Path) -> None:
    """The check runs in workflow/rules/common.smk right after the schema validation."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    name = next(iter(cfg["datasets"]))
    cfg["datasets"][name]["scales"] = [2.5]
    cfg["datasets"][name]["methods"] = ["edsr"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(tmp_path / "c.yaml"), "--cores", "1", "-n"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert f"config: datasets.{name}.scales: scale 2.5 for method 'edsr'" in out, out[-2000:]
    assert not (tmp_path / "results").exists()


def test_case07_inventory_refuses_to_drop_a_subject_missing_a_contrast(tmp_path: Path, capsys) -> None:
    """A BraTS-like subject without one contrast was dropped with exit 0 and no warning."""
    raw = tmp_path / "raw"
    for s in ("S1", "S2", "S3"):
        write_brats(raw, s)
    (raw / "S2" / "S2_t2.nii.gz").unlink()
    inv = tmp_path / "inventory.json"
    argv = ["inventory", "--reader", "brats", "--reader-options", '{"contrasts": ["t1", "t2"]}', "--raw", raw,
            "--out", inv]
    rc, lines = run_cli(argv, capsys)
    assert_one_line(rc, lines, raw / "S2" / "S2_t2.nii.gz", "'S2' is incomplete", "exclude_subjects")
    assert not inv.exists()
    rc, lines = run_cli(argv + ["--exclude", "S2"], capsys)  # the user decides: excluded by name
    assert rc == 0 and json.loads(inv.read_text())["subjects"] == ["S1", "S3"]


def small_patch_inputs(root: Path) -> list:
    """prepared HR + LR x2 + split.json for three subjects; the argv of `mrisr patches` on them."""
    from mrisr.degrade import degrade_file

    for k, s in enumerate(("s1", "s2", "s3")):
        hr = save_nifti(root / "prepared" / s / "t1.nii.gz", np.clip(phantom((24, 24, 2), seed=k) / 100, 0, 1))
        degrade_file(hr, root / "lr" / f"{s}.nii.gz", "truncate", 2, (0, 1), "none",
                     {"dataset": "d", "subject": s, "series": "t1"})
    (root / "split.json").write_text(json.dumps({"train": ["s1", "s2", "s3"], "val": [], "test": []}))
    return ["patches", "--task", "sisr2d", "--split-file", root / "split.json", "--split", "train",
            "--lr-dir", root / "lr", "--scale", "2", "--hr-patch", "12", "12", "--n-per-subject", "64"]


def test_case08_disk_full_while_writing_a_patch_store_is_one_line_and_leaves_nothing(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """Disk full during `mrisr patches` ended in a segfault after pages of h5py tracebacks.
    Here the file system fills after 64 KiB (ENOSPC from write, as a full disk gives it)."""
    import mrisr.io.hdf5 as hdf5

    argv = small_patch_inputs(tmp_path)
    real_open = open

    class FillsUp:
        def __init__(self, fh):
            self.fh, self.left = fh, 64 * 1024

        def write(self, b):
            n = len(memoryview(b).cast("B"))
            if n > self.left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.left -= n
            return self.fh.write(b)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(hdf5, "open", lambda *a, **k: FillsUp(real_open(*a, **k)), raising=False)
    out = tmp_path / "patches"
    rc, lines = run_cli(argv + ["--out", out / "sisr2d-x2_train.h5"], capsys)
    assert_one_line(rc, lines, out / "sisr2d-x2_train.h5", "No space left on device")
    assert files_under(out) == []
    monkeypatch.undo()  # the same store on a disk with room: written, and complete
    rc, _ = run_cli(argv + ["--out", out / "sisr2d-x2_train.h5"], capsys)
    assert rc == 0 and files_under(out) == ["sisr2d-x2_train.h5"]
    with h5py.File(out / "sisr2d-x2_train.h5") as f:
        assert f["hr"].shape == (192, 12, 12) and f["lr"].shape == (192, 6, 6)


def test_case08_disk_full_on_a_real_small_file_system(tmp_path: Path) -> None:
    """The same on a 64 KiB tmpfs (the store needs ~140 KiB), in a subprocess (the old failure was a segfault, rc 139).
    Skips where mounting is not permitted (not root, or a container without CAP_SYS_ADMIN)."""
    argv = small_patch_inputs(tmp_path)
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                             capture_output=True, text=True) if shutil.which("mount") else None
    if mounted is None or mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        run = subprocess.run([sys.executable, "-m", "mrisr", *map(str, argv), "--out", str(small / "x.h5")],
                             capture_output=True, text=True, timeout=300, env=env)
        assert run.returncode == 1, run.stderr[-3000:]
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and str(small / "x.h5") in lines[0] and "No space left" in lines[0], lines[:5]
        assert files_under(small) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_disk_full_while_writing_a_prepared_series_names_the_output(tmp_path: Path, capsys, monkeypatch) -> None:
    """ENOSPC from inside nibabel's gzip writer (an OSError without a file name): one line naming
    the output, and neither the half-written temporary nor any other series is left."""
    import mrisr.io.nifti as nifti

    raw, out = tmp_path / "raw", tmp_path / "prepared"
    save_nifti(hcp_file(raw), phantom())

    def full_disk(img, filename):
        Path(filename).write_bytes(b"\x1f\x8b half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(nifti.nib, "save", full_disk)
    rc, lines = run_cli(prepare_argv(raw, out), capsys)
    assert_one_line(rc, lines, out / "t1w.nii.gz", "No space left on device")
    assert files_under(out) == []


def test_case10_temp_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path: Path, capsys) -> None:
    """SIGKILL left hidden temp files that a successful rerun never removed."""
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    save_nifti(hcp_file(raw), phantom())
    code = ("import os, sys, signal\n"
            "from mrisr.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half of a volume')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-c", code, str(out / "t1w.nii.gz")], env=env, timeout=120)
    assert killed.returncode == -9
    left = files_under(out)
    assert len(left) == 1 and left[0].startswith(".t1w.nii.gz.tmp-")  # recognisable: target + pid
    rc, _ = run_cli(prepare_argv(raw, out), capsys)
    assert rc == 0
    assert files_under(out) == ["manifest.json", "t1w.json", "t1w.nii.gz"]


def test_case10_a_subject_whose_second_series_fails_leaves_no_first_series_files(tmp_path: Path, capsys) -> None:
    raw, out = tmp_path / "raw", tmp_path / "prepared" / "S1"
    write_brats(raw, "S1")
    save_nifti(raw / "S1" / "S1_t2.nii.gz", np.full((24, 24, 4), 5.0, np.float32))  # constant: cannot be scaled
    rc, lines = run_cli(prepare_argv(raw, out, reader="brats", subject="S1"), capsys)
    assert_one_line(rc, lines, raw / "S1" / "S1_t2.nii.gz", "constant image")
    assert files_under(out) == []


# ================================================================== the suite: NIfTI files
def _truncated_gz(path: Path) -> None:
    save_nifti(path, phantom())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_nii(path: Path) -> None:
    save_nifti(path, phantom())
    data = path.read_bytes()
    path.write_bytes(data[: 352 + 100])  # the header and a few voxels


def _write(data: np.ndarray):
    return lambda path: save_nifti(path, data)


def _with_nan(value: float):
    def make(path: Path) -> None:
        x = phantom()
        x[3, 4, 1] = value
        save_nifti(path, x)
    return make


RGB = np.zeros((24, 24, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])

# id -> (reader, file writer, what the line must say)
NIFTI_CASES = {
    "truncated_gz": ("hcp", _truncated_gz, "unreadable NIfTI"),
    "zero_size": ("hcp", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "not_gzip": ("hcp", lambda p: p.write_bytes(os.urandom(2000)), "unreadable NIfTI"),
    "gzip_of_garbage": ("hcp", lambda p: p.write_bytes(gzip.compress(os.urandom(2000))), "unreadable NIfTI"),
    "text_file": ("hcp", lambda p: p.write_text("subject,age\n1,30\n"), "unreadable NIfTI"),
    "nan_voxel": ("hcp", _with_nan(np.nan), "1 NaN/Inf voxels"),
    "inf_voxel": ("hcp", _with_nan(np.inf), "1 NaN/Inf voxels"),
    "complex64": ("hcp", _write((phantom() + 1j).astype(np.complex64)), "complex-valued image"),
    "complex128": ("hcp", _write((phantom() + 1j).astype(np.complex128)), "complex-valued image"),
    "rgb": ("hcp", _write(RGB), "RGB"),
    "5d": ("hcp", _write(phantom((24, 24, 4, 2, 2))), "expected 3D image"),
    "4d_for_a_3d_reader": ("hcp", _write(phantom((24, 24, 4, 3))), "expected 3D image"),
    "2d": ("hcp", _write(phantom((24, 24))), "expected 3D image"),
    "empty_axis": ("hcp", _write(np.zeros((24, 0, 4), np.float32)), "image"),
    "constant_image": ("hcp", _write(np.full((24, 24, 4), 7.0, np.float32)), "constant image"),
    "smaller_than_crop_multiple": ("hcp", _write(phantom((8, 8, 4))), "fewer than crop_multiple 12"),
    "truncated_uncompressed_nii": ("nifti", _truncated_nii, "unreadable NIfTI"),
    "3d_for_the_cine_reader": ("acdc", _write(phantom()), "expected 4D image"),
}


@pytest.mark.parametrize("case", list(NIFTI_CASES))
def test_bad_nifti(case: str, tmp_path: Path, capsys) -> None:
    reader, make, problem = NIFTI_CASES[case]
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    if reader == "hcp":
        path, subject, options = hcp_file(raw), "100001", {}
    elif reader == "acdc":
        path, subject, options = raw / "patient001" / "patient001_4d.nii.gz", "patient001", {}
        (raw / "patient001").mkdir(parents=True)
        (raw / "patient001" / "Info.cfg").write_text("ED: 1\nES: 2\nNbFrame: 3\n")
    else:
        path, subject, options = raw / "case1.nii", "case1", {"series": {"t1": "{subject}.nii"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    rc, lines = run_cli(prepare_argv(raw, out, reader, subject, options), capsys)
    assert_one_line(rc, lines, path, problem)
    assert files_under(out) == []


# ================================================================== DICOM folders (reader `nifti`, a folder pattern)
def _dicom_volume(folder: Path, n_slices: int = 5, series_uid: str = "1.2.3.4", z0: float = 0.0) -> None:
    from test_real_readers import write_dicom_volume

    tmp = folder.parent / f".tmp_{series_uid}"
    write_dicom_volume(tmp, np.round(phantom((12, 10, n_slices)) * 10), spacing=(0.9, 0.8, 3.0))
    folder.mkdir(parents=True, exist_ok=True)
    if series_uid == "1.2.3.4":
        for f in tmp.iterdir():
            f.rename(folder / f.name)
    else:  # the same slices as another series UID
        import SimpleITK as sitk

        for f in tmp.iterdir():
            img = sitk.ReadImage(str(f))
            img.SetMetaData("0020|000e", series_uid)
            w = sitk.ImageFileWriter()
            w.KeepOriginalImageUIDOn()
            w.SetFileName(str(folder / f"other_{f.name}"))
            w.Execute(img)
    shutil.rmtree(tmp)


def _truncate_one(folder: Path) -> None:
    _dicom_volume(folder)
    f = sorted(folder.iterdir())[2]
    f.write_bytes(f.read_bytes()[:300])


DICOM_CASES = {
    "empty_folder": (lambda d: d.mkdir(parents=True), "no DICOM series"),
    "not_dicom_files": (lambda d: (d.mkdir(parents=True), (d / "a.dcm").write_bytes(b"junk" * 50)),
                        "no DICOM series"),
    "mixed_series": (lambda d: (_dicom_volume(d), _dicom_volume(d, 3, "1.2.3.99")), "2 DICOM series"),
    "missing_slice": (lambda d: (_dicom_volume(d), sorted(d.iterdir())[2].unlink()), "missing slice"),
    "repeated_slice": (lambda d: (_dicom_volume(d), shutil.copy(sorted(d.iterdir())[2], d / "copy.dcm")),
                       "same position"),
    "truncated_slice_file": (_truncate_one, "missing slice"),
}


@pytest.mark.parametrize("case", list(DICOM_CASES))
def test_bad_dicom_folder(case: str, tmp_path: Path, capsys) -> None:
    make, problem = DICOM_CASES[case]
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    folder = raw / "p1" / "t2_dicom"
    make(folder)
    options = {"series": {"t2": "{subject}/t2_dicom"}}
    rc, lines = run_cli(prepare_argv(raw, out, "nifti", "p1", options), capsys)
    assert_one_line(rc, lines, folder, problem)
    assert files_under(out) == []


# ================================================================== raw fastMRI HDF5 files (reader `fastmri`)
def _fastmri(path: Path, mutate=None) -> Path:
    from mrisr.datasets.synth_fastmri import write_fastmri_file

    write_fastmri_file(path, phantom((16, 16, 2)), "pd", (0.5, 0.5, 3.0), 0, "p1")
    if mutate is not None:
        with h5py.File(path, "a") as f:
            mutate(f)
    return path


def _replace(name: str, value):
    def mutate(f) -> None:
        del f[name]
        if value is not None:
            f.create_dataset(name, data=value)
    return mutate


def _nan_kspace(f) -> None:
    k = f["kspace"][()]
    k[0, 0, 0] = np.nan
    _replace("kspace", k)(f)


FASTMRI_CASES = {
    "truncated_file": (lambda p: p.write_bytes(_fastmri(p).read_bytes()[:2000]), "unreadable HDF5"),
    "not_hdf5": (lambda p: p.write_text("kspace"), "unreadable HDF5"),
    "no_kspace": (lambda p: _fastmri(p, _replace("kspace", None)), "no 'kspace' dataset"),
    "real_kspace": (lambda p: _fastmri(p, _replace("kspace", np.ones((2, 32, 20), np.float32))), "expected complex"),
    "nan_kspace": (lambda p: _fastmri(p, _nan_kspace), "kspace contains NaN/Inf"),
    "smaller_than_crop": (lambda p: _fastmri(p, _replace("kspace", np.ones((2, 8, 8), np.complex64))),
                          "smaller than the crop"),
}


@pytest.mark.parametrize("case", list(FASTMRI_CASES))
def test_bad_fastmri_file(case: str, tmp_path: Path, capsys) -> None:
    make, problem = FASTMRI_CASES[case]
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    raw.mkdir()
    path = raw / "file1000001.h5"
    make(path)
    rc, lines = run_cli(prepare_argv(raw, out, "fastmri", "file1000001", {"contrast": "pd", "crop": [16, 16]}),
                        capsys)
    assert_one_line(rc, lines, path, problem)
    assert files_under(out) == []


# ================================================================== HDF5 patch stores (read by `mrisr train`)
def _store(path: Path, n: int = 8, lr_size: int = 6, drop: str | None = None, n_lr: int | None = None,
           drop_attr: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    lr = rng.random((n if n_lr is None else n_lr, lr_size, lr_size)).astype(np.float32)
    hr = np.repeat(np.repeat(rng.random((n, lr_size, lr_size)), 2, 1), 2, 2).astype(np.float32)
    attrs = {"task": "sisr2d", "scale": 2.0, "dims": 2, "axes": "[0, 1]", "hr_patch": json.dumps([2 * lr_size] * 2),
             "lr_patch": json.dumps([lr_size] * 2), "grid_convention": "center", "config_hash": path.stem,
             "seed": 0, "code_version": "test", "subjects": '["a"]'}
    with h5py.File(path, "w") as f:
        for k, v in {"hr": hr, "lr": lr, "subject": np.zeros(n, np.int32)}.items():
            if k != drop:
                f.create_dataset(k, data=v)
        for k, v in attrs.items():
            if k != drop_attr:
                f.attrs[k] = v
    return path


def _cut(path: Path) -> Path:
    data = _store(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


STORE_CASES = {
    "missing_lr_dataset": (lambda p: _store(p, drop="lr"), "no dataset ['lr']"),
    "missing_hr_dataset": (lambda p: _store(p, drop="hr"), "no dataset ['hr']"),
    "lengths_differ": (lambda p: _store(p, n_lr=5), "datasets differ in length"),
    "truncated_file": (_cut, "not a readable HDF5 patch store"),
    "zero_size": (lambda p: p.write_bytes(b""), "not a readable HDF5 patch store"),
    "not_hdf5": (lambda p: p.write_text("lr,hr\n"), "not a readable HDF5 patch store"),
    "missing_file": (lambda p: None, "patch store not found"),
    "missing_scale_attribute": (lambda p: _store(p, drop_attr="scale"), "scale"),
}
TRAIN_CFG = {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 4, "n_blocks": 1},
             "train": {"steps": 2, "batch_size": 2, "lr": 1e-3, "val_every": 1, "ckpt_every": 1, "log_every": 1,
                       "num_workers": 0, "scheduler": "none", "bf16": False, "channels_last": False,
                       "val_max_batches": None, "augment": False, "reference_steps": None, "budget_note": None}}


@pytest.mark.parametrize("side", ["train", "val"])
@pytest.mark.parametrize("case", list(STORE_CASES))
def test_bad_patch_store(case: str, side: str, tmp_path: Path, capsys) -> None:
    make, problem = STORE_CASES[case]
    bad = tmp_path / f"bad_{side}.h5"
    make(bad)
    good = _store(tmp_path / "good.h5")
    train, val = (bad, good) if side == "train" else (good, bad)
    out = tmp_path / "model"
    rc, lines = run_cli(["train", "--model-config", json.dumps(TRAIN_CFG), "--train", train, "--val", val,
                         "--out-dir", out, "--device", "cpu", "--threads", "1"], capsys)
    assert_one_line(rc, lines, bad, problem)
    assert not (out / "model.pt").exists()


# ================================================================== configs (start-up errors, pure function)
def _set(path: str, value):
    """An edit of base_config(): set the dotted `path` (list indices as integers)."""
    def edit(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


CONFIG_CASES = {
    "unknown_arch": (_set("models.edsr.arch", "rdn"), "models.edsr.arch", "unknown arch 'rdn'"),
    "unknown_arg": (_set("models.srgan.args.n_block", 3), "models.srgan.args.n_block", "no argument 'n_block'"),
    "geometry_as_arg": (_set("models.edsr.args.scale", 2), "models.edsr.args.scale", "comes from the patch store"),
    "args_not_a_mapping": (_set("models.edsr.args", [8, 1]), "models.edsr.args", "must be a mapping"),
    "fixed_scale_at_1": (_set("datasets.a.scales", [1, 2, 4]), "datasets.a.scales", "needs an integer scale >= 2"),
    "fixed_scale_at_2.5": (_set("datasets.a.scales", [2, 2.5, 4]), "datasets.a.scales", "needs an integer scale >= 2"),
    "fixed_scale_at_100": (_set("datasets.a.scales", [2, 100]), "datasets.a.patches.hr_patch", "scale 100"),
    "method_scales_fixed_scale": (lambda c: c["datasets"]["a"].update(scales=[2, 2.5, 4], methods=[
        "bicubic", {"name": "edsr", "scales": [2, 4]}, {"name": "srgan", "scales": [2.5]}]),
        "datasets.a.methods[2].scales", "scale 2.5 for method 'srgan'"),
    "hr_patch_not_divisible": (_set("datasets.a.patches.hr_patch", [24, 30]), "datasets.a.patches.hr_patch",
                               "not divisible by scale 4"),
    "hr_patch_wrong_length": (_set("datasets.a.patches.hr_patch", [24, 24, 24]), "datasets.a.patches.hr_patch",
                              "one size per degraded axis"),
    "override_unknown_model": (_set("datasets.a.overrides", {"edsr2": {}}), "datasets.a.overrides.edsr2",
                               "no model named 'edsr2'"),
    "override_model_not_run": (_set("datasets.ext.overrides", {"srgan": {}}), "datasets.ext.overrides.srgan",
                               "does not run method 'srgan'"),
    "override_unknown_arch": (_set("datasets.a.overrides", {"edsr": {"arch": "edsr_x"}}),
                              "datasets.a.overrides.edsr.arch", "unknown arch 'edsr_x'"),
    "override_unknown_arg": (_set("datasets.a.overrides", {"edsr": {"args": {"feats": 8}}}),
                             "datasets.a.overrides.edsr.args.feats", "no argument 'feats'"),
    "unknown_method": (_set("datasets.a.methods", ["bicubic", "edsr_big"]), "datasets.a.methods[1]",
                       "neither an interpolation"),
    "method_scales_outside_dataset": (_set("datasets.a.methods.2", {"name": "srgan", "scales": [3]}),
                                      "datasets.a.methods[2].scales", "outside the dataset's scales"),
    "multicontrast_without_reference": (_set("datasets.a.kind", "multicontrast"), "datasets.a.reference",
                                        "needs a reference"),
    "train_from_unknown_dataset": (_set("datasets.ext.train_from", "b"), "datasets.ext.train_from",
                                   "'b' is not a dataset that trains models"),
    "train_from_untrained_scale": (lambda c: c["datasets"]["ext"].update(scales=[2, 4], methods=["srgan"]),
                                   "datasets.ext.scales", "'a' (train_from) trains it only at 2"),
    "train_from_method_not_trained": (lambda c: (c["models"].update(edsr_big={"arch": "edsr", "trainer": "supervised"}),
                                                 c["datasets"]["ext"].update(methods=["edsr_big"])),
                                      "datasets.ext.methods[0]", "which does not run it"),
    "hr_store_with_fixed_scale_arch": (_set("models.edsr.store", "hr"), "models.edsr.store",
                                       "arch 'edsr' is fixed-scale"),
    "non_integer_scale_on_a_pair_store": (lambda c: (c["models"].update(meta={"arch": "meta_srgan", "trainer": "adversarial"}),
                                                     c["datasets"]["a"].update(scales=[2, 2.5, 4], methods=["meta"])),
                                          "datasets.a.scales", "cut at one integer scale"),
    "nearest_with_non_integer_scale": (lambda c: c["datasets"]["a"].update(
        scales=[2.5], methods=["bicubic"], degradation={"mode": "nearest", "axes": [0, 1]}),
        "datasets.a.scales", "nearest"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_error_at_startup(case: str) -> None:
    edit, key, problem = CONFIG_CASES[case]
    cfg = base_config()
    edit(cfg)
    with pytest.raises(config_error()) as err:
        check_config(cfg)
    line = str(err.value)
    assert line.startswith(f"config: {key}: "), line
    assert problem in line and "\n" not in line
    assert err.value.key == key


def test_config_check_uses_the_given_registry() -> None:
    """With an arch table where edsr is arbitrary-scale, scale 2.5 is a patch-store problem, not an arch one."""
    cfg = base_config()
    cfg["datasets"]["a"]["scales"] = [2, 2.5]
    cfg["datasets"]["a"]["methods"] = ["edsr"]
    from mrisr.config_check import ArchSpec

    archs = {"edsr": ArchSpec(frozenset({"n_feats", "n_blocks"}), True)}
    with pytest.raises(config_error(), match="cut at one integer scale"):
        check_config({**cfg, "models": {"edsr": cfg["models"]["edsr"]}}, archs)


def schema_error(cfg: dict) -> str | None:
    """The line workflow/rules/common.smk reports for a schema error (jsonschema's best match
    over the repository's schema), None when the config is valid."""
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    return None if err is None else f"config error at {err.json_path}: {err.message}"


SCHEMA_CASES = {
    "unknown_top_level_key": (lambda c: c.update(sed=1), "$", "'sed' was unexpected"),
    "seed_not_integer": (lambda c: c.update(seed="x"), "$.seed", "not of type 'integer'"),
    "unknown_dataset_key": (lambda c: c["datasets"]["a"].update(scale=[2]), "$.datasets.a", "'scale' was unexpected"),
    "scale_below_1": (_set("datasets.a.scales", [0.5]), "$.datasets.a.scales[0]", "less than the minimum of 1"),
    "hr_patch_below_4": (_set("datasets.a.patches.hr_patch", [2, 24]), "$.datasets.a.patches.hr_patch[0]",
                         "less than the minimum of 4"),
    "unknown_reader": (_set("datasets.a.reader", "dicom"), "$.datasets.a.reader", "is not one of"),
    "missing_target": (lambda c: c["datasets"]["a"].pop("target"), "$.datasets.a", "'target' is a required property"),
    "url_without_sha256": (_set("datasets.a.raw", {"url": "https://example.org/a.zip"}), "$.datasets.a.raw",
                           "'sha256' is a dependency of 'url'"),
    "model_without_arch": (_set("models.edsr", {"args": {}}), "$.models.edsr", "'arch' is a required property"),
    "train_steps_not_integer": (_set("models.edsr.train", {"steps": "many"}), "$.models.edsr.train.steps",
                                "not of type 'integer'"),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_schema_error_is_one_line_naming_the_key(case: str) -> None:
    edit, key, problem = SCHEMA_CASES[case]
    cfg = base_config()
    assert schema_error(cfg) is None
    edit(cfg)
    line = schema_error(cfg)
    assert line is not None and line.startswith(f"config error at {key}: ") and problem in line, line
    assert "\n" not in line


# ================================================================== archives (`mrisr download`)
def _tar(path: Path, *members: tuple[str, bytes, str]) -> Path:
    """members: (name, data, kind) with kind file/symlink:<target>/hardlink:<target>/chr."""
    with tarfile.open(path, "w") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind.startswith("symlink:"):
                info.type, info.linkname = tarfile.SYMTYPE, kind.split(":", 1)[1]
            elif kind.startswith("hardlink:"):
                info.type, info.linkname = tarfile.LNKTYPE, kind.split(":", 1)[1]
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _zip(path: Path, members: dict, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo("subj/link")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, symlink)
    return path


def _tgz_cut(path: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("subj/big.bin")
        data = os.urandom(20000)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue()[:300])
    return path


GOOD_SHA = "0" * 64
# id -> (archive maker(tmp) -> path, spec extras, what the line must say, needle naming what)
ARCHIVE_CASES = {
    "path_traversal": (lambda t: _tar(t / "a.tar", ("../evil.txt", b"x", "file")), "'..' in path refused"),
    "absolute_member": (lambda t: _tar(t / "a.tar", ("/tmp/evil_mrisr.txt", b"x", "file")), "absolute path refused"),
    "symlink_out_of_target": (lambda t: _tar(t / "a.tar", ("subj/link", b"", "symlink:../../..")),
                              "points out of the target folder"),
    "absolute_symlink": (lambda t: _tar(t / "a.tar", ("subj/link", b"", "symlink:/etc/passwd")),
                         "link to absolute path"),
    "hardlink_out_of_target": (lambda t: _tar(t / "a.tar", ("subj/hard", b"", "hardlink:../outside")),
                               "points out of the target folder"),
    "device_file": (lambda t: _tar(t / "a.tar", ("subj/dev", b"", "chr")), "device or FIFO refused"),
    "zip_symlink": (lambda t: _zip(t / "a.zip", {"subj/a.txt": b"a"}, symlink="/etc/passwd"), "symbolic link refused"),
    "zip_traversal": (lambda t: _zip(t / "a.zip", {"ok.txt": b"a", "../evil.txt": b"x"}), "'..' in path refused"),
    "truncated_tar_gz": (lambda t: _tgz_cut(t / "a.tar.gz"), "corrupt or truncated tar"),
    "corrupt_zip": (lambda t: (t / "a.zip").write_bytes(b"PK\x03\x04" + os.urandom(200)) and t / "a.zip",
                    "corrupt or truncated zip"),
    "unsupported_type": (lambda t: (t / "a.rar").write_bytes(b"Rar!\x1a\x07\x00junk") and t / "a.rar",
                         "unsupported archive type .rar"),
    "empty_archive": (lambda t: _zip(t / "a.zip", {}), "archive is empty"),
    "reserved_marker_entry": (lambda t: _zip(t / "a.zip", {"download.json": b"{}"}), "reserves"),
    "archive_not_found": (lambda t: t / "missing.zip", "archive not found"),
}


@pytest.mark.parametrize("case", list(ARCHIVE_CASES))
def test_bad_archive(case: str, tmp_path: Path, capsys) -> None:
    make, problem = ARCHIVE_CASES[case]
    archive = make(tmp_path)
    out = tmp_path / "raw"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    rc, lines = run_cli(["download", "--spec", json.dumps({"archive": str(archive)}), "--out-dir", out,
                         "--cache-dir", tmp_path / "cache"], capsys)
    assert_one_line(rc, lines, archive, problem)
    assert files_under(out) == ["mine.txt"]  # nothing extracted, no marker, no staging folder left
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("sha, problem", [
    ("ab" * 32, "sha256 mismatch: expected abab"),
    ("not-a-checksum", "sha256 must be 64 hex digits"),
], ids=["sha256_mismatch", "sha256_malformed"])
def test_bad_archive_checksum(sha: str, problem: str, tmp_path: Path, capsys) -> None:
    archive = _zip(tmp_path / "a.zip", {"subj/a.txt": b"a"})
    out = tmp_path / "raw"
    rc, lines = run_cli(["download", "--spec", json.dumps({"archive": str(archive), "sha256": sha}),
                         "--out-dir", out, "--cache-dir", tmp_path / "cache"], capsys)
    assert_one_line(rc, lines, archive, problem)
    assert files_under(out) == []


# ================================================================== CLI arguments and small inputs
def _cli_inputs(t: Path) -> None:
    """The files the CLI cases read: one BraTS-like subject and a malformed JSON file."""
    write_brats(t / "raw", "S1")
    (t / "bad.json").write_text("{not json")
    (t / "inv.json").write_text(json.dumps({"reader": "brats", "subjects": ["S1"]}))
    (t / "split.json").write_text(json.dumps({"train": ["S1"], "val": [], "test": []}))


def _cli_cases(t: Path) -> dict:
    """id -> (argv, exit status, needles of the error line); builds paths only, writes nothing."""
    raw = t / "raw"
    return {
        # id: (argv, exit status, needles)
        "unknown_command": (["upsample"], 2, ["invalid choice: 'upsample'"]),
        "missing_required_option": (["inventory", "--reader", "brats", "--raw", raw], 2, ["--out"]),
        "options_not_json": (["inventory", "--reader", "brats", "--reader-options", "{contrasts: t1}", "--raw", raw,
                              "--out", t / "i.json"], 2, ["--reader-options", "not valid JSON"]),
        "upscale_scale_below_1": (["upscale", "--model", t / "m", "--scale", "0.5", t / "a.nii.gz", t / "b.nii.gz"], 2,
                                  ["scale must be >= 1"]),
        "evaluate_bad_set": (["evaluate", "--method", "x", "--split-file", t / "s", "--lr-dir", t, "--out-dir", t,
                              "--dataset", "d", "--task", "t", "--scale", "2", "--set", "omega=three"], 2,
                             ["omega: 'three' is not an integer"]),
        "raw_folder_missing": (["inventory", "--reader", "hcp", "--raw", t / "nowhere", "--out", t / "i.json"], 1,
                               [t / "nowhere", "does not exist"]),
        "unknown_reader": (["inventory", "--reader", "dicomdir", "--raw", raw, "--out", t / "i.json"], 1,
                           ["unknown reader 'dicomdir'"]),
        "bad_reader_option": (["inventory", "--reader", "brats", "--reader-options", '{"separator": "+"}', "--raw", raw,
                               "--out", t / "i.json"], 1, ["brats separator"]),
        "exclude_unknown_subject": (["inventory", "--reader", "brats", "--raw", raw, "--exclude", "S9", "--out",
                                     t / "i.json"], 1, [raw, "S9"]),
        "no_subjects": (["inventory", "--reader", "hcp", "--raw", raw, "--out", t / "i.json"], 1,
                        [raw, "no subjects found"]),
        "split_inventory_missing": (["split", "--inventory", t / "none.json", "--dataset", "d", "--out",
                                     t / "split.json"], 1, [t / "none.json", "file not found"]),
        "split_inventory_not_json": (["split", "--inventory", t / "bad.json", "--dataset", "d", "--out",
                                      t / "split.json"], 1, [t / "bad.json", "not valid JSON"]),
        "degrade_hr_missing": (["degrade", "--hr", t / "hr.nii.gz", "--mode", "truncate", "--axes", "0", "1",
                                "--scale", "2", "--out", t / "lr.nii.gz",
                                "--meta", '{"dataset": "d", "subject": "s", "series": "t1"}'], 1,
                               [t / "hr.nii.gz", "file not found"]),
        "prepare_unknown_subject": (prepare_argv(raw, t / "p", "brats", "S7"), 1, [raw, "'S7' not found"]),
        "patches_split_without_the_split": (["patches", "--task", "sisr2d", "--split-file", t / "inv.json", "--split",
                                             "train", "--lr-dir", t, "--scale", "2", "--hr-patch", "12", "12",
                                             "--n-per-subject", "4", "--out", t / "p.h5"], 1,
                                            [t / "inv.json", "no 'train' subject list"]),
        "patches_lr_sidecar_missing": (["patches", "--task", "sisr2d", "--split-file", t / "split.json", "--split",
                                        "train", "--lr-dir", t / "lr", "--scale", "2", "--hr-patch", "12", "12",
                                        "--n-per-subject", "4", "--out", t / "p.h5"], 1,
                                       [t / "lr" / "S1.json", "file not found"]),
    }


CLI_CASES = list(_cli_cases(Path("unused")))


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_cli_arguments(case: str, tmp_path: Path, capsys) -> None:
    _cli_inputs(tmp_path)
    argv, code, needles = _cli_cases(tmp_path)[case]
    before = files_under(tmp_path)
    rc, lines = run_cli(argv, capsys)
    assert_one_line(rc, lines, *needles, code=code)
    assert files_under(tmp_path) == before  # nothing written


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path: Path, capsys, monkeypatch) -> None:
    """A bug (not bad input) is one line too, saying how to see the traceback; --debug and
    MRISR_DEBUG=1 show it."""
    import mrisr.datasets.split as split

    def broken(*_a, **_k):
        raise KeyError("ratios")

    monkeypatch.setattr(split, "make_split", broken)
    import mrisr.datasets as datasets

    monkeypatch.setattr(datasets, "make_split", broken)
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps({"subjects": ["a", "b", "c"]}))
    argv = ["split", "--inventory", inv, "--dataset", "d", "--out", tmp_path / "s.json"]
    rc, lines = run_cli(argv, capsys)
    assert_one_line(rc, lines, "internal error (KeyError", "--debug")
    with pytest.raises(KeyError):
        main([str(a) for a in argv] + ["--debug"])
    monkeypatch.setenv("MRISR_DEBUG", "1")
    with pytest.raises(KeyError):
        main([str(a) for a in argv])
    assert not (tmp_path / "s.json").exists()


def test_an_os_error_names_its_file(tmp_path: Path, capsys) -> None:
    """An OSError (here: the output folder is a file) is one line naming the path."""
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps({"subjects": ["a", "b", "c", "d", "e"]}))
    (tmp_path / "blocked").write_text("a file where a folder should be")
    rc, lines = run_cli(["split", "--inventory", inv, "--dataset", "d", "--out", tmp_path / "blocked" / "s.json"], capsys)
    assert_one_line(rc, lines, tmp_path / "blocked")
