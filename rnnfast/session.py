"""InferenceSession: onnxruntime's calling convention over rnnfast, so an onnxruntime user of a recurrent
model can swap the import and keep the rest of the code."""
from __future__ import annotations

from . import load


class InferenceSession:
    def __init__(self, path_or_bytes, n_threads=None, **options):
        self._model = load(path_or_bytes, n_threads=n_threads, **options)

    def get_inputs(self):
        return self._model.inputs

    def get_outputs(self):
        return self._model.outputs

    def run(self, output_names, input_feed: dict, run_options=None):
        if not isinstance(input_feed, dict):
            raise ValueError("input_feed must be a dict input name -> array, as in onnxruntime")
        names = self._model.output_names
        unknown = [n for n in (output_names or []) if n not in names]
        if unknown:
            raise ValueError(f"unknown output name(s) {unknown}; the model's outputs are {names}")
        return self._model.graph.run(self._model._feeds(input_feed), output_names=output_names or None)
