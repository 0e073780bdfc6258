"""ONNX graph inputs that are also initializers: since IR version 4 the initializer is the input's default, which a
feed may override (onnxruntime's "overridable initializers"). rnnfast keeps such an input when it is a recurrent
state (an RNN/GRU/LSTM initial_h or initial_c, directly or through data-movement ops such as a per-layer Slice):
the graph IR records its default (Graph.defaults) and every runner and writer keeps it optional. Any other one (the
weights older exporters list among the inputs, keep_initializers_as_inputs) stays a constant, as the engine needs
weights to be; feeding it is refused as an unknown input."""
from __future__ import annotations

# op -> input slots that carry a recurrent state as data
STATE_SLOTS = {"RNN": (5,), "GRU": (5,), "LSTM": (5, 6)}
# ops that pass data through from these slots (None: every slot): a state may reach its recurrent node through them
PASS_SLOTS = {"Slice": (0,), "Gather": (0,), "Split": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Reshape": (0,),
              "Identity": (0,), "Transpose": (0,), "Expand": (0,), "Cast": (0,), "Concat": None}
MIN_IR_VERSION = 4  # before it, an initializer had to be listed among the inputs and was no default


def state_defaults(proto) -> set:
    """The names of the initializer-backed inputs of a ModelProto that stay inputs with a default."""
    graph = proto.graph
    inits = {init.name for init in graph.initializer}
    candidates = [v.name for v in graph.input if v.name in inits]
    if not candidates or proto.ir_version < MIN_IR_VERSION:
        return set()
    readers = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name:
                readers.setdefault(name, []).append((node, slot))
    outputs = {o.name for o in graph.output}

    def is_state(name, depth=0) -> bool:
        uses = readers.get(name, [])
        if not uses or name in outputs or depth > 16:
            return False
        for node, slot in uses:
            if node.domain not in ("", "ai.onnx"):
                return False
            if slot in STATE_SLOTS.get(node.op_type, ()):
                continue
            passes = PASS_SLOTS.get(node.op_type, ())
            if node.op_type not in PASS_SLOTS or (passes is not None and slot not in passes):
                return False
            if not all(is_state(out, depth + 1) for out in node.output if out):
                return False
        return True

    return {name for name in candidates if is_state(name)}
