"""Patch reads: mrisr's PatchDataset against bare h5py and bare in-memory numpy.

    python bench/loader.py [--quick]

A 3D patch store (HR 32³, LR 16³, float32, one chunk per sample: the pipeline's layout)
is read at random indices, one sample at a time as a DataLoader without batching does:
* reference "bare h5py": h5py.File and its datasets opened once, `dset[i]` per key;
* reference "in memory": the arrays already in numpy, `arr[i]` per key;
* PatchDataset(in_memory=False): reads through the file it keeps open;
* PatchDataset() (default: a store that fits in memory is read once per process);
Throughput ratios are against bare h5py. Goal: PatchDataset >= 0.7x bare h5py.
Rounds interleave the cases; each reports the median round, timed in this process's
CPU seconds (all cases are single-threaded; wall time on a shared machine is mostly waiting).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import interleaved_medians, verdict, write_patch_store

GOAL = 0.7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller store, fewer reads and rounds (~10 s)")
    args = parser.parse_args()
    n, reads, rounds = (256, 256, 5) if args.quick else (1024, 2048, 9)

    import h5py
    import torch

    from mrisr.patches.dataset import PatchDataset

    with tempfile.TemporaryDirectory() as tmp:
        path = write_patch_store(Path(tmp) / "train.h5", n, (32, 32, 32), 2)
        keys = ("lr", "hr")
        idx = np.random.default_rng(1).integers(0, n, reads).tolist()
        f = h5py.File(path, "r")
        dsets = {k: f[k] for k in keys}
        mem = {k: dsets[k][...] for k in keys}
        on_disk = PatchDataset(path, keys, in_memory=False)
        default = PatchDataset(path, keys)

        def bare_h5py():
            for i in idx:
                for k in keys:
                    dsets[k][i]

        def bare_memory():
            for i in idx:
                for k in keys:
                    torch.from_numpy(mem[k][i].copy())

        def dataset(ds):
            def read():
                for i in idx:  # each item dropped at once, as in the bare loops (no 2000-item pile-up)
                    ds[i]
            return read

        cases = {"bare h5py (datasets open)": bare_h5py, "bare in-memory numpy": bare_memory,
                 "PatchDataset(in_memory=False)": dataset(on_disk),
                 f"PatchDataset() [in_memory={default.in_memory}]": dataset(default)}
        times = interleaved_medians(cases, rounds, clock=time.process_time)  # one thread: CPU s
        f.close()
        on_disk.close()

    ref = times["bare h5py (datasets open)"]
    print(f"store: {n} samples, HR 32^3 + LR 16^3 float32; {reads} random reads per round, median of {rounds} rounds (CPU time)")
    for name, t in times.items():
        rate = reads / t
        ratio = ref / t
        tag = verdict(ratio, GOAL, higher_is_better=True) if name.startswith("PatchDataset") else "reference"
        print(f"{name:34s} {rate:9.0f} samples/s   {ratio:5.2f}x bare h5py  ({tag})")


if __name__ == "__main__":
    main()
