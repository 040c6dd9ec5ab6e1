"""A process whose DataLoader workers ignore SIGTERM (so Slurm's signal reaches only the main
process) must still exit when it ends with the loader's persistent workers alive."""

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
