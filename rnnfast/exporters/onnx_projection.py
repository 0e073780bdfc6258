"""LSTM with projection (torch proj_size) in standard ONNX operators: the LSTM operator has no projection.

Each direction d becomes:
    XW = X @ W[d]^T + (Wb[d] + Rb[d])                               outside the loop, [T, B, 4H]
    h_T, c_T, Y_d = Scan(h0[d] [B, P], c0[d] [B, H], XW [, valid]) over time (reversed for a reverse direction)
(h0, c0 the initial states [D, B, P] / [D, B, H] when given, else zeros)
with the Scan body, gates in ONNX order i, o, f, c (f, g, h are the layer's three activations, clip the cell clip):
    G = XW_t + h @ R[d]^T
    i = f(clip(G_i + P_i * c))
    f_t = 1 - i if input_forget else f(clip(G_f + P_f * c))
    c' = f_t * c + i * g(clip(G_c))
    o = f(clip(G_o + P_o * c'))
    h' = (o * h(c')) @ W_hr[d]^T                                    the projection, [B, P]
With a Keras mask (suffix padding, see exporters/onnx_recurrent.py) a bool `valid` [T, B, 1] is scanned too: past a
row's end its state stays and its output is 0, as sequence_lens gives for the other nodes. The directions' Y_d, h_T
and c_T are stacked into Y [T, D, B, P], Y_h [D, B, P] and Y_c [D, B, H], the shapes of an ONNX LSTM node's outputs.
"""
from __future__ import annotations

import numpy as np

from ._onnx_graph import GraphWriter


def projection_lstm(g: GraphWriter, layer, x, pad, h0="", c0=""):
    """(Y, Y_h, Y_c) names for `layer` (an LSTM with w_hr) over time-major `x`; `pad` is the [T, B] padding mask or
    None; h0 [D, B, P] and c0 [D, B, H] the initial states ("" for zeros)."""
    H, P = layer.hidden_size, layer.proj_size
    if not (h0 and c0):
        batch = g.op("Slice", [g.op("Shape", [x]), g.ints([1]), g.ints([2])], "batch")
        zero = lambda size: g.op("ConstantOfShape", [g.op("Concat", [batch, g.ints([size])], axis=0)], "zeros",
                                 value=_float_tensor(0.0))
    start = lambda state, d, size: (g.op("Gather", [state, g.ints(d)], "initial", axis=0) if state else zero(size))
    valid = None
    if pad is not None:
        valid = g.op("Unsqueeze", [g.op("Not", [pad]), g.ints([2])], "valid")
    ys, hs, cs = [], [], []
    for d in range(layer.n_dirs):
        reverse = d == 1 or layer.direction == "reverse"
        xw = g.op("Add", [g.op("MatMul", [x, g.const(layer.w_ih[d].T, "proj_W")]),
                          g.const(layer.b_ih[d] + layer.b_hh[d], "proj_B")], "xw")
        scanned = [xw] + ([valid] if valid is not None else [])
        body = _body(layer, d, with_valid=valid is not None, prefix=f"{g.fresh('body')}/")
        n = len(scanned)
        attrs = dict(body=body, num_scan_inputs=n)
        if reverse:
            attrs.update(scan_input_directions=[1] * n, scan_output_directions=[1])
        h_t, c_t, y = g.op("Scan", [start(h0, d, P), start(c0, d, H)] + scanned, "scan", n_out=3, **attrs)
        ys.append(g.op("Unsqueeze", [y, g.ints([1])]))
        hs.append(g.op("Unsqueeze", [h_t, g.ints([0])]))
        cs.append(g.op("Unsqueeze", [c_t, g.ints([0])]))
    if layer.n_dirs == 1:
        return ys[0], hs[0], cs[0]
    return g.op("Concat", ys, "Y", axis=1), g.op("Concat", hs, "Y_h", axis=0), g.op("Concat", cs, "Y_c", axis=0)


def _float_tensor(v):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array([v], np.float32), "value")


def _body(layer, d, with_valid, prefix):
    from onnx import TensorProto, helper

    H, P = layer.hidden_size, layer.proj_size
    b = GraphWriter(prefix)
    h, c, xw, valid = (prefix + n for n in ("h", "c", "xw", "valid"))
    f_act, g_act, h_act = layer.activations[d]
    clip = (lambda v: b.op("Clip", [v, b.const(-layer.clip), b.const(layer.clip)])) if layer.clip else (lambda v: v)
    gates = b.op("Add", [xw, b.op("MatMul", [h, b.const(layer.w_hh[d].T, "R")])], "gates")
    part = lambda k: b.op("Slice", [gates, b.ints([k * H]), b.ints([(k + 1) * H]), b.ints([1])], "gate")
    gi, go, gf, gc = (part(k) for k in range(4))
    peep = layer.peepholes[d] if layer.peepholes is not None else None
    if peep is not None:
        gi = b.op("Add", [gi, b.op("Mul", [c, b.const(peep[:H], "Pi")])])
        gf = b.op("Add", [gf, b.op("Mul", [c, b.const(peep[2 * H:], "Pf")])])
    i = activation(b, f_act, clip(gi))
    f = b.op("Sub", [b.const(1.0), i]) if layer.input_forget else activation(b, f_act, clip(gf))
    c_new = b.op("Add", [b.op("Mul", [f, c]), b.op("Mul", [i, activation(b, g_act, clip(gc))])], "c_new")
    if peep is not None:
        go = b.op("Add", [go, b.op("Mul", [c_new, b.const(peep[H:2 * H], "Po")])])
    o = activation(b, f_act, clip(go))
    h_new = b.op("MatMul", [b.op("Mul", [o, activation(b, h_act, c_new)]), b.const(layer.w_hr[d].T, "Whr")], "h")
    if with_valid:
        h_out = b.op("Where", [valid, h_new, h], "h_out")
        c_out = b.op("Where", [valid, c_new, c], "c_out")
        y = b.op("Where", [valid, h_new, b.const(0.0)], "y")
    else:
        h_out, c_out, y = h_new, c_new, b.op("Identity", [h_new], "y")
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(h, f32, ["batch", P]), helper.make_tensor_value_info(c, f32, ["batch", H]),
              helper.make_tensor_value_info(xw, f32, ["batch", 4 * H])]
    if with_valid:
        inputs.append(helper.make_tensor_value_info(valid, TensorProto.BOOL, ["batch", 1]))
    outputs = [helper.make_tensor_value_info(h_out, f32, ["batch", P]),
               helper.make_tensor_value_info(c_out, f32, ["batch", H]),
               helper.make_tensor_value_info(y, f32, ["batch", P])]
    return helper.make_graph(b.nodes, prefix.rstrip("/").replace("/", "_"), inputs, outputs, b.inits)


def activation(g: GraphWriter, act, x):
    """One ONNX recurrent-node activation as operators (alpha and beta as the LSTM operator reads them)."""
    a, b = float(act.alpha), float(act.beta)
    name = act.name
    if name in ("Relu", "Tanh", "Sigmoid", "Softsign", "Softplus"):
        return g.op(name, [x])
    if name in ("LeakyRelu", "ThresholdedRelu", "Elu"):
        return g.op(name, [x], alpha=a)
    if name == "HardSigmoid":
        return g.op(name, [x], alpha=a, beta=b)
    if name == "Affine":
        return g.op("Add", [g.op("Mul", [x, g.const(a)]), g.const(b)], "affine")
    if name == "ScaledTanh":
        return g.op("Mul", [g.op("Tanh", [g.op("Mul", [x, g.const(b)])]), g.const(a)], "scaled_tanh")
    raise ValueError(f"activation {name} has no ONNX form")  # exporters/onnx_recurrent.py refuses these before
