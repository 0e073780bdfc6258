"""One line saying what a benchmark ran on: the CPU's model and vector extensions, the cores this process may use,
rnnfast's kernel table and Python: the reports' ratios only compare within one machine, and the project's machine
has changed under the tables before (a Zen 3 with AVX2, then a Xeon with AVX-512 that the peers use)."""
from __future__ import annotations

import os
import platform


def cpu_model_and_flags() -> tuple:
    """(the CPU's model name, its set of feature flags) from /proc/cpuinfo; ("?", set()) where it cannot be read."""
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def machine_line() -> str:
    model, flags = cpu_model_and_flags()
    isa = "+".join(x for x in ("avx2", "fma", "avx512f") if x in flags) or "no avx2"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        from rnnfast.config import config

        kernels = f", rnnfast kernels {config()['isa_selected']}"
    except Exception as e:  # the line is a note: a failing config must not stop the benchmark
        kernels = f", rnnfast kernels unknown ({type(e).__name__})"
    return (f"nproc {usable} (of {os.cpu_count()}), {model} ({isa}){kernels}, "
            f"{platform.python_implementation()} {platform.python_version()}")
