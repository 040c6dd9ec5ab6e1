"""Time mrisr's k-space degradation against a bare real FFT round trip.

    python bench/degrade.py [--quick] [--size 256] [--repeats 3]

Reference: scipy.fft.rfftn + irfftn of a random float32 size³ volume
(workers=-1), the least any k-space filter must do.  mrisr's truncate mode
and kspace_lowpass at scale 2 run on the same volume in the same process;
each time is the best of --repeats.  Goal: mrisr / reference ≤ 1.3.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import scipy.fft

import _common  # noqa: F401  (puts this checkout's src/ first on sys.path)
from mrisr.degrade import degrade_array, kspace_lowpass

GOAL = 1.3


def best_times(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each case over `repeats` rounds.

    Rounds interleave the cases so that load from other processes hits them
    alike, and the best (not the mean) is the least-disturbed run.
    """
    for fn in cases.values():
        fn()  # warm-up: FFT plans, thread pool, page faults
    best = {name: float("inf") for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="edge of the cubic test volume")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (best kept)")
    parser.add_argument("--quick", action="store_true", help="a 128³ volume (a few seconds)")
    args = parser.parse_args()
    if args.quick:
        args.size = 128

    x = np.random.default_rng(0).random((args.size,) * 3, dtype=np.float32)
    axes = (0, 1, 2)

    def reference() -> np.ndarray:
        spec = scipy.fft.rfftn(x, axes=axes, workers=-1)
        return scipy.fft.irfftn(spec, s=x.shape, axes=axes, workers=-1, overwrite_x=True)

    cases = {
        "reference rfftn+irfftn": reference,
        "degrade_array truncate x2": lambda: degrade_array(x, "truncate", 2, axes),
        "kspace_lowpass x2": lambda: kspace_lowpass(x, 2, axes),
    }
    times = best_times(cases, args.repeats)
    ref_t = times.pop("reference rfftn+irfftn")
    print(f"volume {x.shape} float32, best of {args.repeats}")
    print(f"{'reference rfftn+irfftn':30s} {ref_t * 1e3:9.1f} ms")
    for name, t in times.items():
        ratio = t / ref_t
        verdict = "ok" if ratio <= GOAL else f"above goal {GOAL}"
        print(f"{name:30s} {t * 1e3:9.1f} ms   ratio {ratio:5.2f}  ({verdict})")


if __name__ == "__main__":
    main()
