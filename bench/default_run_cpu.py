"""The whole default run's CPU, like for like: one config run by an earlier revision (the reference)
and by this checkout, side by side on the same machine at the same time.

    python bench/default_run_cpu.py --ref REV --ref-config OLD.yaml --config NEW.yaml --dir DIR
    python bench/default_run_cpu.py --summarize DIR

Run mode clones this repository twice into DIR (`ref/` at REV, `new/` at HEAD; committed files
only), puts each side's config at config/config.yaml (the same experiments; NEW.yaml only adapts
the keys whose schema changed since REV) and runs `snakemake --cores 2 --keep-going all` in both
at once, each with its own src/ on PYTHONPATH. Running them together puts the same machine load
on both, so the ratio holds on a busy box; run alone, a side's wall time (and with it the
scheduler's waiting CPU) would differ. Each side writes rusage.txt at exit: the Snakemake
process's own CPU (self) and its jobs' (children), user and sys, from getrusage.

Summarize mode (also run at the end of run mode) prints per side the CPU seconds, the scheduler's
share, the jobs, and the ratio new / ref, then compares the two summary.csv tables (PSNR rows
that differ by more than 0.005 dB are listed: they must be the methods changed on purpose).
Takes about 90 minutes on 2 cores; not part of the test suite.
"""

from __future__ import annotations

import argparse
import atexit
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
GOAL = 0.70
SIDES = ("ref", "new")


def write_rusage() -> None:
    """atexit hook of the wrapped Snakemake: its own and its children's CPU seconds."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    Path("rusage.txt").write_text(f"self_user {s.ru_utime:.1f} self_sys {s.ru_stime:.1f} "
                                  f"children_user {c.ru_utime:.1f} children_sys {c.ru_stime:.1f}\n")


def wrapped_snakemake(args: list[str]) -> int:
    """Snakemake's CLI in this process, with write_rusage at exit."""
    atexit.register(write_rusage)
    from snakemake.cli import main

    sys.argv = ["snakemake", *args]
    return main()


def clone(rev: str, dest: Path, config: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", rev], check=True)
    shutil.copyfile(config, dest / "config" / "config.yaml")


def launch(side: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(side / "src")}
    log = open(side / "run.log", "w")  # noqa: SIM115 -- closed when the process ends
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--snakemake", "--cores", "2",
                             "--keep-going", "all"], cwd=side, env=env, stdout=log, stderr=subprocess.STDOUT)


def read_rusage(side: Path) -> dict[str, float]:
    words = (side / "rusage.txt").read_text().split()
    return {k: float(v) for k, v in zip(words[::2], words[1::2])}


def job_count(side: Path) -> int:
    """Jobs finished, from Snakemake's own logs of the side (.snakemake/log)."""
    return sum(f.read_text(errors="replace").count("Finished job") for f in (side / ".snakemake/log").glob("*.log"))


def psnr_differences(ref: Path, new: Path, tol: float = 0.005) -> pd.DataFrame:
    key = ["dataset", "task", "scale", "method"]
    tables = [pd.read_csv(s / "results/tables/summary.csv") for s in (ref, new)]
    a, b = (t[t.metric == "psnr"].set_index(key)["mean"] for t in tables)
    both = pd.concat({"ref": a, "new": b}, axis=1, join="inner")
    both["diff"] = both["new"] - both["ref"]
    print(f"summary.csv PSNR rows in both: {len(both)}; differing by > {tol} dB: {(both['diff'].abs() > tol).sum()}")
    return both[both["diff"].abs() > tol]


def summarize(root: Path) -> float:
    cpu = {}
    for name in SIDES:
        u = read_rusage(root / name)
        total = sum(u.values())
        cpu[name] = total
        print(f"{name}: {total:.0f} CPU-s (Snakemake process {u['self_user'] + u['self_sys']:.0f}, "
              f"jobs {u['children_user'] + u['children_sys']:.0f}; user {u['self_user'] + u['children_user']:.0f}, "
              f"sys {u['self_sys'] + u['children_sys']:.0f}), {job_count(root / name)} jobs")
    ratio = cpu["new"] / cpu["ref"]
    print(f"ratio new / ref: {ratio:.3f} (goal <= {GOAL}): {'met' if ratio <= GOAL else 'NOT met'}")
    diff = psnr_differences(root / "ref", root / "new")
    if len(diff):
        print(diff.round(3).to_string())
    return ratio


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--snakemake":
        return wrapped_snakemake(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", help="git revision of the reference run")
    p.add_argument("--ref-config", type=Path, help="config the reference revision runs")
    p.add_argument("--config", type=Path, help="the same experiments in this checkout's schema")
    p.add_argument("--dir", type=Path, help="empty folder for the two clones")
    p.add_argument("--summarize", type=Path, metavar="DIR", help="only summarize finished runs in DIR/ref, DIR/new")
    a = p.parse_args()
    if a.summarize:
        summarize(a.summarize)
        return 0
    if not (a.ref and a.ref_config and a.config and a.dir):
        p.error("run mode needs --ref, --ref-config, --config and --dir")
    if a.dir.exists() and any(a.dir.iterdir()):
        p.error(f"{a.dir} is not empty")
    clone(a.ref, a.dir / "ref", a.ref_config.resolve())
    clone("HEAD", a.dir / "new", a.config.resolve())
    procs = {name: launch(a.dir / name) for name in SIDES}
    codes = {name: proc.wait() for name, proc in procs.items()}
    if any(codes.values()):
        print(f"snakemake exit codes: {codes} (see run.log in each side)")
    summarize(a.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
