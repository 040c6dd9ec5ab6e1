"""The Slurm profile on a real (single-node) Slurm cluster.

`scripts/slurm-cluster.sh start` brings one up on this machine. The cluster tests run the tiny
pipeline through `--profile profiles/slurm --profile profiles/slurm/ci`, check from Slurm's own
records that the jobs ran as Slurm jobs, and compare `summary.csv` with a local run of the same
config. Without a cluster they are skipped (MRISR_SLURM=1 turns the skip into a failure, for CI
that is meant to have one). The dry-run test of the profile's resource requests needs no cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_pipeline import TINY

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles/slurm"
CI_PROFILE = REPO / "profiles/slurm/ci"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
# Rules that must run as Slurm jobs; `all`, `inventory`, `split`, `tables`, `figure` may be localrules.
REMOTE_RULES = {"synth", "prepare", "degrade", "patches", "train", "evaluate"}
# One dataset of the tiny config: every stage still runs as a Slurm job, but each job costs ~10 s
# of scheduling and Snakemake start-up on a 2-CPU node, and all of TINY (52 jobs) took ~5 min.
CONFIG = {**TINY, "datasets": {"tiny_cine": TINY["datasets"]["tiny_cine"]}}
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")
PROFILE_ENV = ("MRISR_SLURM_PARTITION", "MRISR_SLURM_GPU_PARTITION", "MRISR_SLURM_ACCOUNT",
               "MRISR_SLURM_GPUS", "MRISR_SLURM_GPU_MODEL")


@dataclass
class Run:
    workdir: Path
    output: str  # Snakemake's stdout + stderr


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the profile's site settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_ENV}
    env.update(extra)
    return env


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None,
              timeout: int = 600) -> Run:
    """Run Snakemake on CONFIG in `workdir` (also the cwd: the plugin puts its logs under cwd)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    cmd = SNAKEMAKE + ["--directory", str(workdir), "--configfile", str(cfg), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{out[-8000:]}"
    return Run(workdir, out)


def cluster_problem() -> str | None:
    """Why no Slurm job can run here, or None when `sinfo` shows a usable node."""
    if shutil.which("sinfo") is None:
        return "no `sinfo` on PATH"
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`sinfo` timed out"
    if proc.returncode != 0:
        return f"`sinfo` failed: {proc.stderr.strip()}"
    states = proc.stdout.split()
    if not any(s.rstrip("*~#!%$@^-").startswith(("idle", "mix", "alloc")) for s in states):
        return f"no usable Slurm node (states: {states or 'none'})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = cluster_problem()
    if problem is None:
        return
    if os.environ.get("MRISR_SLURM") == "1":
        pytest.fail(f"MRISR_SLURM=1 but {problem}")
    pytest.skip(f"{problem}; start a test cluster with `bash scripts/slurm-cluster.sh start`")


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory) -> Run:
    return snakemake(tmp_path_factory.mktemp("slurm"), "--profile", str(PROFILE), "--profile", str(CI_PROFILE),
                     "all")


@pytest.fixture(scope="module")
def local_run(cluster, tmp_path_factory) -> Run:
    return snakemake(tmp_path_factory.mktemp("local"), "--cores", "2", "all")


def submitted_jobs(run: Run) -> dict[str, Path]:
    """Slurm job id -> its Slurm log, from the plugin's 'submitted with SLURM jobid' lines."""
    return {jobid: Path(log) for jobid, log in SUBMITTED.findall(run.output)}


def rule_of_log(log: Path) -> str:
    """The plugin files each job's Slurm log under .../slurm_logs/rule_<name>/[<wildcards>/]<jobid>.log."""
    part = next(p for p in log.parts if p.startswith("rule_"))
    return part.removeprefix("rule_")


def slurm_states(jobids: list[str]) -> dict[str, str]:
    """Slurm's own record (slurmctld keeps finished jobs for MinJobAge s): job id -> state."""
    proc = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T", "--jobs", ",".join(jobids)],
                          capture_output=True, text=True, timeout=30)
    return dict(line.split("|", 1) for line in proc.stdout.split())


@pytest.mark.slurm
def test_jobs_ran_as_slurm_jobs(slurm_run: Run) -> None:
    jobs = submitted_jobs(slurm_run)
    rules = [rule_of_log(log) for log in jobs.values()]
    assert REMOTE_RULES <= set(rules), f"not submitted to Slurm: {REMOTE_RULES - set(rules)}"
    n_models = sum("edsr" in d["methods"] for d in CONFIG["datasets"].values())
    assert rules.count("train") == n_models
    for jobid, log in jobs.items():
        # Slurm itself names the log (sbatch --output .../%j.log) and writes the job's output there.
        assert log.name == f"{jobid}.log" and log.exists(), log
        text = log.read_text()
        assert "--executor slurm-jobstep" in text, log
        assert re.search(rf"^(rule|checkpoint) {rule_of_log(log)}:$", text, re.M), log
    # The last jobs are still in slurmctld's records (MinJobAge=300 s): Slurm says they completed.
    late_ids = [j for j, log in jobs.items() if rule_of_log(log) in {"train", "evaluate"}]
    states = slurm_states(late_ids)
    assert states == {j: "COMPLETED" for j in late_ids}


@pytest.mark.slurm
def test_slurm_summary_matches_local_run(slurm_run: Run, local_run: Run) -> None:
    keys = ["dataset", "task", "scale", "method", "metric"]
    slurm = pd.read_csv(slurm_run.workdir / "results/tables/summary.csv").sort_values(keys, ignore_index=True)
    local = pd.read_csv(local_run.workdir / "results/tables/summary.csv").sort_values(keys, ignore_index=True)
    # Same seed, same thread count (ci profile: 2 = local --cores 2) -> the same numbers, bit for bit.
    pd.testing.assert_frame_equal(slurm, local, check_exact=True)


@pytest.mark.slurm
def test_slurm_rerun_is_noop(slurm_run: Run) -> None:
    run = snakemake(slurm_run.workdir, "--profile", str(PROFILE), "--profile", str(CI_PROFILE), "all")
    assert "Nothing to be done" in run.output
    assert not SUBMITTED.search(run.output)


def dry_run_resources(tmp: Path, env: dict[str, str], *profiles: Path) -> dict[str, str]:
    """rule -> the 'resources:' line Snakemake prints for its first job in a dry run."""
    args = [a for p in profiles for a in ("--profile", str(p))]
    out = snakemake(tmp, *args, "--dry-run", env=clean_env(**env), timeout=120).output
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and res:
            found.setdefault(m.group(1), res.group(1))
    return found


def test_profile_resource_requests(tmp_path: Path) -> None:
    """What each job would ask Slurm for, as Snakemake itself evaluates the profiles (no cluster needed)."""
    site = {"MRISR_SLURM_PARTITION": "cpuq", "MRISR_SLURM_GPU_PARTITION": "gpuq",
            "MRISR_SLURM_ACCOUNT": "proj1", "MRISR_SLURM_GPU_MODEL": "a100"}
    res = dry_run_resources(tmp_path / "site", site, PROFILE)
    assert {"gpu=1", "gpu_model=a100", "slurm_partition=gpuq", "slurm_account=proj1", "runtime=2880"} \
        <= set(res["train"].split(", "))
    assert {"slurm_partition=cpuq", "slurm_account=proj1"} <= set(res["evaluate"].split(", "))
    assert "gpu" not in res["evaluate"]

    bare = dry_run_resources(tmp_path / "bare", {}, PROFILE)
    assert "gpu=1" in bare["train"].split(", ")
    assert "slurm_partition" not in bare["train"] and "slurm_account" not in bare["train"]

    ci = dry_run_resources(tmp_path / "ci", {"MRISR_SLURM_GPU_MODEL": "a100"}, PROFILE, CI_PROFILE)
    assert "gpu=0" in ci["train"].split(", ") and "gpu_model" not in ci["train"]
