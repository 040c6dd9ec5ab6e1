"""One training step: the engine's SupervisedTask against a bare torch loop, fp32 and bf16.

    python bench/train_step.py [--quick] [--threads 1] [--dims 2|3]

Both sides train the same network (the default config's EDSR: 32 features, 4 blocks;
--dims 3 uses its 3D form with 16 features, as synth_volume does) with Adam on L1 at
batch 16 (2D, HR 48²) or 4 (3D, HR 24³), ×2:
* reference "bare torch": patches already in torch tensors, random indices,
  autocast forward, L1, backward, Adam step;
* mrisr: the engine's `SupervisedTask` on an HDF5 patch store in the pipeline's layout — its
  DataLoader (StepBatchSampler, PatchDataset), seeded augmentation, device transfer and
  `step`, i.e. what the engine runs per step without logging and validation.
Rounds interleave the two (a few steps each); the median round is compared.
Goal: mrisr / bare <= 1.15 at fp32 and at bf16.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import interleaved_medians, verdict, write_patch_store

GOAL = 1.15


def bench(dims: int, bf16: bool, steps_per_round: int, rounds: int, tmp: Path) -> tuple[float, float]:
    import h5py
    import torch

    from mrisr.models import build_model
    from mrisr.train.engine import resolve_device
    from mrisr.train.supervised import SupervisedTask, memory_format

    if dims == 2:
        args, hr_patch, batch, channels_last = {"n_feats": 32, "n_blocks": 4, "res_scale": 1.0}, (48, 48), 16, True
    else:
        args, hr_patch, batch, channels_last = {"n_feats": 16, "n_blocks": 4, "res_scale": 1.0}, (24, 24, 24), 4, False
    train_h5 = tmp / f"train{dims}.h5"
    val_h5 = tmp / f"val{dims}.h5"
    if not train_h5.exists():
        write_patch_store(train_h5, 512, hr_patch, 2, seed=0)
        write_patch_store(val_h5, 32, hr_patch, 2, seed=1, split="val")
    cfg = {"arch": "edsr", "args": args,
           "train": {"steps": 100000, "batch_size": batch, "lr": 2e-4, "bf16": bf16, "channels_last": channels_last}}
    task = SupervisedTask(cfg, train_h5, val_h5, seed=0, device=resolve_device("cpu"))
    batches = iter(task.batches(0))
    state = {"step": 0}

    def mrisr_steps() -> None:
        for _ in range(steps_per_round):
            task.step(next(batches), state["step"])
            state["step"] += 1

    torch.manual_seed(0)
    geometry = {"scale": 2, "dims": dims, "grid_convention": "corner"}
    model = build_model("edsr", **geometry, **args)
    fmt = memory_format(dims) if channels_last else None
    if fmt is not None:
        model = model.to(memory_format=fmt)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    with h5py.File(train_h5) as f:
        lr_all = torch.from_numpy(f["lr"][...]).unsqueeze(1)
        hr_all = torch.from_numpy(f["hr"][...]).unsqueeze(1)
    gen = torch.Generator().manual_seed(0)

    def bare_steps() -> None:
        for _ in range(steps_per_round):
            idx = torch.randint(len(lr_all), (batch,), generator=gen)
            lr, hr = lr_all[idx], hr_all[idx]
            if fmt is not None:
                lr, hr = lr.contiguous(memory_format=fmt), hr.contiguous(memory_format=fmt)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(lr=lr)
            loss = torch.nn.functional.l1_loss(out.float(), hr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    times = interleaved_medians({"bare": bare_steps, "mrisr": mrisr_steps}, rounds)
    return times["bare"] / steps_per_round, times["mrisr"] / steps_per_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (~1 min; bf16 without avx512_bf16 hardware is slow)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's job_threads: 1)")
    parser.add_argument("--dims", type=int, choices=(2, 3), default=2)
    args = parser.parse_args()
    steps, rounds = (1, 3) if args.quick else (3, 7)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"EDSR {args.dims}D x2, {torch.get_num_threads()} thread(s); median of {rounds} interleaved rounds "
              f"of {steps} steps")
        for bf16 in (False, True):
            bare, ours = bench(args.dims, bf16, steps, rounds, Path(tmp))
            ratio = ours / bare
            print(f"{'bf16' if bf16 else 'fp32':5s} bare torch {bare * 1e3:8.1f} ms/step   mrisr task    "
                  f"{ours * 1e3:8.1f} ms/step   ratio {ratio:5.2f}  ({verdict(ratio, GOAL)})")


if __name__ == "__main__":
    main()
