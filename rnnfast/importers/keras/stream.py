"""Streaming a Keras Sequential model (or a run of its layers) one step at a time, the state kept in C.

    stream = model.stream(batch=1)                   # the whole model: [Embedding] -> RNN layers -> head
    encoder = layer_stream(model, last="encoder")    # a slice of the layer chain, by layer name
    decoder = layer_stream(model, first="decoder")

A step feeds the recurrent layers one time step; layers before them (an Embedding, dropout) turn the step's
input into features and layers after them (Dense, TimeDistributed, Activation) are applied to each step's output,
exactly as Keras applies them to every step of a sequence. With such layers the whole step is one C graph call
(_step_graph: the recurrent states are the step graph's state loops); a head layer the graph cannot express runs
in numpy after the C step of the recurrent layers. Either way the result is an rnnfast.Stream (graph/stream.py
make_stream). What cannot be streamed is refused by name: layers that
change the time axis (RepeatVector, Flatten, pooling), go_backwards, Bidirectional, Embedding(mask_zero=True)
(a masked step would have to carry the state, which a stream cannot know), and Functional graphs.
A stream starts from zero state, whatever `run` left in stateful layers; `stream.reset()` is reset_states().
"""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from ...stream.step_input import Features, TokenIds
from ...graph.stream import make_stream
from .layers import Embedding, Identity, InputLayer
from .rnn import Bidirectional, KerasRNN

TIME_WISE = ("Dense", "Activation", "TimeDistributed", "Softmax", "LayerNormalization")


def layer_stream(model, first=None, last=None, batch=1, n_threads=None):
    """An rnnfast.Stream over the layers `first`..`last` (names, both included; default the whole chain) of a
    Keras Sequential model loaded by rnnfast.load."""
    from ...model import Model
    from .graph import KerasModelGraph

    graph = model.graph if isinstance(model, Model) else model
    if not isinstance(graph, KerasModelGraph):
        raise FormatError(f"{getattr(model, 'source', '') or 'model'}: layer_stream takes a Keras model loaded by "
                          f"rnnfast.load, got {type(graph).__name__}")
    if n_threads is None and isinstance(model, Model):
        n_threads = model.n_threads
    inner, where = graph.graph, graph.source
    spec = inner.spec
    if spec.cls != "Sequential":
        raise FormatError(f"{where}: only Sequential Keras models stream; this one is {spec.cls}. Run the "
                          f"recurrent part with Model.run on a sliding window instead.")
    chain = [obj for ls, obj in inner.order if not isinstance(obj, InputLayer)]
    names = [obj.name for obj in chain]
    for label, name in (("first", first), ("last", last)):
        if name is not None and name not in names:
            raise ValueError(f"{where}: no layer named {name!r} ({label}=); the layers are {names}")
    lo = names.index(first) if first is not None else 0
    hi = names.index(last) + 1 if last is not None else len(chain)
    return _chain_stream(chain[lo:hi], batch, n_threads, where, graph)


def _chain_stream(chain, batch, n_threads, where, model_graph):
    for obj in chain:
        if isinstance(obj, Bidirectional):
            raise FormatError(f"{obj.where}: Bidirectional reads the sequence backward too and cannot stream; run "
                              f"it on a sliding window with Model.run")
    rnn_at = [i for i, obj in enumerate(chain) if isinstance(obj, KerasRNN)]
    if not rnn_at:
        raise FormatError(f"{where}: the layers {[o.name for o in chain]} hold no recurrent layer to stream")
    pre, rnns, post = chain[:rnn_at[0]], chain[rnn_at[0]:rnn_at[-1] + 1], chain[rnn_at[-1] + 1:]
    for obj in rnns:
        if not isinstance(obj, (KerasRNN, Identity)):
            raise FormatError(f"{obj.where}: sits between recurrent layers; only dropout-like layers can, to stream")
        if isinstance(obj, KerasRNN) and obj.go_backwards:
            raise FormatError(f"{obj.where}: go_backwards runs backward in time and cannot stream; run it on a "
                              f"sliding window with Model.run")
    for obj in pre:
        if isinstance(obj, Embedding) and obj.mask_zero:
            raise FormatError(f"{obj.where}: mask_zero=True cannot stream (a masked step carries the state); "
                              f"run the model with Model.run")
        if not isinstance(obj, (Embedding, Identity)) or (isinstance(obj, Embedding) and obj is not pre[0]):
            raise FormatError(f"{obj.where}: only an Embedding (first) and dropout-like layers can come before the "
                              f"recurrent layers of a stream")
    for obj in post:
        if obj.cls not in TIME_WISE and not isinstance(obj, Identity):
            raise FormatError(f"{obj.where}: {obj.cls} works across time steps and cannot follow a stream's "
                              f"recurrent layers; streamable heads are {TIME_WISE} and dropout")
    embedding = pre[0] if pre and isinstance(pre[0], Embedding) else None
    rnn_objs = [obj for obj in rnns if isinstance(obj, KerasRNN)]
    step_input = None if embedding is None else TokenIds(embedding.input_dim, embedding.where)
    if embedding is not None or post:  # layers around the recurrent ones: the whole step in one C graph call
        from ...graph.infer import Unfit

        try:
            compiled = _step_graph(model_graph, embedding, rnn_objs, post, n_threads)
        except Unfit:
            pass  # a head layer with no lowering: the recurrent layers stream in C, the head in numpy
        else:
            return make_stream(where, batch, n_threads, compiled=compiled,
                               step_input=step_input or Features(rnn_objs[0].layer.input_size, where),
                               pairs_from="layers")
    to_features = None if embedding is None else (lambda ids: embedding.weights[0][ids])

    def head(y):
        y = y[:, None]  # one time step: the head layers see [batch, 1, features] as in a sequence
        for obj in post:
            y = obj.call(y, None, {})[0][0]
        return np.ascontiguousarray(y[:, 0], np.float32)

    return make_stream(where, batch, n_threads, layers=[obj.layer for obj in rnn_objs], step_input=step_input,
                       pre=to_features, post=head if post else None)


def _step_graph(model_graph, embedding, rnns, post, n_threads):
    """One step of the chain as a compiled graph: the Embedding lookup, the recurrent layers (their states the
    graph's state loops, "layer{k}.h" fed back from "layer{k}.h_n", as a chain's step graph names them) and the
    per-step head; infer.Unfit when a head layer has no lowering."""
    from ...graph.build import OPSET
    from ...graph.runtime import compile_graph
    from .lower import KT, _Lowering

    low = _Lowering(model_graph)
    b = low.b
    if embedding is not None:
        ids = b.input("input", np.int64, ["batch"])
        x = b.embedding(ids, embedding.weights[0], name=embedding.name)
    else:
        x = b.input("input", np.float32, ["batch", rnns[0].layer.input_size])
    seq = low.unsqueeze(x, [0], "step")  # one time step: [1, batch, features]
    outs = []
    for k, r in enumerate(rnns):
        h0 = b.input(f"layer{k}.h", np.float32, [1, "batch", r.units])
        c0 = b.input(f"layer{k}.c", np.float32, [1, "batch", r.units]) if r.cell == "lstm" else ""
        seq, h_n, c_n = b.recurrent(seq, [r.layer], h0=h0, c0=c0, states=True, name=r.name)
        outs += [(h_n, f"layer{k}.h")] + ([(c_n, f"layer{k}.c")] if c0 else [])
    y = KT(low.node("Transpose", [seq], {"perm": [1, 0, 2]}, name="batch_major"), (None, 1, rnns[-1].units))
    for obj in post:  # the head sees [batch, 1, features], as in a sequence
        (y,) = low.layer(obj, y, {})[:1]
    b.output(low.squeeze(y.name, [1], "output"), "output")
    for value, state in outs:
        b.state_loop(b.output(value, f"{state}_n"), state)
    return compile_graph(b.graph(), OPSET, n_threads)
