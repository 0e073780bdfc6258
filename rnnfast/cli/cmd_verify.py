"""`rnnfast verify FILE`: run a model and show how far rnnfast's outputs are from independent computations."""
from __future__ import annotations

import argparse
import importlib.util
import os

from .codes import EXIT_CODES_HELP
from .common import (CliError, add_model_arguments, detect_format, feeds_text, inputs_info, load_model,
                     non_negative_float, non_negative_int, positive_int, report)
from .compare import (DEFAULT_TOLERANCE, TOLERANCE_HELP, errors, feeds_for, onnx_bytes, paired_outputs, run_onnx,
                      with_zero_states, within)
from .inputs import add_input_arguments, input_plan, make_feeds, run_checked
from .oracles import (DEFAULT_ORACLES, FRAMEWORK_FORMATS, INSTALL, ORACLES, PYTHON_ENV, check_applicable,
                      check_installed, oracle_list, oracle_python, run_framework, wanted_oracles)
from .progress import Progress, wanted


def add_parser(sub):
    p = sub.add_parser(
        "verify", help="compare a model's outputs with the float64 reference, onnxruntime, or its own framework",
        description="Run FILE with rnnfast and compare every output with the oracles of --against: `reference`, "
                    "the same model computed with the float64 numpy reference (rnnfast/reference.py) in place of "
                    "the C engine for every recurrent layer (every format, a .rnnf 2 file included: it reads the "
                    "same file, so it checks the engine's float32 arithmetic, not whether the file holds the "
                    "weights of its source; a model that computes no recurrent layer has nothing for it to "
                    "compute, which verify says, and with --against reference or --layers is an error); "
                    "`onnxruntime`, on the ONNX model (the file itself, or "
                    "the model's ONNX export when this build has an exporter), with onnx.reference where "
                    "onnxruntime refuses the model; `torch` or `keras`, the file loaded and run by its own "
                    "framework in a separate Python process (--python), which catches a wrong reading of the file "
                    "(TorchScript, whole pickled modules and Keras models are independent checks; a state_dict "
                    "stores no architecture, so torch runs modules built from rnnfast's reading of the settings, "
                    "which checks the weights but not those settings). The framework is never imported by rnnfast "
                    "nor needed by it. Prints the max abs and max relative error of each output as `rnnfast run` "
                    "computes it; --layers adds one line per recurrent layer, comparing the engine with the "
                    "reference on that layer's own inputs. "
                    "Inputs not given by --inputs / --input / --value are random (seeded; the seed and shapes are "
                    "printed). Stateful Keras layers start from zero state.",
        epilog=EXIT_CODES_HELP)
    add_model_arguments(p)
    add_input_arguments(p)
    p.add_argument("--against", action="append", type=oracle_list, metavar="ORACLE[,ORACLE]",
                   help=f"what to compare with, repeatable or a comma list: {', '.join(ORACLES)} (default "
                        f"{','.join(DEFAULT_ORACLES)}). Asking for one that is not installed or does not read this "
                        f"file's format is an error naming what to install")
    p.add_argument("--python", metavar="PATH",
                   help=f"the Python interpreter that runs --against torch/keras (default {PYTHON_ENV}, else the "
                        f"one running rnnfast), e.g. a virtualenv's bin/python that has torch or keras")
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

    plan = input_plan(args)
    oracles, explicit = wanted_oracles(args.against)
    python = oracle_python(args) if any(n in FRAMEWORK_FORMATS for n in oracles) else None
    if explicit and "onnxruntime" in oracles and importlib.util.find_spec("onnxruntime") is None:
        raise CliError(f"--against onnxruntime: onnxruntime is not installed for this Python; install it "
                       f"({INSTALL['onnxruntime']})")
    kind = detect_format(args.file) if os.path.exists(args.file) else None
    for name in oracles:
        if kind is not None:
            check_applicable(name, kind, args.file)
        if name in FRAMEWORK_FORMATS:
            check_installed(name, python)
    model, kind = load_model(args, n_threads=args.threads)
    for name in oracles:  # a TensorFlow checkpoint's prefix is no file, so its kind is known only now
        check_applicable(name, kind, args.file)
    feeds, source, unsure = make_feeds(plan, model, args.seq_len, args.batch, args.seed)
    progress = Progress(1 + len(oracles) + bool(args.layers), "verify", wanted(args.progress), unit="stages",
                        min_interval=0)
    comparisons, notes, described = [], [f"dims guessed: {u}" for u in unsure], []
    try:
        progress.update(0, "rnnfast")
        _reset(model)
        outs = run_checked(model, feeds, unsure, source)  # as `rnnfast run` computes them: in one C call if it can
        calls = []
        if args.layers:  # each recurrent layer's engine run, watched (cli/trace.py)
            _reset(model)
            with recording() as calls:
                model.run(feeds)
            if not calls:
                raise CliError(f"--layers: the run of {args.file} computed no recurrent layer to compare")
        _reset(model)
        for k, name in enumerate(oracles):
            progress.update(1 + k, "float64 reference" if name == "reference" else name)
            rows, how = _ORACLE_RUNS[name](args, model, kind, feeds, outs, notes, explicit, python)
            comparisons += rows
            described.append({"oracle": name, **how})
            _reset(model)
        if args.layers:
            progress.update(1 + len(oracles), "layers against the reference")
        layers = _layer_rows(model, calls, args.tolerance) if args.layers else []
    finally:
        progress.close()
    for c in comparisons:
        c["ok"] = within(c, args.tolerance)
    ok = all(c["ok"] for c in comparisons + layers)
    return {"file": args.file, "format": kind, "input": source,
            "inputs": inputs_info(feeds), "oracles": described,
            "tolerance": args.tolerance, "comparisons": comparisons, "layers": layers, "notes": notes,
            "ok": ok, "_feeds": feeds}


def _against_reference(args, model, kind, feeds, outs, notes, explicit, python):
    from .trace import recording

    with recording(use_reference=True) as calls:
        ref_outs = model.run(feeds)
    if not calls:  # the same run as rnnfast's: a comparison would be rnnfast against itself
        why = f"the run of {args.file} computed no recurrent layer for the float64 reference to replace"
        if explicit:
            raise CliError(f"--against reference: {why}")
        return [], {"how": f"not run: {why}", "independent": False}
    rows = [{"against": "float64 reference", "output": name, **errors(got, want)}
            for name, got, want in zip(model.output_names, outs, ref_outs)]
    return rows, {"how": "rnnfast's own graph with every recurrent layer computed by the float64 numpy reference "
                         "(rnnfast/reference.py) instead of the C engine", "independent": False}


def _rerun_on(model, feeds, used: dict, who: str, notes: list, outs):
    """An oracle that reads fewer inputs than rnnfast was fed (an export starts from zero state, a module's forward
    takes only the main input): rnnfast runs again on those alone, so both compute the same thing."""
    if len(used) >= len(feeds):
        return outs
    mine = {k: v for k, v in zip(feeds, used.values())} if not set(used) <= set(feeds) else used
    notes.append(f"{who} reads only {', '.join(used)}; compared with rnnfast run on {', '.join(mine)} alone")
    _reset(model)
    outs = model.run(mine)
    _reset(model)
    return outs


def _against_onnxruntime(args, model, kind, feeds, outs, notes, explicit, python):
    data, how = onnx_bytes(model, args.file)
    if data is None:
        if explicit:
            raise CliError(f"--against onnxruntime: {args.file} has no ONNX form to run: {how}")
        notes.append(f"no onnxruntime comparison: {how}")
        return [], {"how": f"not run: {how}", "independent": False}
    feeds = with_zero_states(data, feeds)
    onnx_outs, onnx_names, onnx_inputs, runtime, note = run_onnx(data, feeds, args.threads)
    if note:
        notes.append(note)
    used = feeds_for(onnx_inputs, feeds)
    outs = _rerun_on(model, feeds, used, how, notes, outs)
    rows = [{"against": f"{runtime} ({how})", "output": name, **errors(got, want)}
            for name, got, want in paired_outputs(model.output_names, outs, onnx_names, onnx_outs)]
    return rows, {"how": f"{runtime} on {how}", "independent": how == "the file"}


def _against_framework(args, model, kind, feeds, outs, notes, explicit, python):
    name = "torch" if kind in FRAMEWORK_FORMATS["torch"] else "keras"
    result = run_framework(name, args, model, kind, feeds, python)
    outs = _rerun_on(model, feeds, {k: feeds[k] for k in result["used"]}, name, notes, outs)
    theirs = result["outputs"]
    if len(theirs) != len(outs):
        notes.append(f"{name} returned {len(theirs)} output(s), rnnfast {len(outs)}; compared in order, the first "
                     f"{min(len(theirs), len(outs))}")
    rows = [{"against": name, "output": out_name, **errors(got, want)}
            for out_name, got, want in zip(model.output_names, outs, theirs)]
    scope = ("independent of rnnfast's reading of the file" if result["independent"] else
             "checks the weights' numerics only: the modules were built from rnnfast's reading of the settings "
             "(batch_first, nonlinearity...), which a state_dict does not store")
    return rows, {"how": f"{result['how']} ({scope}), run by {python}", "independent": result["independent"]}


_ORACLE_RUNS = {"reference": _against_reference, "onnxruntime": _against_onnxruntime, "torch": _against_framework,
                "keras": _against_framework}


def print_text(info: dict, feeds: dict):
    print(f"{info['file']} ({info['format']})")
    print(f"input ({info['input']}): {feeds_text(feeds)}")
    for o in info["oracles"]:
        print(f"oracle {o['oracle']}: {o['how']}")
    print(f"tolerance {info['tolerance']:g}: {TOLERANCE_HELP}")
    rows = [(c["against"], c["output"], c) for c in info["comparisons"]]
    if info["layers"]:
        rows += [(f"layer {r['layer']} ({r['cell']})", r["output"], r) for r in info["layers"]]
    w1 = max([len("compared with")] + [len(r[0]) for r in rows])
    w2 = max([len("output")] + [len(r[1]) for r in rows])
    print(f"{'compared with':<{w1}}  {'output':<{w2}}  {'max abs':>10}  {'max rel':>10}  result")
    for against, output, c in rows:
        shapes = f" (shape {c['shape']}, expected {c['expected_shape']})" if "shape" in c else ""
        print(f"{against:<{w1}}  {output:<{w2}}  {c['max_abs']:>10.3g}  {c['max_rel']:>10.3g}  "
              f"{'ok' if c['ok'] else 'OVER TOLERANCE'}{shapes}")
    for note in info["notes"]:
        print(f"note: {note}")
    bad = [r for r in rows if not r[2]["ok"]]
    print("result: " + ("PASS, every comparison within tolerance" if not bad else
                        f"FAIL, {len(bad)} comparison(s) over tolerance {info['tolerance']:g}"))


def main(args) -> int:
    return report(args, collect(args), print_text)
