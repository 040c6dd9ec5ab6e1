"""How much host memory is free now: sizes in-memory patch stores and inference tiles."""

from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes of memory available to this process now (Linux MemAvailable; else free pages; 0 if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# 32 MiB: the largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2); below it, blocks come
# from the heap, and up to 256 MiB of freed heap top stays in the process (grown 64 MiB at a time).
MALLOC_SETTINGS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 256 << 20, _M_TOP_PAD: 64 << 20}


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks for reuse instead of handing them back to the kernel at once.

    By default glibc serves blocks above a (dynamic) threshold with mmap and unmaps them when freed,
    and trims the heap top beyond 128 KiB; a training or inference loop that frees and reallocates
    its tensors and arrays every step then pays a page fault for every page of them, every step:
    sys CPU time, not math (a `phase_vsr` ×4 training job: 576,000 page faults, 2.2 sys-s; with
    these settings 78,000 and 0.7). mrisr.cli applies it in the stages that run torch models only,
    where those per-step reallocations are.
    Skipped where the user set glibc's own knobs (MALLOC_* variables, GLIBC_TUNABLES malloc
    entries) and off glibc (macOS, musl). Returns whether the settings were applied.
    """
    import sys

    if sys.platform != "linux" or any(k.startswith("MALLOC_") for k in os.environ) \
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only (musl has mallopt but other knobs)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS.items())
