"""Snakemake's own CPU on the real workflow against a trivial per-subject Snakefile.

    python bench/scheduler.py [--quick] [--subjects 200 1000] [--rounds 1]

For each subject count N a temporary work folder gets a one-dataset config (HCP-like
volumes, truncate ×2, tricubic only) and a finished raw folder + inventory, then
`snakemake --touch` runs the whole DAG: every job is scheduled, started and finished
by Snakemake without running its command, so the CPU seconds of the Snakemake
process (user + sys, from wait4) are scheduler cost only. mrisr batches per-subject
stages (one prepare job per dataset, one degrade job per dataset × scale), so its job
count does not grow with N. The reference is a trivial Snakefile with the per-subject
DAG shape (N → N → aggregate, `touch` rules, no input functions) run the same way.
Reported: jobs, CPU per subject (total / N) and per job, the ratio of CPU per subject
to the reference's, and the marginal CPU per added subject between the two counts.
Goal (issue 15): at the larger N, mrisr's Snakemake CPU ≤ 2× the trivial Snakefile's.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from _common import snakemake_cpu

REPO = Path(__file__).resolve().parents[1]

TRIVIAL = '''
SUBJ = [f"{100001 + i:06d}" for i in range(int(config["n"]))]

rule all:
    input: "results/tables/summary.csv"

rule prepare:
    output: "results/bv/prepared/{s}/manifest.json"
    shell: "touch {output}"

rule degrade:
    input: "results/bv/prepared/{s}/manifest.json"
    output: "results/bv/lr/{s}.nii.gz"
    shell: "touch {output}"

rule split:
    input: expand("results/bv/prepared/{s}/manifest.json", s=SUBJ)
    output: "results/bv/split.json"
    shell: "touch {output}"

rule evaluate:
    input: "results/bv/split.json", expand("results/bv/lr/{s}.nii.gz", s=SUBJ)
    output: "results/eval/metrics.csv"
    shell: "touch {output}"

rule tables:
    input: "results/eval/metrics.csv"
    output: "results/tables/summary.csv"
    shell: "touch {output}"
'''


def real_workdir(root: Path, n: int) -> tuple[Path, list[str]]:
    """A work folder for the project's Snakefile with N synthetic subjects already inventoried."""
    work = root / f"real{n}"
    subjects = [f"{100001 + i:06d}" for i in range(n)]
    (work / "resources/raw/bv").mkdir(parents=True)
    (work / "results/bv").mkdir(parents=True)
    config = {"seed": 42, "device": "cpu", "job_threads": 1, "datasets": {"bv": {
        "kind": "volume", "reader": "hcp",
        "raw": {"synth": {"kind": "volume", "n_subjects": n, "params": {"shape": [24, 24, 24]}}},
        "target": "t1w", "prepare": {"crop_axes": [0, 1, 2]},
        "degradation": {"mode": "truncate", "window": "none", "axes": [0, 1, 2]}, "scales": [2],
        "patches": {"hr_patch": [12, 12, 12], "train_per_subject": 4, "val_per_subject": 2},
        "methods": ["tricubic"]}}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    (work / "resources/raw/bv/manifest.json").write_text(json.dumps({"subjects": subjects}))
    time.sleep(0.01)  # the inventory must be newer than the raw marker
    (work / "results/bv/inventory.json").write_text(json.dumps({"reader": "hcp", "raw": "resources/raw/bv",
                                                                 "subjects": subjects}))
    argv = ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(work / "config.yaml")]
    return work, argv


def trivial_workdir(root: Path, n: int) -> tuple[Path, list[str]]:
    work = root / f"trivial{n}"
    work.mkdir()
    (work / "Snakefile").write_text(TRIVIAL)
    (work / "config.yaml").write_text(yaml.safe_dump({"n": n}))
    return work, ["--snakefile", str(work / "Snakefile"), "--configfile", str(work / "config.yaml")]


def run_touch(work: Path, argv: list[str]) -> tuple[float, int]:
    """(CPU seconds of the Snakemake process, jobs run) of one `snakemake --touch` over the DAG."""
    shutil.rmtree(work / ".snakemake", ignore_errors=True)  # no metadata left from an earlier round
    cmd = [*argv, "--directory", str(work), "--cores", "1", "--touch"]
    cpu, out = snakemake_cpu(work, cmd)
    m = re.search(r"(\d+) of \1 steps \(100%\) done", out)
    if not m:
        raise SystemExit(f"no job count in the output of {cmd}:\n{out[-3000:]}")
    return cpu, int(m.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 and 200 subjects (~1-2 min)")
    parser.add_argument("--subjects", type=int, nargs=2, default=None, help="two subject counts (default 200 1000)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per count (median kept)")
    args = parser.parse_args()
    counts = args.subjects or ((50, 200) if args.quick else (200, 1000))

    rows: dict[tuple[str, int], tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in counts:
            dirs = {"mrisr workflow": real_workdir(root, n), "trivial Snakefile": trivial_workdir(root, n)}
            samples: dict[str, list[tuple[float, int]]] = {k: [] for k in dirs}
            for _ in range(args.rounds):
                for name, (work, argv) in dirs.items():
                    samples[name].append(run_touch(work, argv))
            for name, s in samples.items():
                rows[(name, n)] = (statistics.median(c for c, _ in s), s[0][1])
    print(f"snakemake --touch, Snakemake process CPU (user+sys), median of {args.rounds} round(s)")
    for n in counts:
        (cpu, jobs), (ref_cpu, ref_jobs) = rows[("mrisr workflow", n)], rows[("trivial Snakefile", n)]
        print(f"{n:5d} subjects: mrisr {jobs:5d} jobs {cpu:7.2f} s = {cpu / n * 1e3:6.2f} ms/subject "
              f"({cpu / jobs * 1e3:7.1f} ms/job)   trivial {ref_jobs:5d} jobs {ref_cpu:7.2f} s = "
              f"{ref_cpu / n * 1e3:6.2f} ms/subject ({ref_cpu / ref_jobs * 1e3:5.1f} ms/job)   "
              f"ratio {cpu / ref_cpu:5.2f}{'  (ok)' if cpu / ref_cpu <= 2 else ''}")
    (a, b) = counts
    marg = {name: (rows[(name, b)][0] - rows[(name, a)][0]) / (b - a) for name in ("mrisr workflow", "trivial Snakefile")}
    print(f"marginal CPU per added subject from {a} to {b}: mrisr {marg['mrisr workflow'] * 1e3:.2f} ms, "
          f"trivial {marg['trivial Snakefile'] * 1e3:.2f} ms")

if __name__ == "__main__":
    main()
