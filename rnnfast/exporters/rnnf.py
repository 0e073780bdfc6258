"""Write a Pipeline as a .rnnf file (docs/format.md): header, stage/layer/blob tables, strings, then the
weights at 64-byte aligned offsets so the file can be mapped and used in place. Recurrent layers with int8 or
float16 weight storage write those blobs as stored (format 1.1); everything else is float32 (format 1.0)."""
from __future__ import annotations

import numpy as np

from .. import rnnf_spec as spec
from ..errors import FormatError
from ..pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage
from ._output import write_bytes


class _Writer:
    def __init__(self):
        self.strings = bytearray()
        self.blobs: list[np.ndarray] = []
        self.scales: list[int] = []  # per blob: the scale blob of an int8 blob, else NONE

    def name(self, text: str) -> tuple[int, int]:
        raw = (text or "").encode("utf-8")
        if not raw:
            return 0, 0
        off = len(self.strings)
        self.strings += raw
        return off, len(raw)

    def blob(self, arr, scale_blob=spec.NONE) -> int:
        if arr is None:
            return spec.NONE
        arr = np.asarray(arr)
        arr = np.ascontiguousarray(arr, dtype={np.dtype(np.int8): "i1", np.dtype(np.float16): "<f2"}.get(arr.dtype,
                                                                                                         "<f4"))
        if not 1 <= arr.ndim <= 4 or 0 in arr.shape:
            raise FormatError(f"cannot store an array of shape {arr.shape} in .rnnf (1 to 4 non-empty axes)")
        self.blobs.append(arr)
        self.scales.append(scale_blob)
        return len(self.blobs) - 1

    def weight(self, layer, key) -> int:
        """A recurrent weight as the layer stores it: float32, float16, or int8 followed by its scale blob."""
        if layer.weight_dtype == "float32" or getattr(layer, key) is None:
            return self.blob(getattr(layer, key))
        values, scale = layer.qweights[key]
        index = self.blob(values)
        if scale is not None:
            self.scales[index] = self.blob(scale)
        return index


def _activation(act) -> bytes:
    return spec.ACTIVATION.pack(spec.ACTIVATIONS.index(act.name), 0, float(act.alpha), float(act.beta))


def _layer(w: _Writer, layer) -> bytes:
    flags = ((spec.LAYER_INPUT_FORGET if layer.input_forget else 0)
             | (spec.LAYER_LINEAR_BEFORE_RESET if layer.linear_before_reset else 0)
             | (spec.LAYER_HAS_CLIP if layer.clip is not None else 0))
    head = spec.LAYER_HEAD.pack(
        spec.CELLS.index(layer.cell), spec.DIRECTIONS.index(layer.direction), layer.input_size, layer.hidden_size,
        layer.proj_size, flags, float(layer.clip) if layer.clip is not None else 0.0, *w.name(layer.name),
        w.weight(layer, "w_ih"), w.weight(layer, "w_hh"), w.blob(layer.b_ih), w.blob(layer.b_hh),
        w.blob(layer.peepholes), w.weight(layer, "w_hr"))
    slots = bytearray(6 * spec.ACTIVATION.size)
    for d, acts in enumerate(layer.activations):
        for k, act in enumerate(acts):
            at = (3 * d + k) * spec.ACTIVATION.size
            slots[at:at + spec.ACTIVATION.size] = _activation(act)
    return head + bytes(slots)


def to_bytes(pipeline: Pipeline) -> bytes:
    """The .rnnf file content of a pipeline."""
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"save_rnnf needs a chain (rnnfast.pipeline.Pipeline, as Model.to_pipeline() gives), got "
                        f"{type(pipeline).__name__}")
    w = _Writer()
    stages, layers = [], []
    for s in pipeline.stages:
        name = w.name(s.name)
        if isinstance(s, EmbeddingStage):
            stages.append(spec.STAGE.pack(spec.STAGE_EMBEDDING, spec.EMBEDDING_MASK_ZERO if s.mask_zero else 0,
                                          *name, w.blob(s.table), 0, 0, 0))
        elif isinstance(s, RecurrentStage):
            flags = ((spec.RECURRENT_RETURN_SEQUENCES if s.return_sequences else 0)
                     | (spec.RECURRENT_MASK_ZERO_OUTPUT if s.mask_zero_output else 0))
            stages.append(spec.STAGE.pack(spec.STAGE_RECURRENT, flags, *name, len(layers), len(s.layers), 0, 0))
            layers.extend(_layer(w, l) for l in s.layers)
        elif isinstance(s, DenseStage):
            stages.append(spec.STAGE.pack(spec.STAGE_DENSE, 0, *name, w.blob(s.weight), w.blob(s.bias),
                                          spec.DENSE_ACTIVATIONS.index(s.activation), 0))
        else:
            raise FormatError(f"cannot write stage of type {type(s).__name__} to .rnnf")
    pipe_name = w.name(pipeline.name)
    table_offset = spec.HEADER.size
    table_end = (table_offset + spec.STAGE.size * len(stages) + spec.LAYER_SIZE * len(layers)
                 + spec.BLOB.size * len(w.blobs) + len(w.strings))
    records, file_size = [], table_end
    dtypes = {"<f4": spec.DTYPE_F32, "<f2": spec.DTYPE_F16, "|i1": spec.DTYPE_I8}
    for arr, scale_blob in zip(w.blobs, w.scales):
        offset = spec.align(file_size)
        dims = list(arr.shape) + [0] * (4 - arr.ndim)
        records.append(spec.BLOB.pack(offset, arr.nbytes, dtypes[arr.dtype.str], arr.ndim, *dims, scale_blob, 0))
        file_size = offset + arr.nbytes
    # A file with float32 blobs only stays 1.0, so readers from before quantized blobs still take it.
    minor = spec.QUANTIZED_MINOR if any(a.dtype.str != "<f4" for a in w.blobs) else 0
    header = spec.HEADER.pack(spec.MAGIC, spec.VERSION_MAJOR, minor, spec.HEADER.size,
                              spec.HEADER_BATCH_FIRST if pipeline.batch_first else 0, file_size, table_offset,
                              len(stages), len(layers), len(w.blobs), len(w.strings), *pipe_name, 0)
    out = bytearray(header + b"".join(stages) + b"".join(layers) + b"".join(records) + w.strings)
    for arr in w.blobs:
        out += bytes(spec.align(len(out)) - len(out))
        out += arr.tobytes()
    assert len(out) == file_size
    return bytes(out)


def save_rnnf(pipeline: Pipeline, path) -> None:
    """Write `pipeline` to `path` (str, PathLike, or a binary file object)."""
    write_bytes(to_bytes(pipeline), path)
