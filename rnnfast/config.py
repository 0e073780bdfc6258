"""show_config(): what this build of rnnfast was compiled with and what it will use on this machine."""
from __future__ import annotations

import os
import platform
import sys

THREADS_ENV = "RNNFAST_NUM_THREADS"


def env_threads_error():
    """A message when RNNFAST_NUM_THREADS is set to something other than an integer >= 1 (the C core then ignores
    it), else None."""
    value = os.environ.get(THREADS_ENV)
    if value is None or value == "":
        return None
    try:
        ok = 1 <= int(value) <= 4096
    except ValueError:
        ok = False
    return None if ok else f"{THREADS_ENV} must be an integer from 1 to 4096, got {value!r}"


def thread_setting(default: int) -> str:
    """The default thread count and where it comes from."""
    bad = env_threads_error()
    if os.environ.get(THREADS_ENV) and bad is None:
        return f"{default} ({THREADS_ENV})"
    why = f"{THREADS_ENV} ignored: {bad}; " if bad else ""
    if os.environ.get("OMP_NUM_THREADS"):
        return f"{default} ({why}OMP_NUM_THREADS)"
    return f"{default} ({why}one per available core)"


def threads_now(default: int, backed_off: int) -> str:
    if default <= 1:
        return "1"
    if backed_off:
        return f"1: backed off under contention (recurrent calls waited for a busy core; {backed_off} ms more)"
    return (f"up to {default}: each model measures whether its runs go faster with 1 or {default} threads and uses "
            f"the faster (Model.thread_choice(), Stream.thread_choice())")


def config() -> dict:
    from . import __version__, _core

    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "isa_compiled": _core.isa_compiled(),
        "isa_supported": _core.isa_supported(),
        "isa_selected": _core.isa_selected(),
        "openmp": _core.openmp_enabled(),
        "default_threads": thread_setting(_core.default_threads()),
        "threads_now": threads_now(_core.default_threads(), _core.threads_backed_off()),
    }


def show_config(file=None) -> None:
    """Print build flags, compiled / supported / selected instruction sets, OpenMP and thread count."""
    file = file or sys.stdout
    c = config()
    width = max(len(k) for k in c)
    for key, value in c.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}}  {value}", file=file)
