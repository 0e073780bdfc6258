"""TensorInfo: how a Model names and shapes one of its inputs or outputs. Its own module because the graph
importers and the Model that wraps them both need it, and the core modules import in one direction (model ->
graph -> stream -> engine -> layers -> quantize; tests/test_layout.py)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TensorInfo:
    """Name, shape (ints for fixed axes, str or None for dynamic ones) and ONNX-style type string. `optional`: an
    input the model has a default for (zeros, or a value the file holds), which Model.run's feeds may leave out."""

    name: str
    shape: list
    type: str = "tensor(float)"
    optional: bool = False
