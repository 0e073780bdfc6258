"""Model: what `rnnfast.load` returns, whatever the source format.

A Model wraps a format-specific graph (ONNX node graph, Keras layer graph, PyTorch module stack). The graph
does the work; Model normalises inputs, checks names, and gives every format the same calling convention.
A graph implements:
    inputs / outputs: lists of TensorInfo
    run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]   (one array per output, in `outputs` order)
    describe() -> str                                         (human-readable summary)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .tensorinfo import TensorInfo  # noqa: F401  (rnnfast.model.TensorInfo, as before)


class Model:
    def __init__(self, graph: Any, source: str = ""):
        self.graph = graph
        self.source = source
        self.n_threads = None  # rnnfast.load's, for graphs that do not hold their own (Keras, PyTorch, .rnnf)
        self.origin = None  # rnnfast.load's bytes and options (rnnfast/portable.py), which pickling sends
        # feeds -> outputs, or None for a feed that needs run's checks: a graph's shortcut into C for the common call
        direct = getattr(graph, "direct_runner", None)
        self._direct = direct() if direct is not None else None

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self.graph.inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self.graph.outputs)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.graph.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.graph.outputs]

    def run(self, inputs, **options) -> list[np.ndarray]:
        """Run the model. `inputs` is one array (single-input models), a sequence in input order, or a dict
        name -> array; an input whose TensorInfo is `optional` (PyTorch's h0/c0, an ONNX input backed by an
        initializer) may be left out and is then its default. Returns one array per model output, in
        `output_names` order."""
        if self._direct is not None and type(inputs) is dict and not options and self.n_threads is None:
            outs = self._direct(inputs)
            if outs is not None:
                return outs
        if self.n_threads is None:
            return self.graph.run(self._feeds(inputs), **options)
        from .engine import call_threads

        with call_threads(self.n_threads):
            return self.graph.run(self._feeds(inputs), **options)

    def describe(self) -> str:
        return self.graph.describe()

    def to_pipeline(self):
        """The model as a rnnfast.pipeline.Pipeline (what the exporters write), or FormatError naming the layer or
        node that does not fit one. Only the main output is kept: a PyTorch model's h_n/c_n outputs and h0/c0
        inputs, a Keras layer's return_state outputs and an ONNX graph's final-state outputs, have no place in a
        pipeline (it starts from zero state)."""
        make = getattr(self.graph, "to_pipeline", None)
        if make is None:
            from .errors import FormatError

            raise FormatError(f"{self.source or 'this model'}: this kind of model does not convert to a chain of "
                              f"embedding, recurrent and dense layers")
        return make()

    def quantize(self, weights: str, scope: str = "recurrent") -> "Model":
        """The model with its weights stored as "int8" (symmetric, one float32 scale per output row or channel) or
        "float16", computed in float32 on the values they stand for (rnnfast/quantize.py). scope "recurrent" (the
        default): the recurrent layers' w_ih, w_hh, w_hr only; "all": also the constant weights of MatMul, Gemm,
        Conv and ConvTranspose (a whole graph the C executor runs: ONNX, .rnnf 2, .npz, .safetensors). Everything
        else stays float32, and the model keeps its inputs and outputs. The graph the C executor runs is quantized
        (graph/runtime.py CompiledGraph.quantized); a model the executor does not run whole is refused, saying
        why."""
        from .errors import FormatError
        from .quantize import check_scope, check_weight_dtype

        weights = check_weight_dtype(weights)
        scope = check_scope(scope, self.source)
        make = getattr(self.graph, "quantized", None)
        if scope != "recurrent" and not getattr(self.graph, "quantizes_weight_constants", False):
            raise ValueError(f"{self.source or 'this model'}: quantizing scope {scope!r} (MatMul, Gemm and Conv "
                             f"weights too) works on a whole graph the C executor runs (ONNX, .rnnf 2, .npz, "
                             f".safetensors), not on this model as it was read: write the model as .rnnf 2 "
                             f"(rnnfast convert MODEL m.rnnf), load that and quantize it")
        graph = (make(weights) if scope == "recurrent" else make(weights, scope)) if make is not None else None
        if graph is None:  # None: not a graph the executor runs
            why = getattr(self.graph, "unfit_reason", None) or "rnnfast has no whole-graph form of this kind of model"
            raise FormatError(f"{self.source or 'this model'}: cannot quantize: the C executor does not run this "
                              f"model whole ({why}), and quantizing stores the weights of the graph it runs")
        model = Model(graph, source=self.source)
        model.n_threads = self.n_threads
        if self.origin is not None:  # pickles as the source's bytes, quantized again where it is rebuilt
            model.origin = self.origin.then("quantize", weights if scope == "recurrent" else (weights, scope))
        return model

    def thread_choice(self) -> dict:
        """How many threads this model's runs use now, and why: the graph executor times its runs with one thread
        and with the asked count (n_threads, else the default) for the last input shapes and uses the faster
        ({"threads": n, "seconds_1_thread": t1, "seconds_asked": tn}, times None until measured)."""
        compiled = getattr(self.graph, "compiled", None)
        if compiled is None or not hasattr(compiled, "thread_choice"):
            why = getattr(self.graph, "unfit_reason", None)
            raise ValueError(f"{self.source or 'this model'}: no thread choice to report: the C graph executor, "
                             f"which times one thread against the asked count, does not run this model"
                             f"{f' ({why})' if why else ''}; its runs use the asked count (n_threads) as given")
        return compiled.thread_choice()

    def reset_states(self) -> None:
        """Zero the state that stateful layers (Keras stateful=True) keep from one run call to the next."""
        reset = getattr(self.graph, "reset_states", None)
        if reset is None:
            raise ValueError(f"{self.source or 'this model'}: nothing to reset: this model keeps no state between "
                             f"run calls (only Keras layers with stateful=True do); a stream's state is reset with "
                             f"stream.reset()")
        reset()

    def stream(self, batch: int = 1, n_threads=None, states=None):
        """An rnnfast.Stream (rnnfast/stream/, made by graph/stream.py make_stream), the same class for every
        format: step(x_t) keeps the state between calls. `states` pairs a graph's state inputs with the outputs
        that feed them back ({"state": "stateN"}); by default the graph's own loops, else inputs and outputs paired
        by name and shape; a model of recurrent layers keeps each layer's state (layer0.h, ...)."""
        make = getattr(self.graph, "stream", None)
        if n_threads is None:
            n_threads = self.n_threads
        if make is None:
            from .errors import FormatError

            raise FormatError(f"{self.source or 'this model'}: cannot stream this model; Model.run runs it on whole "
                              f"sequences")
        return make(batch, n_threads=n_threads, states=states)

    def __reduce__(self):
        """Pickles as the source bytes and load options, rebuilt once per process (rnnfast/portable.py)."""
        from .portable import reduce_model

        return reduce_model(self)

    def __repr__(self) -> str:
        return f"<rnnfast.Model from {self.source or 'memory'}: inputs {self.input_names} outputs {self.output_names}>"

    def _feeds(self, inputs) -> dict[str, np.ndarray]:
        names = self.input_names
        if isinstance(inputs, dict):
            unknown = [k for k in inputs if k not in names]
            if unknown:
                raise ValueError(f"{self.source or 'model'}: unknown input name(s) {unknown}; the model's inputs "
                                 f"are {names}")
            return dict(inputs)
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
            # One array feeds the first input; the graph says whether the others (initial states) are optional.
            return {names[0]: inputs}
        if len(inputs) > len(names):
            raise ValueError(f"{self.source or 'model'}: got {len(inputs)} inputs, the model takes at most "
                             f"{len(names)}: {names}")
        return dict(zip(names, inputs))
