"""Whole-volume 3D inference: `super_resolve` against a bare forward pass of the same model.

    python bench/infer3d.py [--quick] [--threads 1]

Model: the default config's 3D EDSR (16 features, 4 blocks, ×2, untrained weights:
speed does not depend on them). Volume: LR 64×64×48 → HR 128×128×96 (--quick: LR
40×40×32).
* reference "bare forward": torch.no_grad() model(lr) on the whole volume;
* mrisr default: `super_resolve(..., tile_voxels="auto")`: tiles sized from the free
  memory, so one whole-volume pass when it fits (plus the small memory probe);
* for context, the former fixed tiling (32 LR cores + 8 LR of context each side),
  which recomputed the context of every tile.
Rounds interleave the cases; each reports the median. Goal: default / bare <= 1.2.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import interleaved_medians, verdict

GOAL = 1.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller volume, fewer rounds (~30 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's job_threads: 1)")
    args = parser.parse_args()
    lr_shape, rounds = ((40, 40, 32), 3) if args.quick else ((64, 64, 48), 5)

    import torch

    from mrisr.evaluate.inference import super_resolve
    from mrisr.grid import Grid
    from mrisr.models import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("edsr", scale=2, dims=3, grid_convention="corner", n_feats=16, n_blocks=4).eval()
    hr_shape = tuple(2 * n for n in lr_shape)
    grid = Grid("corner", (0, 1, 2), hr_shape, lr_shape)
    lr = np.random.default_rng(0).random(lr_shape, dtype=np.float32)
    lr_t = torch.from_numpy(lr)[None, None]

    def bare() -> None:
        with torch.no_grad():
            model(lr=lr_t).numpy()

    cases = {"bare forward": bare,
             "super_resolve (default: auto tiles)": lambda: super_resolve(lr, grid, "edsr", model=model),
             "super_resolve, former fixed 32+8 tiles": lambda: super_resolve(lr, grid, "edsr", model=model,
                                                                              tile_voxels=1)}
    times = interleaved_medians(cases, rounds)
    ref = times.pop("bare forward")
    print(f"EDSR 3D x2, LR {lr_shape} -> HR {hr_shape}, {torch.get_num_threads()} thread(s), "
          f"median of {rounds} interleaved rounds")
    print(f"{'bare forward':40s} {ref:7.2f} s")
    for name, t in times.items():
        ratio = t / ref
        tag = verdict(ratio, GOAL) if "default" in name else "for context"
        print(f"{name:40s} {t:7.2f} s   ratio {ratio:5.2f}  ({tag})")


if __name__ == "__main__":
    main()
