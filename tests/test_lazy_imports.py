"""Light stages stay light: `mrisr prepare` / `mrisr degrade` import only what they use.

Each job is its own process, so every library a stage imports without using it is paid
once per subject (SimpleITK + h5py + scikit-image + torch cost ~0.5 s and ~150 MiB).
The stage runs for real in a fresh interpreter; then its sys.modules is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrisr.datasets import write_synth

HEAVY = ("torch", "SimpleITK", "h5py", "skimage", "matplotlib", "pandas")
SRC = Path(__file__).resolve().parents[1] / "src"


def run_and_list_modules(argv: list[str]) -> list[str]:
    """Run `mrisr.cli.main(argv)` in a fresh interpreter; the heavy modules it imported."""
    code = (
        "import json, sys\n"
        "from mrisr.cli import main\n"
        f"rc = main({argv!r})\n"
        "assert rc == 0, rc\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
