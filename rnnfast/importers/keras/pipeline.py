"""A Keras model as a Pipeline, when it is a chain that fits one.

Fits: one input, one output, each layer called once on the previous layer's output (a nested model that is such
a chain counts as its layers); the layers are InputLayer, Embedding (mask_zero included: the pipeline carries
the same Keras mask), SimpleRNN/LSTM/GRU (CuDNN variants too) and Bidirectional(merge_mode='concat') of
mirror-image directions, Dense or TimeDistributed(Dense) with an activation DenseStage has (an Activation layer
right after a linear Dense folds into it), and the layers that are the identity at inference (Dropout and the
noise layers). Consecutive recurrent layers with return_sequences become one RecurrentStage. go_backwards is
kept only without return_sequences (then it is a reverse-direction layer); Keras' reversed output sequence has
no pipeline form. Anything else is refused naming the layer.
"""
from __future__ import annotations

from dataclasses import replace

from ...errors import FormatError
from ...graph.to_pipeline import CHAIN
from ...pipeline import DENSE_ACTIVATIONS, DenseStage, EmbeddingStage, Pipeline, RecurrentStage
from .activations import activation_name
from .config import flat_refs
from .layers import Activation, Dense, Embedding, Identity, InputLayer
from .rnn import Bidirectional, KerasRNN


def keras_to_pipeline(model_graph) -> Pipeline:
    graph, where = model_graph.graph, model_graph.source
    spec = graph.spec
    if len(spec.inputs) != 1 or len(spec.outputs) != 1:
        raise FormatError(f"{where}: a chain has one input and one output; this model has {len(spec.inputs)} "
                          f"input(s) and {len(spec.outputs)} output(s)")
    chain = _chain(graph, where)
    stages = []
    for layer in chain:
        _add(stages, layer)
    return Pipeline(stages, batch_first=True, name=spec.name, source=where)


def _chain(graph, where) -> list:
    """The layer objects from the input to the output (nested chains flattened), refusing branches and shared
    layers."""
    spec, start = graph.spec, graph.spec.inputs[0]
    ref, chain = spec.outputs[0], []
    while ref != start:
        layer = graph.layers[ref.layer]
        lspec = graph.specs.get(ref.layer)
        why = None
        if lspec is None:
            why = "not a layer of this model"
        elif len(lspec.nodes) != 1:
            why = f"called {len(lspec.nodes)} times (shared layer)"
        elif ref.tensor != 0:
            why = f"its output #{ref.tensor} is used (only output 0 fits a chain)"
        if why is None:
            node = lspec.nodes[0]
            args, kwargs = flat_refs(node.args), flat_refs(node.kwargs)
            if len(args) != 1 or kwargs:
                why = f"takes {len(args) + len(kwargs)} tensors (a chain is made of one-input layers)"
        if why is not None:
            raise FormatError(f"{where}: layer {ref.layer!r} does not fit {CHAIN}: {why}")
        if lspec.model is not None:  # a nested model that is itself a chain is its layers, in place
            inner = layer.graph.spec
            if len(inner.inputs) != 1 or len(inner.outputs) != 1:
                raise FormatError(f"{where}: nested model {ref.layer!r} does not fit a chain: it has "
                                  f"{len(inner.inputs)} input(s) and {len(inner.outputs)} output(s)")
            chain.extend(_chain(layer.graph, where)[::-1])
        else:
            chain.append(layer)
        ref = args[0]
    return chain[::-1]


def _add(stages, layer):
    where = layer.where
    if isinstance(layer, (InputLayer, Identity)):
        return
    if isinstance(layer, Embedding):
        if stages:
            raise FormatError(f"{where}: an embedding fits a chain only as its first layer")
        stages.append(EmbeddingStage(layer.weights[0], mask_zero=layer.mask_zero, name=layer.name))
        return
    inner = getattr(layer, "inner", None)
    if layer.cls == "TimeDistributed" and isinstance(inner, Dense):
        layer = inner
    if isinstance(layer, Dense):
        act = activation_name(layer.config.get("activation"), where)
        if act not in DENSE_ACTIVATIONS:
            raise FormatError(f"{where}: activation {act!r} does not fit a chain of layers, whose Dense layers "
                              f"take {', '.join(DENSE_ACTIVATIONS)}")
        stages.append(DenseStage(layer.weights[0].T, layer.weights[1] if layer.use_bias else None, act,
                                 name=layer.name))
        return
    if isinstance(layer, Activation):
        act = activation_name(layer.config.get("activation"), where)
        last = stages[-1] if stages else None
        if not isinstance(last, DenseStage) or last.activation != "linear" or act not in DENSE_ACTIVATIONS:
            raise FormatError(f"{where}: an Activation layer fits a chain only right after a linear Dense, "
                              f"with one of {DENSE_ACTIVATIONS}")
        last.activation = act
        return
    if isinstance(layer, (KerasRNN, Bidirectional)):
        _add_recurrent(stages, layer)
        return
    raise FormatError(f"{where}: {layer.cls} layers do not fit a chain (supported: InputLayer, Embedding, "
                      f"SimpleRNN/LSTM/GRU, Bidirectional(concat), Dense, TimeDistributed(Dense), Activation after "
                      f"Dense, Dropout and noise layers)")


def _add_recurrent(stages, layer):
    where = layer.where
    if layer.stateful:
        raise FormatError(f"{where}: stateful layers keep state between calls, which a chain does not")
    if layer.return_state:
        raise FormatError(f"{where}: return_state gives several outputs; a chain has one")
    if isinstance(layer, Bidirectional):
        if layer.merge_mode != "concat":
            raise FormatError(f"{where}: merge_mode={layer.merge_mode!r}; a chain concatenates directions "
                              f"(merge_mode='concat')")
        if layer.fused is None:
            raise FormatError(f"{where}: the backward layer is not the forward layer's mirror image (different "
                              f"size, activations or go_backwards), so the directions do not form one layer")
        rec, zero_output = layer.fused, layer.return_sequences
    else:
        rec, zero_output = layer.layer, layer.zero_output_for_mask
        if zero_output and not layer.return_sequences and _masked(stages):
            raise FormatError(f"{where}: zero_output_for_mask without return_sequences returns zeros for a row whose "
                              f"last step is masked; a chain returns the final state")
        if layer.go_backwards:
            if layer.return_sequences:
                raise FormatError(f"{where}: go_backwards with return_sequences returns the outputs last step "
                                  f"first, which a chain's layers do not")
            rec = _reversed(rec)
    last = stages[-1] if stages else None
    if isinstance(last, RecurrentStage) and last.return_sequences:
        stages[-1] = RecurrentStage(last.layers + [rec], layer.return_sequences, zero_output, name=last.name)
    else:
        stages.append(RecurrentStage([rec], layer.return_sequences, zero_output, name=layer.name))


def _masked(stages) -> bool:
    """Does a Keras mask reach the next layer? (An RNN without return_sequences ends it.)"""
    return (bool(stages) and isinstance(stages[0], EmbeddingStage) and stages[0].mask_zero
            and all(s.return_sequences for s in stages if isinstance(s, RecurrentStage)))


def _reversed(layer):
    """go_backwards without return_sequences: the final state of a run from the last step to the first, which is
    what a reverse-direction layer gives (masked steps are skipped either way)."""
    return replace(layer, direction="reverse")
