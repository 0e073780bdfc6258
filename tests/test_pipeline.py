"""The portable Pipeline (rnnfast/pipeline.py) against the float64 reference, stage by stage."""
import numpy as np
import pytest
from conftest import assert_close, random_layer
from pipeline_builders import run_chain

from rnnfast import reference
from rnnfast.errors import FormatError
from rnnfast.graph.chain import ChainGraph
from rnnfast.pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage


def _expected(p, ids):
    """float64 walk of the same stages: Keras mask semantics from id 0 when the embedding asks for it."""
    emb, stack, head = p.stages
    x = emb.table.astype(np.float64)[ids]
    mask = (ids != 0) if emb.mask_zero else None
    for layer in stack.layers:
        y, y_h, _ = reference.run_layer(layer, x, mask=mask)
        T, B = x.shape[:2]
        x = y.transpose(0, 2, 1, 3).reshape(T, B, -1)
    if not stack.return_sequences:
        x = y_h.transpose(1, 0, 2).reshape(x.shape[1], -1)
    z = x @ head.weight.T.astype(np.float64) + head.bias
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_stack_dense_matches_reference(rng, cell, return_sequences, mask_zero):
    l1 = random_layer(rng, cell, "bidirectional", input_size=5, hidden_size=6)
    l2 = random_layer(rng, cell, "forward", input_size=12, hidden_size=7)
    p = Pipeline([EmbeddingStage(rng.standard_normal((11, 5)), mask_zero=mask_zero),
                  RecurrentStage([l1, l2], return_sequences=return_sequences),
                  DenseStage(rng.standard_normal((3, 7)), rng.standard_normal(3), "softmax")])
    ids = rng.integers(1, 11, (9, 4))
    ids[3:5, 1] = 0  # padding in the middle of a row
    ids[7:, 2] = 0
    got = run_chain(p, ids)
    assert got.shape == ((9, 4, 3) if return_sequences else (4, 3))
    assert_close(got, _expected(p, ids), what=f"{cell} pipeline")
    graph = ChainGraph.of(p)
    assert_close(graph.run({"input": ids.T.copy() if p.batch_first else ids})[0], got)


def test_batch_first_swaps_only_the_outer_axes(rng):
    layer = random_layer(rng, "gru", "forward", input_size=4, hidden_size=5)
    head = DenseStage(rng.standard_normal((2, 5)), None, "tanh")
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    time_major = run_chain(Pipeline([RecurrentStage([layer]), head]), x)
    batch_major = run_chain(Pipeline([RecurrentStage([layer]), head], batch_first=True), x.transpose(1, 0, 2))
    np.testing.assert_array_equal(batch_major, time_major.transpose(1, 0, 2))


def test_inconsistent_pipelines_are_refused(rng):
    layer = random_layer(rng, "lstm", "forward", input_size=4, hidden_size=5)
    with pytest.raises(FormatError, match="takes 6 features, gets 5"):
        Pipeline([RecurrentStage([layer]), DenseStage(np.zeros((2, 6)))])
    with pytest.raises(FormatError, match="returned no sequence"):
        Pipeline([RecurrentStage([layer], return_sequences=False),
                  RecurrentStage([random_layer(rng, "lstm", "forward", input_size=5, hidden_size=5)])])
    with pytest.raises(FormatError, match="activation 'gelu'"):
        DenseStage(np.zeros((2, 5)), activation="gelu")
    with pytest.raises(FormatError, match="at least one recurrent"):
        Pipeline([DenseStage(np.zeros((2, 5)))])


def test_bad_input_is_named(rng):
    p = Pipeline([EmbeddingStage(np.zeros((4, 3))), RecurrentStage([random_layer(rng, "rnn", input_size=3)])])
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 4\)"):
        run_chain(p, np.array([[5]]))
    with pytest.raises(ValueError, match="integer token ids"):
        run_chain(p, np.zeros((2, 1), np.float32))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_stream_steps_equal_run(rng, cell):
    """A loaded .rnnf 1 chain (ChainGraph) streams: step T times == run on the T steps, heads applied per step."""
    l1 = random_layer(rng, cell, "forward", input_size=5, hidden_size=6)
    l2 = random_layer(rng, cell, "forward", input_size=6, hidden_size=4)
    p = Pipeline([EmbeddingStage(rng.standard_normal((9, 5))), RecurrentStage([l1]), RecurrentStage([l2]),
                  DenseStage(rng.standard_normal((3, 4)), rng.standard_normal(3), "softmax")])
    ids = rng.integers(0, 9, (7, 2))
    stream = ChainGraph.of(p).stream(batch=2)
    stepped = np.stack([stream.step(ids[t]) for t in range(7)])
    np.testing.assert_array_equal(stepped, run_chain(p, ids))


def test_a_dense_stage_between_recurrent_stages_streams(rng):
    """The one-step graph holds the whole chain, so a Dense between two recurrent stages streams too."""
    layer = random_layer(rng, "gru", "forward", input_size=4, hidden_size=4)
    p = Pipeline([RecurrentStage([layer]), DenseStage(rng.standard_normal((4, 4)), None, "relu", name="mid"),
                  RecurrentStage([layer])])
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    stream = ChainGraph.of(p).stream(batch=3)
    np.testing.assert_array_equal(np.stack([stream.step(x[t]) for t in range(6)]), run_chain(p, x))
    assert sorted(stream.state) == ["layer0.h", "layer1.h"]


def test_streams_that_cannot_be_are_refused(rng):
    layer = random_layer(rng, "gru", "forward", input_size=4, hidden_size=4)
    masked = Pipeline([EmbeddingStage(np.zeros((5, 4)), mask_zero=True), RecurrentStage([layer])])
    with pytest.raises(FormatError, match="mask_zero"):
        ChainGraph.of(masked).stream()
    bidir = Pipeline([RecurrentStage([random_layer(rng, "lstm", "bidirectional", input_size=4, hidden_size=3)])])
    with pytest.raises(FormatError, match="bidirectional"):
        ChainGraph.of(bidir).stream()


@pytest.mark.parametrize("case", ["embed-mask-bi-zero-out", "embed-mask-rnn-last", "two-stacks-batch-first",
                                  "two-stacks-last"])
def test_pipelines_run_in_c_and_node_by_node_as_the_reference_does(rng, case):
    """Every chain form (masks, final-state stages, batch-first, two stacks) against the float64 reference, in the
    C executor and node by node as `rnnfast verify` runs it (cli/trace.py, one recorded engine call per stack)."""
    from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline, reference_pipeline

    from rnnfast.cli.trace import recording

    p = random_pipeline(rng, **PIPELINE_CASES[case])
    x = random_input(rng, p)
    model = ChainGraph.of(p)
    got = model.run({"input": x})[0]
    assert_close(got, reference_pipeline(p, x), what=case)
    with recording() as calls:
        traced = model.run({"input": x})[0]
    assert_close(traced, got, what=case)
    assert len(calls) >= len([s for s in p.stages if isinstance(s, RecurrentStage)])
