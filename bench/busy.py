"""Busy processes beside a benchmark, so contention can be measured on a quiet machine too (issue 15: a 2-thread
engine whose second core is taken by someone else can lose several times over). Shared by bench/report.py
--contention and bench/thread_choice.py --busy.

    with busy_processes(2) as pids:
        ...time things...

Each busy process is a separate interpreter spinning in pure Python (no fork of a process that already holds
onnxruntime's or OpenMP's threads). They end when the block ends, however it ends (an exception, Ctrl-C, SIGTERM
turned into SystemExit), and on Linux also when this process dies without cleaning up (PR_SET_PDEATHSIG), so a
killed benchmark never leaves spinners eating the shared machine."""
from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys

SPIN = "while True:\n    pass\n"
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Runs in the child before exec: the kernel sends it SIGKILL when the process that started it exits."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the finally below still ends them
        pass


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


@contextlib.contextmanager
def busy_processes(n: int):
    """Start n spinning processes; yield their pids; kill and reap them on leaving the block."""
    procs = []
    previous = signal.getsignal(signal.SIGTERM)
    if n > 0:
        # SIGTERM's default action ends the process without running finally blocks; as SystemExit it unwinds here.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL,
                                          preexec_fn=_die_with_parent))
        yield [p.pid for p in procs]
    finally:
        _stop(procs)
        if n > 0:
            signal.signal(signal.SIGTERM, previous)
