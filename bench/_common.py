"""Shared by the benchmarks: interleaved timing with medians, synthetic patch stores, verdicts.

Every benchmark compares mrisr against a reference measured in the same process and run,
so that machine load (other jobs on a shared box) hits both alike: cases are interleaved
round by round and each reports the median over rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

# Benchmarks import the mrisr in this checkout (src/), not an installed copy elsewhere.
SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def snakemake_cpu(work: Path, args: list[str]) -> tuple[float, str]:
    """(CPU seconds of the Snakemake process from wait4, its output) of `snakemake ARGS` run with
    this checkout's mrisr importable; exits with the output's tail when Snakemake fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"snakemake failed in {work}:\n{out[-3000:]}")
    return usage.ru_utime + usage.ru_stime, out


def interleaved_medians(cases: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
                        clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds of each case over `rounds` rounds; every round runs every case once.

    clock: wall time by default; time.process_time (this process's CPU seconds) for
    single-threaded work on a loaded machine, where wall time mostly measures waiting.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def verdict(ratio: float, goal: float, higher_is_better: bool = False) -> str:
    ok = ratio >= goal if higher_is_better else ratio <= goal
    return "ok" if ok else f"MISSES goal {'>=' if higher_is_better else '<='} {goal}"


def write_patch_store(path: Path, n: int, hr_patch: tuple[int, ...], scale: int, seed: int = 0,
                      split: str = "train") -> Path:
    """A store in the pipeline's layout (mrisr.patches.store.write_store): random smooth-ish
    patches, LR = HR block means (what a 'corner' grid pairs), all attributes set."""
    from mrisr.patches.store import write_store

    rng = np.random.default_rng(seed)
    lr_patch = tuple(p // scale for p in hr_patch)
    lr = rng.random((n, *lr_patch), dtype=np.float32)
    hr = lr
    for axis in range(1, lr.ndim):
        hr = np.repeat(hr, scale, axis=axis)
    hr = np.clip(hr + 0.05 * rng.standard_normal(hr.shape, dtype=np.float32), 0, 1)
    dims = len(hr_patch)
    attrs = {"task": "sisr3d" if dims == 3 else "sisr2d", "scale": float(scale), "dims": dims,
             "axes": json.dumps(list(range(dims))), "hr_patch": json.dumps(list(hr_patch)),
             "lr_patch": json.dumps(list(lr_patch)), "grid_convention": "corner", "config_hash": f"bench-{split}",
             "seed": seed, "code_version": "bench", "subjects": json.dumps(["b1"]), "split": split,
             "clip": json.dumps(None)}
    write_store(path, {"lr": lr, "hr": hr.astype(np.float32), "subject": np.zeros(n, np.int32)}, attrs)
    return path
