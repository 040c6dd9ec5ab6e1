"""Light stages stay light: `mrisr prepare` / `mrisr degrade` import only what they use, and
the interpolation baselines and the cine clip sampler never import torch.

Each job is its own process, so every library a stage imports without using it is paid
once per subject (SimpleITK + h5py + scikit-image cost ~0.5 s and ~150 MiB; torch alone
~3 CPU-s). The stage runs for real in a fresh interpreter; then its sys.modules is checked.
Also here: idle OpenBLAS threads sleep instead of spinning, and glibc's malloc keeps freed
memory (mrisr.memory.keep_freed_memory): CPU that is not the pipeline's math.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrisr.cli import BLAS_SPIN_VARIABLES, main
from mrisr.datasets import write_synth

HEAVY = ("torch", "SimpleITK", "h5py", "skimage", "matplotlib", "pandas")
SRC = Path(__file__).resolve().parents[1] / "src"


def run_in_fresh_process(argv: list[str], after: str, env: dict | None = None):
    """Run `mrisr.cli.main(argv)` in a fresh interpreter, then the expression `after` there: its value."""
    code = (
        "import json, os, sys\n"
        "from mrisr.cli import main\n"
        f"rc = main({argv!r})\n"
        "assert rc == 0, rc\n"
        f"print(json.dumps({after}))\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in BLAS_SPIN_VARIABLES}
    env = {**base, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_and_list_modules(argv: list[str]) -> list[str]:
    """Run `mrisr.cli.main(argv)` in a fresh interpreter; the heavy modules it imported."""
    return run_in_fresh_process(argv, f"[m for m in {list(HEAVY)!r} if m in sys.modules]")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lazy")
    write_synth("volume", root / "raw", 1, 3, {"shape": [24, 28, 24]})
    return root


def test_prepare_imports_no_heavy_library(prepared: Path) -> None:
    out = prepared / "prepared" / "100001"
    loaded = run_and_list_modules(["prepare", "--reader", "hcp", "--raw", str(prepared / "raw"), "--subject", "100001",
                                   "--dataset", "d", "--out-dir", str(out), "--crop-multiple", "4",
                                   "--crop-axes", "0", "1", "2"])
    assert (out / "manifest.json").is_file()  # the stage did its work
    assert loaded == []


def test_degrade_imports_no_heavy_library(prepared: Path) -> None:
    hr = prepared / "prepared" / "100001" / "t1w.nii.gz"
    if not hr.is_file():  # run on its own: prepare first (in this process, it may import anything)
        test_prepare_imports_no_heavy_library(prepared)
    out = prepared / "lr" / "100001.nii.gz"
    loaded = run_and_list_modules(["degrade", "--hr", str(hr), "--out", str(out), "--mode", "truncate",
                                   "--scale", "2", "--axes", "0", "1", "2", "--meta",
                                   json.dumps({"dataset": "d", "subject": "100001", "series": "t1w"})])
    assert out.is_file() and json.loads(out.with_suffix("").with_suffix(".json").read_text())["grid"]
    assert loaded == []


def _degraded_volume(prepared: Path) -> tuple[Path, Path]:
    """(LR folder with 100001.nii.gz + sidecar, split.json testing 100001), made in this process."""
    lr_dir = prepared / "lr_eval"
    if not (lr_dir / "100001.nii.gz").is_file():
        hr = prepared / "prepared" / "100001" / "t1w.nii.gz"
        if not hr.is_file():
            test_prepare_imports_no_heavy_library(prepared)
        assert main(["degrade", "--hr", str(hr), "--out", str(lr_dir / "100001.nii.gz"), "--mode", "truncate",
                     "--scale", "2", "--axes", "0", "1", "2", "--meta",
                     json.dumps({"dataset": "d", "subject": "100001", "series": "t1w"})]) == 0
    split = prepared / "split.json"
    split.write_text(json.dumps({"train": [], "val": [], "test": ["100001"]}))
    return lr_dir, split


def test_interpolation_evaluate_imports_no_torch(prepared: Path) -> None:
    """The baselines' evaluate jobs (bicubic/tricubic) run as the rule runs them, with --threads: the
    thread count is torch's only for a model, so no torch (about 3 of their ~4 CPU-s) is imported."""
    lr_dir, split = _degraded_volume(prepared)
    out = prepared / "eval" / "tricubic"
    loaded = run_and_list_modules(["evaluate", "--method", "tricubic", "--split-file", str(split), "--lr-dir", str(lr_dir),
                                   "--out-dir", str(out), "--dataset", "d", "--task", "sisr3d", "--scale", "2",
                                   "--device", "cpu", "--threads", "1"])
    assert (out / "metrics.csv").is_file()
    assert "torch" not in loaded and "matplotlib" not in loaded, loaded


def test_clip_store_imports_no_torch(tmp_path: Path) -> None:
    """`mrisr patches --clip` (video models' stores) takes the phase code from mrisr.phase (numpy only),
    not through mrisr.models, whose package import loads torch and every architecture."""
    write_synth("cine", tmp_path / "raw", 2, 3, {"size": [24, 24], "slices": 2, "frames": 6})
    subjects = ["patient001", "patient002"]
    for s in subjects:
        assert main(["prepare", "--reader", "acdc", "--raw", str(tmp_path / "raw"), "--subject", s, "--dataset", "c",
                     "--out-dir", str(tmp_path / "prepared" / s)]) == 0
        assert main(["degrade", "--hr", str(tmp_path / "prepared" / s / "cine.nii.gz"), "--out",
                     str(tmp_path / "lr" / f"{s}.nii.gz"), "--mode", "lowpass_bicubic", "--scale", "2", "--axes", "0", "1",
                     "--meta", json.dumps({"dataset": "c", "subject": s, "series": "cine"})]) == 0
    (tmp_path / "split.json").write_text(json.dumps({"train": subjects, "val": [], "test": []}))
    store = tmp_path / "vsr2w1-x2_train.h5"
    loaded = run_and_list_modules(["patches", "--task", "vsr2w1", "--split-file", str(tmp_path / "split.json"),
                                   "--split", "train", "--lr-dir", str(tmp_path / "lr"), "--scale", "2",
                                   "--hr-patch", "12", "12", "--n-per-subject", "3", "--seed", "1",
                                   "--clip", "2", "1", "--out", str(store)])
    assert store.is_file()
    assert "torch" not in loaded, loaded


def test_stages_let_idle_openblas_threads_sleep(prepared: Path) -> None:
    """OpenBLAS's idle threads sleep at once instead of busy-waiting (set before numpy loads it, so it
    takes effect); a value the user set is left alone."""
    hr = prepared / "prepared" / "100001" / "t1w.nii.gz"
    if not hr.is_file():
        test_prepare_imports_no_heavy_library(prepared)
    degrade = ["degrade", "--hr", str(hr), "--out", str(prepared / "lr_blas" / "100001.nii.gz"), "--mode", "truncate",
               "--scale", "2", "--axes", "0", "1", "2", "--meta",
               json.dumps({"dataset": "d", "subject": "100001", "series": "t1w"})]
    after = "[os.environ.get('OPENBLAS_THREAD_TIMEOUT'), 'numpy' in sys.modules]"
    assert run_in_fresh_process(degrade, after) == ["4", True]
    assert run_in_fresh_process(degrade, after, env={"OPENBLAS_THREAD_TIMEOUT": "20"}) == ["20", True]


MMAPPED = r"""
import ctypes, json, sys
import numpy as np
from mrisr.memory import keep_freed_memory
if sys.argv[1] == "stage":  # a torch stage's start (train, model evaluate, upscale, cost) applies it
    from mrisr.cli import _set_threads
    _set_threads(1)
    applied = None
else:
    applied = keep_freed_memory() if sys.argv[1] == "on" else False
libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print(json.dumps([applied, None])); raise SystemExit
class Info(ctypes.Structure):  # struct mallinfo2: ten size_t fields; hblkhd = bytes in mmapped blocks
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
block = np.ones(20 << 17)  # 20 MiB: above glibc's initial 128 KiB mmap threshold
print(json.dumps([applied, libc.mallinfo2().hblkhd]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_keep_freed_memory_serves_blocks_from_the_heap() -> None:
    """A 20 MiB block comes from the heap (kept and reused when freed), not from its own mmap (unmapped
    when freed, page-faulted in again by the next step: sys CPU of every train/evaluate job); the
    user's own MALLOC_* settings win; the torch stages apply it at their start (mrisr.cli._set_threads)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")},
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}

    def mmapped(mode: str, extra: dict | None = None) -> list:
        proc = subprocess.run([sys.executable, "-c", MMAPPED, mode], capture_output=True, text=True,
                              env={**env, **(extra or {})}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    (applied, tuned), (_, stock) = mmapped("on"), mmapped("off")
    if not applied or tuned is None:
        pytest.skip("not glibc >= 2.33")
    assert stock >= 20 << 20 and tuned < 1 << 20, (tuned, stock)
    assert mmapped("stage")[1] < 1 << 20  # the torch stages set it up at their start
    assert mmapped("on", {"MALLOC_ARENA_MAX": "2"})[0] is False
