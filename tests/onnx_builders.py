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


def _f32(name, a):
    return numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name)


def stack_model(layers, batch_first=False, table=None, head=None, final_state=False, opset=14):
    """A recurrent stack with the glue torch.onnx.export writes: Gather for an embedding, Transpose for
    batch_first, zero initial states from Expand over the input's shape, Squeeze (one direction) or Transpose +
    Reshape (two) between layers, Y_h of the last layer when `final_state`, a MatMul+Add+Softmax head on the
    sequence or a Gemm+Tanh head on the final state (`head` = (weight [out, in], bias)), and every layer's Y_h
    concatenated as a second output. Layers: canonical RecurrentLayers without projection, default activations.
    Returns model bytes."""
    nodes, inits = [], []
    x_name = "input"
    if table is not None:
        inits.append(_f32("table", table))
        nodes.append(helper.make_node("Gather", ["table", "input"], ["emb"]))
        x_name = "emb"
    if batch_first:
        nodes.append(helper.make_node("Transpose", [x_name], ["x_tm"], perm=[1, 0, 2]))
        x_name = "x_tm"
    inits.append(numpy_helper.from_array(np.array(1, np.int64), "one"))
    nodes += [helper.make_node("Shape", [x_name], ["xshape"]),
              helper.make_node("Gather", ["xshape", "one"], ["bscalar"], axis=0),
              helper.make_node("Unsqueeze", ["bscalar", "axes0"], ["batch"])]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes0"))
    inits.append(numpy_helper.from_array(np.array(0, np.float32), "zero"))
    states = []
    for k, layer in enumerate(layers):
        D, H = layer.n_dirs, layer.hidden_size
        inits += [_f32(f"W{k}", layer.w_ih), _f32(f"R{k}", layer.w_hh),
                  _f32(f"B{k}", np.concatenate([layer.b_ih, layer.b_hh], axis=1)),
                  numpy_helper.from_array(np.array([D], np.int64), f"D{k}"),
                  numpy_helper.from_array(np.array([H], np.int64), f"H{k}")]
        nodes += [helper.make_node("Concat", [f"D{k}", "batch", f"H{k}"], [f"sshape{k}"], axis=0),
                  helper.make_node("Expand", ["zero", f"sshape{k}"], [f"h0_{k}"])]
        ins = [x_name, f"W{k}", f"R{k}", f"B{k}", "", f"h0_{k}"]
        outs = [f"Y{k}", f"Yh{k}"]
        if layer.cell == "lstm":
            ins.append(f"h0_{k}")
            outs.append(f"Yc{k}")
            if layer.peepholes is not None:
                inits.append(_f32(f"P{k}", layer.peepholes))
                ins.append(f"P{k}")
        attrs = dict(hidden_size=H, direction=layer.direction)
        if layer.linear_before_reset:
            attrs["linear_before_reset"] = 1
        if layer.clip is not None:
            attrs["clip"] = layer.clip
        nodes.append(helper.make_node(OPS[layer.cell], ins, outs, **attrs))
        states.append(f"Yh{k}")
        if D == 1:
            inits.append(numpy_helper.from_array(np.array([1], np.int64), f"sq{k}"))
            nodes.append(helper.make_node("Squeeze", [f"Y{k}", f"sq{k}"], [f"X{k + 1}"]))
        else:
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"rs{k}"))
            nodes += [helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]),
                      helper.make_node("Reshape", [f"Yt{k}", f"rs{k}"], [f"X{k + 1}"])]
        x_name = f"X{k + 1}"
    last = len(layers) - 1
    if final_state:
        D = layers[-1].n_dirs
        inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), "fs"))
        nodes += [helper.make_node("Transpose", [f"Yh{last}"], ["Yh_t"], perm=[1, 0, 2]),
                  helper.make_node("Reshape", ["Yh_t", "fs"], ["final"])]
        x_name = "final"
    elif batch_first:
        nodes.append(helper.make_node("Transpose", [x_name], ["y_bf"], perm=[1, 0, 2]))
        x_name = "y_bf"
    if head is not None:
        w, b = head
        if final_state:
            inits += [_f32("hw", w), _f32("hb", b)]
            nodes += [helper.make_node("Gemm", [x_name, "hw", "hb"], ["logits"], transB=1),
                      helper.make_node("Tanh", ["logits"], ["out"])]
        else:
            inits += [_f32("hw", w.T), _f32("hb", b)]
            nodes += [helper.make_node("MatMul", [x_name, "hw"], ["mm"]),
                      helper.make_node("Add", ["mm", "hb"], ["logits"]),
                      helper.make_node("Softmax", ["logits"], ["out"], axis=-1)]
        x_name = "out"
    nodes.append(helper.make_node("Concat", states, ["h_n"], axis=0))
    if table is not None:
        graph_in = helper.make_tensor_value_info("input", TensorProto.INT64, ["a", "b"])
    else:
        graph_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["a", "b", layers[0].input_size])
    graph = helper.make_graph(nodes, "stack", [graph_in],
                              [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("h_n", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def chain_model(layers, states=False, glue="reshape", last="merged", opset=14, identity=False):
    """Recurrent nodes joined as torch.onnx.export joins them: between layers, and after the last unless `last` is
    "raw" (its Y as is) or "transposed" (Transpose only), Squeeze of the direction axis (glue="squeeze", one
    direction; its axes an attribute before opset 13) or Transpose [0,2,1,3] + Reshape [0,0,-1], followed by an
    Identity with `identity`. With `states`, every layer's initial_h (and initial_c) is a graph input h<k> (c<k>)
    and every final state an output Yh<k> (Yc<k>), as a stateless streaming caller feeds them. Input X [seq,
    batch, input]; the sequence is the first output. Returns model bytes."""
    nodes, inits, inputs, outputs = [], [], [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, ["seq", "batch", layers[0].input_size])], []
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge"))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "dir_axis"))
    x_name = "X"
    for k, layer in enumerate(layers):
        D, H = layer.n_dirs, layer.hidden_size
        inits += [_f32(f"W{k}", layer.w_ih), _f32(f"R{k}", layer.w_hh),
                  _f32(f"B{k}", np.concatenate([layer.b_ih, layer.b_hh], axis=1))]
        ins, outs = [x_name, f"W{k}", f"R{k}", f"B{k}"], [f"Y{k}", f"Yh{k}"] + (["Yc" + str(k)] if layer.cell == "lstm"
                                                                                 else [])
        if states:
            ins += ["", f"h{k}"] + ([f"c{k}"] if layer.cell == "lstm" else [])
            inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [D, "batch", H]) for n in ins[5:]]
            outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outs[1:]]
        attrs = dict(hidden_size=H, direction=layer.direction)
        if layer.linear_before_reset:
            attrs["linear_before_reset"] = 1
        nodes.append(helper.make_node(OPS[layer.cell], ins, outs, **attrs))
        x_name = f"Y{k}"
        if k == len(layers) - 1 and last == "raw":
            break
        if glue == "reshape":
            nodes.append(helper.make_node("Transpose", [x_name], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        elif opset < 13:
            nodes.append(helper.make_node("Squeeze", [x_name], [f"Ys{k}"], axes=[1]))
        else:
            nodes.append(helper.make_node("Squeeze", [x_name, "dir_axis"], [f"Ys{k}"]))
        x_name = nodes[-1].output[0]
        if glue == "reshape" and not (k == len(layers) - 1 and last == "transposed"):
            nodes.append(helper.make_node("Reshape", [x_name, "merge"], [f"Ym{k}"]))
            x_name = f"Ym{k}"
        if identity:
            nodes.append(helper.make_node("Identity", [x_name], [f"Yi{k}"]))
            x_name = f"Yi{k}"
    outputs.insert(0, helper.make_tensor_value_info(x_name, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "chain", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def lstm_with_initializer_state(h0, w_as_input=False, head=0):
    """One LSTM whose initial_h is a graph input backed by an initializer (h0), and W an initializer listed among
    the inputs too when w_as_input (how keep_initializers_as_inputs exports weights); head > 0: Y_h also goes
    through a MatMul to `head` features (output Z), a weight Model.quantize(scope="all") stores quantized."""
    rng = np.random.default_rng(3)
    H, I = h0.shape[-1], 4
    W, R = (rng.standard_normal((1, 4 * H, n)).astype(np.float32) * 0.5 for n in (I, H))
    B = rng.standard_normal((1, 8 * H)).astype(np.float32) * 0.1
    inits = [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (B, "B"), (h0, "h0"))]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", I]),
              helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "batch", H])]
    if w_as_input:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(W.shape)))
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0"], ["Y", "Y_h"], hidden_size=H)]
    outputs = ["Y", "Y_h"]
    if head:
        inits.append(numpy_helper.from_array(rng.standard_normal((H, head)).astype(np.float32), "head_w"))
        nodes.append(helper.make_node("MatMul", ["Y_h", "head_w"], ["Z"]))
        outputs.append("Z")
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                                   for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString()
