"""Snakemake's own CPU while it waits for long jobs, with and without mrisr's timer fix.

    python bench/scheduler_wait.py [--quick] [--jobs 150] [--wait 40] [--rounds 1]

A default run is mostly long training jobs on both cores while other ready jobs wait. Stock
Snakemake 9 re-arms a 1 s wake-up timer on every scheduling pass that leaves ready jobs waiting,
and every such pass woken by a finished job starts one more chain (src/mrisr/scheduler_timers.py),
so the waiting scheduler's CPU grows with jobs finished × time waited. Here a trivial Snakefile
runs N `touch` jobs, then six `sleep` jobs of S/3 seconds on 2 cores (four wait at first); the same Snakefile is run as is (the reference) and with
`limit_reevaluation_timers()` at its top. Reported: CPU seconds (user + sys, from wait4) of
the Snakemake process median over interleaved rounds, and the ratio fixed / stock.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from _common import snakemake_cpu

BODY = '''
rule all:
    input: expand("long/{i}.txt", i=range(6))

rule quick:
    output: "quick/{i}.txt"
    shell: "touch {output}"

rule wait:
    input: expand("quick/{i}.txt", i=range(int(config["n"])))
    output: "long/{i}.txt"
    params: s=lambda wc: float(config["wait"]) / 3
    shell: "sleep {params.s}; touch {output}"
'''
FIX = "from mrisr.scheduler_timers import limit_reevaluation_timers\nlimit_reevaluation_timers()\n"


def run(work: Path, n: int, wait: float) -> float:
    """CPU seconds of the Snakemake process over one run."""
    for sub in ("quick", "long", ".snakemake"):
        shutil.rmtree(work / sub, ignore_errors=True)
    (work / "config.yaml").write_text(f"n: {n}\nwait: {wait}\n")
    return snakemake_cpu(work, ["--snakefile", str(work / "Snakefile"), "--directory", str(work),
                                "--configfile", str(work / "config.yaml"), "--cores", "2"])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 jobs, 15 s wait (~1 min)")
    parser.add_argument("--jobs", type=int, default=150, help="quick jobs before the wait (default 150)")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds of waiting: 6 jobs of wait/3 s, 2 at a time")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median kept)")
    args = parser.parse_args()
    n, wait = (100, 15.0) if args.quick else (args.jobs, args.wait)
    samples: dict[str, list[float]] = {"stock Snakemake": [], "with the timer fix": []}
    with tempfile.TemporaryDirectory() as tmp:
        works = {}
        for name, head in (("stock Snakemake", ""), ("with the timer fix", FIX)):
            work = Path(tmp) / name.split()[0]
            work.mkdir()
            (work / "Snakefile").write_text(head + BODY)
            works[name] = work
        for _ in range(args.rounds):
            for name, work in works.items():
                samples[name].append(run(work, n, wait))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{n} quick jobs, then 6 jobs of {wait / 3:g} s on 2 cores; Snakemake process CPU, median of {args.rounds}")
    for name, cpu in med.items():
        print(f"  {name:20s} {cpu:7.2f} CPU-s")
    ratio = med["with the timer fix"] / med["stock Snakemake"]
    print(f"ratio fixed / stock: {ratio:.2f}{'  (ok: the fix costs no more)' if ratio <= 1.0 else ''}")


if __name__ == "__main__":
    main()
