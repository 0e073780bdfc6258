"""A recurrent layer as an ONNX Scan of standard operators, for what the RNN / GRU / LSTM operators cannot say:
- an LSTM with projection (torch proj_size): the LSTM operator has no projection;
- an activation outside the operators' list (Keras' selu, swish, gelu, exponential);
- a Keras mask anywhere in a row (the operators take only sequence_lens, which is a mask only when each row's
  padding is all at its end): masked steps keep the state and repeat the previous output, or give zeros
  (mask_zero_output), exactly as rnnfast and Keras run them.

Each direction d becomes
    XW = X @ W[d]^T + the biases that add outside the loop                 [T, B, G*H]
    (h_T, c_T, last_T, Y_d) = Scan(h0, c0, last0, XW [, real] [, pad])   over time, reversed for a reverse direction
with the body computing one step of the cell in its canonical form (rnnfast/reference.py writes the same formulas;
gate blocks located through importers/_gates.py). `real` [T, B, 1] marks the steps that run (inside the row's
sequence_lens and unmasked); `pad` [T, B, 1] the steps past a row's sequence_lens (ONNX gives zeros there, whatever
the mask says). On a step that does not run the state stays; the output is 0 past the length, else the last output
(zeros before any; `last` carries it) or 0 with mask_zero_output. A row of length 0 ends with zero states, as the
ONNX operators define it. The directions' Y_d, h_T and c_T are stacked into Y [T, D, B, P], Y_h [D, B, P] and
Y_c [D, B, H], the shapes of an ONNX recurrent node's outputs.
"""
from __future__ import annotations

import math

import numpy as np

from ..importers._gates import CANONICAL_ORDER, CANONICAL_PEEPHOLES
from ..layers import ONNX_RECURRENT_ACTIVATIONS
from ._onnx_graph import GraphWriter


def needs_scan(layer) -> bool:
    """Whether the layer has no ONNX operator form (a mask aside)."""
    return layer.proj_size > 0 or any(a.name not in ONNX_RECURRENT_ACTIVATIONS
                                      for acts in layer.activations for a in acts)


def scan_layer(g: GraphWriter, layer, x, real=None, pad=None, lens="", h0="", c0="", zero_output=False):
    """(Y, Y_h, Y_c) names for `layer` over time-major `x` [T, B, I]. real / pad: bool [T, B, 1] names or None (see
    the module's doc); lens: the int32 [B] sequence_lens the pad came from ("" without); h0 [D, B, P], c0 [D, B, H]:
    the initial states ("" for zeros). Y_c is None but for an LSTM."""
    H, P, cell = layer.hidden_size, layer.output_size, layer.cell
    lstm = cell == "lstm"
    keep_last = real is not None and not zero_output
    batch = g.op("Slice", [g.op("Shape", [x]), g.ints([1]), g.ints([2])], "batch")
    zeros = lambda size: g.op("ConstantOfShape", [g.op("Concat", [batch, g.ints([size])], axis=0)], "zeros",
                              value=_float_tensor(0.0))
    start = lambda state, d, size: (g.op("Gather", [state, g.ints(d)], "initial", axis=0) if state else zeros(size))
    ys, hs, cs = [], [], []
    for d in range(layer.n_dirs):
        reverse = d == 1 or layer.direction == "reverse"
        xw = g.op("Add", [g.op("MatMul", [x, g.const(layer.w_ih[d].T, "W")]),
                          g.const(_outer_bias(layer, d), "bias")], "xw")
        scanned = [xw] + [v for v in (real, pad) if v is not None]
        states = [start(h0, d, P)] + ([start(c0, d, H)] if lstm else []) + ([zeros(P)] if keep_last else [])
        body = _body(layer, d, real is not None, pad is not None, keep_last, f"{g.fresh('body')}/")
        attrs = dict(body=body, num_scan_inputs=len(scanned))
        if reverse:
            attrs.update(scan_input_directions=[1] * len(scanned), scan_output_directions=[1])
        outs = g.op("Scan", states + scanned, "scan", n_out=len(states) + 1, **attrs)
        h_t, y = outs[0], outs[-1]
        c_t = outs[1] if lstm else None
        if lens:  # a row of length 0 ends with zero states, not its initial ones (the ONNX operators' rule)
            empty = g.op("Unsqueeze", [g.op("Equal", [lens, g.const(0, "zero", np.int32)]), g.ints([1])], "empty")
            h_t = g.op("Where", [empty, g.const(0.0), h_t])
            c_t = g.op("Where", [empty, g.const(0.0), c_t]) if lstm else None
        ys.append(g.op("Unsqueeze", [y, g.ints([1])]))
        hs.append(g.op("Unsqueeze", [h_t, g.ints([0])]))
        cs.append(g.op("Unsqueeze", [c_t, g.ints([0])]) if lstm else None)
    if layer.n_dirs == 1:
        return ys[0], hs[0], cs[0]
    return (g.op("Concat", ys, "Y", axis=1), g.op("Concat", hs, "Y_h", axis=0),
            g.op("Concat", cs, "Y_c", axis=0) if lstm else None)


def _gate(cell: str, name: str) -> int:
    return CANONICAL_ORDER[cell].index(name)


def _outer_bias(layer, d) -> np.ndarray:
    """The biases that are plain addends of the input product: all of them, but a GRU's recurrent candidate bias
    when the reset multiplies it (linear_before_reset)."""
    b = (layer.b_ih[d] + layer.b_hh[d]).astype(np.float32)
    if layer.cell == "gru" and layer.linear_before_reset:
        H, k = layer.hidden_size, _gate("gru", "h")
        b[k * H:(k + 1) * H] = layer.b_ih[d][k * H:(k + 1) * H]
    return b


def _float_tensor(v):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array([v], np.float32), "value")


def _body(layer, d, with_real, with_pad, keep_last, prefix):
    from onnx import TensorProto, helper

    H, P, cell = layer.hidden_size, layer.output_size, layer.cell
    b = GraphWriter(prefix)
    h, c, last, xw, real, pad = (prefix + n for n in ("h", "c", "last", "xw", "real", "pad"))
    block = lambda v, k: b.op("Slice", [v, b.ints([k * H]), b.ints([(k + 1) * H]), b.ints([1])], "gate")
    clip = (lambda v: b.op("Clip", [v, b.const(-layer.clip), b.const(layer.clip)])) if layer.clip else (lambda v: v)
    act = lambda a, v: activation(b, a, clip(v))
    c_new = None
    if cell == "rnn":
        (f_act,) = layer.activations[d]
        h_new = act(f_act, b.op("Add", [xw, b.op("MatMul", [h, b.const(layer.w_hh[d].T, "R")])]))
    elif cell == "gru":
        f_act, g_act = layer.activations[d]
        z_k, r_k, h_k = (_gate("gru", n) for n in ("z", "r", "h"))
        rec = lambda k, v: b.op("MatMul", [v, b.const(layer.w_hh[d][k * H:(k + 1) * H].T, "R")])
        z = act(f_act, b.op("Add", [block(xw, z_k), rec(z_k, h)]))
        r = act(f_act, b.op("Add", [block(xw, r_k), rec(r_k, h)]))
        if layer.linear_before_reset:
            candidate = b.op("Mul", [r, b.op("Add", [rec(h_k, h), b.const(layer.b_hh[d][h_k * H:(h_k + 1) * H])])])
        else:
            candidate = rec(h_k, b.op("Mul", [r, h]))
        h_tilde = act(g_act, b.op("Add", [block(xw, h_k), candidate]))
        h_new = b.op("Add", [b.op("Mul", [b.op("Sub", [b.const(1.0), z]), h_tilde]), b.op("Mul", [z, h])], "h")
    else:
        f_act, g_act, h_act = layer.activations[d]
        gates = b.op("Add", [xw, b.op("MatMul", [h, b.const(layer.w_hh[d].T, "R")])], "gates")
        gi, go, gf, gc = (block(gates, _gate("lstm", n)) for n in ("i", "o", "f", "c"))
        peep = layer.peepholes[d] if layer.peepholes is not None else None
        p = (lambda n: b.const(peep[CANONICAL_PEEPHOLES.index(n) * H:][:H], "P" + n)) if peep is not None else None
        if p:
            gi = b.op("Add", [gi, b.op("Mul", [c, p("i")])])
            gf = b.op("Add", [gf, b.op("Mul", [c, p("f")])])
        i = act(f_act, gi)
        f = b.op("Sub", [b.const(1.0), i]) if layer.input_forget else act(f_act, gf)
        c_new = b.op("Add", [b.op("Mul", [f, c]), b.op("Mul", [i, act(g_act, gc)])], "c_new")
        if p:
            go = b.op("Add", [go, b.op("Mul", [c_new, p("o")])])
        h_new = b.op("Mul", [act(f_act, go), activation(b, h_act, c_new)], "h")
        if layer.w_hr is not None:
            h_new = b.op("MatMul", [h_new, b.const(layer.w_hr[d].T, "Whr")], "h_projected")
    lstm = cell == "lstm"
    if with_real:
        h_out = b.op("Where", [real, h_new, h], "h_out")
        c_out = b.op("Where", [real, c_new, c], "c_out") if lstm else None
        last_out = b.op("Where", [real, h_new, last], "last_out") if keep_last else None
        y = b.op("Where", [real, h_new, last_out if keep_last else b.const(0.0)], "y")
        if with_pad and keep_last:
            y = b.op("Where", [pad, b.const(0.0), y], "y")
    else:
        h_out, c_out, last_out, y = h_new, c_new, None, b.op("Identity", [h_new], "y")
    f32 = TensorProto.FLOAT
    info = lambda name, dtype, width: helper.make_tensor_value_info(name, dtype, ["batch", width])
    inputs = [info(h, f32, P)] + ([info(c, f32, H)] if lstm else []) + ([info(last, f32, P)] if keep_last else [])
    inputs.append(info(xw, f32, layer.w_ih.shape[1]))
    inputs += [info(n, TensorProto.BOOL, 1) for n, on in ((real, with_real), (pad, with_pad)) if on]
    outputs = [info(h_out, f32, P)] + ([info(c_out, f32, H)] if lstm else [])
    outputs += ([info(last_out, f32, P)] if keep_last else []) + [info(y, f32, P)]
    return helper.make_graph(b.nodes, prefix.rstrip("/").replace("/", "_"), inputs, outputs, b.inits)


def activation(g: GraphWriter, act, x):
    """One recurrent-layer activation as operators (alpha and beta as the ONNX recurrent operators read them)."""
    a, b = float(act.alpha), float(act.beta)
    name = act.name
    if name in ("Relu", "Tanh", "Sigmoid", "Softsign", "Softplus", "Exp"):
        return g.op(name, [x])
    if name in ("LeakyRelu", "ThresholdedRelu", "Elu"):
        return g.op(name, [x], alpha=a)
    if name == "HardSigmoid":
        return g.op(name, [x], alpha=a, beta=b)
    if name == "Affine":
        return g.op("Add", [g.op("Mul", [x, g.const(a)]), g.const(b)], "affine")
    if name == "ScaledTanh":
        return g.op("Mul", [g.op("Tanh", [g.op("Mul", [x, g.const(b)])]), g.const(a)], "scaled_tanh")
    if name == "Selu":
        return g.op("Selu", [x])  # its default alpha and gamma are Keras' constants
    if name == "Swish":
        return g.op("Mul", [x, g.op("Sigmoid", [x])], "swish")
    if name == "Gelu":  # the erf form (Keras' default, approximate=False); the Gelu operator needs opset 20
        half_x = g.op("Mul", [x, g.const(0.5)])
        return g.op("Mul", [half_x, g.op("Add", [g.const(1.0), g.op("Erf", [g.op("Mul", [x, g.const(
            1.0 / math.sqrt(2.0))])])])], "gelu")
    raise ValueError(f"activation {name} has no ONNX form")  # every name rnnfast.layers knows is handled above
