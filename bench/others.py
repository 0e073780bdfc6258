"""How much of the machine other processes used while a case was timed: the machine is shared, and a 2-thread
engine whose second core is taken loses several times over (spin barriers), far beyond the ±20 % noise that
interleaving evens out. The report re-measures a disturbed case and prints the share it ended with."""
from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> int:
    """Busy jiffies of all CPUs: user, nice, system, irq, softirq and steal (another VM on our cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def _own(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
        except FileNotFoundError:
            pass
    return total


class OthersMeter:
    """start() ... share() -> the fraction of all CPUs busy with processes other than `pids` (0 on systems
    without /proc, where nothing can be told)."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.available = os.path.exists("/proc/stat")

    def start(self) -> None:
        if self.available:
            import time

            self.t0, self.busy0, self.own0 = time.monotonic(), _machine_busy(), _own(self.pids)

    def share(self) -> float:
        if not self.available:
            return 0.0
        import time

        elapsed = time.monotonic() - self.t0
        others = (_machine_busy() - self.busy0) - (_own(self.pids) - self.own0)
        return max(0.0, others / TICKS / (elapsed * os.cpu_count()))
