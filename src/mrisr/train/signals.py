"""SIGTERM/SIGUSR1 (Slurm pre-emption, Snakemake cancel) → a flag the engine polls.

The handler only sets a flag: saving a checkpoint from inside a signal handler could interrupt
a half-finished optimizer step. The engine checks the flag between steps, saves ckpt/last.pt,
shuts its DataLoader workers down and exits with status 143 (128 + SIGTERM).
"""

from __future__ import annotations

import atexit
import multiprocessing
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_STATUS = 143


class StopRequest:
    """Context manager installing the handlers; restores the previous ones on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum

    def __enter__(self) -> "StopRequest":
        # Handlers can only be installed from the main thread; elsewhere (e.g. a notebook
        # worker thread) training simply is not interruptible this way.
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def ignore_stop_signals_in_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: leave SIGTERM/SIGUSR1 to the main process. Slurm and Snakemake
    signal the whole process group; a worker killed by it would make the main process fail with
    "DataLoader worker killed" before it can checkpoint. The engine shuts its workers down."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _kill_daemonic_children() -> None:
    """The safety net at interpreter exit: SIGKILL daemonic multiprocessing children still alive
    (e.g. workers of a loader used outside the engine). multiprocessing's own exit handler
    SIGTERMs and joins them, which would wait forever for workers that ignore SIGTERM.
    Registered after that handler, so it runs first (atexit is last-in, first-out). SIGCHLD goes
    back to its default first: torch's loader handler raises when a worker dies, which would abort
    this callback after the first kill and leave the other workers to that endless join."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    children = [child for child in multiprocessing.active_children() if child.daemon]
    for child in children:
        child.kill()
    for child in children:
        child.join(timeout=5)


atexit.register(_kill_daemonic_children)
