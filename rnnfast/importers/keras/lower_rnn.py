"""Keras recurrent layers (SimpleRNN, LSTM, GRU, the CuDNN variants, Bidirectional) lowered to Recurrent nodes of the
graph IR, with Keras' semantics (shared/docs/SEMANTICS.md 1.2, as rnn.py runs them):
- batch-major [batch, steps, features] in and out; the node is time-major, and a sequence a recurrent layer passes
  to the next one stays time-major (KT.time_major), so a stack of layers is one node after the analysis;
- go_backwards is a reverse-direction layer (the same steps in the same order as Keras' run over the reversed input
  and mask), whose outputs Keras gives in processing order (time-reversed);
- the mask is the node's mask input: a masked step keeps the state and repeats the previous output, or gives
  zeros with zero_output_for_mask (Bidirectional's rule when it returns sequences);
- the last output is the final state h, except when a masked last step repeats an output that is not the state (a
  fully masked row started from a given state) or gives zeros: then it is the sequence's last step;
- stateful layers read and write their state through graph inputs and outputs the model holds (lower.py)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...graph.infer import Unfit
from .lower import KT, INT64_MAX
from .rnn import UNAPPLIED_MASK, Bidirectional, KerasRNN, split_initial_state

STATE_KEYS = ("h", "c")


def _applied(x: KT, kw) -> KT:
    """x with the mask the layer runs under: none when Keras 3 does not pass it (graph.keras3_drops_mask)."""
    return KT(x.name, x.shape, x.dtype, None, x.time_major) if kw.get(UNAPPLIED_MASK) else x


def _time_major(low, x: KT, layer):
    """x as [T, B, F] and its mask as [T, B] (None without one)."""
    if x.rank != 3:
        raise ValueError(f"{layer.where}: input must be [batch, steps, features], got rank {x.rank}")
    xt = x.time_major or low.node("Transpose", [x.name], {"perm": [1, 0, 2]}, name=f"{layer.name}/time_major")
    mt = None
    if x.mask is not None:
        mt = low.time_major.get(x.mask)
        if mt is None:
            mt = low.time_major[x.mask] = low.node("Transpose", [x.mask], {"perm": [1, 0]},
                                                   name=f"{layer.name}/mask_time_major")
    return xt, mt


def _initial(low, layer, states, n_dirs, name):
    """Per state kind (h, c): the node's [D, B, H] input from Keras' [B, H] tensors, one per direction."""
    out = []
    for k in range(len(states[0])):
        parts = []
        for d, st in enumerate(states):
            t = st[k]
            if not isinstance(t, KT) or t.dtype != np.float32 or t.rank != 2:
                raise Unfit(f"{layer.where}: an initial state that is not a float [batch, units] tensor")
            parts.append(low.unsqueeze(t.name, [0], f"{name}/initial_{STATE_KEYS[k]}{d}"))
        out.append(parts[0] if n_dirs == 1 else low.node("Concat", parts, {"axis": 0},
                                                          name=f"{name}/initial_{STATE_KEYS[k]}"))
    return out


def _held_states(low, r: KerasRNN, n_dirs, name):
    """Graph inputs for a stateful layer's state, [D, batch, units] per kind (h, c)."""
    ins = []
    for key in STATE_KEYS[:r.n_states]:
        ins.append(low.b.input(f"{name}:state_{key}", np.float32, [n_dirs, "batch", r.units]))
    return ins


def _hold(low, r, ins, outs, n_dirs):
    for i, o in zip(ins, outs):
        low.out.states.append((i, o, [n_dirs, r.units], r.where))


def _run(low, r: KerasRNN, layer, xt, mt, h0c0, stateful, zero_output, need_sequence, name):
    """One Recurrent node; returns (y [T, B, D*H] or None, h_n, c_n, held state inputs)."""
    n_dirs = layer.n_dirs
    held = []
    if stateful and h0c0 is None:
        held = _held_states(low, r, n_dirs, name)
        h0c0 = held
    h0, c0 = (list(h0c0) + ["", ""])[:2] if h0c0 is not None else ("", "")
    y, h_n, c_n = low.b.recurrent(xt, [layer], h0=h0, c0=c0, states=True, sequence=need_sequence,
                                  mask=mt or "", zero_output=zero_output, name=name)
    if held:
        _hold(low, r, held, [h_n, c_n][:len(held)], n_dirs)
    return y, h_n, c_n


def _last_step(low, y, name, first=False):
    """y[T-1] (or y[0]) of a time-major [T, B, F] sequence, as [B, F]."""
    start, end = (0, 1) if first else (-1, INT64_MAX)
    step = low.slice(y, 0, start, end, name=f"{name}/step")
    return low.squeeze(step, [0], name)


def _features(low, v, start, end, name):
    return low.slice(v, -1, start, end, name=name)


def _direction(low, r: KerasRNN, x: KT, initial, zero_output, need_sequence):
    """One direction as rnn.py's run_sequence: (y [T, B, H] aligned with the input's steps or None, last output
    [B, H], final states [[B, H], ...])."""
    xt, mt = _time_major(low, x, r)
    name = r.name
    layer = replace(r.layer, direction="reverse") if r.go_backwards else r.layer
    h0c0 = _initial(low, r, [initial], 1, name) if initial is not None else None
    # the last output differs from the final state only when the last steps are masked (see the module's doc)
    last_from_y = mt is not None and (zero_output or initial is not None or r.stateful)
    y, h_n, c_n = _run(low, r, layer, xt, mt, h0c0, r.stateful, zero_output, need_sequence or last_from_y, name)
    if last_from_y:  # the output of the step processed last: the first one going backwards
        last = _last_step(low, y, f"{name}/last", first=r.go_backwards)
    else:
        last = low.squeeze(h_n, [0], f"{name}/last")
    states = [low.squeeze(s, [0], f"{name}/state_{k}") for s, k in zip((h_n, c_n), STATE_KEYS) if s]
    return y, last, states


def _in_processing_order(low, r: KerasRNN, y, name):
    """y [T, B, H] aligned with the input's steps, in the order Keras returns a layer's outputs: the order it
    processed the steps in."""
    return low.reverse_time(y, 0, name=name) if r.go_backwards else y


def lower_rnn(low, r: KerasRNN, x, kw):
    x, initial = split_initial_state(x, kw, r.where)
    if isinstance(x, (list, tuple)):
        raise Unfit(f"{r.where}: a list input")
    x = low.float_in(r, x)
    if initial is not None and len(initial) != r.n_states:
        raise ValueError(f"{r.where}: needs {r.n_states} initial state(s), got {len(initial)}")
    y, last, states = _direction(low, r, _applied(x, kw), initial, r.zero_output_for_mask, r.return_sequences)
    T = x.shape[1]
    if r.return_sequences:
        y = _in_processing_order(low, r, y, f"{r.name}/backwards")
        out = KT(low.node("Transpose", [y], {"perm": [1, 0, 2]}, name=r.name), (None, T, r.units), mask=x.mask,
                 time_major=y)
    else:
        out = KT(last, (None, r.units))
    outs = [out]
    if r.return_state:
        outs += [KT(s, (None, r.units)) for s in states]
    return outs


def _merge(low, layer: Bidirectional, a, b, axis, name):
    m = layer.merge_mode
    if m == "concat":
        return [low.node("Concat", [a, b], {"axis": axis}, name=name)]
    if m == "sum":
        return [low.node("Add", [a, b], name=name)]
    if m == "mul":
        return [low.node("Mul", [a, b], name=name)]
    if m == "ave":
        return [low.node("Div", [low.node("Add", [a, b], name=f"{name}/sum"), np.array(2.0, np.float32)],
                         name=name)]
    return [a, b]


def lower_bidirectional(low, layer: Bidirectional, x, kw):
    x, initial = split_initial_state(x, kw, layer.where)
    if isinstance(x, (list, tuple)):
        raise Unfit(f"{layer.where}: a list input")
    x = low.float_in(layer, x)
    f, bw = layer.forward, layer.backward
    n = f.n_states
    if initial is not None and len(initial) != 2 * n:
        raise ValueError(f"{layer.where}: needs {2 * n} initial states (forward then backward), got {len(initial)}")
    init_f = initial[:n] if initial is not None else None
    init_b = initial[n:] if initial is not None else None
    seq, name, H = layer.return_sequences, layer.name, f.units
    run_x = _applied(x, kw)
    if layer.fused is not None:
        xt, mt = _time_major(low, run_x, layer)
        h0c0 = _initial(low, layer, [init_f, init_b], 2, name) if initial is not None else None
        last_from_y = mt is not None and (initial is not None or layer.stateful)
        y, h_n, c_n = _run(low, f, layer.fused, xt, mt, h0c0, layer.stateful, seq, seq or last_from_y, name)
        concat = layer.merge_mode == "concat"
        if seq and concat:
            merged = [y]
        elif not (seq or last_from_y) and concat:  # the final states [2, B, H] as [B, 2H], directions side by side
            merged = [low.node("Reshape", [low.node("Transpose", [h_n], {"perm": [1, 0, 2]}, name=f"{name}/finals"),
                                           np.array([0, -1], np.int64)], name=name)]
        else:
            if seq:
                a, b = _features(low, y, 0, H, f"{name}/forward"), _features(low, y, H, 2 * H, f"{name}/backward")
            elif last_from_y:
                a = _features(low, _last_step(low, y, f"{name}/last"), 0, H, f"{name}/forward")
                b = _features(low, _last_step(low, y, f"{name}/first", first=True), H, 2 * H, f"{name}/backward")
            else:
                a = low.node("Gather", [h_n, np.array(0, np.int64)], {"axis": 0}, name=f"{name}/forward")
                b = low.node("Gather", [h_n, np.array(1, np.int64)], {"axis": 0}, name=f"{name}/backward")
            merged = _merge(low, layer, a, b, -1, name)
        states = [low.node("Gather", [s, np.array(d, np.int64)], {"axis": 0}, name=f"{name}/state_{k}{d}")
                  for d in (0, 1) for s, k in zip((h_n, c_n), STATE_KEYS) if s] if layer.return_state else []
    else:
        yf, lf, sf = _direction(low, f, run_x, init_f, seq, seq)
        yb, lb, sb = _direction(low, bw, run_x, init_b, seq, seq)
        if seq:  # Keras reverses the backward layer's outputs (in its processing order) to merge them
            yf = _in_processing_order(low, f, yf, f"{name}/forward_backwards")
            yb = yb if bw.go_backwards else low.reverse_time(yb, 0, name=f"{name}/backward_reversed")
            merged = _merge(low, layer, yf, yb, -1, name)
        else:
            merged = _merge(low, layer, lf, lb, -1, name)
        states = sf + sb
    outs = []
    for k, v in enumerate(merged):
        if seq:
            out = low.node("Transpose", [v], {"perm": [1, 0, 2]}, name=f"{name}/out{k}")
            width = None if v is None else (2 * H if layer.merge_mode == "concat" else H)
            outs.append(KT(out, (None, x.shape[1], width), mask=x.mask, time_major=v))
        else:
            outs.append(KT(v, (None, 2 * H if layer.merge_mode == "concat" else H)))
    if layer.return_state:
        outs += [KT(s, (None, H)) for s in states]
    return outs

