"""CPU and memory of this process from the standard library and /proc (no psutil)."""

from __future__ import annotations

import os
import resource
import time


class CpuMeter:
    """CPU use of the whole process (all threads) since the previous call, in percent of one core."""

    def __init__(self) -> None:
        self._cpu = self._cpu_s()
        self._wall = time.monotonic()

    @staticmethod
    def _cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def percent(self) -> float:
        cpu, wall = self._cpu_s(), time.monotonic()
        dt = wall - self._wall
        pct = 100.0 * (cpu - self._cpu) / dt if dt > 0 else 0.0
        self._cpu, self._wall = cpu, wall
        return round(pct, 1)


def memory_mb() -> float:
    """Resident set size; /proc on Linux, else the peak RSS from getrusage."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
