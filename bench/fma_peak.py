"""The FMA peak of this machine's cores, measured: what report.py's "% of peak" divides by.

PERFORMANCE.md gives 200 GFLOP/s for the 2 cores of a Zen 3 with AVX2; the project machine later became a Xeon
with AVX-512 whose 2 cores reach about 420, so a fixed constant read twice too high there. A small C program
(compiled here with gcc, the vector width of the CPU's widest FMA: zmm with AVX-512F, else ymm with AVX2+FMA) runs
12 independent FMA chains (enough to cover the FMA latency on both ports) on one thread; the best of a few runs
times the usable cores is the peak, as PERFORMANCE.md counts it. Measured with every core at once instead, a
shared machine gives whatever the other processes leave (2 threads beside other work: 210-240 GFLOP/s where one
thread alone makes 214), which is not a property of the cores.

    python bench/fma_peak.py          # prints one core's GFLOP/s and the peak of the usable cores
"""
from __future__ import annotations

import os
import subprocess
import tempfile

from machine import cpu_model_and_flags

ZEN3_2CORE_PEAK = 200e9  # PERFORMANCE.md's figure, used where the measurement cannot run (no gcc, no AVX2)

_SOURCE = r"""
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float SUM(__m256 v) { float t[8]; _mm256_storeu_ps(t, v); float s = 0; for (int i = 0; i < 8; i++) s += t[i]; return s; }
#endif
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* One thread's FMA rate by its own CPU time: time the scheduler gave to other processes is not counted. */
int main(int argc, char **argv)
{
    const long iters = argc > 1 ? atol(argv[1]) : 100000000L;
    vec a[12], m = SET1(0.999999f), c = SET1(1e-7f);
    for (int j = 0; j < 12; j++) a[j] = SET1(1.0f + j);
    const double t0 = cpu_seconds();
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) a[j] = FMA(a[j], m, c);
    const double t = cpu_seconds() - t0;
    vec s = a[0];
    for (int j = 1; j < 12; j++) s = ADD(s, a[j]);
    printf("%.6e %g\n", 2.0 * LANES * 12 * (double)iters / t, (double)SUM(s));
    return 0;
}
"""


def measured_peak(cores: int | None = None, runs: int = 5) -> tuple[float, str]:
    """(FLOP/s of `cores` cores (default: every usable one) at one core's measured rate, how it was obtained). Falls
    back to PERFORMANCE.md's Zen 3 figure, saying so, where the program cannot be built or run."""
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    flags = cpu_model_and_flags()[1]
    if "avx512f" in flags:
        isa, march = "AVX-512 zmm", ["-mavx512f"]
    elif {"avx2", "fma"} <= flags:
        isa, march = "AVX2 ymm", ["-mavx2", "-mfma"]
    else:
        return ZEN3_2CORE_PEAK, "PERFORMANCE.md's Zen 3 figure (this CPU has no AVX2+FMA to measure with)"
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "fma.c"), os.path.join(d, "fma")
        with open(src, "w") as f:
            f.write(_SOURCE)
        try:
            subprocess.run(["gcc", "-O3", *march, src, "-o", exe], check=True, capture_output=True)
            best = max(float(subprocess.run([exe, "100000000"], check=True, capture_output=True,
                                            text=True).stdout.split()[0]) for _ in range(runs))
        except (OSError, subprocess.CalledProcessError) as e:
            return ZEN3_2CORE_PEAK, f"PERFORMANCE.md's Zen 3 figure (the measurement failed: {type(e).__name__})"
    return cores * best, (f"{cores} x one core's {best / 1e9:.0f} GFLOP/s measured on this machine ({isa} FMA "
                          f"chains, best of {runs}: bench/fma_peak.py)")


if __name__ == "__main__":
    peak, how = measured_peak()
    print(f"{peak / 1e9:.0f} GFLOP/s: {how}")
