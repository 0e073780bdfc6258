"""Random Pipelines covering every cell and option, for the .rnnf round-trip, corruption and C-library tests.

    random_pipeline(rng, cell, direction="forward", n_layers=1, embedding=None|"plain"|"mask_zero",
                    head="softmax"|None|..., return_sequences=True, batch_first=False, **layer options)
    random_input(rng, pipeline, seq_len, batch)   -> ids or floats in the pipeline's own layout
    PIPELINE_CASES: named keyword sets for random_pipeline that together use every option
    reference_pipeline(pipeline, x, time_major=False) -> the float64 outputs (rnnfast/reference.py per layer)
    run_chain(pipeline, x)                        -> what the chain's model gives (graph/chain.py, the C executor)
"""
import numpy as np
from conftest import random_layer

from rnnfast import reference
from rnnfast.reference import dense_activation
from rnnfast.layers import Activation
from rnnfast.pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage

VOCAB = 13


def _acts(rng, cell, n_dirs):
    """Activations with non-default alpha/beta, one tuple per direction."""
    choices = {"rnn": [("Tanh",), ("Relu",), ("ScaledTanh",)],
               "gru": [("Sigmoid", "Tanh"), ("HardSigmoid", "Softsign"), ("Sigmoid", "LeakyRelu")],
               "lstm": [("Sigmoid", "Tanh", "Tanh"), ("HardSigmoid", "Tanh", "Softsign"),
                        ("Sigmoid", "Elu", "ScaledTanh")]}[cell]
    out = []
    for _ in range(n_dirs):
        names = choices[rng.integers(len(choices))]
        out.append(tuple(Activation(n, float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9)))
                         if n in ("HardSigmoid", "ScaledTanh", "LeakyRelu", "Elu") else Activation(n)
                         for n in names))
    return tuple(out)


def random_pipeline(rng, cell, direction="forward", n_layers=1, embedding=None, head="softmax",
                    return_sequences=True, batch_first=False, mask_zero_output=False, custom_acts=False,
                    two_stacks=False, **options):
    width = 5
    stages = []
    if embedding:
        stages.append(EmbeddingStage(rng.standard_normal((VOCAB, width)), mask_zero=embedding == "mask_zero",
                                     name="embed"))

    def stack(width, name, return_sequences):
        layers = []
        for k in range(n_layers):
            n_dirs = 2 if direction == "bidirectional" else 1
            acts = _acts(rng, cell, n_dirs) if custom_acts else options.get("activations")
            layer = random_layer(rng, cell, direction, input_size=width, hidden_size=int(rng.integers(3, 9)),
                                 name=f"{name}.{k}", **{**options, "activations": acts})
            layers.append(layer)
            width = layer.n_dirs * layer.output_size
        return RecurrentStage(layers, return_sequences=return_sequences, mask_zero_output=mask_zero_output,
                              name=name), width

    if two_stacks:
        s, width = stack(width, "rnn_a", True)
        stages.append(s)
        stages.append(DenseStage(rng.standard_normal((6, width)), rng.standard_normal(6), "tanh", name="mid"))
        width = 6
    s, width = stack(width, "rnn_b", return_sequences)
    stages.append(s)
    if head:
        bias = None if head == "relu" else rng.standard_normal(3)
        stages.append(DenseStage(rng.standard_normal((3, width)), bias, head, name="head"))
    return Pipeline(stages, batch_first=batch_first, name=f"{cell}-{direction}")


def random_input(rng, p, seq_len=7, batch=3):
    if p.takes_ids:
        ids = rng.integers(1, VOCAB, (seq_len, batch))
        ids[2:4, 0] = 0  # masked steps in the middle and at the end of rows
        ids[seq_len - 2:, batch - 1] = 0
        return ids.T.copy() if p.batch_first else ids
    x = rng.standard_normal((seq_len, batch, p.input_size)).astype(np.float32)
    return x.transpose(1, 0, 2).copy() if p.batch_first else x


PIPELINE_CASES = {
    "rnn": dict(cell="rnn"),
    "rnn-relu-clip-reverse": dict(cell="rnn", direction="reverse", activations="Relu", clip=0.7),
    "rnn-custom-acts-bi": dict(cell="rnn", direction="bidirectional", custom_acts=True, head="linear"),
    "gru": dict(cell="gru", n_layers=2),
    "gru-lbr-bi": dict(cell="gru", direction="bidirectional", linear_before_reset=True, head="sigmoid"),
    "gru-acts-clip": dict(cell="gru", custom_acts=True, clip=1.5, head="relu"),
    "lstm": dict(cell="lstm", n_layers=3, head=None),
    "lstm-peep-forget": dict(cell="lstm", peepholes=True, input_forget=True, head="tanh"),
    "lstm-proj-bi": dict(cell="lstm", direction="bidirectional", proj_size=2, n_layers=2),
    "lstm-proj-peep-clip-acts": dict(cell="lstm", proj_size=3, peepholes=True, clip=2.0, custom_acts=True),
    "lstm-nobias-reverse": dict(cell="lstm", direction="reverse", bias=False),
    "embed-lstm-last": dict(cell="lstm", embedding="plain", return_sequences=False),
    "embed-mask-gru": dict(cell="gru", embedding="mask_zero", n_layers=2),
    "embed-mask-bi-zero-out": dict(cell="lstm", direction="bidirectional", embedding="mask_zero",
                                   mask_zero_output=True),
    "embed-mask-rnn-last": dict(cell="rnn", embedding="mask_zero", return_sequences=False, head="sigmoid"),
    "two-stacks-batch-first": dict(cell="gru", two_stacks=True, batch_first=True, embedding="mask_zero"),
    "two-stacks-last": dict(cell="lstm", two_stacks=True, return_sequences=False, proj_size=2),
}


def reference_pipeline(p: Pipeline, x, time_major=False):
    """The chain's walk with every stage in float64. x is in the pipeline's own layout (batch-first when
    p.batch_first), or time-major whatever p says with time_major=True; the output is in the same layout."""
    x, mask = np.asarray(x), None
    swap = p.batch_first and not time_major
    if swap:
        x = np.swapaxes(x, 0, 1)
    for s in p.stages:
        if isinstance(s, EmbeddingStage):
            mask = (x != 0) if s.mask_zero else None
            x = s.table.astype(np.float64)[x]
        elif isinstance(s, RecurrentStage):
            T, B = x.shape[:2]
            for layer in s.layers:
                y, y_h, _ = reference.run_layer(layer, x, mask=mask, mask_zero_output=s.mask_zero_output)
                x = y.transpose(0, 2, 1, 3).reshape(T, B, -1)
            if not s.return_sequences:
                x, mask = y_h.transpose(1, 0, 2).reshape(B, -1), None
        else:
            x = dense_activation(s.activation, x @ s.weight.T.astype(np.float64) +
                                 (0.0 if s.bias is None else s.bias.astype(np.float64)))
    if swap and x.ndim == 3:
        x = np.swapaxes(x, 0, 1)
    return x


def run_chain(p, x):
    """What the model of chain p (as a .rnnf 1 file of it loads) gives for x, in p's own layout."""
    from rnnfast.graph.chain import ChainGraph

    return ChainGraph.of(p).run({"input": x})[0]
