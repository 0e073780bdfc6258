"""Where every stream is made (Model.stream of every format comes here): which inputs are states fed back from
which outputs, and how a step runs. The result is always an rnnfast.Stream; how it steps is chosen here:
- the direct C step of a lone stack of forward recurrent layers (stream/direct.py, graph/stream_stack.py), where
  the model is one: much faster than a run of the graph, with the same bits;
- otherwise the graph's state loops, one run of the C executor a step (graph/stream_loop.py).

The pairs come from the caller (`states={"state": "stateN"}`), else from the graph itself (the loops a .rnnf 2 file
records, or those of the step graph rnnfast made of a chain or a Keras model), else they are found by name and
shape (`find_state_pairs`); `Stream.pairs` and `Stream.pairs_from` say which were chosen and how."""
from __future__ import annotations

from ..errors import FormatError
from ..stream import Stream
from .dims import Dim
from ..stream.direct import LayerStep
from .stream_loop import LoopStep
from .stream_stack import stack_step

# How exporters name a state's next value after its input: h0 -> hn, state -> stateN, cache -> cache_out, ...
_NEXT_SUFFIXES = ("n", "_n", "out", "_out", "new", "_new", "next", "_next")
_INPUT_SUFFIXES = ("0", "_0", "in", "_in", "")


def _related(inp: str, out: str) -> bool:
    i, o = inp.lower(), out.lower()
    for in_suffix in _INPUT_SUFFIXES:
        if in_suffix and not i.endswith(in_suffix):
            continue
        stem = i[:len(i) - len(in_suffix)] if in_suffix else i
        if stem and any(o == stem + s for s in _NEXT_SUFFIXES):
            return True
        if stem and o in ("new_" + stem, "next_" + stem):
            return True
    return False


def _shapes_agree(a, b) -> bool:
    if len(a) != len(b):
        return False
    return all(x == y or isinstance(x, Dim) != isinstance(y, Dim) for x, y in zip(a, b))


def find_state_pairs(graph) -> dict:
    """{input name: output name} for the inputs whose next value an output evidently is (name and shape)."""
    pairs = {}
    for inp in graph.inputs:
        vi = graph.values[inp]
        found = [o for o in graph.outputs if o not in pairs.values() and _related(inp, o)
                 and graph.values[o].dtype == vi.dtype and _shapes_agree(vi.shape, graph.values[o].shape)]
        if len(found) == 1:
            pairs[inp] = found[0]
    return pairs


def graph_pairs(compiled, states=None):
    """({input: output}, how they were chosen): "states" given by the caller, "graph" the loops the graph records,
    "names" found by name and shape."""
    if states is not None:
        return dict(states), "states"
    recorded = getattr(compiled, "state_pairs", None) or {i: o for o, i in compiled.graph.state_loops}
    if recorded:
        return dict(recorded), "graph"
    return find_state_pairs(compiled.graph), "names"


def layer_states_only(where: str, states) -> None:
    """Refuses `states=` for a model whose states are its layers' own (a chain, a Keras or TF1 model)."""
    if states is not None:
        raise ValueError(f"{where}: states= pairs a graph's state inputs with its outputs; this model's states are "
                         f"its recurrent layers' own (layer0.h, layer0.c, ...), which the stream keeps: leave it out")


def make_stream(where: str, batch: int = 1, n_threads=None, *, compiled=None, states=None, layers=None,
                step_input=None, pre=None, post=None, pairs_from: str = "", direct: bool = True) -> Stream:
    """The stream of a model, for `batch` rows.

    compiled (graph/runtime.py CompiledGraph): the model's graph, or the step graph rnnfast made of it, stepped
    along its state pairs (`states`, else graph_pairs): directly when it is one stack of forward layers with its
    states as inputs and outputs, else by the graph's state loop. With no pairs, a graph that is one stack of
    forward layers reading its only input steps directly; anything else is refused, saying what would stream.
    layers (no graph): forward recurrent layers alone, stepped directly; pre / post: numpy around them (an
    embedding lookup, heads the step graph cannot hold).
    step_input (stream/step_input.py): what a lone step input is checked against, when the caller knows it.
    pairs_from: "layers" when the caller made the step graph with each recurrent layer's state as its loops (a
    chain's, a Keras model's): a stream of such a model says so whichever way it steps.
    direct=False: the graph's state loop even where the direct step applies (to compare the two: tests, bench)."""
    if int(batch) < 1:
        raise ValueError(f"{where}: a stream needs batch >= 1, got {batch}")
    if compiled is None:
        return Stream._of(LayerStep(layers, batch, n_threads, where, step_input, pre, post), "layers")
    graph = compiled.graph
    pairs, how = graph_pairs(compiled, states)
    how = pairs_from or how
    for i, o in pairs.items():
        if i not in graph.inputs or o not in graph.outputs:
            raise ValueError(f"{where}: state pair {i!r} -> {o!r}: the graph's inputs are {graph.inputs} and its "
                             f"outputs {graph.outputs}")
    if pairs:
        impl = stack_step(compiled, pairs, batch, n_threads, where) if direct and step_input is None else None
        return Stream._of(impl or LoopStep(compiled, batch, pairs, n_threads, where, step_input), how)
    from .stack import lone_stack

    stack = lone_stack(graph) if direct else None
    if stack is not None:
        return Stream._of(LayerStep(stack, batch, n_threads, where), "layers")
    io = f"the graph's inputs are {graph.inputs} and its outputs {graph.outputs}"
    if any(n.op == "Recurrent" for n in graph.nodes):
        raise FormatError(f"{where}: cannot stream: its recurrent layers step on their own only when X is the "
                          f"graph's only input (no initial state) and the last layer's sequence its first output; "
                          f"{io}: name each state input and the output that feeds it back, as in "
                          f"model.stream(states={{'h0': 'h_n'}})")
    raise ValueError(f"{where}: cannot stream: no output of the graph is evidently the next value of an input (a "
                     f"state), so nothing would be kept between steps; {io}: name the states, as in "
                     f"model.stream(states={{'state': 'state_out'}}), or use Model.run")
