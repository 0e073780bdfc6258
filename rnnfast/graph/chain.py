"""Models read as a chain (embedding -> recurrent stacks -> dense layers: a .rnnf 1 file, a PyTorch module stack, a
TF 1.x checkpoint) built as the graph IR with graph/build.py and run by the C executor, like every other format.

`chain_graph` builds the IR of such a model from its parts (the stage records rnnfast/pipeline.py defines, as its
importer read them) in the calling conventions of its source (`Conventions`: PyTorch's optional h0/c0 inputs and
h_n/c_n outputs, TF 1.x's state_h/state_c, a .rnnf file's one input and one output); `lens` adds the per-row
lengths as an int32 [batch] input, `step` makes the one-step graph a stream runs, whose states are "layer{k}.h" /
"layer{k}.c" inputs fed back from "layer{k}.h_n" / "layer{k}.c_n" (the loops graph/stream.py steps).
`ChainGraph` is what Model wraps for such a model: it checks and normalises the feeds (unbatched input, token ids
in range), runs the compiled graph in one C call, streams, and reads its chain form back off the IR
(graph/to_pipeline.py), as for ONNX. Masks follow Keras: with an embedding's mask_zero, id 0 masks a step."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import engine
from ..errors import FormatError
from ..pipeline import DenseStage, EmbeddingStage, RecurrentStage, check_chain, quantized_stages
from ..tensorinfo import TensorInfo
from .build import GraphBuilder
from .ir import ZEROS

_AXIS0 = np.array([0], np.int64)


@dataclass(frozen=True)
class Conventions:
    """How a chain model's source calls it."""

    state_inputs: tuple = ()      # optional initial states of the recurrent stack (zeros when left out)
    state_outputs: tuple = ()     # the stack's final states, [layers*directions, batch, size]
    lengths: str = ""             # the run option (and graph input) of per-row lengths, int [batch]
    unbatched: bool = False       # input without its batch axis (the outputs then have none either)


RNNF = Conventions()  # a .rnnf 1 file's: input `input`, output `output`
TORCH = Conventions(("h0", "c0"), ("h_n", "c_n"), "sequence_lens", True)
TF1 = Conventions((), ("state_h", "state_c"), "sequence_length", True)


def _state_stack(stages, conventions: Conventions):
    """The recurrent stage whose states are the model's state inputs and outputs, or None: the only one, when the
    conventions have states and its layers are of one cell, direction count and size (TF 1.x layers of several
    sizes have no stacked state)."""
    recurrent = [s for s in stages if isinstance(s, RecurrentStage)]
    if not (conventions.state_inputs or conventions.state_outputs) or len(recurrent) != 1:
        return None
    layers = recurrent[0].layers
    if len({(l.cell, l.n_dirs, l.output_size, l.hidden_size) for l in layers}) != 1:
        return None
    return recurrent[0]


def chain_graph(stages, batch_first: bool, name: str, conventions: Conventions = RNNF, lens: bool = False,
                step: bool = False) -> GraphBuilder:
    """The chain as a GraphBuilder holding it: input `input` (and the conventions' state inputs, optional, and with
    `lens` the lengths input), output `output` (and the state outputs). step: one time step for a stream (input
    [batch, ...], each layer's state a loop of its own)."""
    conv = conventions
    b = GraphBuilder(name)
    takes_ids = isinstance(stages[0], EmbeddingStage)
    features = [] if takes_ids else [stages[0].input_size]
    dtype = np.int64 if takes_ids else np.float32
    if step:
        x = b.node("Unsqueeze", [b.input("input", dtype, ["batch"] + features), _AXIS0], name="one_step")
    else:
        x = b.input("input", dtype, (["batch", "seq_len"] if batch_first else ["seq_len", "batch"]) + features)
        if batch_first:
            x = b.node("Transpose", [x], {"perm": [1, 0] if takes_ids else [1, 0, 2]}, name="time_major")
    stack = None if step else _state_stack(stages, conv)
    h0 = c0 = seq_lens = ""
    if stack is not None and conv.state_inputs:
        first = stack.layers[0]
        n = len(stack.layers) * first.n_dirs  # zeros when left out, as in PyTorch
        h0 = b.input(conv.state_inputs[0], np.float32, [n, "batch", first.output_size], default=ZEROS)
        if first.cell == "lstm":
            c0 = b.input(conv.state_inputs[1], np.float32, [n, "batch", first.hidden_size], default=ZEROS)
    if lens:
        seq_lens = b.input(conv.lengths or "sequence_lens", np.int32, ["batch"])
    mask, sequence, finals, loops, k = "", True, None, [], 0
    for s in stages:
        if isinstance(s, EmbeddingStage):
            if s.mask_zero:
                mask = b.node("Greater", [x, np.array(0, np.int64)], name=f"{s.name or 'embedding'}/mask")
            x = b.embedding(x, s.table, name=s.name or "embedding")
        elif isinstance(s, DenseStage):
            x = b.dense(x, s.weight, s.bias, s.activation, name=s.name or "dense")
        elif step:  # each layer's state is a stream state of its own; a final state is the step's output
            for layer in s.layers:
                hk = b.input(f"layer{k}.h", np.float32, [layer.n_dirs, "batch", layer.output_size])
                ck = b.input(f"layer{k}.c", np.float32, [layer.n_dirs, "batch", layer.hidden_size]) \
                    if layer.cell == "lstm" else ""
                x, h_n, c_n = b.recurrent(x, [layer], h0=hk, c0=ck, states=True, name=layer.name or f"layer{k}")
                loops += [(b.output(h_n, f"layer{k}.h_n"), hk)] + ([(b.output(c_n, f"layer{k}.c_n"), ck)]
                                                                   if ck else [])
                k += 1
        else:
            x, states = _recurrent(b, x, s, s is stack and conv.state_outputs, h0 if s is stack else "",
                                   c0 if s is stack else "", seq_lens, mask)
            finals = states or finals
            if not s.return_sequences:
                mask, sequence = "", False
    if step:
        x = b.node("Squeeze", [x, _AXIS0], name="step_output")
    elif batch_first and sequence:
        x = b.node("Transpose", [x], {"perm": [1, 0, 2]}, name="batch_first")
    b.output(x, "output")
    if finals is not None:
        for value, out in zip(finals, conv.state_outputs):
            if value:
                b.output(value, out)
    for out, inp in loops:
        b.state_loop(out, inp)
    return b


def _recurrent(b, x, s, states, h0, c0, seq_lens, mask):
    """One recurrent stage over x [T, B, F]: (its output, (h_n, c_n) of the whole stack when `states`, else None).
    Its output is the last layer's sequence [T, B, D*P], or with return_sequences off the last layer's final state,
    directions side by side, [B, D*P]."""
    name = s.name or "recurrent"
    if s.return_sequences:
        y, h_n, c_n = b.recurrent(x, s.layers, h0=h0, c0=c0, sequence_lens=seq_lens, states=bool(states),
                                  mask=mask, zero_output=s.mask_zero_output, name=name)
        return y, ((h_n, c_n) if states else None)
    if states or h0:  # the stack's final states, of which the last layer's rows are the output
        _, h_n, c_n = b.recurrent(x, s.layers, h0=h0, c0=c0, sequence_lens=seq_lens, states=True, sequence=False,
                                  mask=mask, zero_output=s.mask_zero_output, name=name)
        d, n = s.layers[-1].n_dirs, len(s.layers) * s.layers[-1].n_dirs
        h = b.node("Slice", [h_n, np.array([n - d], np.int64), np.array([n], np.int64), _AXIS0], name=f"{name}/last")
    else:
        if len(s.layers) > 1:
            x, _, _ = b.recurrent(x, s.layers[:-1], sequence_lens=seq_lens, mask=mask, zero_output=s.mask_zero_output,
                                  name=name)
        _, h, _ = b.recurrent(x, s.layers[-1:], sequence_lens=seq_lens, mask=mask, states=True, sequence=False,
                              zero_output=s.mask_zero_output, name=f"{name}/last")
        h_n = c_n = None
    y = b.node("Reshape", [b.node("Transpose", [h], {"perm": [1, 0, 2]}), np.array([0, -1], np.int64)],
               name="final_state")
    return y, ((h_n, c_n) if states else None)


class ChainGraph:
    """A model read as a chain, as Model's graph (see the module docstring). `stages`: its parts in order; `where`
    names it in messages; `name`: the chain's own name (a .rnnf 1 file stores one)."""

    framework = "rnnf"  # the source whose conventions it keeps (`rnnfast verify --against` reads it)

    def __init__(self, stages, batch_first: bool = False, where: str = "model", conventions: Conventions = RNNF,
                 name: str = "", n_threads=None):
        self.stages, self.batch_first, self.where, self.name = list(stages), bool(batch_first), where, name
        self.conventions = conventions
        self.n_threads = n_threads
        check_chain(self.stages, where)
        self._recurrent = [s for s in self.stages if isinstance(s, RecurrentStage)]
        self.layers = [layer for s in self._recurrent for layer in s.layers]
        self.takes_ids = isinstance(self.stages[0], EmbeddingStage)
        self.vocab = self.stages[0].table.shape[0] if self.takes_ids else None
        self.input_size = None if self.takes_ids else self.stages[0].input_size
        self.returns_sequence = all(s.return_sequences for s in self._recurrent)
        self._variants, self._last = {}, None
        main = self.variant()  # compiled at load: what cannot run is refused here, not at the first run
        g = main.graph
        self.inputs = [_info(g.values[n], n in g.defaults) for n in g.inputs]
        self.outputs = [_info(g.values[n]) for n in g.outputs]

    @classmethod
    def of(cls, chain) -> "ChainGraph":
        """The model of a chain form (rnnfast.pipeline.Pipeline), as a .rnnf 1 file of it loads."""
        return cls(chain.stages, chain.batch_first, chain.source or chain.name or "chain", name=chain.name)

    # ---- compiled variants ----
    def variant(self, lens: bool = False, step: bool = False):
        """The CompiledGraph of one variant (graph/runtime.py), compiled on first use."""
        key = (lens, step)
        compiled = self._variants.get(key)
        if compiled is None:
            compiled = self._variants[key] = self._builder(*key).compile(self.n_threads)
            compiled.builder_key = key
        return compiled

    def _builder(self, lens, step) -> GraphBuilder:
        """The GraphBuilder of one variant (a subclass with other inputs and outputs builds its own)."""
        return chain_graph(self.stages, self.batch_first, self.where, self.conventions, lens, step)

    @property
    def compiled(self):
        """The variant the last run used (Model.thread_choice reports its threads), else the whole model's graph
        (every input and output), as `rnnfast inspect` shows it."""
        return self._last or self.variant()

    def compiled_with_lengths(self):
        """The whole model's graph with the lengths as a graph input (for .rnnf 2 and export-c)."""
        return self.variant(lens=True)

    # ---- run ----
    def run(self, feeds: dict, n_threads=None, **options) -> list:
        compiled, arrays, batched = self._prepare(feeds, self._lengths_option(options))
        return self._unbatched(self._run(compiled, arrays, n_threads), batched)

    def compiled_call(self, feeds: dict) -> tuple:
        """(CompiledGraph, its input arrays) for these feeds: what `rnnfast bench` profiles."""
        return self._prepare(feeds, None)[:2]

    def _lengths_option(self, options):
        if not options:
            return None
        option = self.conventions.lengths
        unknown = sorted(k for k in options if k != option)
        if unknown:
            takes = f"; it takes {option}" if option else ""
            raise TypeError(f"{self.where}: run() got an unexpected option {unknown[0]!r}{takes}")
        return options.get(option) if option else None

    def _prepare(self, feeds, lengths):
        if feeds.get("input") is None:
            raise ValueError(f"{self.where}: the input 'input' is required")
        names = [t.name for t in self.inputs]
        unknown = [n for n in feeds if n not in names]
        if unknown:
            raise ValueError(f"{self.where}: unknown input(s) {unknown}; the inputs are {names}")
        x, batched = self._input(feeds["input"])
        arrays = [x]
        batch = x.shape[0] if self.batch_first else x.shape[1]
        for info in self.inputs[1:]:  # the optional states: None is the graph's default (zeros)
            arrays.append(self._state(feeds.get(info.name), info, batch, batched))
        if lengths is not None:
            arrays.append(self._lengths(lengths, x.shape[1] if self.batch_first else x.shape[0], batch))
        self._last = self.variant(lens=lengths is not None)
        return self._last, arrays, batched

    def _run(self, compiled, arrays, n_threads):
        if n_threads is None:
            n_threads = engine._CALL_THREADS.get()  # Model.run's (rnnfast.load's n_threads)
        if engine.run_is_traced():  # rnnfast verify watches the engine: run node by node
            from .interpret import run_by_nodes

            return run_by_nodes(self._builder(*compiled.builder_key).graph(), arrays, n_threads)
        return compiled.run(arrays, n_threads)

    def _unbatched(self, outs, batched):
        """The outputs of an unbatched run without their batch axis."""
        if batched:
            return outs
        y = outs[0][0] if self.batch_first or not self.returns_sequence else outs[0][:, 0]
        return [y] + [s[:, 0] for s in outs[1:]]

    def _input(self, x):
        """The input as the graph takes it (a batch axis added to unbatched input), and whether it had one."""
        where, unbatched = self.where, self.conventions.unbatched
        x = np.asarray(x)
        layout = "batch, seq_len" if self.batch_first else "seq_len, batch"
        if self.takes_ids:
            name = self.stages[0].name or "embedding"
            if x.dtype.kind not in "iu" or not (x.ndim == 2 or unbatched and x.ndim == 1):
                also = " (or unbatched [seq_len])" if unbatched else ""
                raise ValueError(f"{where}: input holds integer token ids for the embedding {name!r}, [{layout}]"
                                 f"{also}; got {x.dtype} {x.shape}")
            if x.size and (x.min() < 0 or x.max() >= self.vocab):
                raise ValueError(f"{where}: token ids must lie in [0, {self.vocab}), got {x.min()}..{x.max()}")
            batched = x.ndim == 2
            if x.dtype != np.int64:  # astype costs 0.3 us even when it copies nothing
                x = x.astype(np.int64)
        else:
            want = self.input_size
            if x.dtype.kind not in "fiub" or x.shape[-1:] != (want,) or not (x.ndim == 3 or unbatched and x.ndim == 2):
                also = f" (or unbatched [seq_len, {want}])" if unbatched else ""
                raise ValueError(f"{where}: input must be numeric [{layout}, {want}]{also}, got {x.dtype} {x.shape}")
            batched = x.ndim == 3
            if x.dtype != np.float32:
                x = x.astype(np.float32)
        if not batched:
            x = x[None] if self.batch_first else x[:, None]
        if unbatched and x.shape[1 if self.batch_first else 0] == 0:
            raise ValueError(f"{where}: the input has no time steps")
        return x, batched

    def _state(self, s, info, batch, batched):
        if s is None:
            return None
        s = np.asarray(s, np.float32)
        n, size = info.shape[0], info.shape[2]
        want = (n, batch, size) if batched else (n, size)
        if s.shape != want:
            raise ValueError(f"{self.where}: {info.name} must have shape {want} (layers*directions, batch, size); "
                             f"got {s.shape}")
        return s if batched else s[:, None, :]

    def _lengths(self, lens, T, B):
        lens, option = np.asarray(lens), self.conventions.lengths
        if lens.shape != (B,) or lens.dtype.kind not in "iu":
            raise ValueError(f"{self.where}: {option} must be int [{B}], got {lens.dtype} {lens.shape}")
        if lens.size and (lens.min() < 0 or lens.max() > T):
            raise ValueError(f"{self.where}: {option} must lie in [0, {T}], got {lens}")
        return lens.astype(np.int32)

    # ---- the rest of a Model graph ----
    def stream(self, batch=1, n_threads=None, states=None):
        """An rnnfast.Stream (graph/stream.py make_stream): step(x_t [batch, input]) or token ids [batch]; the state
        of layer k is "layer{k}.h" (and "layer{k}.c") [D, batch, out]. Recurrent layers alone step directly in C
        (one engine call a step); with an embedding or dense layers, the one-step graph runs through the executor.
        A stage that returns its final state gives, at each step, the final state of the steps so far."""
        from ..stream.step_input import Features, TokenIds
        from .stream import layer_states_only, make_stream

        layer_states_only(self.where, states)
        if self.takes_ids and self.stages[0].mask_zero:
            raise FormatError(f"{self.where}: cannot stream: embedding {self.stages[0].name!r} masks id 0 "
                              f"(mask_zero), and a stream step has no mask; use Model.run")
        for layer in self.layers:
            if layer.direction != "forward":
                raise FormatError(f"{self.where}: layer {layer.name or '?'} is {layer.direction}; a stream runs "
                                  f"forward in time only. Run the bidirectional model on a sliding window with "
                                  f"Model.run instead.")
        n_threads = n_threads or self.n_threads
        if len(self._recurrent) == len(self.stages):
            return make_stream(self.where, batch, n_threads, layers=self.layers)
        step_input = TokenIds(self.vocab, self.where) if self.takes_ids else Features(self.input_size, self.where)
        return make_stream(self.where, batch, n_threads, compiled=self.variant(step=True), step_input=step_input,
                           pairs_from="layers")

    def to_pipeline(self):
        """The chain read back off the model's graph (graph/to_pipeline.py), as for every format."""
        from .to_pipeline import graph_to_pipeline

        p = graph_to_pipeline(self.variant().graph, self.where)
        return dataclasses.replace(p, name=self.name, source=self.where)

    def quantized(self, weight_dtype: str) -> "ChainGraph":
        """The same model, its recurrent layers' weights stored in weight_dtype (rnnfast/quantize.py's rule, applied
        by RecurrentLayer.with_weight_dtype); embedding and dense layers stay float32."""
        return ChainGraph(quantized_stages(self.stages, weight_dtype), self.batch_first, self.where, self.conventions,
                          self.name, self.n_threads)

    def describe(self) -> str:
        lines = [f"chain {self.name or self.where} (batch_first={self.batch_first})"]
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


def _info(v, optional=False) -> TensorInfo:
    shape = [d if isinstance(d, int) else str(d) for d in v.shape]
    return TensorInfo(v.name, shape, "tensor(int64)" if v.dtype == np.int64 else "tensor(float)" if v.dtype ==
                      np.float32 else f"tensor({v.dtype.name})", optional)
