"""`rnnfast convert IN OUT.onnx`: write the whole model as standard-op ONNX (rnnfast/exporters/onnx.py), then run the
written file (in onnxruntime when it is installed, else through rnnfast.load) beside rnnfast's run of the source on
random input, output by output, before reporting success."""
from __future__ import annotations

import os

import numpy as np

from .codes import EXIT_MISMATCH, EXIT_OK
from .common import CliError
from .compare import OnnxRuntime, check_written
from .inputs import random_inputs

SEQ_LENS = (5, 64, 512)  # a length the model takes (a conv front end needs more than a few samples)


def write_onnx(args, model) -> int:
    from ..exporters.onnx import export_onnx

    keep = [n.strip() for n in args.outputs.split(",") if n.strip()] if getattr(args, "outputs", None) else None
    try:
        export_onnx(model, args.out, opset=args.opset, assume_suffix_padding=args.assume_suffix_padding,
                    outputs=keep)
    except OSError as e:
        raise CliError(f"{args.out}: cannot write: {e.strerror or e}") from None
    except ValueError as e:  # FormatError, a bad opset or output name
        text = str(e).replace("assume_suffix_padding=True", "--assume-suffix-padding")
        text = text.replace("outputs=[...]", "--outputs")
        raise CliError(text) from None
    print(f"wrote {args.out} (onnx opset {args.opset}, {os.path.getsize(args.out)} bytes) from {args.file}")
    compiled = getattr(model.graph, "compiled", None)
    # A stateful Keras model's graph also reads and writes its layers' states, which the model holds between runs
    # and the ONNX file takes and gives as inputs and outputs: the check runs the graph itself on random states.
    stateful = compiled is not None and compiled.input_names != model.input_names
    inputs, outputs = (compiled.input_names, compiled.output_names) if stateful else (model.input_names,
                                                                                      model.output_names)
    names = keep or outputs
    run_written, runner = _runner(args.out)
    if run_written is None:
        print(f"check FAILED: {args.out}: {runner}")
        return EXIT_MISMATCH
    if runner.input_names != inputs or runner.output_names != names:
        print(f"check FAILED: {args.out} has inputs {runner.input_names} and outputs {runner.output_names}; the "
              f"source has inputs {inputs} and outputs {names}")
        return EXIT_MISMATCH
    if stateful:
        import rnnfast

        written = rnnfast.load(args.out)  # random states of the shapes the written file declares
        print(f"the stateful layers' states are inputs {[n for n in inputs if n not in model.input_names]} and "
              f"outputs {[n for n in outputs if n not in model.output_names]}: feed each call's back to the next")
    lengths = SEQ_LENS if getattr(args, "seq_len", None) is None else (args.seq_len,)
    for seq_len in lengths:
        feeds = random_inputs(written if stateful else model, seq_len=seq_len,
                              batch=getattr(args, "batch", None) or 2, seed=0)
        if args.assume_suffix_padding:  # the promise holds for ids without any padding
            feeds = {k: np.where(v == 0, 1, v) if v.dtype.kind in "iu" else v for k, v in feeds.items()}
        try:
            ran = compiled.run([feeds[n] for n in inputs]) if stateful else model.run(feeds)
            want = dict(zip(outputs, ran))
            break
        except ValueError:
            continue
    else:
        raise CliError(f"{args.file}: no random input of length {', '.join(map(str, lengths))} runs; {args.out} "
                       f"was written but not checked (give --seq-len and --batch)")
    try:
        got = run_written(feeds)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types, one per kind of refusal
        why = " ".join(str(e).split())[:500] or type(e).__name__  # all of it: its last line can be a bare "fix it"
        print(f"check FAILED: {args.out} was written, but {runner.name} could not run it on random input "
              f"{_shapes(feeds)}: {why} (another --opset may suit this onnxruntime version)")
        return EXIT_MISMATCH
    ok, worst = check_written((name, g, want[name]) for name, g in zip(names, got))
    if ok is None:
        print(f"check FAILED: {worst}")
        return EXIT_MISMATCH
    print(f"check {'ok' if ok else 'FAILED'}: ran {args.out} in {runner.name} beside the source on random input "
          f"{_shapes(feeds)}, {len(names)} output(s) compared: max abs difference {worst:.3g}")
    return EXIT_OK if ok else EXIT_MISMATCH


def _shapes(feeds) -> str:
    return ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())


class _Names:
    def __init__(self, name, inputs, outputs):
        self.name, self.input_names, self.output_names = name, inputs, outputs


def _runner(path):
    """(run(feeds) -> outputs, its names): onnxruntime's session of the written file (compare.py's, as verify and
    bench use it), else rnnfast's load of it; (None, why) when onnxruntime refuses the file."""
    with open(path, "rb") as f:
        rt = OnnxRuntime(f.read())
    if rt.session is not None:
        return rt.run, _Names("onnxruntime", rt.input_names, rt.output_names)
    if rt.error != OnnxRuntime.NOT_INSTALLED:
        return None, rt.error
    import rnnfast

    model = rnnfast.load(path)
    return model.run, _Names("rnnfast (onnxruntime is not installed)", model.input_names, model.output_names)
