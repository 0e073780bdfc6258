"""A Keras model run by the C graph executor: the lowered graph (lower.py) compiled once, one C call per run.

The model holds what the graph leaves to it: the states of stateful layers (fed as graph inputs, read back from
the paired outputs after each run, zeroed by reset_states) and the check that token ids an Embedding reads lie in
its vocabulary (the graph's Gather would read a negative id from the end of the table)."""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from ...graph.infer import Unfit
from .lower import lower_keras


# What a lowering raises at a form it does not expect (a FormatError, though a ValueError, is the file's fault and
# goes to the user as it is)
UNEXPECTED = (ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError)


def compile_keras(model_graph):
    """(CompiledKeras, None), or (None, why) when a layer has no lowering or the C executor cannot take the graph."""
    from ...graph.build import OPSET
    from ...graph.runtime import compile_graph

    try:
        lowered = lower_keras(model_graph)
        compiled = compile_graph(lowered.builder.graph(), OPSET)
    except Unfit as e:
        return None, str(e)
    except FormatError:
        raise
    except UNEXPECTED as e:
        # a form the lowering does not expect: the numpy path loads the model and names what is wrong, if anything
        return None, (f"{model_graph.source}: rnnfast could not translate the model for the C executor "
                      f"({type(e).__name__}: {e})")
    return CompiledKeras(compiled, lowered, model_graph.source), None


def analysed_keras(model_graph):
    """The model's analysed graph IR without the C executor's lowering (for a model the executor does not run, or
    told to run layer by layer), or FormatError naming the layer that has no IR form."""
    from ...graph.analysis import analyse
    from ...graph.build import OPSET
    from ...graph.to_pipeline import refuse_unfit

    try:
        graph = lower_keras(model_graph).builder.graph()
        analyse(graph, OPSET)
    except Unfit as e:
        refuse_unfit(model_graph.source, str(e))
    except FormatError:
        raise
    except UNEXPECTED as e:
        refuse_unfit(model_graph.source, model_graph.unfit_reason or f"{type(e).__name__}: {e}")
    return graph


class CompiledKeras:
    def __init__(self, compiled, lowered, where):
        self.compiled, self.where = compiled, where
        self.states = lowered.states          # (input, output, [n_dirs, units], layer where)
        self.id_inputs = lowered.id_inputs    # graph input -> [(vocabulary size, Embedding where)]
        self.n_user_inputs = len(compiled.input_names) - len(self.states)
        self.n_user_outputs = len(compiled.output_names) - len(self.states)
        self.held = None                      # the states' arrays, after a run of a stateful model

    @property
    def graph(self):
        return self.compiled.graph

    def quantized(self, weight_dtype: str) -> "CompiledKeras":
        """The same model, its recurrent stacks' weights stored in weight_dtype (CompiledGraph.quantized)."""
        import copy

        new = copy.copy(self)
        new.compiled, new.held = self.compiled.quantized(weight_dtype), None
        return new

    def run(self, xs: list) -> list:
        from ...engine import _CALL_THREADS

        for name, x in zip(self.compiled.input_names, xs):
            for vocab, where in self.id_inputs.get(name, ()):
                if x.size and (x.min() < 0 or x.max() >= vocab):
                    raise ValueError(f"{where}: token ids must lie in [0, {vocab}), got {x.min()}..{x.max()}")
        feeds = list(xs)
        if self.states:
            feeds += self._state_feeds(xs[0].shape[0])
        outs = self.compiled.run(feeds, _CALL_THREADS.get())
        if self.states:
            self.held = outs[self.n_user_outputs:]
        return outs[:self.n_user_outputs]

    def _state_feeds(self, batch) -> list:
        if self.held is None:
            return [np.zeros([d, batch, h], np.float32) for _, _, (d, h), _ in self.states]
        for (_, _, _, where), arr in zip(self.states, self.held):
            if arr.shape[1] != batch:
                raise ValueError(f"{where}: stateful layer holds state for batch {arr.shape[1]}, got batch {batch}; "
                                 f"call reset_states() first")
        return self.held

    def reset_states(self):
        self.held = None

    def describe(self) -> str:
        return self.compiled.describe()
