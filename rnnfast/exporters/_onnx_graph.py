"""A small ONNX graph writer: nodes with generated output names, constants as initializers. Used for the main
graph, its If branches and the Scan bodies of recurrent layers (exporters/onnx_scan.py)."""
from __future__ import annotations

import numpy as np


class GraphWriter:
    def __init__(self, prefix: str = ""):
        self.nodes, self.inits = [], []
        self.prefix = prefix
        self._count = 0
        self._consts = {}

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        from onnx import numpy_helper

        arr = np.array(value, dtype, order="C")  # ascontiguousarray would make a 0-D value 1-D
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key in self._consts and arr.size <= 16:  # small shape/axis constants are shared; weights never repeat
            return self._consts[key]
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        self._consts[key] = name
        return name

    def ints(self, values, hint: str = "i") -> str:
        return self.const(np.asarray(values, np.int64), hint, np.int64)

    def op(self, op_type: str, inputs, hint: str = None, n_out: int = 1, **attrs):
        from onnx import helper

        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=outs[0], **attrs))
        return outs[0] if n_out == 1 else outs

    def emit(self, op_type: str, inputs, outputs, name: str = None, **attrs):
        """A node writing the given output names (a source graph's own values keep their names)."""
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name or self.fresh(op_type),
                                           **attrs))
