"""Damaged Keras files, made at test time from the committed fixtures: each must raise rnnfast.FormatError naming
the layer (name and class), the option or the dataset path at fault; never another exception, never a silent
fallback."""
import io
import json
import os
import shutil
import zipfile

import h5py
import numpy as np
import pytest

import rnnfast
from conftest import assert_close

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")
H5 = ["tf2_seed_char_lstm.h5", "k3_seed_char_lstm.h5"]  # tf.keras 2.x and Keras 3 legacy layout
KERAS = "k3_seed_char_lstm.keras"


def _copy(tmp_path, name):
    dst = tmp_path / name
    shutil.copy(os.path.join(DATA, name), dst)
    return str(dst)


def _layer(cfg, name):
    body = cfg["config"]
    for layer in body["layers"] if isinstance(body, dict) else body:  # Keras <= 2.2 Sequential: a bare list
        if layer["config"].get("name") == name or layer.get("name") == name:
            return layer
    raise AssertionError(f"no layer {name} in the fixture")


def _edit_h5_config(tmp_path, name, edit):
    path = _copy(tmp_path, name)
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        edit(cfg)
        f.attrs["model_config"] = json.dumps(cfg)
    return path


def _edit_keras(tmp_path, edit_config=None, edit_weights=None, name=KERAS):
    with zipfile.ZipFile(os.path.join(DATA, name)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    if edit_config is not None:
        cfg = json.loads(files["config.json"])
        edit_config(cfg)
        files["config.json"] = json.dumps(cfg).encode()
    if edit_weights is not None:
        buf = io.BytesIO(files["model.weights.h5"])
        with h5py.File(buf, "r+") as f:
            edit_weights(f)
        files["model.weights.h5"] = buf.getvalue()
    path = tmp_path / ("edited_" + name)
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    return str(path)


def _fails(path, *needles, **options):
    with pytest.raises(rnnfast.FormatError) as e:
        rnnfast.load(path, **options)
    text = str(e.value)
    for needle in needles:
        assert needle in text, f"{needle!r} not in the message: {text}"
    return text


# config damage ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", H5)
def test_unknown_layer_class(tmp_path, name):
    def edit(cfg):
        _layer(cfg, "lstm")["class_name"] = "PeepholeLSTM"
    _fails(_edit_h5_config(tmp_path, name, edit), "'lstm'", "PeepholeLSTM", "not supported")


def test_unknown_layer_class_keras(tmp_path):
    def edit(cfg):
        _layer(cfg, "lstm")["class_name"] = "PeepholeLSTM"
    _fails(_edit_keras(tmp_path, edit), "'lstm'", "PeepholeLSTM", "not supported")


@pytest.mark.parametrize("name", H5)
def test_lambda_refused_by_name(tmp_path, name):
    def edit(cfg):
        dense = [layer for layer in cfg["config"]["layers"] if layer["class_name"] == "Dense"][0]
        dense["class_name"] = "Lambda"
        dense["config"] = {"name": dense["config"]["name"], "function": ["4wEAAAAAAAAA", None, None],
                           "function_type": "lambda", "trainable": True}
    text = _fails(_edit_h5_config(tmp_path, name, edit), "(Lambda)", "Python code")
    assert "dense" in text


def test_lambda_inside_time_distributed_refused(tmp_path):
    def edit(cfg):
        td = [layer for layer in cfg["config"]["layers"] if layer["class_name"] == "TimeDistributed"][0]
        td["config"]["layer"] = {"class_name": "Lambda", "config": {"name": "inner_fn", "function": "x"}}
    _fails(_edit_h5_config(tmp_path, "tf2_seed_encoder_decoder.h5", edit), "inner_fn", "Lambda")


OPTION_EDITS = [
    # (fixture, layer, option, bad value, words the message must hold)
    ("tf2_seed_char_lstm.h5", "lstm", "activation", "crazy", ["'crazy'", "activation"]),
    ("tf2_seed_char_lstm.h5", "lstm", "recurrent_activation", "softmax", ["'softmax'", "recurrent_activation"]),
    ("tf2_seed_char_lstm.h5", "lstm", "time_major", True, ["time_major"]),
    ("tf2_seed_char_lstm.h5", "lstm", "units", "sixteen", ["units", "'sixteen'"]),
    ("tf2_seed_char_lstm.h5", "lstm", "units", None, ["units"]),
    ("tf2_seed_char_lstm.h5", "lstm", "unroll", "sometimes", ["unroll"]),
    ("k3_seed_char_lstm.h5", "lstm", "activation", {"x": 1}, ["activation", "{'x': 1}"]),
    ("tf2_seed_bidirectional.h5", "bidirectional", "merge_mode", "max", ["merge_mode", "'max'"]),
    ("tf2_seed_mnist_simplernn.h5", "simple_rnn", "activation", "hard_tanh", ["'hard_tanh'"]),
    ("tf2_seed_mnist_simplernn.h5", "dense", "activation", "nope", ["'nope'", "activation"]),
    ("tf2_seed_mnist_simplernn.h5", "dense", "units", -3, ["units"]),
    ("tf2_seed_imdb_embedding_simplernn.h5", "embedding", "output_dim", "eight", ["output_dim"]),
    ("tf2_seed_encoder_decoder.h5", "repeat_vector", "n", "five", ["'five'", "n"]),
    ("tf2_gru_reset_after_True.h5", "gru_3", "reset_after", False, ["reset_after", "bias"]),
    ("keras2_sequential_chunked.h5", "masking_1", "mask_value", "zero", ["'zero'"]),
    ("tf2_functional_mix.h5", "layer_normalization", "epsilon", [1], ["config"]),
]


@pytest.mark.parametrize("fixture,layer,option,value,words", OPTION_EDITS,
                         ids=[f"{e[0]}-{e[2]}={e[3]}" for e in OPTION_EDITS])
def test_unsupported_option_value(tmp_path, fixture, layer, option, value, words):
    def edit(cfg):
        cfg_layer = _layer(cfg, layer)
        if value is None:
            cfg_layer["config"].pop(option)
        else:
            cfg_layer["config"][option] = value
    text = _fails(_edit_h5_config(tmp_path, fixture, edit), f"'{layer}'", *words)
    cls = _layer(json.loads(h5py.File(os.path.join(DATA, fixture)).attrs["model_config"]), layer)["class_name"]
    assert f"({cls})" in text, text


# weight damage ------------------------------------------------------------------------------------------------

def _legacy_weight_paths(f, layer):
    g = f["model_weights"][layer]
    return g, [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]


@pytest.mark.parametrize("name", H5)
def test_missing_dataset(tmp_path, name):
    path = _copy(tmp_path, name)
    with h5py.File(path, "r+") as f:
        g, names = _legacy_weight_paths(f, "lstm")
        del g[names[2]]
        gone = g.name + "/" + names[2]
    _fails(path, "'lstm' (LSTM)", gone)


@pytest.mark.parametrize("name", H5)
def test_missing_weight(tmp_path, name):
    path = _copy(tmp_path, name)
    with h5py.File(path, "r+") as f:
        g, names = _legacy_weight_paths(f, "lstm")
        g.attrs["weight_names"] = np.array([n.encode() for n in names[:2]])
    _fails(path, "'lstm' (LSTM)", "/model_weights/lstm", "2 weight(s)", "needs 3")


@pytest.mark.parametrize("name", H5)
def test_missing_layer_group(tmp_path, name):
    path = _copy(tmp_path, name)
    with h5py.File(path, "r+") as f:
        del f["model_weights/lstm"]
    _fails(path, "'lstm' (LSTM)", "/model_weights")


@pytest.mark.parametrize("name", H5)
def test_extra_weight(tmp_path, name):
    path = _copy(tmp_path, name)
    with h5py.File(path, "r+") as f:
        g, names = _legacy_weight_paths(f, "lstm")
        g.create_dataset("lstm/lstm_cell/peephole:0", data=np.zeros(16, np.float32))
        g.attrs["weight_names"] = np.array([n.encode() for n in names + ["lstm/lstm_cell/peephole:0"]])
    _fails(path, "'lstm' (LSTM)", "/model_weights/lstm", "4 weight(s)", "needs 3")


@pytest.mark.parametrize("name", H5)
def test_extra_layer_in_file(tmp_path, name):
    path = _copy(tmp_path, name)
    with h5py.File(path, "r+") as f:
        mw = f["model_weights"]
        g = mw.create_group("ghost")
        g.create_dataset("ghost/kernel:0", data=np.zeros((3, 3), np.float32))
        g.attrs["weight_names"] = np.array([b"ghost/kernel:0"])
        names = [n if isinstance(n, bytes) else n.encode() for n in mw.attrs["layer_names"]]
        mw.attrs["layer_names"] = np.array(names + [b"ghost"])
    _fails(path, "ghost", "/model_weights")


@pytest.mark.parametrize("name", H5)
@pytest.mark.parametrize("which,shape,words", [
    (1, (16, 60), ["recurrent_kernel", "(16, 60)"]),
    (0, (21, 64), ["21", "(1, 10, 20)"]),
    (0, (20, 60), ["kernel", "(20, 60)"]),
    (2, (63,), ["bias", "(63,)"]),
])
def test_weight_shape_does_not_match_config(tmp_path, name, which, shape, words):
    path = _copy(tmp_path, name)
    with h5py.File(path, "r+") as f:
        g, names = _legacy_weight_paths(f, "lstm")
        del g[names[which]]
        g.create_dataset(names[which], data=np.zeros(shape, np.float32))
    _fails(path, "'lstm' (LSTM)", *words)


def test_units_do_not_match_weights(tmp_path):
    def edit(cfg):
        _layer(cfg, "lstm")["config"]["units"] = 8
    _fails(_edit_h5_config(tmp_path, "tf2_seed_char_lstm.h5", edit), "'lstm' (LSTM)", "units=8")


def test_dense_input_does_not_match_previous_layer(tmp_path):
    path = _copy(tmp_path, "tf2_seed_char_lstm.h5")
    with h5py.File(path, "r+") as f:
        g, names = _legacy_weight_paths(f, "dense_2")
        kernel = [n for n in names if "kernel" in n][0]
        del g[kernel]
        g.create_dataset(kernel, data=np.zeros((12, 20), np.float32))
    _fails(path, "'dense_2' (Dense)", "12")


def test_weight_not_numbers(tmp_path):
    path = _copy(tmp_path, "tf2_seed_char_lstm.h5")
    with h5py.File(path, "r+") as f:
        g, names = _legacy_weight_paths(f, "lstm")
        del g[names[2]]
        g.create_dataset(names[2], data=np.array([b"oops"] * 64))
    _fails(path, "'lstm' (LSTM)", names[2], "dtype")


def test_keras_missing_var(tmp_path):
    def edit(f):
        del f["layers/lstm/cell/vars/2"]
    _fails(_edit_keras(tmp_path, edit_weights=edit), "'lstm' (LSTM)", "/layers/lstm/cell/vars/2", "bias")


def test_keras_extra_var(tmp_path):
    def edit(f):
        f.create_dataset("layers/lstm/cell/vars/3", data=np.zeros(16, np.float32))
    _fails(_edit_keras(tmp_path, edit_weights=edit), "'lstm' (LSTM)", "/layers/lstm/cell/vars/3")


def test_keras_extra_layer_in_file(tmp_path):
    def edit(f):
        f.create_dataset("layers/ghost_layer/vars/0", data=np.zeros(3, np.float32))
    _fails(_edit_keras(tmp_path, edit_weights=edit), "/layers/ghost_layer")


def test_keras_missing_layer(tmp_path):
    def edit(f):
        del f["layers/dense"]
    _fails(_edit_keras(tmp_path, edit_weights=edit), "(Dense)", "/layers/dense")


def test_keras_weight_shape(tmp_path):
    def edit(f):
        del f["layers/lstm/cell/vars/1"]
        f.create_dataset("layers/lstm/cell/vars/1", data=np.zeros((16, 16), np.float32))
    _fails(_edit_keras(tmp_path, edit_weights=edit), "'lstm' (LSTM)", "recurrent_kernel", "(16, 16)")


def test_keras_archive_members(tmp_path):
    with zipfile.ZipFile(os.path.join(DATA, KERAS)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    no_weights = tmp_path / "no_weights.keras"
    with zipfile.ZipFile(no_weights, "w") as z:
        z.writestr("config.json", files["config.json"])
    _fails(str(no_weights), "model.weights.h5")
    bad_json = tmp_path / "bad_json.keras"
    with zipfile.ZipFile(bad_json, "w") as z:
        z.writestr("config.json", b"{not json")
        z.writestr("model.weights.h5", files["model.weights.h5"])
    _fails(str(bad_json), "config.json", "JSON")
    bad_meta = tmp_path / "bad_meta.keras"
    with zipfile.ZipFile(bad_meta, "w") as z:
        z.writestr("metadata.json", b"\xff\xfe garbage")
        z.writestr("config.json", files["config.json"])
        z.writestr("model.weights.h5", files["model.weights.h5"])
    _fails(str(bad_meta), "metadata.json")


# corrupt and truncated files ----------------------------------------------------------------------------------

def _truncations(size):
    return sorted({8, 64, 512, 2048, size // 4, size // 2, size - 4096, size - 1})


@pytest.mark.parametrize("name", ["tf2_seed_char_lstm.h5", KERAS, "k3_weights_only.weights.h5"])
def test_truncated(tmp_path, name):
    data = open(os.path.join(DATA, name), "rb").read()
    options = {"config": os.path.join(DATA, "k3_weights_only.json")} if name.endswith(".weights.h5") else {}
    for n in _truncations(len(data)):
        path = tmp_path / f"cut{n}_{name}"
        path.write_bytes(data[:n])
        with pytest.raises(rnnfast.FormatError) as e:
            rnnfast.load(str(path), **options)
        assert str(path) in str(e.value) or path.name in str(e.value), str(e.value)


@pytest.mark.parametrize("name", ["tf2_seed_char_lstm.h5", KERAS])
def test_corrupt_bytes_never_crash(tmp_path, name):
    """Changed bytes may land in float data (undetectable) or in structure: a load either works or raises
    FormatError, and a model that loads also runs."""
    data = open(os.path.join(DATA, name), "rb").read()
    rng = np.random.default_rng(11)
    x = np.load(os.path.join(DATA, name.rsplit(".", 1)[0] + ".npz"))["x0"]
    failures = 0
    for trial in range(40):
        damaged = bytearray(data)
        for pos in rng.integers(0, len(data), 8):
            damaged[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"bad{trial}_{name}"
        path.write_bytes(bytes(damaged))
        try:
            model = rnnfast.load(str(path))
        except rnnfast.FormatError:
            failures += 1
            continue
        model.run(x)
    assert failures > 0


def test_corrupt_zip_member(tmp_path):
    data = bytearray(open(os.path.join(DATA, KERAS), "rb").read())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    data[start:start + 16] = bytes(16)
    path = tmp_path / "crc.keras"
    path.write_bytes(bytes(data))
    _fails(str(path), str(path))


def test_weights_only_without_config():
    _fails(os.path.join(DATA, "k3_weights_only.weights.h5"), "config")
    _fails(os.path.join(DATA, "tf2_weights_only_w.h5"), "config")


def test_weights_only_with_wrong_config(tmp_path):
    cfg = json.load(open(os.path.join(DATA, "k3_weights_only.json")))
    cfg["config"]["layers"] = [layer for layer in cfg["config"]["layers"] if layer["class_name"] != "LSTM"]
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(cfg))
    _fails(os.path.join(DATA, "k3_weights_only.weights.h5"), "lstm", config=str(path))


def _renamed_config(tmp_path, extra_dense=False):
    cfg = json.load(open(os.path.join(DATA, "tf2_weights_only.json")))
    for layer in cfg["config"]["layers"]:
        layer["config"]["name"] = "rebuilt_" + layer["config"]["name"]
    if extra_dense:
        cfg["config"]["layers"].append({"class_name": "Dense", "config": {"name": "extra", "units": 2}})
    path = tmp_path / "rebuilt.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_legacy_weights_match_a_rebuilt_model_by_position(tmp_path):
    """model.load_weights(legacy .h5) matches layers with weights by position, whatever their names."""
    model = rnnfast.load(os.path.join(DATA, "tf2_weights_only_w.h5"), config=_renamed_config(tmp_path))
    npz = np.load(os.path.join(DATA, "tf2_weights_only.npz"))
    assert_close(model.run(npz["x0"])[0], npz["y0"], what="tf2_weights_only with renamed layers")


def test_legacy_weights_layer_count_differs(tmp_path):
    _fails(os.path.join(DATA, "tf2_weights_only_w.h5"), "4 layer(s) with weights", "layer 'extra' (Dense)", "file 3",
           config=_renamed_config(tmp_path, extra_dense=True))


def test_not_a_keras_h5(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    _fails(str(path), "config")


def test_model_config_not_json(tmp_path):
    path = _copy(tmp_path, "tf2_seed_char_lstm.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = "{broken"
    _fails(path, "JSON")


def test_keras_version_not_a_number(tmp_path):
    path = _copy(tmp_path, "tf2_seed_char_lstm.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = "banana"
    _fails(path, "keras_version", "banana")
