"""The .rnnf format (docs/format.md): Python round trip of every cell and option bit for bit, rnnfast.load,
layout rules (alignment, sizes), and the .npz / .safetensors writers of a chain as a graph."""
import io
import json

import numpy as np
import pytest
from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline, run_chain

import rnnfast
from rnnfast import engine, rnnf_spec as spec
from rnnfast.exporters.npz import save_npz
from rnnfast.exporters.rnnf import save_rnnf, to_bytes
from rnnfast.exporters.safetensors import save_safetensors
from rnnfast.importers._safetensors import read_safetensors
from rnnfast.importers.rnnf import load_rnnf
from rnnfast.graph.chain import ChainGraph
from rnnfast.pipeline import RecurrentStage


def _layer_fields(layer):
    return (layer.cell, layer.direction, layer.hidden_size, layer.input_size, layer.activations, layer.clip,
            layer.input_forget, layer.linear_before_reset, layer.proj_size, layer.name)


def assert_same_pipeline(a, b):
    assert (a.batch_first, a.name, len(a.stages)) == (b.batch_first, b.name, len(b.stages))
    for sa, sb in zip(a.stages, b.stages):
        assert type(sa) is type(sb) and sa.name == sb.name
        if isinstance(sa, RecurrentStage):
            assert (sa.return_sequences, sa.mask_zero_output) == (sb.return_sequences, sb.mask_zero_output)
            for la, lb in zip(sa.layers, sb.layers, strict=True):
                assert _layer_fields(la) == _layer_fields(lb)
                for key in ("w_ih", "w_hh", "b_ih", "b_hh", "peepholes", "w_hr"):
                    va, vb = getattr(la, key), getattr(lb, key)
                    assert (va is None) == (vb is None), key
                    if va is not None:
                        np.testing.assert_array_equal(va, vb)
        else:
            for key in ("table", "weight", "bias", "mask_zero", "activation"):
                va, vb = getattr(sa, key, None), getattr(sb, key, None)
                if isinstance(va, np.ndarray):
                    np.testing.assert_array_equal(va, vb)
                else:
                    assert va == vb, key


@pytest.mark.parametrize("case", sorted(PIPELINE_CASES))
def test_round_trip_runs_bit_for_bit(rng, case, tmp_path):
    p = random_pipeline(rng, **PIPELINE_CASES[case])
    path = tmp_path / "m.rnnf"
    save_rnnf(p, path)
    back = load_rnnf(path.read_bytes(), str(path))
    assert_same_pipeline(p, back)
    x = random_input(rng, p)
    expected = run_chain(p, x)
    np.testing.assert_array_equal(run_chain(back, x), expected)
    model = rnnfast.load(path)
    assert isinstance(model.graph, ChainGraph)
    np.testing.assert_array_equal(model.run(x)[0], expected)


def test_random_pipelines_round_trip(rng):
    cases = list(PIPELINE_CASES.values())
    for _ in range(12):
        kw = dict(cases[rng.integers(len(cases))])
        kw["batch_first"] = bool(rng.integers(2))
        p = random_pipeline(rng, **kw)
        back = load_rnnf(to_bytes(p))
        assert_same_pipeline(p, back)
        x = random_input(rng, p, seq_len=int(rng.integers(1, 6)), batch=int(rng.integers(1, 4)))
        np.testing.assert_array_equal(run_chain(back, x), run_chain(p, x))


def test_layout_is_aligned_and_exact(rng):
    p = random_pipeline(rng, **PIPELINE_CASES["lstm-proj-peep-clip-acts"])
    data = to_bytes(p)
    header = spec.HEADER.unpack(data[:64])
    assert header[0] == b"RNNF" and header[1:3] == (1, 0) and header[5] == len(data)
    n_stages, n_layers, n_blobs = header[7:10]
    blobs_at = header[6] + 32 * n_stages + 208 * n_layers
    offsets = [spec.BLOB.unpack_from(data, blobs_at + 48 * i)[0] for i in range(n_blobs)]
    assert all(o % 64 == 0 for o in offsets)
    # peepholes, w_hr and the head's bias are stored: w_ih w_hh b_ih b_hh peep w_hr + weight bias
    assert n_blobs == 8
    head = p.stages[-1]
    at = offsets[-2]
    np.testing.assert_array_equal(np.frombuffer(data, "<f4", head.weight.size, at).reshape(head.weight.shape),
                                  head.weight)


def test_enum_codes_match_the_c_library():
    assert {name: i for i, name in enumerate(spec.ACTIVATIONS)} == engine.ACTIVATION_CODES
    assert {name: i for i, name in enumerate(spec.CELLS)} == engine.CELL_CODES


def test_file_objects_and_bytes_load(rng):
    p = random_pipeline(rng, **PIPELINE_CASES["embed-mask-gru"])
    buf = io.BytesIO()
    save_rnnf(p, buf)
    model = rnnfast.load(buf.getvalue())
    assert model.input_names == ["input"] and model.outputs[0].shape == ["seq_len", "batch", 3]
    assert "GRU" in model.describe()


@pytest.mark.parametrize("save", [save_npz, save_safetensors])
def test_a_pipeline_as_a_graph_in_npz_and_safetensors_runs_bit_for_bit(rng, tmp_path, save):
    from rnnfast.model import Model

    for case in ("two-stacks-last", "embed-mask-bi-zero-out"):
        p = random_pipeline(rng, **PIPELINE_CASES[case])
        save(Model(ChainGraph.of(p), source="memory"), tmp_path / "w")
        x = random_input(rng, p)
        np.testing.assert_array_equal(rnnfast.load(tmp_path / "w").run(x)[0], run_chain(p, x))


def test_npz_and_safetensors_name_the_layer_weights(rng, tmp_path):
    from rnnfast.model import Model

    p = random_pipeline(rng, **PIPELINE_CASES["two-stacks-last"])
    save_npz(Model(ChainGraph.of(p)), tmp_path / "w.npz")
    save_safetensors(Model(ChainGraph.of(p)), tmp_path / "w.safetensors")
    lstm = p.stages[0].layers[0]
    tensors, meta = read_safetensors((tmp_path / "w.safetensors").read_bytes(), "w.safetensors", as_stored=True)
    with np.load(tmp_path / "w.npz") as z:
        assert sorted(z.files) == sorted([*tensors, "__rnnfast_graph__"])
        assert json.loads(z["__rnnfast_graph__"].item()) == json.loads(meta["rnnfast.graph"])
        (w_hr,) = [k for k in z.files if k.endswith(f"{lstm.name}.w_hr")]
        np.testing.assert_array_equal(z[w_hr], lstm.w_hr)
    np.testing.assert_array_equal(tensors[w_hr], lstm.w_hr)


def test_every_activation_kind_round_trips(rng):
    from conftest import random_layer

    from rnnfast.layers import Activation
    from rnnfast.pipeline import Pipeline

    layers, width = [], 3
    for i in range(0, len(spec.ACTIVATIONS), 2):
        names = (spec.ACTIVATIONS[i], spec.ACTIVATIONS[min(i + 1, len(spec.ACTIVATIONS) - 1)])
        acts = tuple((Activation(n, float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.1, 0.5))),) for n in names)
        layers.append(random_layer(rng, "rnn", "bidirectional", input_size=width, hidden_size=4, activations=acts))
        width = 8
    p = Pipeline([RecurrentStage(layers)])
    back = load_rnnf(to_bytes(p))
    assert_same_pipeline(p, back)
    assert {a.name for l in back.stages[0].layers for acts in l.activations for a in acts} == set(spec.ACTIVATIONS)
    x = 0.3 * rng.standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(run_chain(back, x), run_chain(p, x))


def test_a_memory_mapped_file_loads_in_place(rng, tmp_path):
    import mmap

    p = random_pipeline(rng, **PIPELINE_CASES["gru-lbr-bi"])
    save_rnnf(p, tmp_path / "m.rnnf")
    with open(tmp_path / "m.rnnf", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        back = load_rnnf(m, "m.rnnf")
    x = random_input(rng, p)
    np.testing.assert_array_equal(run_chain(back, x), run_chain(p, x))  # weights were copied out of the map


def test_activation_codes_are_the_c_librarys():
    """The one Python table of activation codes (rnnf_spec: .rnnf files, the engine's layer descriptions) must be the
    C library's rnnf_act_kind, code by code (api.c names each kind; a compile-time check covers its count), and cover
    what a recurrent layer accepts."""
    from rnnfast import _core, engine, layers, rnnf_spec

    assert _core.activation_names() == list(rnnf_spec.ACTIVATIONS)
    assert engine.ACTIVATION_CODES == {name: _core.activation_names().index(name) for name in rnnf_spec.ACTIVATIONS}
    assert set(rnnf_spec.ACTIVATIONS) == set(layers.ACTIVATION_PARAMS)
