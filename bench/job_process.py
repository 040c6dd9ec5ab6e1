"""One pipeline job's process: `mrisr prepare` on one subject against a bare script doing the same work.

    python bench/job_process.py [--quick] [--rounds N]

Every Snakemake job is a fresh `python -m mrisr <stage>` process, so what a stage imports
and sets up is paid once per subject. Here one HCP-like subject (a 96×120×96 T1w NIfTI,
the default config's synth_volume) is prepared by:
* reference "bare script": python + numpy + nibabel only — load, reorient to RAS,
  centre-crop to a multiple of 12, percentile-clip to [0, 1], write NIfTI + JSON sidecar
  + manifest (what `mrisr prepare --reader hcp` writes, minus its validation);
* `python -m mrisr prepare --reader hcp ...`, as the prepare rule runs it.
Each round runs both as child processes (interleaved); medians of the child's CPU
seconds (user + sys; robust to machine load), wall seconds and peak RSS.
Goal: mrisr / bare <= 1.5 in CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SRC, verdict

GOAL = 1.5
SUBJECT = "100001"

BARE = r'''
import json, sys
from pathlib import Path
import nibabel as nib
import numpy as np

raw, out = Path(sys.argv[1]), Path(sys.argv[2])
src = raw / "100001" / "T1w" / "T1w_acpc_dc_restore.nii.gz"
img = nib.as_closest_canonical(nib.load(str(src)))
data = np.asarray(img.dataobj, dtype=np.float32)
affine = img.affine.astype(np.float64)
slices, start = [], np.zeros(3)
for a, n in enumerate(data.shape[:3]):
    keep = n - n % 12
    lo = (n - keep) // 2
    slices.append(slice(lo, lo + keep))
    start[a] = lo
data = data[tuple(slices)]
affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
lo, hi = (float(v) for v in np.percentile(data, [0.5, 99.5]))
data = np.clip((data - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
out.mkdir(parents=True, exist_ok=True)
nimg = nib.Nifti1Image(data, affine)
nimg.header.set_xyzt_units("mm", "sec")
nib.save(nimg, str(out / "t1w.nii.gz"))
(out / "t1w.json").write_text(json.dumps({"shape": list(data.shape), "intensity": [lo, hi]}, indent=2))
(out / "manifest.json").write_text(json.dumps({"subject": "100001", "series": ["t1w"]}))
'''


# Runs a script or module, then reports the process's peak RSS (VmHWM) on its last stderr line.
# (wait4's ru_maxrss would not do: Linux carries the forking parent's peak across exec.)
WRAP = r"""
import atexit, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        sys.stderr.write("\nVmHWM " + next(l.split()[1] for l in f if l.startswith("VmHWM")) + "\n")
atexit.register(_peak)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    sys.argv[0] = target
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def run_child(argv: list[str], env: dict) -> tuple[float, float, float]:
    """(CPU s, wall s, peak RSS MiB) of one child process `python WRAP target args...`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", WRAP, *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed: {err[-2000:]}")
    peak_kib = int(err.strip().splitlines()[-1].split()[1])
    return usage.ru_utime + usage.ru_stime, wall, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds (~20 s)")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 9)

    from mrisr.datasets import write_synth

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_synth("volume", tmp / "raw", 1, 0, {"shape": [96, 120, 96]})
        bare_py = tmp / "bare_prepare.py"
        bare_py.write_text(BARE)
        cases = {
            "bare script": [str(bare_py), str(tmp / "raw"), str(tmp / "bare")],
            "mrisr prepare": ["mrisr", "prepare", "--reader", "hcp", "--raw", str(tmp / "raw"),
                              "--subject", SUBJECT, "--dataset", "bench", "--out-dir", str(tmp / "mrisr"),
                              "--crop-axes", "0", "1", "2"],
        }
        results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in cases}
        for name, argv in cases.items():  # warm-up: page cache, .pyc files
            run_child(argv, env)
        for _ in range(rounds):
            for name, argv in cases.items():
                results[name].append(run_child(argv, env))
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in results.items()}
    ref_cpu, ref_wall, ref_rss = med["bare script"]
    print(f"one subject, HR 96x120x96; median of {rounds} interleaved rounds (child processes)")
    for name, (cpu, wall, rss) in med.items():
        ratio = cpu / ref_cpu
        tag = "reference" if name == "bare script" else verdict(ratio, GOAL)
        print(f"{name:14s} CPU {cpu:6.2f} s  wall {wall:6.2f} s  peak RSS {rss:6.0f} MiB   "
              f"CPU ratio {ratio:5.2f}  (+{cpu - ref_cpu:.2f} s, +{rss - ref_rss:.0f} MiB)  ({tag})")


if __name__ == "__main__":
    main()
