"""Run the project's Snakefile on a config in a temporary work folder (shared by the pipeline tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, config: dict, *args: str, cores: int = 1,
                  timeout: int = 900) -> subprocess.CompletedProcess:
    """Write `config` to workdir/config.yaml and run `snakemake ... *args` there (output captured)."""
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(cfg), "--cores", str(cores), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
