"""show_config(): what this build of rnnfast was compiled with and what it will use on this machine."""
from __future__ import annotations

import platform
import sys


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
        "default_threads": _core.default_threads(),
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
