"""Chains as graphs: embedding -> recurrent stages -> dense heads (a .rnnf 1 file's Pipeline, a PyTorch module stack,
a quantized model) lowered to the graph IR with graph/build.py, so they run through the C executor like ONNX models.

`chain_graph` builds one variant of a chain: with or without the initial-state inputs h0/c0 and the final-state
outputs h_n/c_n (PyTorch's convention) and a sequence_lens input, or the one-step graph a stream runs, whose states are
"layer{k}.h" / "layer{k}.c" inputs fed back from "layer{k}.h_n" / "layer{k}.c_n" (the loops graph/stream.py steps).
`ChainModel` is what Model wraps for such a chain: it checks and normalises the feeds (unbatched PyTorch input,
optional states, token ids in range), compiles each variant the first time a call needs it, and runs it in one C
call. Masks follow Keras: with an embedding's mask_zero, id 0 masks a step (graph/build.py recurrent)."""
from __future__ import annotations

import numpy as np

from .. import engine
from ..errors import FormatError
from ..tensorinfo import TensorInfo
from ..pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage
from .build import GraphBuilder
from .ir import ZEROS


def chain_graph(stages, batch_first: bool, name: str, states: bool = False, lens: bool = False,
                step: bool = False, state_outputs: bool = None):
    """The chain as a GraphBuilder holding it. states: h0/c0 inputs; state_outputs (by default as states): h_n/c_n
    outputs (one recurrent stage, its layers of one size); lens: an int32 sequence_lens [batch] input; step: one
    time step for a stream (input [batch, ...])."""
    state_outputs = states if state_outputs is None else state_outputs
    b = GraphBuilder(name)
    takes_ids = isinstance(stages[0], EmbeddingStage)
    first_rec = next(s for s in stages if isinstance(s, RecurrentStage))
    width = None if takes_ids else stages[0].input_size
    if step:
        x = b.input("input", np.int64 if takes_ids else np.float32, ["batch"] + ([width] if width else []))
        x = b.node("Unsqueeze", [x, np.array([0], np.int64)], name="one_step")
    else:
        seq = ["batch", "seq_len"] if batch_first else ["seq_len", "batch"]
        x = b.input("input", np.int64 if takes_ids else np.float32, seq + ([width] if width else []))
        if batch_first:
            x = b.node("Transpose", [x], {"perm": [1, 0] if takes_ids else [1, 0, 2]}, name="time_major")
    h0 = c0 = seq_lens = ""
    if states:
        layers = first_rec.layers
        n = len(layers) * layers[0].n_dirs  # zeros when left out, as in PyTorch
        h0 = b.input("h0", np.float32, [n, "batch", layers[0].output_size], default=ZEROS)
        if layers[0].cell == "lstm":
            c0 = b.input("c0", np.float32, [n, "batch", layers[0].hidden_size], default=ZEROS)
    if lens:
        seq_lens = b.input("sequence_lens", np.int32, ["batch"])
    mask, sequence, state_outs, k = "", True, [], 0
    for s in stages:
        if isinstance(s, EmbeddingStage):
            if s.mask_zero:
                mask = b.node("Greater", [x, np.array(0, np.int64)], name=f"{s.name or 'embedding'}/mask")
            x = b.embedding(x, s.table, name=s.name or "embedding")
        elif isinstance(s, DenseStage):
            x = b.dense(x, s.weight, s.bias, s.activation, name=s.name or "dense")
        elif step:
            for layer in s.layers:  # each layer's state is a stream state of its own, as a stream names them
                hk = b.input(f"layer{k}.h", np.float32, [layer.n_dirs, "batch", layer.output_size])
                ck = b.input(f"layer{k}.c", np.float32, [layer.n_dirs, "batch", layer.hidden_size]) \
                    if layer.cell == "lstm" else ""
                x, h_n, c_n = b.recurrent(x, [layer], h0=hk, c0=ck, states=True, name=layer.name or f"layer{k}")
                state_outs += [(b.output(h_n, f"layer{k}.h_n"), hk)] + ([(b.output(c_n, f"layer{k}.c_n"), ck)]
                                                                        if ck else [])
                k += 1
        elif s.return_sequences:
            x, h_n, c_n = b.recurrent(x, s.layers, h0=h0, c0=c0, sequence_lens=seq_lens, states=state_outputs,
                                      mask=mask, zero_output=s.mask_zero_output, name=s.name or "recurrent")
        else:  # the last layer's final state, directions side by side: [batch, D*P]
            if len(s.layers) > 1:
                x, _, _ = b.recurrent(x, s.layers[:-1], sequence_lens=seq_lens, mask=mask,
                                      zero_output=s.mask_zero_output, name=s.name or "recurrent")
            _, h, _ = b.recurrent(x, s.layers[-1:], sequence_lens=seq_lens, mask=mask, states=True, sequence=False,
                                  zero_output=s.mask_zero_output, name=f"{s.name or 'recurrent'}/last")
            x = b.node("Reshape", [b.node("Transpose", [h], {"perm": [1, 0, 2]}), np.array([0, -1], np.int64)],
                       name="final_state")
            mask, sequence = "", False
    if step:
        x = b.node("Squeeze", [x, np.array([0], np.int64)], name="step_output")
    elif batch_first and sequence:
        x = b.node("Transpose", [x], {"perm": [1, 0, 2]}, name="batch_first")
    b.output(x, "output")
    if state_outputs:
        b.output(h_n, "h_n")
        if c_n:
            b.output(c_n, "c_n")
    for out, inp in state_outs:
        b.state_loop(out, inp)
    return b


class ChainModel:
    """A chain as a Model graph. torch=True: PyTorch's conventions (inputs input, h0, c0 (optional), outputs
    output, h_n, c_n; unbatched input; the run option sequence_lens); else one input `input` and one output
    `output` (what a .rnnf file holds)."""

    framework = "rnnf"

    def __init__(self, pipeline: Pipeline, torch: bool = False, where: str = ""):
        self.pipeline, self.torch = pipeline, torch
        self.stages, self.batch_first = list(pipeline.stages), pipeline.batch_first
        self.where = where or pipeline.source or pipeline.name or "model"
        self.takes_ids = pipeline.takes_ids
        self._recurrent = [s for s in self.stages if isinstance(s, RecurrentStage)]
        if torch and (len(self._recurrent) != 1 or not self._recurrent[0].return_sequences):
            raise FormatError(f"{self.where}: PyTorch's conventions take one recurrent stack returning sequences")
        seq = ["batch", "seq_len"] if self.batch_first else ["seq_len", "batch"]
        p = pipeline
        self.inputs = [TensorInfo("input", seq, "tensor(int64)") if p.takes_ids
                       else TensorInfo("input", seq + [p.input_size])]
        self.outputs = [TensorInfo("output", (seq if p.returns_sequence else ["batch"]) + [p.output_size])]
        if torch:
            layers = self._recurrent[0].layers
            n, first = len(layers) * layers[0].n_dirs, layers[0]
            self.inputs.append(TensorInfo("h0", [n, "batch", first.output_size], optional=True))
            self.outputs.append(TensorInfo("h_n", [n, "batch", first.output_size]))
            if first.cell == "lstm":
                self.inputs.append(TensorInfo("c0", [n, "batch", first.hidden_size], optional=True))
                self.outputs.append(TensorInfo("c_n", [n, "batch", first.hidden_size]))
        self._variants, self._last = {}, None
        self.n_threads = None

    # ---- compiled variants ----
    def variant(self, states=False, lens=False, step=False, state_outputs=None):
        """The CompiledGraph of one variant (graph/runtime.py), compiled on first use."""
        state_outputs = states if state_outputs is None else state_outputs
        key = (states, lens, step, state_outputs)
        compiled = self._variants.get(key)
        if compiled is None:
            compiled = self._variants[key] = self._builder(*key).compile(self.n_threads)
            compiled.builder_key = key
        return compiled

    def _builder(self, states, lens, step, state_outputs):
        """The GraphBuilder of one variant (a subclass with other inputs and outputs builds its own)."""
        return chain_graph(self.stages, self.batch_first, self.where, states, lens, step, state_outputs)

    @property
    def compiled(self):
        """The variant the last run used (Model.thread_choice reports its threads), else the whole model's graph
        (every input and output), as `rnnfast inspect` shows it."""
        return self._last or self.variant(states=self.torch)

    def compiled_with_lengths(self):
        """The whole model's graph with the run option sequence_lens as a graph input (for .rnnf 2 and export-c)."""
        return self.variant(states=self.torch, lens=True)

    # ---- run ----
    def run(self, feeds: dict, sequence_lens=None, n_threads=None) -> list:
        compiled, arrays, batched = self._prepare(feeds, sequence_lens)
        outs = self._run(compiled, arrays, n_threads)
        return self._torch_outputs(outs, batched) if self.torch else outs

    def compiled_call(self, feeds: dict) -> tuple:
        """(CompiledGraph, its input arrays) for these feeds: what `rnnfast bench` profiles."""
        return self._prepare(feeds, None)[:2]

    def _prepare(self, feeds, sequence_lens):
        if "input" not in feeds:
            raise ValueError(f"{self.where}: the input 'input' is required")
        unknown = [n for n in feeds if n not in self.input_names]
        if unknown:
            raise ValueError(f"{self.where}: unknown input(s) {unknown}; the inputs are {self.input_names}")
        x, batched = self._input(feeds["input"])
        arrays = [x]
        B = x.shape[0] if self.batch_first else x.shape[1]
        given = self.torch and any(feeds.get(k) is not None for k in ("h0", "c0"))
        if given:  # an absent one of the two is zeros, as in PyTorch
            layers = self._recurrent[0].layers
            n = len(layers) * layers[0].n_dirs
            for key, size in (("h0", layers[0].output_size), ("c0", layers[0].hidden_size))[:len(self.inputs) - 1]:
                s = self._state(feeds.get(key), key, n, B, batched, size)
                arrays.append(np.zeros((n, B, size), np.float32) if s is None else s)
        if sequence_lens is not None:
            if not self.torch:
                raise TypeError(f"{self.where}: run() got an unexpected option 'sequence_lens'")
            arrays.append(self._lens(sequence_lens, x.shape[1] if self.batch_first else x.shape[0], B))
        self._last = self.variant(given, sequence_lens is not None, state_outputs=self.torch)
        return self._last, arrays, batched

    @property
    def input_names(self) -> list:
        return [t.name for t in self.inputs]

    def _run(self, compiled, arrays, n_threads):
        if n_threads is None:
            n_threads = engine._CALL_THREADS.get()  # Model.run's (rnnfast.load's n_threads)
        if engine.run_is_traced():  # rnnfast verify watches the engine: run node by node
            from .interpret import run_by_nodes

            return run_by_nodes(self._builder(*compiled.builder_key).graph(), arrays, n_threads)
        return compiled.run(arrays, n_threads)

    def _torch_outputs(self, outs, batched):
        if batched:
            return outs
        y = outs[0][0] if self.batch_first else outs[0][:, 0]
        return [y] + [s[:, 0] for s in outs[1:]]

    def _input(self, x):
        """The input as the graph takes it (batch axis added to unbatched PyTorch input), and whether it had one."""
        where = self.where
        x = np.asarray(x)
        if self.takes_ids:
            if x.dtype.kind not in "iu":
                raise ValueError(f"{where}: input holds integer token ids [seq_len, batch]; got {x.dtype}")
            if x.ndim != 2 and not (self.torch and x.ndim == 1):
                unbatched = " (or 1-D, unbatched)" if self.torch else ""
                raise ValueError(f"{where}: token ids must be 2-D [seq_len, batch]{unbatched}, got shape {x.shape}")
            vocab = self.stages[0].table.shape[0]
            if x.size and (x.min() < 0 or x.max() >= vocab):
                raise ValueError(f"{where}: token ids must lie in [0, {vocab}), got {x.min()}..{x.max()}")
            batched = x.ndim == 2
        else:
            want = self.pipeline.input_size
            rank_ok = x.ndim == 3 or self.torch and x.ndim == 2
            if x.dtype.kind not in "fiub" or x.shape[-1:] != (want,) or not rank_ok:
                forms = f" (or batch-first, or unbatched [seq_len, {want}])" if self.torch else ""
                raise ValueError(f"{where}: input must be float [seq_len, batch, {want}]{forms}, got {x.dtype} "
                                 f"{x.shape}")
            batched = x.ndim == 3
            if x.dtype != np.float32:
                x = x.astype(np.float32)
        if not batched:
            x = x[None] if self.batch_first else x[:, None]
        if self.torch and x.shape[1 if self.batch_first else 0] == 0:
            raise ValueError(f"{where}: the input has no time steps")
        return x, batched

    def _state(self, s, name, n, batch, batched, size):
        if s is None:
            return None
        s = np.asarray(s, np.float32)
        want = (n, batch, size) if batched else (n, size)
        if s.shape != want:
            raise ValueError(f"{self.where}: {name} must have shape {want} (layers*directions, batch, size); got "
                             f"{s.shape}")
        return s if batched else s[:, None, :]

    def _lens(self, lens, T, B):
        lens = np.asarray(lens)
        if lens.shape != (B,) or lens.dtype.kind not in "iu":
            raise ValueError(f"{self.where}: sequence_lens must be int [{B}], got {lens.dtype} {lens.shape}")
        if lens.size and (lens.min() < 0 or lens.max() > T):
            raise ValueError(f"{self.where}: sequence_lens must lie in [0, {T}], got {lens}")
        return lens.astype(np.int32)

    # ---- the rest of a Model graph ----
    def stream(self, batch=1, n_threads=None, states=None):
        """An rnnfast.Stream (graph/stream.py make_stream): step(x_t [batch, input]) or token ids [batch]; the state
        of layer k is "layer{k}.h" (and "layer{k}.c") [D, batch, out]. Recurrent layers alone step directly in C
        (one engine call a step); with an embedding or heads, the one-step graph runs through the executor."""
        from ..stream.step_input import Features, TokenIds
        from .stream import layer_states_only, make_stream

        layer_states_only(self.where, states)
        for s in self.stages:
            if isinstance(s, EmbeddingStage) and s.mask_zero:
                raise FormatError(f"{self.where}: cannot stream: embedding {s.name!r} masks id 0 (mask_zero), and a "
                                  f"stream step has no mask; use Model.run")
        for layer in (l for s in self._recurrent for l in s.layers):
            if layer.direction != "forward":
                raise FormatError(f"{self.where}: layer {layer.name or '?'} is {layer.direction}; a stream runs "
                                  f"forward in time only. Run the bidirectional model on a sliding window with "
                                  f"Model.run instead.")
        if any(not s.return_sequences for s in self._recurrent):
            raise FormatError(f"{self.where}: cannot stream: a recurrent stage returns its final state only; use "
                              f"Model.run")
        n_threads = n_threads or self.n_threads
        if len(self._recurrent) == len(self.stages):
            return make_stream(self.where, batch, n_threads, layers=[l for s in self._recurrent for l in s.layers])
        first = self.stages[0]
        step_input = (TokenIds(first.table.shape[0], self.where) if self.takes_ids
                      else Features(first.input_size, self.where))
        return make_stream(self.where, batch, n_threads, compiled=self.variant(step=True), step_input=step_input,
                           pairs_from="layers")

    def to_pipeline(self) -> Pipeline:
        return self.pipeline

    def quantized(self, weight_dtype: str) -> "ChainModel":
        """The same chain, its recurrent layers' weights stored in weight_dtype (rnnfast/quantize.py's rule, applied
        by RecurrentLayer.with_weight_dtype); embedding and Dense stages stay float32."""
        import dataclasses

        stages = [dataclasses.replace(s, layers=[l.with_weight_dtype(weight_dtype) for l in s.layers])
                  if isinstance(s, RecurrentStage) else s for s in self.stages]
        return ChainModel(dataclasses.replace(self.pipeline, stages=stages), self.torch, self.where)

    def describe(self) -> str:
        lines = [f"pipeline {self.pipeline.name or ''} (batch_first={self.batch_first})"]
        for s in self.stages:
            if isinstance(s, EmbeddingStage):
                lines.append(f"  Embedding {s.name}: vocab {s.table.shape[0]} -> {s.output_size}"
                             f"{' mask_zero' if s.mask_zero else ''}")
            elif isinstance(s, RecurrentStage):
                for l in s.layers:
                    lines.append(f"  {l.cell.upper()} {l.name} {l.direction}: {l.input_size} -> hidden "
                                 f"{l.hidden_size}{f' proj {l.proj_size}' if l.proj_size else ''}")
                if not s.return_sequences:
                    lines.append("    (final state only)")
            else:
                lines.append(f"  Dense {s.name}: {s.input_size} -> {s.output_size} {s.activation}")
        return "\n".join(lines)
