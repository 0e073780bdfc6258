"""`rnnfast convert IN OUT`: write a model in another format, then reload what was written and check it."""
from __future__ import annotations

import importlib
import importlib.util
import io
import os

import numpy as np

from ..graph.runtime import compiled_graph_of
from ..quantize import SCOPES
from .codes import EXIT_CODES_HELP, EXIT_MISMATCH, EXIT_OK
from .common import CliError, add_model_arguments, feeds_text, load_model, positive_int
from .compare import CHECK_TOLERANCE, check_written
from .inputs import random_inputs

# format -> (exporter module, function, what it takes, what the file holds). Formats whose exporter is not part
# of this build are left out of the parser.
WRITERS = {
    "onnx": ("rnnfast.exporters.onnx", "export_onnx", "model", "an ONNX model of standard operators"),
    "rnnf": ("rnnfast.exporters.rnnf_graph", "save_rnnf_graph", "graph",
             "rnnfast's native format (docs/format.md): the whole graph the C library runs (.rnnf 2)"),
    "npz": ("rnnfast.exporters.npz", "save_npz", "graph",
            "the same whole graph as numpy .npz: named arrays and the structure as JSON (docs/format.md)"),
    "safetensors": ("rnnfast.exporters.safetensors", "save_safetensors", "graph",
                    "the same whole graph as .safetensors: named tensors and the structure in __metadata__"),
}
RELOADABLE = ("onnx", "rnnf", "npz", "safetensors")  # formats rnnfast.load reads back as a whole model


def available() -> dict:
    return {k: v for k, v in WRITERS.items() if importlib.util.find_spec(v[0]) is not None}


def add_parser(sub):
    formats = available()
    if not formats:
        return None
    listing = "; ".join(f"{k}: {v[3]}" for k, v in formats.items())
    p = sub.add_parser(
        "convert", help=f"write a model as {', '.join(formats)}",
        description=f"Load IN and write it to OUT. Formats: {listing}. rnnf writes the whole graph (every input "
                    f"and output, by name) the C library runs; --rnnf-version 1 writes a chain of embedding, "
                    f"recurrent and dense layers instead (main output only), for readers from before version 2. npz "
                    f"and safetensors hold the same whole graph as named arrays with its structure as JSON. A model "
                    f"that does not run fully in C is refused, naming the node. A written "
                    f"{' or '.join(f for f in RELOADABLE if f in formats)} file is loaded back and run on random "
                    f"input beside the in-memory model (every output); the largest difference is printed and over "
                    f"{CHECK_TOLERANCE:g} the command exits 1.",
        epilog=EXIT_CODES_HELP)
    add_model_arguments(p, metavar="IN", file_help="the model to convert (any format rnnfast loads)")
    p.add_argument("out", metavar="OUT", help="file to write")
    p.add_argument("--format", choices=sorted(formats), help="output format (default: from OUT's extension)")
    p.add_argument("--seq-len", type=positive_int, default=None, metavar="N",
                   help="the check's random input: N for every dynamic axis but the batch (default: 5, 64 and 512 "
                        "are tried in turn; give the length for a model that takes only one)")
    p.add_argument("--batch", type=positive_int, default=2, metavar="N", help="the check's batch size (default 2)")
    if "rnnf" in formats:
        p.add_argument("--rnnf-version", type=int, choices=[1, 2], default=None,
                       help="rnnf: 2 (the default) stores the whole graph; 1 a chain of embedding, recurrent and "
                            "dense layers (main output only), for readers from before version 2")
        p.add_argument("--sequence-lens", action="store_true",
                       help="rnnf 2, npz, safetensors: with the run option sequence lengths (TF 1.x "
                            "sequence_length, PyTorch packed sequences) as an int32 [batch] graph input, so rows may "
                            "end early")
        p.add_argument("--quantize", choices=["int8", "fp16"], default=None,
                       help="rnnf, npz, safetensors: store the recurrent weights (w_ih, w_hh, w_hr) as int8 with "
                            "one float32 scale per output row, or as float16; computed in float32. The reload check "
                            "then compares with the quantized model, and the difference from the float32 model is "
                            "printed beside it, as are the file sizes with and without quantized weights")
        p.add_argument("--quantize-scope", choices=list(SCOPES), default="recurrent",
                       help="with --quantize: 'recurrent' (the default) quantizes the recurrent matrices only; 'all' "
                            "also the constant weights of MatMul, Gemm, Conv and ConvTranspose (one scale per output "
                            "channel; whole-graph formats only), as Model.quantize(scope=...)")
    if "onnx" in formats:
        from ..exporters.onnx import DEFAULT_OPSET, MIN_OPSET

        p.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET, metavar="N",
                       help=f"ONNX: the opset to write (at least {MIN_OPSET}; default {DEFAULT_OPSET})")
        p.add_argument("--assume-suffix-padding", action="store_true",
                       help="ONNX: the model masks token id 0 (Keras mask_zero); write its recurrent layers as the "
                            "ONNX RNN / GRU / LSTM operators with sequence_lens (one node per layer instead of the "
                            "exact step-by-step Scan written by default), promising that padding only ever ends a "
                            "row, so the mask becomes the count of non-zero ids. The reload check then uses ids "
                            "without padding.")
        p.add_argument("--outputs", metavar="A,B",
                       help="ONNX: keep only these outputs (by name; default every output of the model)")
    return p


def _format(args, formats) -> str:
    if args.format:
        return args.format
    ext = os.path.splitext(args.out)[1].lstrip(".").lower()
    if ext not in formats:
        raise CliError(f"{args.out}: cannot tell the format from the extension {ext or '(none)'!r}; give --format "
                       f"({', '.join(sorted(formats))})")
    return ext


def main(args) -> int:
    formats = available()
    fmt = _format(args, formats)
    if os.path.abspath(args.out) == os.path.abspath(args.file):
        raise CliError(f"{args.out}: the output would overwrite the input")
    quantize = getattr(args, "quantize", None)
    if quantize and formats[fmt][2] != "graph":
        raise CliError(f"--quantize {quantize}: only the whole-graph formats ("
                       f"{', '.join(k for k, v in formats.items() if v[2] == 'graph')}) store quantized weights (for C "
                       f"code: rnnfast export-c --quantize)")
    scope = getattr(args, "quantize_scope", "recurrent")
    if scope != "recurrent" and not quantize:
        raise CliError(f"--quantize-scope {scope}: give --quantize int8 or fp16 too")
    if scope != "recurrent" and getattr(args, "rnnf_version", None) == 1:
        raise CliError(f"--quantize-scope {scope}: .rnnf 1 stores only recurrent weights quantized; write .rnnf 2")
    if getattr(args, "rnnf_version", None) and fmt != "rnnf":
        raise CliError(f"--rnnf-version: only for the rnnf format, not {fmt}")
    if getattr(args, "outputs", None) and fmt != "onnx":
        raise CliError(f"--outputs: only for the onnx format, not {fmt}")
    model, _ = load_model(args)
    if getattr(args, "sequence_lens", False) and (formats[fmt][2] != "graph" or args.rnnf_version == 1):
        raise CliError("--sequence-lens: only for the whole-graph formats (.rnnf 2, npz, safetensors) and export-c")
    if fmt == "onnx":
        from .convert_onnx import write_onnx

        return write_onnx(args, model)
    if fmt == "rnnf" and args.rnnf_version == 1:  # the .rnnf 1 writer takes a chain
        return _write_rnnf1(args, model, quantize)
    compiled = getattr(model.graph, "compiled", None)
    if getattr(args, "sequence_lens", False):
        compiled = compiled_graph_of(model, args.file, ".rnnf 2" if fmt == "rnnf" else fmt, lengths=True)
    if compiled is None:
        why = getattr(model.graph, "unfit_reason", None) or "rnnfast has no whole-graph form of this kind of model yet"
        what = ".rnnf 2" if fmt == "rnnf" else f"{fmt}"
        hint = " (--rnnf-version 1 writes a chain of embedding, recurrent and dense layers, if the model is one)" \
            if fmt == "rnnf" else ""
        raise CliError(f"{args.file}: cannot write {what}, which holds graphs that run fully in C: {why}{hint}")
    return _write_graph(args, model, compiled, quantize, fmt, formats)


def _write_graph(args, model, compiled, quantize, fmt, formats) -> int:
    """The whole graph (.rnnf 2, or its .npz / .safetensors form); reloaded and run beside the source on every
    output."""
    import rnnfast
    from ..graph.quantized import quantize_desc
    from ..graph.runtime import CompiledGraph

    module, function = formats[fmt][:2]
    write = getattr(importlib.import_module(module), function)
    lengths, scope = bool(getattr(args, "sequence_lens", False)), getattr(args, "quantize_scope", "recurrent")
    try:
        write(model, args.out, quantize, lengths=lengths, scope=scope)
    except OSError as e:
        raise CliError(f"{args.out}: cannot write: {e.strerror or e}") from None
    print(f"wrote {args.out} ({'rnnf 2' if fmt == 'rnnf' else fmt}, {os.path.getsize(args.out)} bytes) from "
          f"{args.file}")
    if quantize:
        unquantized = io.BytesIO()
        write(model, unquantized, None, lengths=lengths)
        before, after = len(unquantized.getvalue()), os.path.getsize(args.out)
        print(f"file size: {before} bytes with the weights as the source holds them, {after} with {quantize} "
              f"({scope} scope): {after / max(before, 1):.1%}")
    written = rnnfast.load(args.out)
    # The graph's own interface: a stateful Keras model's graph also reads and writes its layers' states, which the
    # model holds between runs and the file pairs as state loops.
    inputs, outputs = compiled.input_names, compiled.output_names
    if written.input_names != inputs or written.output_names != outputs:
        print(f"check FAILED: {args.out} has inputs {written.input_names} and outputs {written.output_names}, the "
              f"source's graph {inputs} and {outputs}")
        return EXIT_MISMATCH
    reference = compiled
    if quantize:  # the same quantized layers, run from memory: the check is of the file, not of the quantization
        reference = CompiledGraph.from_desc(quantize_desc(compiled.desc, quantize, scope), compiled.graph)
    # a length the model takes (a conv front end needs more than a few samples)
    for seq_len in (5, 64, 512) if args.seq_len is None else (args.seq_len,):
        feeds = random_inputs(written, seq_len=seq_len, batch=args.batch, seed=0)
        try:
            want = reference.run([feeds[n] for n in inputs])
            break
        except ValueError:
            continue
    else:
        tried = "5, 64 or 512" if args.seq_len is None else args.seq_len
        raise CliError(f"{args.file}: no random input of length {tried} and batch {args.batch} runs "
                       f"({feeds_text(feeds)}); the file was written but not checked: give --seq-len and --batch "
                       f"for a shape the model takes")
    got = written.run(feeds)
    ok, worst = check_written(zip(outputs, got, want))
    if ok is None:
        print(f"check FAILED: {worst}")
        return EXIT_MISMATCH
    print(f"check {'ok' if ok else 'FAILED'}: reloaded {args.out} and ran it beside the source on random input "
          f"{', '.join(f'{k} {list(v.shape)}' for k, v in feeds.items())}, {len(want)} output(s) compared: max abs "
          f"difference {worst:.3g}")
    if quantize:
        float32 = compiled.run([feeds[n] for n in inputs])
        diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - b))) if np.size(a) else 0.0
                   for a, b in zip(got, float32))
        print(f"quantization ({quantize}): max abs difference from the float32 model on the same input {diff:.3g}")
    return EXIT_OK if ok else EXIT_MISMATCH


def _write_rnnf1(args, model, quantize) -> int:
    """.rnnf 1 (readers from before version 2): the model as a chain, its main output only; reloaded and run beside
    the chain."""
    import rnnfast
    from ..exporters.rnnf import save_rnnf
    from ..graph.chain import ChainGraph

    source = model.to_pipeline()
    pipeline = model.quantize(quantize).to_pipeline() if quantize else source
    try:
        save_rnnf(pipeline, args.out)
    except OSError as e:
        raise CliError(f"{args.out}: cannot write: {e.strerror or e}") from None
    print(f"wrote {args.out} (rnnf 1, {os.path.getsize(args.out)} bytes) from {args.file}")
    if quantize:
        unquantized = io.BytesIO()
        save_rnnf(source, unquantized)
        before, after = len(unquantized.getvalue()), os.path.getsize(args.out)
        print(f"file size: {before} bytes with float32 weights, {after} with {quantize} recurrent weights: "
              f"{after / max(before, 1):.1%}")
    written = rnnfast.load(args.out)
    feeds = random_inputs(written, seq_len=args.seq_len or 5, batch=args.batch, seed=0)
    got = written.run(feeds)[0]
    ok, diff = check_written([(written.output_names[0], got, ChainGraph.of(pipeline).run(feeds)[0])])
    if ok is None:
        print(f"check FAILED: {args.out}: {diff}")
        return EXIT_MISMATCH
    print(f"check {'ok' if ok else 'FAILED'}: reloaded {args.out} and ran it beside the source on random input "
          f"{', '.join(f'{k} {list(v.shape)}' for k, v in feeds.items())}: max abs difference {diff:.3g}")
    if quantize:
        float32 = np.asarray(ChainGraph.of(source).run(feeds)[0], np.float64)
        print(f"quantization ({quantize}): max abs difference from the float32 model on the same input "
              f"{float(np.max(np.abs(got - float32))) if got.size else 0.0:.3g}")
    return EXIT_OK if ok else EXIT_MISMATCH
