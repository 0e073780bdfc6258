"""Build of rnnfast._core: the C engine in src_c/ behind a Cython binding.

ISA-specific kernel files get their own flags (-mavx2 -mfma; -mavx512f ... where the compiler takes them) and are
reached only through the run-time dispatch table, so the package runs on any x86-64 CPU. On aarch64 the NEON table needs no flags (NEON is baseline). No -march=native, no -ffast-math.
OpenMP is used when the compiler supports it; RNNFAST_NO_OPENMP=1 turns it off.
"""
import glob
import os
import platform
import shutil
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

GRAPH_SOURCES = sorted(glob.glob("src_c/graph/*.c") + glob.glob("src_c/graph/ops/*.c"))
CORE_SOURCES = GRAPH_SOURCES + ["src_c/adapt.c", "src_c/api.c", "src_c/dispatch.c", "src_c/pool.c", "src_c/model.c", "src_c/recurrent.c",
                "src_c/threads.c", "src_c/lstm.c", "src_c/gru.c", "src_c/rnn.c", "src_c/rows_step.c",
                "src_c/rnnf_read.c", "src_c/rnnf_file.c", "src_c/rnnf_graph_file.c", "src_c/pipeline.c",
                "src_c/quant.c"]
# The reference kernels are the executable spec: no contraction of a*b+c into FMA.
EXACT_SOURCES = ["src_c/kernels/ref.c", "src_c/kernels/activations.c", "src_c/kernels/ref_q.c"]
MACHINE = platform.machine().lower()
# -ffp-contract=off: a kernel does the operations it spells out (an FMA where it calls one), so the AVX2 and AVX-512
# tables give the same bits (tests/test_isa_tables.py), and the same as the Makefile's -std=c99 build, where it is off.
NO_CONTRACT = ["-ffp-contract=off"]
AVX2_FLAGS = ["-mavx2", "-mfma"] + NO_CONTRACT
AVX512_FLAGS = ["-mavx512f", "-mavx512vl", "-mavx512dq", "-mavx512bw"] + AVX2_FLAGS
# Tables built only where the compiler takes their flags (an old gcc or clang without AVX-512): a probe program each.
PROBED = {"RNNF_HAVE_AVX512": "#include <immintrin.h>\n"
                              "__m512 probe(__m512 a, __m512 b) { return _mm512_andnot_ps(a, _mm512_fmadd_ps(a, b, b)); }\n"}
if MACHINE in ("x86_64", "amd64", "i686", "i386"):
    ISA_SOURCES = [("src_c/kernels/avx2.c", AVX2_FLAGS, "RNNF_HAVE_AVX2"),
                   ("src_c/kernels/avx2_q.c", AVX2_FLAGS + ["-mf16c"], "RNNF_HAVE_AVX2"),
                   ("src_c/kernels/avx512.c", AVX512_FLAGS, "RNNF_HAVE_AVX512"),
                   ("src_c/kernels/avx512_q.c", AVX512_FLAGS, "RNNF_HAVE_AVX512")]
elif MACHINE in ("aarch64", "arm64"):
    ISA_SOURCES = [("src_c/kernels/neon.c", [], "RNNF_HAVE_NEON")]
else:
    ISA_SOURCES = []
COMMON_FLAGS = ["-O3", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function"]
INCLUDE_DIRS = ["include", "src_c"]


def probe_failure(compiler, source, flags, link):
    """None when `source` compiles (and links, if `link`) with `flags`, else why not (the compiler's own messages go
    to stderr above it)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            if link:
                compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=flags)
            return None
        except Exception as e:  # noqa: BLE001 - any failure means not with these flags; the reason is printed
            return " ".join(str(e).split())[-300:] or type(e).__name__


class BuildExt(build_ext):
    def build_extension(self, ext):
        use_omp = os.environ.get("RNNFAST_NO_OPENMP", "") not in ("1", "true", "yes")
        omp_probe = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
        failure = probe_failure(self.compiler, omp_probe, ["-fopenmp"], link=True) if use_omp else None
        if failure:
            # sanitizer flags in CFLAGS reach the probe's compile but not its link (undefined __asan_* symbols):
            # they belong in CC (.ci/sanitize)
            sys.stderr.write(f"rnnfast: OpenMP off: the -fopenmp probe failed to compile or link ({failure}; "
                             f"the compiler's messages are above)\n"
                             f"rnnfast: (sanitizer flags must go through CC, not CFLAGS)\n")
            use_omp = False
        omp = ["-fopenmp"] if use_omp else []
        isa_sources = []
        for src, flags, macro in ISA_SOURCES:
            failure = probe_failure(self.compiler, PROBED[macro], flags, link=False) if macro in PROBED else None
            if failure:
                sys.stderr.write(f"rnnfast: {src} left out: the compiler does not take {' '.join(flags)} ({failure})\n")
            else:
                isa_sources.append((src, flags, macro))
        macros = [(m, "1") for m in dict.fromkeys(m for _, _, m in isa_sources)]
        objects = []
        units = [(src, flags) for src, flags, _ in isa_sources]
        units += [(src, ["-ffp-contract=off"]) for src in EXACT_SOURCES]
        total = len(units) + len(ext.sources)
        # the C core takes a minute or two to build: say where it is (pip shows it with -v)
        sys.stderr.write(f"rnnfast: building the C core: {total} files, the kernels first\n")
        for k, (src, flags) in enumerate(units, 1):
            sys.stderr.write(f"rnnfast: compiling {src} ({k}/{total})\n")
            objects += self.compiler.compile([src], output_dir=self.build_temp, include_dirs=INCLUDE_DIRS,
                                             macros=macros, extra_postargs=COMMON_FLAGS + flags)
        ext.extra_objects = objects
        # build_ext relinks (and recompiles) only when something in sources or depends is newer than the module:
        # without the kernel files and headers here, an edited avx2.c or internal.h left a stale module in place.
        ext.depends = list(ext.depends or []) + [s for s, _, _ in ISA_SOURCES] + EXACT_SOURCES + sorted(
            glob.glob("src_c/**/*.h", recursive=True) + glob.glob("include/**/*.h", recursive=True))
        ext.define_macros = list(ext.define_macros or []) + macros
        ext.extra_compile_args = COMMON_FLAGS + omp
        ext.extra_link_args = omp + ["-lm"]
        sys.stderr.write(f"rnnfast: OpenMP {'on' if use_omp else 'off'}; ISA kernels: "
                         f"{[s for s, _, _ in isa_sources] or 'none'}\n")
        sys.stderr.write(f"rnnfast: compiling the other {len(ext.sources)} files and linking\n")
        super().build_extension(ext)


class BuildPy(build_py):
    """The C runtime's sources also go into the package (rnnfast/_c_sources/): export-c of a whole graph copies them
    into its output, from an installed wheel as from a checkout."""

    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "rnnfast", "_c_sources")
        for pattern in ("src_c/**/*.c", "src_c/**/*.h", "include/**/*.h"):
            for src in glob.glob(pattern, recursive=True):
                target = os.path.join(dest, src)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(src, target)


# The binding makes its output arrays through numpy's C API: a call costs less than np.empty from Python.
extension = Extension("rnnfast._core", sources=["rnnfast/_core.pyx"] + CORE_SOURCES,
                      include_dirs=INCLUDE_DIRS + [numpy.get_include()],
                      define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])

setup(ext_modules=cythonize([extension], compiler_directives={"language_level": "3"}), cmdclass={"build_ext": BuildExt, "build_py": BuildPy})
