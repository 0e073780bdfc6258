"""export-c of chain models two ways: the chain exporter (rnnfast/exporters/c.py, scalar C per model) against the
whole-graph exporter (rnnfast/exporters/c_graph.py: the graph description + the library's runtime), same flags.

    python bench/export_c_chain_vs_graph.py [--flags "-O2 -mavx2 -mfma -mf16c"] [--rounds 7] [--calls 300] [--seq 20]

For each chain fixture of tests/data (PyTorch, Keras, ONNX; LSTM/GRU/RNN, bidirectional, embeddings, quantized) it
exports both, compiles both with gcc -std=c99 and the flags, and prints a markdown table: object sizes (`size`,
text + data: the chain's one object; the graph's model object + the runtime objects it links), the median time of
one `<prefix>_step` (graph: the chain's one-step graph, graph/chain.py, its states as state loops) and of one
`<prefix>_run` over --seq steps (graph: the sequence graph with seq_len fixed at export), measured inside C with
clock_gettime around each call, in interleaved rounds (every case's four timings per round; median of the rounds).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import rnnfast  # noqa: E402
from c_graph_driver import compile_runtime, link_driver, write_inputs  # noqa: E402
from export_c_graph import sizes  # noqa: E402
from rnnfast.exporters.c import export_c  # noqa: E402
from rnnfast.exporters.c_graph import export_c_graph  # noqa: E402
from rnnfast.graph.chain import ChainGraph  # noqa: E402
from rnnfast.pipeline import quantized_stages  # noqa: E402

DATA = ROOT / "tests" / "data"
CASES = [("torch lstm", "torch/lstm.pt", None), ("torch gru 2 layers", "torch/gru_2layer.pt", None),
         ("torch rnn relu 2 layers", "torch/rnn_relu_2layer.pt", None),
         ("torch lstm bidir", "torch/lstm_bidir_batch_first.pt", None),
         ("torch emb+lstm+fc", "torch/emb_lstm_fc.pt", None),
         ("keras stacked lstm", "keras/k3_seed_stacked_lstm.keras", None),
         ("keras gru reset_after", "keras/k3_gru_reset_after_True.keras", None),
         ("keras bidirectional", "keras/k3_seed_bidirectional.keras", None),
         ("keras emb masked", "keras/k3_seed_masked_middle.keras", None),
         ("onnx bilstm+head", "onnx/bilstm_head.ts.onnx", None),
         ("onnx rnn relu stacked", "onnx/rnn_relu_stacked.ts.onnx", None),
         ("torch lstm int8", "torch/lstm.pt", "int8"), ("torch lstm fp16", "torch/lstm.pt", "fp16"),
         ("keras stacked lstm int8", "keras/k3_seed_stacked_lstm.keras", "int8")]

CHAIN_DRIVER = r"""
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "m.h"
#define T SEQ
static m_state s;
static XTYPE x[T * M_INPUT_SIZE];
static float y[T * M_OUTPUT_SIZE];
static float scratch[M_RUN_SCRATCH(T) + 1];
static double ns[100000];
static int cmp(const void *a, const void *b)
{
    const double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}
int main(int argc, char **argv)
{
    struct timespec t0, t1;
    int c, k, n = atoi(argv[2]), step = argv[1][0] == 's';
    FILE *f = fopen(argv[3], "rb");
    if (!f || fread(x, sizeof x[0], T * M_INPUT_SIZE, f) != (size_t)(T * M_INPUT_SIZE)) return 2;
    fclose(f);
    m_init(&s);
    for (c = 0; c < n; c++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (step) {
#if M_HAS_STEP
            if (m_step(&s, x + (size_t)(c % T) * M_INPUT_SIZE, y)) return 1;
#else
            return 3;
#endif
        } else if (m_run(&s, x, T, y, scratch)) return 1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns[c] = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    }
    qsort(ns, (size_t)n, sizeof ns[0], cmp);
    for (k = 0; k < 1; k++) printf("%.0f %g\n", ns[n / 2], (double)y[0]);
    return 0;
}
"""


def size_of(objs) -> int:
    """text + data bytes of the objects (export_c_graph.py's measure)."""
    return sum(sizes(objs))


def load_options(path: Path) -> dict:
    """The options a PyTorch fixture is loaded with (recorded beside it, tools/make_torch_fixtures.py)."""
    import json

    rec = path.with_suffix(".npz")
    if path.suffix not in (".pt", ".pth") or not rec.exists():
        return {}
    with np.load(rec, allow_pickle=False) as z:
        return json.loads(str(z["load_options"])) if "load_options" in z else {}


def graph_model(compiled):
    """What export_c_graph takes for a bare CompiledGraph (compiled_graph_of reads model.graph.compiled)."""
    return SimpleNamespace(graph=SimpleNamespace(compiled=compiled), source="bench")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flags", default="-O2 -mavx2 -mfma -mf16c")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--seq", type=int, default=20)
    a = ap.parse_args()
    flags = a.flags.split()
    isa = tuple(f for f in flags if f.startswith("-m"))
    work = Path(tempfile.mkdtemp(prefix="chain_vs_graph_"))
    rng = np.random.default_rng(0)
    rows, runtime, rt_size = [], None, 0
    for label, rel, quant in CASES:
        model = rnnfast.load(str(DATA / rel), **load_options(DATA / rel))
        p = model.to_pipeline()
        if quant:
            p = replace(p, stages=quantized_stages(p.stages, quant))
        d = work / label.replace(" ", "_").replace("+", "_")
        chain_dir, graph_dir = d / "chain", d / "graph"
        ce = export_c(p, chain_dir, prefix="m")
        T = a.seq
        if p.takes_ids:
            vocab = p.stages[0].table.shape[0]
            x = rng.integers(1, vocab, T).astype(np.int32)
        else:
            x = (rng.standard_normal((T, p.input_size)) * 0.5).astype(np.float32)
        x.tofile(chain_dir / "x.bin")
        drv = chain_dir / "driver.c"
        drv.write_text(CHAIN_DRIVER.replace("SEQ", str(T)).replace("XTYPE", "int32_t" if p.takes_ids else "float"))
        cobj = chain_dir / "m.o"
        subprocess.run(["gcc", "-std=c99", *flags, "-c", ce.source, "-o", str(cobj)], check=True)
        cexe = chain_dir / "driver"
        subprocess.run(["gcc", "-std=c99", *flags, f"-I{chain_dir}", str(drv), str(cobj), "-lm", "-o", str(cexe)],
                       check=True)
        chain = ChainGraph.of(p)
        seq = chain.variant()
        xg = x.astype(np.int64) if p.takes_ids else x
        dims = {"batch": 1, "seq_len": T}
        ge = export_c_graph(graph_model(seq), graph_dir / "run", prefix="m", dims=dims, where=label)
        if runtime is None:
            runtime = compile_runtime(ge, work, isa)
            rt_size = size_of(runtime)
        gexe_run = link_driver(ge, "m", graph_dir / "run", runtime, isa)
        write_inputs(graph_dir / "run", {"input": xg.reshape((1, T) + x.shape[1:]) if p.batch_first
                                         else xg.reshape((T, 1) + x.shape[1:])})
        gmodel_size = size_of([next((graph_dir / "run").glob("m*.o"))])
        gexe_step, gstep_size = None, None
        if ce.has_step:
            step = chain.variant(step=True)
            se = export_c_graph(graph_model(step), graph_dir / "step", prefix="m", dims={"batch": 1}, where=label)
            gexe_step = link_driver(se, "m", graph_dir / "step", runtime, isa)
            write_inputs(graph_dir / "step", {"input": xg[:1]}, chunk=0)
            gstep_size = size_of([next((graph_dir / "step").glob("m*.o"))])
        rows.append(dict(label=label, chain_size=size_of([cobj]), graph_size=gmodel_size, step_size=gstep_size,
                         cexe=cexe, cx=chain_dir / "x.bin", grun=(gexe_run, graph_dir / "run"),
                         gstep=(gexe_step, graph_dir / "step"), has_step=ce.has_step,
                         t=dict(cs=[], gs=[], cr=[], gr=[])))
        print(f"exported {label}", file=sys.stderr, flush=True)

    def timed(cmd):
        return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[0])

    for _ in range(a.rounds):
        for r in rows:
            if r["has_step"]:
                r["t"]["cs"].append(timed([str(r["cexe"]), "step", str(a.calls), str(r["cx"])]))
                r["t"]["gs"].append(timed([str(r["gstep"][0]), str(r["gstep"][1]), "time", str(a.calls)]))
            r["t"]["cr"].append(timed([str(r["cexe"]), "run", str(a.calls), str(r["cx"])]))
            r["t"]["gr"].append(timed([str(r["grun"][0]), str(r["grun"][1]), "timerun", str(a.calls)]))
    us = lambda v: f"{statistics.median(v) / 1e3:.2f}" if v else "-"
    print(f"flags {a.flags}; runtime objects (linked by every graph export): {rt_size:,} B; "
          f"{a.rounds} interleaved rounds x {a.calls} calls, median; run = {a.seq} steps, batch 1\n")
    print("| model | chain object | graph model object (run / step variant) | chain step us | graph step us "
          "| chain run us | graph run us |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["t"]
        step_size = f" / {r['step_size']:,}" if r["step_size"] else ""
        print(f"| {r['label']} | {r['chain_size']:,} | {r['graph_size']:,}{step_size} | {us(t['cs'])} | "
              f"{us(t['gs'])} | {us(t['cr'])} | {us(t['gr'])} |")


if __name__ == "__main__":
    main()
