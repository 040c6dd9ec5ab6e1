"""One pending re-evaluation timer in Snakemake's job scheduler instead of one per loop pass.

Snakemake 9 (checked on 9.27.1) ends every pass of its scheduling loop with
``JobScheduler._schedule_reevalutation(timespan)`` whenever a job rate limiter is set -- and
the default ``--max-jobs-per-timespan 100/1s`` always sets one. That arms a fresh 1 s
``threading.Timer`` whose only effect is to wake the loop again, whose next pass arms another.
Every pass woken by something else (a finished job) starts one more such chain, so after N
finished jobs the idle scheduler wakes ~N times a second. Measured in a default run on 2 cores:
146 timer threads alive, 337,000 threads created, the Snakemake process at ~24% of a core while
it only waited for two training jobs.

One pending timer is all the rate limiter needs (it only asks "look again after the timespan");
it is a daemon so that it never delays exit. Imported only by the Snakefile (the Snakemake
process); a Snakemake without that method is left alone.
"""
from __future__ import annotations

import threading


def _reevaluate_once(self, delay: float) -> None:
    pending = getattr(self, "_mrisr_reevaluation", None)
    if pending is not None and pending.is_alive():
        return  # a wake-up is already due within the timespan
    timer = threading.Timer(delay, self._open_jobs.release)
    timer.daemon = True
    self._mrisr_reevaluation = timer
    timer.start()


def limit_reevaluation_timers() -> bool:
    """Patch Snakemake's scheduler (idempotent). Returns whether the patch applies."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    if not hasattr(JobScheduler, "_schedule_reevalutation"):
        return False
    JobScheduler._schedule_reevalutation = _reevaluate_once
    return True
