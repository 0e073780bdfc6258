"""`rnnfast verify FILE`: run a model and show how far rnnfast's outputs are from independent computations."""
from __future__ import annotations

import argparse

from .codes import EXIT_CODES_HELP
from .common import (add_model_arguments, feeds_text, inputs_info, load_model, non_negative_float, non_negative_int,
                     positive_int, random_inputs, read_inputs, report, run_random)
from .compare import (DEFAULT_TOLERANCE, TOLERANCE_HELP, errors, feeds_for, onnx_bytes, paired_outputs, run_onnx,
                      within)
from .progress import Progress, wanted


def add_parser(sub):
    p = sub.add_parser(
        "verify", help="compare a model's outputs with onnxruntime and the float64 reference",
        description="Run FILE with rnnfast and compare every output with (1) the same model computed with the "
                    "float64 numpy reference (rnnfast/reference.py) in place of the C engine for every recurrent "
                    "layer, and (2) onnxruntime on the ONNX model (the file itself, or the model's ONNX export "
                    "when this build has an exporter), with onnx.reference where onnxruntime refuses the model. "
                    "Prints the max abs and max relative error per output; --layers adds one line per recurrent "
                    "layer, comparing the engine with the reference on that layer's own inputs. Without --input, "
                    "the inputs are random (seeded; the seed and shapes are printed). Stateful Keras layers start "
                    "from zero state.",
        epilog=EXIT_CODES_HELP)
    add_model_arguments(p)
    p.add_argument("--input", "-i", metavar="X.npz|X.npy", help="inputs as for `rnnfast run` (default: random)")
    p.add_argument("--layers", action="store_true", help="also compare each recurrent layer with the reference")
    p.add_argument("--tolerance", type=non_negative_float, default=DEFAULT_TOLERANCE, metavar="TOL",
                   help=f"{TOLERANCE_HELP} (default {DEFAULT_TOLERANCE:g})")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random input (default 0)")
    p.add_argument("--seq-len", type=positive_int, default=8, metavar="T",
                   help="sequence length of the random input where the model leaves it open (default 8)")
    p.add_argument("--batch", type=positive_int, default=2, metavar="B", help="batch of the random input (default 2)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="threads for the recurrent layers")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show or hide which stage is running, on stderr (default: shown when stderr is a terminal; "
                        "the float64 reference is slow on long sequences)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def _reset(model):
    reset = getattr(model.graph, "reset_states", None)
    if reset is not None:
        reset()


def _layer_rows(model, calls, tol) -> list:
    from .anatomy import layers
    from .trace import reference_stack

    names = {id(row.recurrent): row.name for row in layers(model) if row.recurrent is not None}
    rows, seen = [], {}
    for call in calls:
        y, hs, cs = call.outputs
        ry, rhs, rcs = reference_stack(call.layers, call.x, **call.options)
        for k, layer in enumerate(call.layers):
            label = names.get(id(layer)) or layer.name or f"{layer.cell} layer"
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:  # the same layer run again (an If branch, a decoder step): number the runs
                label = f"{label} (run {seen[label]})"
            pairs = [("y_h", hs[k], rhs[k])] + ([("y_c", cs[k], rcs[k])] if cs[k] is not None else [])
            if k == len(call.layers) - 1 and y is not None:
                pairs.insert(0, ("y", y, ry))
            for what, got, want in pairs:
                err = errors(got, want)
                rows.append({"layer": label, "cell": layer.cell, "output": what, **err, "ok": within(err, tol)})
    return rows


def collect(args) -> dict:
    from .trace import recording

    model, kind = load_model(args, n_threads=args.threads)
    if args.input:
        feeds, source = read_inputs(args.input, model), f"from {args.input}"
    else:
        feeds = random_inputs(model, args.seq_len, args.batch, args.seed)
        source = f"random, seed {args.seed}"
    progress = Progress(3 + bool(args.layers), "verify", wanted(args.progress), unit="stages", min_interval=0)
    try:
        progress.update(0, "rnnfast")
        _reset(model)
        with recording() as calls:
            outs = run_random(model, feeds, not args.input)
        _reset(model)
        progress.update(1, "float64 reference")
        with recording(use_reference=True):
            ref_outs = model.run(feeds)
        _reset(model)
        progress.update(2, "onnxruntime")
        comparisons, notes = _compare(args, model, feeds, outs, ref_outs)
        if args.layers:
            progress.update(3, "layers against the reference")
        layers = _layer_rows(model, calls, args.tolerance) if args.layers else []
    finally:
        progress.close()
    ok = all(c["ok"] for c in comparisons + layers)
    return {"file": args.file, "format": kind, "input": source,
            "inputs": inputs_info(feeds),
            "tolerance": args.tolerance, "comparisons": comparisons, "layers": layers, "notes": notes,
            "ok": ok, "_feeds": feeds}


def _compare(args, model, feeds, outs, ref_outs):
    """Rows of (against, output, errors, ok) for the float64 reference and onnxruntime, and notes."""
    names = model.output_names
    comparisons = []
    for name, got, want in zip(names, outs, ref_outs):
        err = errors(got, want)
        comparisons.append({"against": "float64 reference", "output": name, **err})
    data, how = onnx_bytes(model, args.file)
    notes = []
    if data is None:
        notes.append(f"no onnxruntime comparison: {how}")
    else:
        onnx_outs, onnx_names, onnx_inputs, runtime, note = run_onnx(data, feeds, args.threads)
        if note:
            notes.append(note)
        used = feeds_for(onnx_inputs, feeds)
        if len(used) < len(feeds):
            # An export starts from zero state and reads only the main input: run rnnfast the same way.
            mine = {k: v for k, v in zip(feeds, used.values())} if not set(used) <= set(feeds) else used
            notes.append(f"{how} reads only {', '.join(onnx_inputs)}; compared with rnnfast run on "
                         f"{', '.join(mine)} alone")
            _reset(model)
            outs = model.run(mine)
            _reset(model)
        for name, got, want in paired_outputs(names, outs, onnx_names, onnx_outs):
            comparisons.append({"against": f"{runtime} ({how})", "output": name, **errors(got, want)})
    for c in comparisons:
        c["ok"] = within(c, args.tolerance)
    return comparisons, notes


def print_text(info: dict, feeds: dict):
    print(f"{info['file']} ({info['format']})")
    print(f"input ({info['input']}): {feeds_text(feeds)}")
    print(f"tolerance {info['tolerance']:g}: {TOLERANCE_HELP}")
    rows = [(c["against"], c["output"], c) for c in info["comparisons"]]
    if info["layers"]:
        rows += [(f"layer {r['layer']} ({r['cell']})", r["output"], r) for r in info["layers"]]
    w1 = max([len("compared with")] + [len(r[0]) for r in rows])
    w2 = max([len("output")] + [len(r[1]) for r in rows])
    print(f"{'compared with':<{w1}}  {'output':<{w2}}  {'max abs':>10}  {'max rel':>10}  result")
    for against, output, c in rows:
        print(f"{against:<{w1}}  {output:<{w2}}  {c['max_abs']:>10.3g}  {c['max_rel']:>10.3g}  "
              f"{'ok' if c['ok'] else 'OVER TOLERANCE'}")
    for note in info["notes"]:
        print(f"note: {note}")
    bad = [r for r in rows if not r[2]["ok"]]
    print("result: " + ("PASS, every comparison within tolerance" if not bad else
                        f"FAIL, {len(bad)} comparison(s) over tolerance {info['tolerance']:g}"))


def main(args) -> int:
    return report(args, collect(args), print_text)
