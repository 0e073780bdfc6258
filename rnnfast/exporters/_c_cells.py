"""The C function of one direction of one recurrent layer, and of one Dense stage.

A layer-direction function advances that direction's state in `model_state` by one time step and writes its
output. Gate offsets are the canonical ones RecurrentLayer holds (LSTM i,o,f,c; GRU z,r,h), used as they are.
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ._c_arrays import Matrix, check_finite, float_literal, matrix, matvec, vector


class Emitter:
    """Collects array definitions and functions; `state_type` is the C name of the generated state struct."""

    def __init__(self, state_type: str, acts, where: str):
        self.state_type = state_type
        self.acts = acts
        self.where = where
        self.arrays: list[str] = []
        self.functions: list[str] = []
        self.qacc_size = 0  # widest matrix output range summed in int8 (0: no int8 accumulator needed)
        self.storage: set = set()  # how the matrices are stored: "int8", "fp16" (float32 ones are not listed)

    def matrix(self, name, w, stored=None) -> Matrix:
        m, text = matrix(name, w, stored, self.where)
        self.arrays.append(text)
        if m.quantize == "int8":
            self.qacc_size = max(self.qacc_size, m.n_out)
        if m.quantize:
            self.storage.add(m.quantize)
        return m

    def vector(self, name, v) -> str:
        v = np.asarray(v, np.float32)
        check_finite(name, v, self.where)
        self.arrays.append(vector(name, v))
        return name


def layer_step(em: Emitter, layer, k: int, d: int, masked: bool, zero_on_mask: bool) -> str:
    """Adds the arrays and the step function of layer k, direction d; returns the function's name."""
    name = f"l{k}d{d}"
    H, P, G = layer.hidden_size, layer.output_size, layer.n_gates
    acts = layer.activations[d]
    if layer.clip is not None and not np.isfinite(layer.clip):
        raise FormatError(f"{em.where}: layer {k} ({layer.name or layer.cell}) has clip {layer.clip}; "
                          f"C code export writes finite constants only")
    clip = None if layer.clip is None else float_literal(layer.clip)

    def act(i, expr):
        return em.acts.call(acts[i], f"clipf_({expr}, {clip})" if clip else expr)

    wx = em.matrix(f"{name}_wx", layer.w_ih[d], _stored(layer, "w_ih", d))
    wh = em.matrix(f"{name}_wh", layer.w_hh[d], _stored(layer, "w_hh", d))
    lbr = layer.cell == "gru" and layer.linear_before_reset
    if lbr:
        bx = em.vector(f"{name}_bx", layer.b_ih[d])
        bh = em.vector(f"{name}_bh", layer.b_hh[d])
    else:
        # Every bias enters its pre-activation as a plain sum here (GRU without linear_before_reset included).
        bx = em.vector(f"{name}_b", layer.b_ih[d] + layer.b_hh[d])
    lines = [
        f"/* Layer {k} ({layer.cell.upper()}{' ' + layer.name if layer.name else ''}), direction {d} "
        f"({'reverse' if d == 1 or layer.direction == 'reverse' else 'forward'}): input {layer.input_size}, "
        f"hidden {H}, output {P}. */",
        f"static void {name}_step({em.state_type} *s, const float *restrict x, float *restrict y"
        f"{', int real' if masked else ''})",
        "{",
        "    float *restrict g = s->gates;",
        f"    float *restrict h = s->l{k}_h[{d}];",
    ]
    if layer.cell == "lstm":
        lines.append(f"    float *restrict c = s->l{k}_c[{d}];")
    if masked:
        keep = "0.0f" if zero_on_mask else "h[i]"
        lines += ["    if (!real) {  /* masked step: the state carries over */",
                  f"        for (int i = 0; i < {P}; i++) y[i] = {keep};",
                  "        return;", "    }"]
    lines += [f"    for (int i = 0; i < {G * H}; i++) g[i] = {bx}[i];"]
    lines += matvec("g", wx, "x")
    if layer.cell == "rnn":
        lines += matvec("g", wh, "h")
        lines += [f"    for (int i = 0; i < {H}; i++) h[i] = {act(0, 'g[i]')};"]
    elif layer.cell == "gru" and lbr:
        lines += ["    float *restrict gh = s->gates_h;",
                  f"    for (int i = 0; i < {G * H}; i++) gh[i] = {bh}[i];"]
        lines += matvec("gh", wh, "h")
        lines += [f"    for (int i = 0; i < {H}; i++) {{",
                  f"        const float z = {act(0, 'g[i] + gh[i]')};",
                  f"        const float r = {act(0, f'g[{H} + i] + gh[{H} + i]')};",
                  f"        const float ht = {act(1, f'g[{2 * H} + i] + r * gh[{2 * H} + i]')};",
                  "        h[i] = (1.0f - z) * ht + z * h[i];",
                   "    }"]
    elif layer.cell == "gru":
        lines += matvec("g", wh, "h", cols=(0, 2 * H))
        lines += ["    float *restrict rh = s->cell;",
                  f"    for (int i = 0; i < {H}; i++) {{",
                  f"        g[i] = {act(0, 'g[i]')};  /* z */",
                  f"        rh[i] = {act(0, f'g[{H} + i]')} * h[i];  /* r * h */",
                   "    }"]
        lines += matvec("g", wh, "rh", cols=(2 * H, 3 * H))
        lines += [f"    for (int i = 0; i < {H}; i++) {{",
                  f"        const float ht = {act(1, f'g[{2 * H} + i]')};",
                  "        h[i] = (1.0f - g[i]) * ht + g[i] * h[i];",
                   "    }"]
    else:
        lines += matvec("g", wh, "h")
        lines += _lstm_gates(em, layer, name, d, act)
    lines += [f"    for (int i = 0; i < {P}; i++) y[i] = h[i];", "}"]
    em.functions.append("\n".join(lines))
    return f"{name}_step"


def _lstm_gates(em: Emitter, layer, name: str, d: int, act) -> list[str]:
    H = layer.hidden_size
    peep = layer.peepholes is not None
    if peep:
        p = em.vector(f"{name}_p", layer.peepholes[d])  # i, o, f
    pi = f" + {p}[i] * c[i]" if peep else ""
    pf = f" + {p}[{2 * H} + i] * c[i]" if peep else ""
    po = f" + {p}[{H} + i] * ct" if peep else ""
    out = "hc" if layer.w_hr is not None else "h"
    lines = ["    float *restrict hc = s->cell;  /* o * h(c), before the projection */"] if layer.w_hr is not None else []
    lines += [f"    for (int i = 0; i < {H}; i++) {{",
              f"        const float it = {act(0, f'g[i]{pi}')};",
              "        const float ft = 1.0f - it;  /* input_forget: coupled gates */" if layer.input_forget else
              f"        const float ft = {act(0, f'g[{2 * H} + i]{pf}')};",
              f"        const float ct = ft * c[i] + it * {act(1, f'g[{3 * H} + i]')};",
              f"        const float ot = {act(0, f'g[{H} + i]{po}')};",
              "        c[i] = ct;",
              f"        {out}[i] = ot * {em.acts.call(layer.activations[d][2], 'ct')};",
              "    }"]
    if layer.w_hr is not None:
        wr = em.matrix(f"{name}_wr", layer.w_hr[d], _stored(layer, "w_hr", d))
        lines += [f"    for (int i = 0; i < {layer.output_size}; i++) h[i] = 0.0f;",
                  "    /* projection: h = W_hr (o * h(c)) */"]
        lines += matvec("h", wr, "hc")
    return lines


def _stored(layer, key: str, d: int):
    """Direction d of a quantized layer's stored matrix `key` as (values, int8 row scales or None), else None."""
    if layer.qweights is None:
        return None
    q, scale = layer.qweights[key]
    return q[d], None if scale is None else scale[d]


def dense_fn(em: Emitter, stage, j: int) -> str:
    """Adds the arrays and function of Dense stage j (float32 weights in every model: rnnfast/quantize.py's rule);
    returns the function's name."""
    name = f"dense{j}"
    O = stage.output_size
    w = em.matrix(f"{name}_w", stage.weight)
    bias = None if stage.bias is None else em.vector(f"{name}_b", stage.bias)
    lines = [f"/* Dense {j}{' ' + stage.name if stage.name else ''}: {stage.input_size} -> {O}, {stage.activation} */",
             f"static void {name}(const float *restrict x, float *restrict y)", "{",
             f"    for (int i = 0; i < {O}; i++) y[i] = {bias + '[i]' if bias else '0.0f'};"]
    lines += matvec("y", w, "x")
    a = stage.activation
    if a == "relu":
        lines.append(f"    for (int i = 0; i < {O}; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;")
    elif a == "tanh":
        lines.append(f"    for (int i = 0; i < {O}; i++) y[i] = tanhf(y[i]);")
    elif a == "sigmoid":
        lines.append(f"    for (int i = 0; i < {O}; i++) y[i] = sigmoidf_(y[i]);")
    elif a == "softmax":
        lines += ["    float m = y[0];",
                  f"    for (int i = 1; i < {O}; i++) m = y[i] > m ? y[i] : m;",
                  "    float sum = 0.0f;",
                  f"    for (int i = 0; i < {O}; i++) {{", "        y[i] = expf(y[i] - m);", "        sum += y[i];",
                  "    }",
                  f"    for (int i = 0; i < {O}; i++) y[i] /= sum;"]
    lines.append("}")
    em.functions.append("\n".join(lines))
    return name
