"""DataLoader workers ignore SIGTERM (so Slurm's signal reaches only the main process): the engine
shuts its workers down itself at the end of a run, and a process that ends with a loader's
persistent workers alive must still exit (train.signals' exit-time SIGKILL, the safety net)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from mrisr.train.signals import ignore_stop_signals_in_worker

    loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=2, num_workers=2, persistent_workers=True,
                        worker_init_fn=ignore_stop_signals_in_worker)
    next(iter(loader))
    KEEP = (loader, loader._iterator)  # workers alive at interpreter exit
    print("done", flush=True)
""")


def test_process_exits_with_persistent_sigterm_immune_workers_alive():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"


def test_the_engine_shuts_its_workers_down_at_the_end_of_a_run(tmp_path):
    import multiprocessing

    import engine_golden
    from mrisr.train import train_model

    cfg = engine_golden.CASES["edsr"]
    cfg = {**cfg, "train": {**cfg["train"], "num_workers": 2}}  # training and (persistent) validation workers
    train_model(cfg, *engine_golden.stores_for("edsr", tmp_path), tmp_path / "out", 0, "cpu")
    assert not [p for p in multiprocessing.active_children() if p.daemon]
