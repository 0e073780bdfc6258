"""Build small recurrent ONNX models with onnx.helper for the tests (the weights are the test's own)."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def recurrent_model(cell, attrs, inputs, n_outputs, opset=14, constant=("W", "R", "B", "P")):
    """One recurrent node. `inputs`: list in ONNX input order (X, W, R, B, sequence_lens, initial_h, initial_c, P),
    None for an absent optional input. Inputs named in `constant` become initializers; the rest graph inputs.
    Returns (model bytes, feeds)."""
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    node_inputs, graph_inputs, inits, feeds = [], [], [], {}
    for name, value in zip(names, inputs):
        if value is None:
            node_inputs.append("")
            continue
        node_inputs.append(name)
        if name in constant:
            inits.append(numpy_helper.from_array(value, name))
        else:
            elem = TensorProto.INT32 if name == "sequence_lens" else helper.np_dtype_to_tensor_dtype(value.dtype)
            shape = ["seq"] + list(value.shape[1:]) if name == "X" else list(value.shape)  # runs with any seq_len
            graph_inputs.append(helper.make_tensor_value_info(name, elem, shape))
            feeds[name] = value
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    outputs = ["Y", "Y_h", "Y_c"][:n_outputs]
    node = helper.make_node(OPS[cell], node_inputs, outputs, **attrs)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(inputs[0].dtype), None)
                               for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString(), feeds
