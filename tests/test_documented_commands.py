"""Every command shown in a ```bash block of README.md and docs/*.md works as written.

Each command (a line of a bash block, `&&`-chains split, comments dropped) must have an entry in
COVERAGE below, which says how it is checked here: Snakemake commands run for real against the
default config in a scratch folder, long ones as a dry run; commands that would install software,
need root or an interactive terminal, or run for minutes get a named cheap equivalent. A command
added to the docs without an entry fails `test_every_documented_command_is_covered`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Check:
    """How a documented command is checked.

    how: "snakemake" runs the command's Snakemake arguments (plus `extra`) from the repository root
         with the default config in a scratch work folder; "shell" runs `cmd` (bash, repository
         root); "test" asserts the named pytest test exists (it exercises the command itself).
    """

    how: str
    extra: tuple[str, ...] = ()
    cmd: str = ""
    expect: str = ""  # text the output must contain
    why: str = ""


DRY = ("-n",)
COVERAGE: dict[str, Check] = {
    # README.md, Quick start
    "bash scripts/bootstrap.sh": Check(
        "shell", cmd="bash -n scripts/bootstrap.sh && test -x .venv/bin/python && test -x .venv/bin/snakemake",
        why="installs into .venv: checked for syntax, and that the venv it makes is there"),
    ".venv/bin/snakemake --cores 2 all": Check("snakemake", DRY, expect="Job stats", why="27 min: dry run"),
    "PYTHONUTF8=1 .venv/bin/python -m pytest -q": Check(
        "shell", cmd="PYTHONUTF8=1 .venv/bin/python -m pytest -q --collect-only tests/test_workflow_layout.py",
        expect="test_rule_files_are_the_stages", why="the suite itself: collection only"),
    # README.md, Commands
    ".venv/bin/snakemake -n all": Check("snakemake", expect="Job stats"),
    ".venv/bin/snakemake --report results/report.html": Check(
        "test", cmd="tests/test_pipeline.py::test_html_report_embeds_tables_and_figures",
        why="needs a finished run: the slow tiny-pipeline test runs `--report` without --cores"),
    ".venv/bin/snakemake all --dag | dot -Tsvg > dag.svg": Check(
        "snakemake", expect="digraph",
        why="Graphviz is not a dependency: the DOT Snakemake writes"),
    ".venv/bin/snakemake --summary": Check("snakemake", expect="output_file"),
    ".venv/bin/snakemake --list-changes code": Check("snakemake"),
    ".venv/bin/snakemake --unlock": Check("snakemake", expect="Unlocked"),
    ".venv/bin/snakemake --lint": Check("snakemake", expect="Congratulations"),
    ".venv/bin/snakemake --profile slurm all": Check("snakemake", DRY, expect="Job stats",
                                                      why="no cluster here: dry run"),
    ".venv/bin/snakemake --sdm conda --cores 2 all": Check(
        "test", cmd="tests/test_workflow_layout.py::test_conda_envs_pin_the_requirements_versions",
        why="needs conda and downloads: the envs are checked against requirements.txt, `--lint` that "
            "every rule has one"),
    ".venv/bin/snakemake --directory .test --configfile .test/config/config.yaml --cores 2 all": Check(
        "snakemake", DRY, expect="Job stats", why="about a minute: dry run"),
    # README.md, Applying a model to your own images
    ".venv/bin/mrisr upscale --model results/models/synth_brain_slices/meta_srgan/any --scale 2.5 scan.nii.gz "
    "scan_x2.5.nii.gz": Check(
        "test", cmd="tests/test_upscale.py::test_cli_upscale_writes_the_new_grid_in_input_units",
        why="needs a finished default run and a scan of one's own: the same CLI on a saved meta_srgan model"),
    # README.md, Benchmarks: run as written (--quick: about 2.5 min for all seven)
    **{f".venv/bin/python bench/{b}.py --quick": Check("shell", cmd=f".venv/bin/python bench/{b}.py --quick",
                                                         why="speed is not asserted: the script runs and exits 0")
       for b in ("degrade", "loader", "train_step", "infer3d", "job_process", "scheduler", "scheduler_wait")},
    ".venv/bin/python bench/default_run_cpu.py --ref c9736c6 --ref-config bench/configs/c9736c6-default.yaml "
    "--config bench/configs/c9736c6-default-main-schema.yaml --dir /tmp/mrisr-cpu": Check(
        "shell", cmd=".venv/bin/python bench/default_run_cpu.py --help",
        expect="--ref-config", why="two default runs, about 90 min: its options only"),
    # docs/cluster.md
    "export MRISR_SLURM_GPU_PARTITION=gpu": Check("shell", cmd="export MRISR_SLURM_GPU_PARTITION=gpu"),
    "tmux new -s mrisr": Check("shell", cmd="tmux -V", expect="tmux", why="interactive: tmux is there"),
    "sudo bash scripts/slurm-cluster.sh start": Check(
        "shell", cmd="bash -n scripts/slurm-cluster.sh", why="needs root and apt-get: syntax only"),
    "bash scripts/slurm-cluster.sh status": Check(
        "shell", cmd="bash -n scripts/slurm-cluster.sh", why="needs a started cluster: syntax only"),
    "MRISR_SLURM=1 .venv/bin/python -m pytest tests/test_slurm.py -q": Check(
        "shell", cmd=".venv/bin/python -m pytest tests/test_slurm.py -q --collect-only",
        expect="test_jobs_ran_as_slurm_jobs", why="needs a cluster: collection only"),
    "sudo bash scripts/slurm-cluster.sh stop": Check(
        "shell", cmd="bash -n scripts/slurm-cluster.sh", why="needs root: syntax only"),
}


def documented_commands() -> list[str]:
    """Each command of every ```bash block, in order, once: trailing comments and comment-only
    lines (a comment continued from the line above) dropped, `&&` chains split."""
    commands: list[str] = []
    for doc in DOCS:
        for block in re.findall(r"^```bash\n(.*?)^```", doc.read_text(), re.M | re.S):
            for line in block.splitlines():
                code = line.split("#", 1)[0].strip() if line.strip().startswith("#") else line.split(" #", 1)[0].strip()
                commands += [part.strip() for part in code.split("&&") if part.strip()]
    return list(dict.fromkeys(commands))


def test_every_documented_command_is_covered() -> None:
    commands = documented_commands()
    assert len(commands) > 15
    missing = [c for c in commands if c not in COVERAGE]
    assert not missing, f"documented commands without a check in COVERAGE: {missing}"
    stale = [c for c in COVERAGE if c not in commands]
    assert not stale, f"COVERAGE entries no document shows any more: {stale}"


def snakemake_argv(command: str, workdir: Path) -> list[str]:
    """The command's Snakemake arguments with the interpreter running the tests, its work folder
    moved to `workdir` (so a test never locks or writes the checkout's own results/)."""
    argv = shlex.split(command.split("|", 1)[0].split(" #", 1)[0])
    assert argv[0] == ".venv/bin/snakemake", command
    args = argv[1:]
    configfile = str(REPO / "config/config.yaml")
    if "--directory" in args:  # the documented work folder's config, its results in workdir
        i = args.index("--directory")
        src = REPO / args[i + 1]
        del args[i:i + 2]
        j = args.index("--configfile")
        args[j + 1] = str(REPO / args[j + 1])
        assert src.is_dir(), src
    elif "--configfile" not in args:
        args += ["--configfile", configfile]
    return [sys.executable, "-m", "snakemake", *args, "--directory", str(workdir)]


@pytest.mark.parametrize("command", sorted(COVERAGE))
def test_documented_command_works(command: str, tmp_path: Path) -> None:
    check = COVERAGE[command]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if check.how == "test":
        path, name = check.cmd.split("::")
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(), re.M), check.cmd
        return
    if check.how == "snakemake":
        argv = snakemake_argv(check.cmd or command, tmp_path) + list(check.extra)
    else:
        argv = ["bash", "-c", check.cmd]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{command!r} ({' '.join(argv)}) failed:\n{out[-4000:]}"
    assert check.expect in out, f"{command!r}: {check.expect!r} not in the output:\n{out[-2000:]}"
