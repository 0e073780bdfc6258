"""The C runtime a whole-graph export (c_graph.py) ships beside the model: the library's own executor, op and
kernel sources from src_c/, copied verbatim under rnnf_runtime/src/, and one small generated unit per source.

Each unit includes rnnf_target.h first and then its source, so the whole runtime builds with a plain
`gcc -std=c99 ... rnnf_runtime/*.c`: rnnf_target.h sets the POSIX level the sources need, compiles the heap out
(RNNF_NO_HEAP: every load-time block comes from the pool in the caller's state struct, pool.h) and picks the kernel
table from the compiler's target macros (AVX-512 F/VL/DQ/BW with AVX2 + FMA + F16C, AVX2 + FMA + F16C, or aarch64
NEON, else the portable reference), so there is no run-time dispatch and no writable global. The SIMD units compile to nothing on other targets.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import FormatError

# src_c/ sources the executor needs besides every graph/*.c and graph/ops/*.c (the chain API's pipeline.c, the .rnnf
# reader and the run-time dispatch are not part of an export), and the headers they include.
SOURCES = ["adapt.c", "api.c", "pool.c", "model.c", "recurrent.c", "threads.c", "lstm.c", "gru.c", "rnn.c", "rows_step.c",
           "quant.c", "kernels/ref.c", "kernels/activations.c", "kernels/ref_q.c"]
GRAPH_DIRS = ("graph", "graph/ops")
SIMD_SOURCES = {"kernels/avx2.c": "RNNF_HAVE_AVX2", "kernels/avx2_q.c": "RNNF_HAVE_AVX2",
                "kernels/avx512.c": "RNNF_HAVE_AVX512", "kernels/avx512_q.c": "RNNF_HAVE_AVX512",
                "kernels/neon.c": "RNNF_HAVE_NEON"}
HEADERS = ["internal.h", "pool.h", "kernels/kernels.h", "kernels/kernels_q.h", "kernels/approx.h"]

TARGET_H = """/* rnnf_target.h: this export's runtime settings, included before anything else by every unit. */
#ifndef RNNF_TARGET_H
#define RNNF_TARGET_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L
#endif
/* no malloc: every block comes from the pool inside the caller's state struct (pool.h) */
#define RNNF_NO_HEAP 1
/* the kernel table, from the compiler's target (-mavx2 -mfma -mf16c, -march=haswell; with -mavx512f -mavx512vl
 * -mavx512dq -mavx512bw or -march=skylake-avx512 the AVX-512 one, which needs AVX2's too; aarch64): no run-time choice */
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && !defined(RNNF_PORTABLE)
#define RNNF_HAVE_AVX2 1
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__AVX512BW__)
#define RNNF_HAVE_AVX512 1
#endif
#elif defined(__aarch64__) && defined(__ARM_NEON) && !defined(RNNF_PORTABLE)
#define RNNF_HAVE_NEON 1
#endif

#endif
"""

TARGET_C = """/* rnnf_target.c: the kernel table of this export, fixed when it is compiled (rnnf_target.h). */
#include "rnnf_target.h"
#include "kernels/kernels.h"

const rnnf_kernels *rnnf_kernels_get(void)
{
#if defined(RNNF_HAVE_AVX512)
    return &rnnf_kernels_avx512;
#elif defined(RNNF_HAVE_AVX2)
    return &rnnf_kernels_avx2;
#elif defined(RNNF_HAVE_NEON)
    return &rnnf_kernels_neon;
#else
    return &rnnf_kernels_ref;
#endif
}
"""


# The library's sources still have implicit int64/size_t/float narrowings (~260 -Wconversion, ~12 -Wdouble-promotion
# warnings, #20): silenced for them only, so a firmware build with those flags and -Werror compiles the runtime. The
# generated <prefix>.c meets both.
QUIET = ("#if defined(__GNUC__)\n#pragma GCC diagnostic ignored \"-Wconversion\"\n"
         "#pragma GCC diagnostic ignored \"-Wsign-conversion\"\n"
         "#pragma GCC diagnostic ignored \"-Wdouble-promotion\"\n#endif\n")


def library_root() -> Path:
    """Where src_c/ and include/ are: in the installed package (rnnfast/_c_sources/, put there by setup.py's build_py)
    or beside the package in a source checkout; refused when neither has them."""
    package = Path(__file__).resolve().parent.parent
    for root in (package / "_c_sources", package.parent):
        if (root / "src_c" / "graph" / "exec.c").is_file() and (root / "include" / "rnnfast" / "rnnf.h").is_file():
            return root
    raise FormatError(f"export-c of a whole graph copies the C runtime from rnnfast's sources, which this installation "
                      f"does not have (neither {package / '_c_sources'} nor src_c/ beside {package}); reinstall rnnfast "
                      f"(pip install .) or install it from a source checkout (pip install -e .)")


def unit_name(src: str) -> str:
    return "rnnf_" + src.replace("/", "_")


def write_runtime(out_dir: Path) -> list[Path]:
    """Write rnnf_runtime/ under out_dir; the generated compilation units (what a build compiles), in order."""
    root = library_root()
    graph = sorted(f"{d}/{p.name}" for d in GRAPH_DIRS for p in (root / "src_c" / d).glob("*.[ch]"))
    sources = SOURCES + [g for g in graph if g.endswith(".c")]
    rt = out_dir / "rnnf_runtime"
    (rt / "include" / "rnnfast").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / "include" / "rnnfast" / "rnnf.h", rt / "include" / "rnnfast" / "rnnf.h")
    for rel in sources + list(SIMD_SOURCES) + HEADERS + [g for g in graph if g.endswith(".h")]:
        dst = rt / "src" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "src_c" / rel, dst)
    (rt / "rnnf_target.h").write_text(TARGET_H)
    (rt / "rnnf_target.c").write_text(TARGET_C)
    units = [rt / "rnnf_target.c"]
    for rel in sources:
        path = rt / (unit_name(rel))
        path.write_text(f"/* {path.name}: rnnfast's src_c/{rel}, built with this export's settings. */\n"
                        f'#include "rnnf_target.h"\n{QUIET}#include "{rel}"\n')
        units.append(path)
    for rel, macro in SIMD_SOURCES.items():
        path = rt / (unit_name(rel))
        path.write_text(f"/* {path.name}: rnnfast's src_c/{rel}, built only when rnnf_target.h selects its table. */\n"
                        f'#include "rnnf_target.h"\n#ifdef {macro}\n{QUIET}#include "{rel}"\n#else\n'
                        f"typedef int {path.stem}_not_this_target; /* ISO C forbids an empty unit */\n#endif\n")
        units.append(path)
    return units


def include_dirs(out_dir: Path) -> list[Path]:
    """What a build passes with -I: the runtime's settings, its sources and the public header."""
    rt = out_dir / "rnnf_runtime"
    return [rt, rt / "src", rt / "include"]
