"""Code size and per-step time of C code export (rnnfast/exporters/c.py) beside the Python path (Stream.step).

    python bench/export_c.py [--input 64] [--hidden 128] [--cell lstm] [--quantize int8|fp16] [--cflags "-O2"]

Exports a random one-layer model, compiles it with gcc (C99, the given flags), reports `size` of the object
(text + data: weights are const, so they land in text) and the median time of one `<prefix>_step` over many
steps, then the median time of rnnfast's Stream.step for the same model (engine in C, called from Python).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rnnfast.exporters.c import export_c  # noqa: E402
from rnnfast.layers import RecurrentLayer  # noqa: E402
from rnnfast.pipeline import Pipeline, RecurrentStage  # noqa: E402
from rnnfast.stream import Stream  # noqa: E402

BENCH_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
#include "m.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(void)
{
    static m_state s;
    static float x[M_INPUT_SIZE], y[M_OUTPUT_SIZE];
    double best[9];
    for (int i = 0; i < M_INPUT_SIZE; i++) x[i] = (float)((i * 7919) % 101) / 101.0f - 0.5f;
    m_init(&s);
    for (int r = 0; r < 9; r++) {
        const int n = STEPS;
        double t0 = now();
        for (int k = 0; k < n; k++) m_step(&s, x, y);
        best[r] = (now() - t0) / n;
    }
    for (int i = 1; i < 9; i++)  /* insertion sort for the median */
        for (int j = i; j > 0 && best[j] < best[j - 1]; j--) { double t = best[j]; best[j] = best[j - 1]; best[j - 1] = t; }
    printf("%.3f %g\n", best[4] * 1e6, (double)y[0]);
    return 0;
}
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--quantize", default=None, choices=["int8", "fp16"])
    ap.add_argument("--cflags", default="-O2")
    ap.add_argument("--steps", type=int, default=2000)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    G, H, I = {"rnn": 1, "gru": 3, "lstm": 4}[a.cell], a.hidden, a.input
    u = lambda *shape: rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), shape).astype(np.float32)
    layer = RecurrentLayer(a.cell, "forward", H, I, u(1, G * H, I), u(1, G * H, H), u(1, G * H), u(1, G * H))
    p = Pipeline([RecurrentStage([layer])])
    with tempfile.TemporaryDirectory() as d:
        out = export_c(p, d, prefix="m", quantize=a.quantize)
        obj = os.path.join(d, "m.o")
        flags = a.cflags.split()
        subprocess.run(["gcc", "-std=c99", *flags, "-c", out.source, "-o", obj], check=True)
        fields = subprocess.run(["size", obj], capture_output=True, text=True, check=True).stdout.split("\n")[1].split()
        text, data, bss = (int(v) for v in fields[:3])
        with open(os.path.join(d, "bench.c"), "w") as f:
            f.write(BENCH_C.replace("STEPS", str(a.steps)))
        exe = os.path.join(d, "bench")
        subprocess.run(["gcc", "-std=c99", *flags, "-I", d, "-o", exe, os.path.join(d, "bench.c"), out.source, "-lm"],
                       check=True)
        c_us = float(subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()[0])
    stream = Stream([layer], batch=1, n_threads=1)
    x = rng.standard_normal(I).astype(np.float32)
    times = timeit.repeat(lambda: stream.step(x), number=a.steps, repeat=9, timer=time.process_time)
    py_us = sorted(times)[4] / a.steps * 1e6
    label = f"{a.cell.upper()} {I}->{H}" + (f" {a.quantize}" if a.quantize else "")
    print(f"{label}: object {text + data} bytes (text {text}, data {data}, bss {bss}); "
          f"generated C step {c_us:.2f} us ({a.cflags}); rnnfast Stream.step {py_us:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
