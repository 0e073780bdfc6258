"""Keras files made by tools/make_keras_fixtures.py with real Keras 3, tf-keras and (for Keras 1/2.1/CuDNN files)
tf-keras' own legacy loader: rnnfast's run must give what model.predict gave."""
import glob
import json
import os

import numpy as np
import pytest
from conftest import assert_close

import rnnfast

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")
# numpy warnings mean a computation Keras does not do (fully masked rows give Keras' NaN without one)
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

CASES = [c for path in sorted(glob.glob(os.path.join(DATA, "manifest_*.json"))) for c in json.load(open(path))]


def _load(case):
    options = {"config": os.path.join(DATA, case["config"])} if case.get("config") else {}
    return rnnfast.load(os.path.join(DATA, case["file"]), **options)


def _arrays(npz, prefix, letter):
    out, i = [], 0
    while f"{prefix}{letter}{i}" in npz:
        out.append(npz[f"{prefix}{letter}{i}"])
        i += 1
    return out


def test_fixtures_present():
    generations = {c["generation"] for c in CASES}
    assert {"keras3", "tfkeras", "legacy"} <= generations, generations


# Cases with a layer the graph IR cannot express yet: they keep the numpy layer path, which names the layer
# (none today; tests/test_keras_graph.py makes one).
LAYER_PATH_ONLY = {}


def _layer_path_only(case):
    return next((why for key, why in LAYER_PATH_ONLY.items() if key in case["name"]), None)


@pytest.mark.parametrize("path", ["graph", "layers"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] + "-" + c["generation"] for c in CASES])
def test_matches_keras_predict(case, path):
    model = _load(case)
    why = _layer_path_only(case)
    if path == "graph":
        if why is None:  # the whole model runs in one C call
            assert model.graph.compiled is not None, model.graph.unfit_reason
        else:
            assert model.graph.compiled is None and why in model.graph.unfit_reason, model.graph.unfit_reason
    else:
        model.graph.use_layer_path()
    npz = np.load(os.path.join(DATA, case["npz"]))
    chunks = case.get("chunks")
    calls = range(chunks) if chunks else [None]
    for k in calls:
        prefix = "" if k is None else f"c{k}_"
        if k is not None and k in case.get("reset_before", []):
            model.reset_states()
        xs, ys = _arrays(npz, prefix, "x"), _arrays(npz, prefix, "y")
        got = model.run(xs if len(xs) > 1 else xs[0])
        assert len(got) == len(ys), f"{case['name']}: {len(got)} outputs, Keras gave {len(ys)}"
        for j, (g, e) in enumerate(zip(got, ys)):
            assert_close(g, e, what=f"{case['name']} output {j} ({model.output_names[j]}) call {k}")
    text = model.describe()
    for needle in case.get("describe", []):
        assert needle in text, f"{case['name']}: describe() lacks {needle!r}:\n{text}"
