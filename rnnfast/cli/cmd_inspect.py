"""`rnnfast inspect FILE`: what rnnfast made of a model file."""
from __future__ import annotations

import argparse

from .codes import EXIT_CODES_NO_CHECK_HELP, EXIT_OK
from .common import add_model_arguments, executor_info, executor_line, load_model, positive_int, to_json
from .inputs import random_inputs

FORMAT_NAMES = {"onnx": "ONNX", "keras-h5": "Keras HDF5", "keras-zip": "Keras .keras archive",
                "torch-zip": "PyTorch zip", "torch-legacy": "PyTorch legacy (pre-1.6)", "safetensors": "safetensors",
                "npz": "numpy .npz", "pickle": "pickled dict of numpy arrays", "rnnf": "rnnfast .rnnf",
                "rnnf-npz": "rnnfast graph in a numpy .npz", "rnnf-safetensors": "rnnfast graph in a safetensors file",
                "tf-checkpoint": "TensorFlow 1.x checkpoint (TensorBundle)"}


def add_parser(sub):
    p = sub.add_parser(
        "inspect", help="show a model's format, inputs, outputs, layers, gate orders and defaults",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load FILE and print: the format detected from its content; the inputs and outputs with "
                    "their shapes and types; the output shapes of an example run on random input; each layer with "
                    "its weight shapes as stored, parameter count and, for recurrent layers, the mapping from the "
                    "source framework's gate order to rnnfast's canonical (ONNX) order; the defaults the importer "
                    "applied for options the file does not store; and the importer's own description.",
        epilog=EXIT_CODES_NO_CHECK_HELP)
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--seq-len", type=positive_int, default=5, metavar="T",
                   help="sequence length of the example run, for axes the model leaves open (default 5)")
    p.add_argument("--batch", type=positive_int, default=2, metavar="B", help="batch of the example run (default 2)")
    return p


def collect(args) -> dict:
    from .anatomy import defaults, gate_mapping, layers, source_framework
    from .trace import recording

    model, kind = load_model(args)
    rows = layers(model)
    example = {"seq_len": args.seq_len, "batch": args.batch}
    shapes = {}
    try:
        feeds = random_inputs(model, args.seq_len, args.batch, seed=0)
        with recording() as calls:
            outs = model.run(feeds)
        example["inputs"] = {k: list(v.shape) for k, v in feeds.items()}
        example["outputs"] = {o.name: list(v.shape) for o, v in zip(model.outputs, outs)}
        for call in calls:
            for k, layer in enumerate(call.layers):
                y_h = call.outputs[1][k]
                # Engine layouts: x [seq_len, batch, input], y [seq_len, dirs, batch, out], y_h [dirs, batch, out]
                shapes[id(layer)] = {"x": list(call.x.shape) if k == 0 else None, "y_h": list(y_h.shape)}
            shapes[id(call.layers[-1])]["y"] = list(call.outputs[0].shape)
    except Exception as e:  # the example is extra information; the model may need inputs it cannot guess
        example["error"] = f"{type(e).__name__}: {e}"
    out_layers = []
    for row in rows:
        entry = {"name": row.name, "kind": row.kind, "parameters": row.parameters, "weights": row.weights,
                 "detail": row.detail}
        if row.recurrent is not None:
            r = row.recurrent
            entry.update(cell=r.cell, direction=r.direction, input_size=r.input_size, hidden_size=r.hidden_size,
                         proj_size=r.proj_size, gates=dict(gate_mapping(row.order, r.cell), framework=row.order))
            if id(r) in shapes:
                entry["example_shapes"] = {k: v for k, v in shapes[id(r)].items() if v is not None}
        out_layers.append(entry)
    return {
        "file": args.file,
        "format": kind,
        "format_name": FORMAT_NAMES.get(kind, kind),
        "framework": source_framework(model),
        "inputs": [{"name": i.name, "shape": list(i.shape), "type": i.type} for i in model.inputs],
        "outputs": [{"name": o.name, "shape": list(o.shape), "type": o.type} for o in model.outputs],
        "example": example,
        "layers": out_layers,
        "parameters": sum(row.parameters for row in rows),
        "defaults": [{"layer": l, "option": o, "value": v, "why": w} for l, o, v, w in defaults(model)],
        "description": model.describe(),
        **executor_info(model),
    }


def print_text(info: dict):
    print(f"{info['file']}: {info['format_name']} ({info['format']})")
    print(executor_line(info))
    for title in ("inputs", "outputs"):
        print(f"{title}:")
        for t in info[title]:
            shape = t["shape"] if t["shape"] else "(shape known after a run)"
            print(f"  {t['name']}  {t['type']}  {shape}")
    ex = info["example"]
    if "error" in ex:
        print(f"example run: not possible with random input ({ex['error']}); try --seq-len / --batch")
    else:
        print(f"example run (random input, seq_len {ex['seq_len']}, batch {ex['batch']}):")
        print("  in:  " + ", ".join(f"{k} {v}" for k, v in ex["inputs"].items()))
        print("  out: " + ", ".join(f"{k} {v}" for k, v in ex["outputs"].items()))
    print(f"layers ({len(info['layers'])}, {info['parameters']} parameters):")
    for row in info["layers"]:
        print(f"  {row['name']}  {row['kind']}  {row['parameters']} parameters  {row['detail']}")
        if row["weights"]:
            print("    weights: " + ", ".join(f"{k} {v}" for k, v in row["weights"].items()))
        if "gates" in row:
            g = row["gates"]
            print(f"    gates ({g['framework']} -> canonical): {','.join(g['source'])} -> {','.join(g['canonical'])}"
                  f" (canonical gate k is stored gate {g['permutation']}[k])")
        if "example_shapes" in row:
            shapes = ", ".join(f"{k} {v}" for k, v in row["example_shapes"].items())
            print(f"    example run, engine layout (x [T, B, I], y [T, D, B, P], y_h [D, B, P]): {shapes}")
    print("defaults applied:" + ("" if info["defaults"] else " none"))
    for d in info["defaults"]:
        print(f"  {d['layer']}.{d['option']} = {d['value']!r} ({d['why']})")
    print("description:")
    for line in info["description"].splitlines():
        print(f"  {line}")


def main(args) -> int:
    info = collect(args)
    if args.json:
        print(to_json(info))
    else:
        print_text(info)
    return EXIT_OK
