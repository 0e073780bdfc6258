"""Keras recurrent layers: SimpleRNN, LSTM, GRU, CuDNNLSTM, CuDNNGRU and Bidirectional, run by the C engine.

Keras semantics kept here (shared/docs/SEMANTICS.md section 1.2):
- inputs are batch-major [batch, steps, features]; the engine is time-major.
- go_backwards processes the steps last to first and returns outputs in processing order (not re-aligned).
- a masked step carries the state and repeats the previous output, or outputs zeros with zero_output_for_mask;
  Bidirectional sets zero_output_for_mask = return_sequences on both directions and re-aligns the backward output.
- without return_sequences the output is the last processed step's output.
- stateful layers start from the state the previous `run` left (model.reset_states() zeroes it).
"""
from __future__ import annotations

import numpy as np

from ... import engine
from ...errors import FormatError
from ...layers import N_GATES, RecurrentLayer
from .._gates import KERAS1_ORDER, from_keras, from_keras1, from_keras_cudnn
from .activations import activation_name, recurrent_activation
from .config import keras1_layer
from .layers import KLayer
from .weights import Slot

# A call keyword graph.py sets when Keras 3 would not pass the mask to the layer (graph.keras3_drops_mask).
UNAPPLIED_MASK = "_keras3_unapplied_mask"
CELLS = {"SimpleRNN": "rnn", "LSTM": "lstm", "GRU": "gru", "CuDNNLSTM": "lstm", "CuDNNGRU": "gru"}
N_STATES = {"rnn": 1, "gru": 1, "lstm": 2}


class KerasRNN(KLayer):
    supports_masking = True

    def parse(self):
        c = self.config
        self.cell = CELLS[self.cls]
        self.cudnn = self.cls.startswith("CuDNN")
        self.units = self.int_opt("units")
        self.return_sequences = self.bool_opt("return_sequences")
        self.return_state = self.bool_opt("return_state")
        self.go_backwards = self.bool_opt("go_backwards")
        self.stateful = self.bool_opt("stateful")
        self.zero_output_for_mask = self.bool_opt("zero_output_for_mask")
        self.bool_opt("unroll")  # only how the graph is built; the result is the same
        self.refuse_if("time_major", True, " (batch-major inputs only, as Keras saves models)")
        if c.get("cell") is not None and self.cls not in CELLS:
            raise FormatError(f"{self.where}: RNN with a custom cell is not supported")
        hs = self.ctx.hs_alpha
        if self.cudnn:
            # cuDNN's kernels are fixed: sigmoid gates, tanh candidate and output.
            self.use_bias = True
            act, rec = "tanh", "sigmoid"
        else:
            self.use_bias = self.bool_opt("use_bias", True)
            act = c.get("activation", "tanh")
            if self.cell == "rnn":
                rec = None
            elif "recurrent_activation" in c:
                rec = c["recurrent_activation"]
            else:
                rec = self.ctx.default(self.name, "recurrent_activation",
                                       "hard_sigmoid" if self.ctx.major <= 2 else "sigmoid",
                                       f"not in the config; Keras {self.ctx.major}'s default")
        self.act_names = (activation_name(act, self.where), activation_name(rec, self.where) if rec else None)
        a = recurrent_activation(act, hs, self.where, "activation")
        if self.cell == "rnn":
            self.activations = (a,)
        else:
            r = recurrent_activation(rec, hs, self.where, "recurrent_activation")
            self.activations = (r, a) if self.cell == "gru" else (r, a, a)
        self.reset_after = False
        if self.cell == "gru":
            if self.cudnn:
                self.reset_after = True
            elif "reset_after" in c:
                self.reset_after = self.bool_opt("reset_after")
            else:
                self.reset_after = self.ctx.default(self.name, "reset_after", self.ctx.major >= 3,
                                                    f"not in the config; Keras {self.ctx.major}'s default")
        self.keras1_per_gate = (self.ctx.major == 1 and self.cell != "rnn"
                                and c.get("consume_less", "cpu") != "gpu")
        self.layer = None
        self.state = None  # stateful: list of [batch, units] arrays left by the last run

    def slots(self, prefix="cell/"):
        if self.keras1_per_gate:
            return [Slot(f"{prefix}vars/{3 * k + j}", True, f"{w}_{g}")
                    for k, g in enumerate(KERAS1_ORDER[self.cell]) for j, w in enumerate(("W", "U", "b"))]
        labels = ["kernel", "recurrent_kernel"] + (["bias"] if self.use_bias else [])
        return [Slot(f"{prefix}vars/{i}", True, l) for i, l in enumerate(labels)]

    def check_weights(self):
        self.layer = self.build(self.weights)

    def build(self, w) -> RecurrentLayer:
        H, cell = self.units, self.cell
        G = N_GATES[cell]
        if self.keras1_per_gate:
            input_dim = w[0].shape[0] if w[0].ndim == 2 else -1
            for slot, arr, shape in zip(self.slots(), w, [(input_dim, H), (H, H), (H,)] * (len(w) // 3)):
                self.check_shape(slot.label, arr, shape)
            w_ih, w_hh, b_ih, b_hh = from_keras1(cell, w, H)
        else:
            kernel, rec = w[0], w[1]
            if kernel.ndim != 2 or kernel.shape[1] != G * H:
                raise FormatError(f"{self.where}: kernel has shape {kernel.shape}, expected [input_dim, {G * H}] "
                                  f"for {self.cls} with units={H}")
            self.check_shape("recurrent_kernel", rec, (H, G * H))
            bias = w[2] if self.use_bias else None
            if self.cudnn:
                self.check_shape("bias", bias, (2 * G * H,))
                w_ih, w_hh, b_ih, b_hh = from_keras_cudnn(cell, kernel, rec, bias, H)
            else:
                if bias is not None:
                    want = (2, G * H) if cell == "gru" and self.reset_after else (G * H,)
                    if bias.shape != want:
                        hint = ""
                        if cell == "gru" and bias.shape in ((2, G * H), (G * H,)):
                            hint = f" (reset_after={self.reset_after} in the config does not match the bias)"
                        raise FormatError(f"{self.where}: bias has shape {bias.shape}, expected {want}{hint}")
                w_ih, w_hh, b_ih, b_hh = from_keras(cell, kernel, rec, bias, H, reset_after=self.reset_after)
        return RecurrentLayer(
            cell=cell, direction="forward", hidden_size=H, input_size=int(w_ih.shape[1]),
            w_ih=w_ih[None], w_hh=w_hh[None], b_ih=b_ih[None], b_hh=b_hh[None], activations=(self.activations,),
            linear_before_reset=cell == "gru" and self.reset_after, name=self.name, source=self.where)

    @property
    def n_states(self):
        return N_STATES[self.cell]

    def run_sequence(self, x, mask, initial, zero_output):
        """x [batch, steps, features] -> (outputs [batch, steps, units] in processing order, final states)."""
        x = self.float_input(x)
        if x.ndim != 3 or x.shape[2] != self.layer.input_size:
            raise ValueError(f"{self.where}: input must be [batch, steps, {self.layer.input_size}], got {x.shape}")
        B = x.shape[0]
        xt = x.transpose(1, 0, 2)
        mt = None if mask is None else np.asarray(mask).astype(bool).T
        if self.go_backwards:
            xt = xt[::-1]
            mt = None if mt is None else mt[::-1]
        if initial is None and self.stateful and self.state is not None:
            if self.state[0].shape[0] != B:
                raise ValueError(f"{self.where}: stateful layer holds state for batch {self.state[0].shape[0]}, "
                                 f"got batch {B}; call reset_states() first")
            initial = self.state
        h0 = c0 = None
        if initial is not None:
            if len(initial) != self.n_states:
                raise ValueError(f"{self.where}: needs {self.n_states} initial state(s), got {len(initial)}")
            for s in initial:
                if np.shape(s) != (B, self.units):
                    raise ValueError(f"{self.where}: initial state has shape {np.shape(s)}, expected {(B, self.units)}")
            h0 = np.asarray(initial[0], np.float32)[None]
            c0 = np.asarray(initial[1], np.float32)[None] if self.cell == "lstm" else None
        y, y_h, y_c = engine.run_layer(self.layer, np.ascontiguousarray(xt), initial_h=h0, initial_c=c0,
                                       mask=None if mt is None else np.ascontiguousarray(mt),
                                       mask_zero_output=zero_output)
        states = [y_h[0]] + ([y_c[0]] if y_c is not None else [])
        if self.stateful:
            self.state = [s.copy() for s in states]
        return y[:, 0].transpose(1, 0, 2), states

    def call(self, x, mask, kwargs):
        x, initial = split_initial_state(x, kwargs, self.where)
        mask = sequence_mask(mask)
        applied = None if kwargs.get(UNAPPLIED_MASK) else mask
        ys, states = self.run_sequence(x, applied, initial, self.zero_output_for_mask)
        out = ys if self.return_sequences else np.ascontiguousarray(ys[:, -1])
        outs = [np.ascontiguousarray(out)]
        masks = [mask if self.return_sequences else None]
        if self.return_state:
            outs += states
            masks += [None] * len(states)
        return outs, masks

    def reset_states(self):
        self.state = None

    def summary(self):
        parts = [f"units={self.units}"]
        if self.cudnn:
            parts.append("(cuDNN weights)")
        parts.append(f"activation={self.act_names[0]}")
        if self.act_names[1]:
            parts.append(f"recurrent_activation={self.act_names[1]}")
        if "hard_sigmoid" in self.act_names:
            parts.append(f"(hard_sigmoid = clip({'x/6' if self.ctx.major >= 3 else '0.2x'}+0.5), Keras "
                         f"{self.ctx.major})")
        if self.cell == "gru":
            parts.append(f"reset_after={self.reset_after}")
        for flag in ("return_sequences", "return_state", "go_backwards", "stateful", "zero_output_for_mask"):
            if getattr(self, flag):
                parts.append(f"{flag}=True")
        if not self.use_bias:
            parts.append("use_bias=False")
        return " ".join(parts)


def split_initial_state(x, kwargs, where):
    """The sequence and the initial states of one call: Keras 3 passes initial_state by keyword; tf.keras and
    Keras 2 append the states to the layer's input list."""
    initial = kwargs.get("initial_state")
    if isinstance(x, (list, tuple)):
        if initial is not None:
            raise FormatError(f"{where}: initial states given both as inputs and as initial_state")
        x, initial = x[0], list(x[1:]) or None
    if initial is not None and not isinstance(initial, (list, tuple)):
        initial = [initial]
    return x, initial


def sequence_mask(mask):
    """The mask of the sequence: with states appended to the input list, Keras keeps the first input's mask."""
    return mask[0] if isinstance(mask, (list, tuple)) else mask


class Bidirectional(KLayer):
    supports_masking = True

    def parse(self):
        c = self.config
        self.merge_mode = c.get("merge_mode", "concat")
        if self.merge_mode not in ("concat", "sum", "mul", "ave", None):
            raise FormatError(f"{self.where}: merge_mode={self.merge_mode!r} is not supported; expected concat, "
                              f"sum, mul, ave or None")
        fwd_cfg = self._inner(c.get("layer"), "layer")
        self.forward = self._make(fwd_cfg, "forward")
        if c.get("backward_layer") is not None:
            self.backward = self._make(self._inner(c["backward_layer"], "backward_layer"), "backward")
        else:
            bcfg = dict(fwd_cfg)
            bcfg["config"] = dict(fwd_cfg["config"], go_backwards=not fwd_cfg["config"].get("go_backwards", False))
            self.backward = self._make(bcfg, "backward")
        for layer in (self.forward, self.backward):
            layer.zero_output_for_mask = layer.return_sequences
        self.return_sequences = self.forward.return_sequences
        self.return_state = self.forward.return_state
        if (self.backward.return_sequences, self.backward.return_state) != (self.return_sequences, self.return_state):
            raise FormatError(f"{self.where}: forward and backward layers disagree on return_sequences/return_state")
        self.stateful = self.forward.stateful

    def _inner(self, cfg, key):
        if not isinstance(cfg, dict) or "class_name" not in cfg:
            raise FormatError(f"{self.where}: option {key} must be a layer config")
        if cfg["class_name"] not in CELLS:
            raise FormatError(f"{self.where}: wraps a {cfg['class_name']}; expected one of {sorted(CELLS)}")
        return cfg

    def _make(self, cfg, which):
        inner = dict(cfg.get("config") or {})
        cls = cfg["class_name"]
        if self.ctx.major == 1:
            cls, inner = keras1_layer(cls, inner)
        return KerasRNN(f"{self.name}/{which}_{inner.get('name', cls.lower())}", cls, inner, self.ctx)

    def slots(self):
        return (self.forward.slots("forward_layer/cell/") + self.backward.slots("backward_layer/cell/"))

    def set_weights(self, arrays):
        n = len(self.forward.slots())
        if len(arrays) != len(self.slots()):
            raise FormatError(f"{self.where}: got {len(arrays)} weight(s), expected {len(self.slots())} "
                              f"(forward and backward kernel, recurrent_kernel, bias)")
        self.forward.set_weights(arrays[:n])
        self.backward.set_weights(arrays[n:])
        self.weights = list(self.forward.weights) + list(self.backward.weights)
        self.fused = self._fuse()

    def _fuse(self):
        """One bidirectional engine layer when both directions are mirror images: both run at once, and the
        engine's reverse direction (outputs aligned with the input) is exactly Keras' re-aligned backward output."""
        f, b = self.forward, self.backward
        if f.go_backwards or not b.go_backwards:
            return None
        lf, lb = f.layer, b.layer
        same = (lf.cell == lb.cell and lf.hidden_size == lb.hidden_size and lf.input_size == lb.input_size
                and lf.activations == lb.activations and lf.linear_before_reset == lb.linear_before_reset)
        if not same:
            return None
        return RecurrentLayer(
            cell=lf.cell, direction="bidirectional", hidden_size=lf.hidden_size, input_size=lf.input_size,
            w_ih=np.concatenate([lf.w_ih, lb.w_ih]), w_hh=np.concatenate([lf.w_hh, lb.w_hh]),
            b_ih=np.concatenate([lf.b_ih, lb.b_ih]), b_hh=np.concatenate([lf.b_hh, lb.b_hh]),
            activations=lf.activations + lb.activations, linear_before_reset=lf.linear_before_reset,
            name=self.name, source=self.where)

    def call(self, x, mask, kwargs):
        x, initial = split_initial_state(x, kwargs, self.where)
        mask = sequence_mask(mask)
        applied = None if kwargs.get(UNAPPLIED_MASK) else mask
        n = self.forward.n_states
        if initial is not None and len(initial) != 2 * n:
            raise ValueError(f"{self.where}: needs {2 * n} initial states (forward then backward), got {len(initial)}")
        init_f = initial[:n] if initial is not None else None
        init_b = initial[n:] if initial is not None else None
        if self.fused is not None:
            y_f, y_b, st_f, st_b = self._run_fused(x, applied, init_f, init_b)
        else:
            y_f, st_f = self.forward.run_sequence(x, applied, init_f, self.return_sequences)
            y_b, st_b = self.backward.run_sequence(x, applied, init_b, self.return_sequences)
            y_b = y_b[:, ::-1]
        if self.return_sequences:
            of, ob = y_f, y_b
        else:
            of, ob = y_f[:, -1], y_b[:, 0]  # each direction's last processed step (backward is re-aligned)
        outs = self._merge(of, ob)
        out_mask = mask if self.return_sequences else None
        masks = [out_mask] * len(outs)
        if self.return_state:
            outs = outs + st_f + st_b
            masks += [None] * (len(st_f) + len(st_b))
        return [np.ascontiguousarray(o, dtype=np.float32) for o in outs], masks

    def _run_fused(self, x, mask, init_f, init_b):
        f, b = self.forward, self.backward
        x = self.float_input(x)
        lay = self.fused
        if x.ndim != 3 or x.shape[2] != lay.input_size:
            raise ValueError(f"{self.where}: input must be [batch, steps, {lay.input_size}], got {x.shape}")
        B = x.shape[0]
        if self.stateful and init_f is None and f.state is not None:
            if f.state[0].shape[0] != B:
                raise ValueError(f"{self.where}: stateful layer holds state for batch {f.state[0].shape[0]}, got "
                                 f"batch {B}; call reset_states() first")
            init_f, init_b = f.state, b.state
        h0 = c0 = None
        if init_f is not None:
            for s in list(init_f) + list(init_b):
                if np.shape(s) != (B, f.units):
                    raise ValueError(f"{self.where}: initial state has shape {np.shape(s)}, expected {(B, f.units)}")
            h0 = np.stack([np.asarray(init_f[0], np.float32), np.asarray(init_b[0], np.float32)])
            if f.cell == "lstm":
                c0 = np.stack([np.asarray(init_f[1], np.float32), np.asarray(init_b[1], np.float32)])
        mt = None if mask is None else np.ascontiguousarray(np.asarray(mask).astype(bool).T)
        y, y_h, y_c = engine.run_layer(lay, np.ascontiguousarray(x.transpose(1, 0, 2)), initial_h=h0,
                                       initial_c=c0, mask=mt, mask_zero_output=self.return_sequences)
        st_f = [y_h[0]] + ([y_c[0]] if y_c is not None else [])
        st_b = [y_h[1]] + ([y_c[1]] if y_c is not None else [])
        if self.stateful:
            f.state, b.state = [s.copy() for s in st_f], [s.copy() for s in st_b]
        return y[:, 0].transpose(1, 0, 2), y[:, 1].transpose(1, 0, 2), st_f, st_b

    def _merge(self, a, b):
        m = self.merge_mode
        if m == "concat":
            return [np.concatenate([a, b], axis=-1)]
        if m == "sum":
            return [a + b]
        if m == "mul":
            return [a * b]
        if m == "ave":
            return [(a + b) / np.float32(2)]
        return [a, b]

    def reset_states(self):
        self.forward.reset_states()
        self.backward.reset_states()

    def summary(self):
        s = f"merge_mode={self.merge_mode}; forward: {self.forward.summary()}; backward: {self.backward.summary()}"
        if self.fused is None:
            s += " (directions run one after the other)"
        return s
