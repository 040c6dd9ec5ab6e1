"""The Snakemake scheduler patch keeps one pending re-evaluation timer (src/mrisr/scheduler_timers.py)."""
import threading
import time

from snakemake.scheduling.job_scheduler import JobScheduler

from mrisr.scheduler_timers import _reevaluate_once, limit_reevaluation_timers


class _Loop:
    """The two attributes of JobScheduler the re-evaluation touches."""

    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)


def _wakeups(sem: threading.Semaphore) -> int:
    n = 0
    while sem.acquire(blocking=False):
        n += 1
    return n


def test_many_passes_arm_one_daemon_timer_that_wakes_the_loop_once():
    loop = _Loop()
    before = threading.active_count()
    for _ in range(50):  # 50 scheduling passes within one timespan
        _reevaluate_once(loop, 0.2)
    assert threading.active_count() - before == 1
    assert loop._mrisr_reevaluation.daemon  # never delays the exit of Snakemake
    time.sleep(0.5)
    assert _wakeups(loop._open_jobs) == 1  # stock Snakemake: 50 wake-ups, each re-arming a timer
    _reevaluate_once(loop, 0.05)  # once it fired, the next pass arms a new one
    time.sleep(0.3)
    assert _wakeups(loop._open_jobs) == 1


def test_the_patch_replaces_snakemakes_method():
    original = JobScheduler._schedule_reevalutation
    try:
        assert limit_reevaluation_timers()
        assert JobScheduler._schedule_reevalutation is _reevaluate_once
    finally:
        JobScheduler._schedule_reevalutation = original
