"""Time mrisr's k-space degradation against a bare real FFT round trip.

    python bench/degrade.py [--size 256] [--repeats 3]

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

from mrisr.degrade import degrade_array, kspace_lowpass

GOAL = 1.3


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls (best, not mean: the least-disturbed run)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="edge of the cubic test volume")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (best kept)")
    args = parser.parse_args()

    x = np.random.default_rng(0).random((args.size,) * 3, dtype=np.float32)
    axes = (0, 1, 2)

    def reference() -> np.ndarray:
        spec = scipy.fft.rfftn(x, axes=axes, workers=-1)
        return scipy.fft.irfftn(spec, s=x.shape, axes=axes, workers=-1, overwrite_x=True)

    cases = {
        "degrade_array truncate x2": lambda: degrade_array(x, "truncate", 2, axes),
        "kspace_lowpass x2": lambda: kspace_lowpass(x, 2, axes),
    }
    reference()  # warm-up: FFT plans, thread pool, page faults
    ref_t = best_time(reference, args.repeats)
    print(f"volume {x.shape} float32, best of {args.repeats}")
    print(f"{'reference rfftn+irfftn':30s} {ref_t * 1e3:9.1f} ms")
    for name, fn in cases.items():
        fn()
        t = best_time(fn, args.repeats)
        ratio = t / ref_t
        verdict = "ok" if ratio <= GOAL else f"above goal {GOAL}"
        print(f"{name:30s} {t * 1e3:9.1f} ms   ratio {ratio:5.2f}  ({verdict})")


if __name__ == "__main__":
    main()
