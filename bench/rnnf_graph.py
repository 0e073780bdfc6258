""".rnnf 2 files of the whole-model fixtures: size beside the ONNX source, load time (Python and the C library) and the
C library's streaming step beside onnxruntime's run on the VAD-like model's chunk.

    python bench/rnnf_graph.py [--rounds 11] [--steps 200]

Each fixture in tests/data/onnx/graph is converted with `rnnfast convert`. Load times are medians of repeated loads
(Python: rnnfast.load of the .rnnf and of the .onnx; C: rnnf_graph_load_file, in a program built from src_c with
-O3). The step comparison interleaves rounds: a block of C stream steps (rnnf_graph_stream_step, states carried in
C), then a block of onnxruntime runs of the same chunk with the state fed back from Python; the figure per side is
the median over rounds of each round's median. Not meant for a busy machine; the rounds show the spread.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import rnnfast  # noqa: E402
from rnnfast.cli import main as cli_main  # noqa: E402

GRAPH = os.path.join(ROOT, "tests", "data", "onnx", "graph")
MODELS = ["vad.ts", "vad.dynamo", "denoiser.ts", "denoiser.dynamo", "crnn.ts", "crnn.dynamo", "stream_gru.ts",
          "stream_gru.dynamo"]

BENCH_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "rnnfast/rnnf.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* bench FILE LOADS CHUNK STEPS: median load seconds, then (with CHUNK > 0, a VAD's input [1, CHUNK] and sr 16000)
 * the median seconds of one stream step over STEPS steps. */
int main(int argc, char **argv)
{
    int loads = atoi(argv[2]), chunk = atoi(argv[3]), steps = atoi(argv[4]);
    double *t = malloc(sizeof(double) * (size_t)(loads > steps ? loads : steps));
    rnnf_graph *g = NULL;
    rnnf_error err;
    for (int i = 0; i < loads; i++) {
        double t0 = now();
        if (rnnf_graph_load_file(argv[1], &g, &err) != RNNF_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        t[i] = now() - t0;
        if (i < loads - 1) rnnf_graph_free(g);
    }
    qsort(t, (size_t)loads, sizeof *t, cmp);
    printf("load %.9f\n", t[loads / 2]);
    if (chunk > 0) {
        rnnf_graph_stream *s;
        if (rnnf_graph_stream_create(g, 1, &s, &err) != RNNF_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        float *x = malloc(sizeof(float) * (size_t)chunk), y[1];
        int64_t sr = 16000;
        for (int i = 0; i < chunk; i++) x[i] = (float)(0.1 * ((i * 7919) % 200 - 100) / 100.0);
        rnnf_tensor in[2] = {{RNNF_DT_F32, 2, {1, chunk}, x}, {RNNF_DT_I64, 0, {0}, &sr}}, out[1];
        out[0].data = y;
        if (rnnf_graph_stream_prepare(s, in, out, &err) != RNNF_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        for (int i = 0; i < 20; i++) rnnf_graph_stream_step(s, in, out, 1, &err);
        for (int i = 0; i < steps; i++) {
            double t0 = now();
            rnnf_graph_stream_step(s, in, out, 1, &err);
            t[i] = now() - t0;
        }
        qsort(t, (size_t)steps, sizeof *t, cmp);
        printf("step %.9f\n", t[steps / 2]);
        rnnf_graph_stream_free(s);
    }
    rnnf_graph_free(g);
    return 0;
}
"""


def build(tmp):
    shutil.copytree(os.path.join(ROOT, "src_c"), os.path.join(tmp, "src_c"),
                    ignore=shutil.ignore_patterns("build", "*.a", "*.so"))
    shutil.copytree(os.path.join(ROOT, "include"), os.path.join(tmp, "include"))
    subprocess.run(["make", "-s", "-j2", "-C", os.path.join(tmp, "src_c"), "librnnfast.a", "CFLAGS=-O3"], check=True,
                   capture_output=True)
    src = os.path.join(tmp, "bench.c")
    with open(src, "w") as f:
        f.write(BENCH_C)
    exe = os.path.join(tmp, "bench")
    subprocess.run(["gcc", "-O2", "-std=c99", f"-I{tmp}/include", src, f"{tmp}/src_c/librnnfast.a", "-fopenmp", "-lm",
                    "-o", exe], check=True)
    return exe


def c_bench(exe, path, loads, chunk=0, steps=0) -> dict:
    out = subprocess.run([exe, path, str(loads), str(chunk), str(steps)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return {k: float(v) for k, v in (line.split() for line in out.stdout.splitlines())}


def median_time(fn, n) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        print(f"{'model':20s} {'onnx bytes':>11s} {'rnnf bytes':>11s} {'ratio':>6s} {'py load onnx':>13s} "
              f"{'py load rnnf':>13s} {'C load rnnf':>12s}")
        for name in MODELS:
            onnx = os.path.join(GRAPH, name + ".onnx")
            out = os.path.join(tmp, name + ".rnnf")
            with open(os.devnull, "w") as quiet:
                stdout, sys.stdout = sys.stdout, quiet
                try:
                    assert cli_main(["convert", onnx, out]) == 0, name
                finally:
                    sys.stdout = stdout
            a, b = os.path.getsize(onnx), os.path.getsize(out)
            py_onnx = median_time(lambda: rnnfast.load(onnx), 5)
            py_rnnf = median_time(lambda: rnnfast.load(out), 5)
            c_load = c_bench(exe, out, 21)["load"]
            print(f"{name:20s} {a:11d} {b:11d} {b / a:6.3f} {py_onnx * 1e3:10.2f} ms {py_rnnf * 1e3:10.2f} ms "
                  f"{c_load * 1e3:9.2f} ms")
        vad = os.path.join(tmp, "vad.ts.rnnf")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(os.path.join(GRAPH, "vad.ts.onnx"), opts, providers=["CPUExecutionProvider"])
        chunk = 512
        x = np.array([[0.1 * ((i * 7919) % 200 - 100) / 100.0 for i in range(chunk)]], np.float32)
        feeds = {"input": x, "state": np.zeros((2, 1, 64), np.float32), "sr": np.array(16000, np.int64)}

        def ort_step():
            feeds["state"] = session.run(None, feeds)[1]

        for _ in range(20):
            ort_step()
        c_rounds, ort_rounds = [], []
        for _ in range(args.rounds):
            c_rounds.append(c_bench(exe, vad, 1, chunk, args.steps)["step"])
            ort_rounds.append(median_time(ort_step, args.steps))
        c, o = statistics.median(c_rounds), statistics.median(ort_rounds)
        print(f"vad.ts chunk [1, {chunk}] at 16 kHz, one thread, {args.rounds} interleaved rounds of {args.steps} "
              f"steps: C library stream step {c * 1e6:.1f} us (rounds {min(c_rounds) * 1e6:.1f}-"
              f"{max(c_rounds) * 1e6:.1f}), onnxruntime run {o * 1e6:.1f} us ({min(ort_rounds) * 1e6:.1f}-"
              f"{max(ort_rounds) * 1e6:.1f}): onnxruntime / C = {o / c:.2f}")


if __name__ == "__main__":
    main()
