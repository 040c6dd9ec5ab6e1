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
