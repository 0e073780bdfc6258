"""InferenceSession: onnxruntime's calling convention over rnnfast, so an onnxruntime user of a recurrent
model can swap the import and keep the rest of the code."""
from __future__ import annotations

from . import load


class InferenceSession:
    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, n_threads=None,
                 **options):
        """`sess_options`, `providers` and `provider_options` are accepted so onnxruntime call sites work
        unchanged; rnnfast always runs on the CPU, and takes only `intra_op_num_threads` from sess_options
        (when n_threads is not given)."""
        if n_threads is None and sess_options is not None:
            n_threads = getattr(sess_options, "intra_op_num_threads", 0) or None
        self._model = load(path_or_bytes, n_threads=n_threads, **options)

    def __reduce__(self):
        """Pickles as its model does: source bytes and load options (rnnfast/portable.py)."""
        from .portable import reduce_session

        return reduce_session(self)

    def get_inputs(self):
        return self._model.inputs

    def get_outputs(self):
        return self._model.outputs

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, output_names, input_feed: dict, run_options=None):
        if not output_names and type(input_feed) is dict:
            return self._model.run(input_feed)
        if not isinstance(input_feed, dict):
            raise ValueError("input_feed must be a dict input name -> array, as in onnxruntime")
        if output_names:
            names = self._model.output_names
            unknown = [n for n in output_names if n not in names]
            if unknown:
                raise ValueError(f"unknown output name(s) {unknown}; the model's outputs are {names}")
        outs = self._model.run(input_feed)
        if not output_names:
            return outs
        outputs = dict(zip(names, outs))
        return [outputs[n] for n in output_names]
