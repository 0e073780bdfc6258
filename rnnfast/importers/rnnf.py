"""Read a .rnnf file (docs/format.md): a version 1 file's chain of stages, which rnnfast.load builds as a graph
(graph/chain.py), or for a version 2 file the header and blob checks importers/rnnf_graph.py builds on.

Every count, offset, size, index and enum is checked before it is used, in the order the spec lists them, so
a damaged file fails with a FormatError naming the file, the record and the field, and never reaches numpy or
the engine with a wrong shape. Weights are copied out of the file's buffer (the caller may drop it).
"""
from __future__ import annotations

import math

import numpy as np

from .. import rnnf_spec as spec
from ..errors import FormatError
from ..layers import N_ACTIVATIONS, N_GATES, Activation, RecurrentLayer
from ..pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage


READS = (f"it reads {spec.VERSION_MAJOR}.0 to {spec.VERSION_MAJOR}.{spec.VERSION_MINOR} and "
         f"{spec.GRAPH_MAJOR}.0 to {spec.GRAPH_MAJOR}.{spec.GRAPH_MINOR}")


class _Reader:
    DTYPE_NAMES, DTYPE_NUMPY = spec.DTYPE_NAMES, spec.DTYPE_NUMPY  # what a blob may hold (version 2 adds more)

    def __init__(self, data, name: str):
        self.data = memoryview(data).cast("B")
        self.name = name

    def fail(self, where: str, what: str):
        raise FormatError(f"{self.name}: {where}: {what}")

    # ---- header and tables ----

    def header(self):
        data = self.data
        if len(data) < spec.HEADER.size:
            self.fail("header", f"the file is {len(data)} bytes, shorter than the {spec.HEADER.size}-byte header")
        (magic, major, minor, header_size, flags, file_size, table_offset, n_stages, n_layers, n_blobs,
         strings_size, name_off, name_len, reserved) = spec.HEADER.unpack_from(data, 0)
        if magic != spec.MAGIC:
            self.fail("header", f"magic {bytes(magic)!r} is not {spec.MAGIC!r}: not a .rnnf file")
        if major == spec.GRAPH_MAJOR:
            self.fail("header", "format version 2 holds a whole graph, not a chain of stages: load it with "
                                "rnnfast.load")
        if major != spec.VERSION_MAJOR or minor > spec.VERSION_MINOR:
            self.fail("header", f"format version {major}.{minor} is not readable by this reader ({READS})")
        if header_size != spec.HEADER.size:
            self.fail("header", f"header_size {header_size}, expected {spec.HEADER.size}")
        if flags & ~spec.HEADER_BATCH_FIRST:
            self.fail("header", f"flags 0x{flags:x} has unknown bits")
        if file_size != len(data):
            self.fail("header", f"file_size says {file_size} bytes, the file has {len(data)} (truncated or padded)")
        if reserved:
            self.fail("header", "reserved field is not zero")
        if table_offset < spec.HEADER.size or table_offset % 8 or table_offset > file_size:
            self.fail("header", f"table_offset {table_offset} must be a multiple of 8 in "
                                f"[{spec.HEADER.size}, {file_size}]")
        for field, n in (("n_stages", n_stages), ("n_layers", n_layers), ("n_blobs", n_blobs)):
            if n < 1:
                self.fail("header", f"{field} is 0")
        self.n_stages, self.n_layers, self.n_blobs = n_stages, n_layers, n_blobs
        self.stages_at = table_offset
        self.layers_at = self.stages_at + spec.STAGE.size * n_stages
        self.blobs_at = self.layers_at + spec.LAYER_SIZE * n_layers
        self.strings_at = self.blobs_at + spec.BLOB.size * n_blobs
        self.table_end = self.strings_at + strings_size
        if self.table_end > file_size:
            self.fail("header", f"tables of {n_stages} stages, {n_layers} layers, {n_blobs} blobs and "
                                f"{strings_size} string bytes end at {self.table_end}, past the end of the "
                                f"{file_size}-byte file")
        self.strings_size = strings_size
        self.major, self.minor = major, minor
        self.batch_first = bool(flags & spec.HEADER_BATCH_FIRST)
        self.pipeline_name = self.string("header", name_off, name_len)

    def string(self, where: str, off: int, length: int) -> str:
        if off + length > self.strings_size:
            self.fail(where, f"name at {off} (+{length} bytes) is outside the {self.strings_size}-byte strings table")
        raw = bytes(self.data[self.strings_at + off:self.strings_at + off + length])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(where, f"name {raw!r} is not valid UTF-8")

    def blobs(self):
        self.blob_info, self.blob_used = [], [None] * self.n_blobs
        spans = []
        for i in range(self.n_blobs):
            where = f"blob {i}"
            offset, nbytes, dtype, ndim, *rest = spec.BLOB.unpack_from(self.data, self.blobs_at + spec.BLOB.size * i)
            dims, scale_blob, reserved = rest[:4], rest[4], rest[5]
            if dtype not in self.DTYPE_NAMES:
                self.fail(where, f"unknown dtype code {dtype} (known: {self.DTYPE_NAMES})")
            if dtype != spec.DTYPE_F32 and self.major == 1 and self.minor < spec.QUANTIZED_MINOR:
                self.fail(where, f"dtype {spec.DTYPE_NAMES[dtype]} needs format {spec.VERSION_MAJOR}."
                                 f"{spec.QUANTIZED_MINOR}, the file says {spec.VERSION_MAJOR}.{self.minor}")
            if not 1 <= ndim <= 4:
                self.fail(where, f"ndim {ndim}, expected 1 to 4")
            if any(d < 1 for d in dims[:ndim]) or any(dims[ndim:]):
                self.fail(where, f"dims {dims} with ndim {ndim}: the first ndim must be >= 1, the rest 0")
            if reserved:
                self.fail(where, "reserved must be 0")
            if dtype == spec.DTYPE_I8:
                if ndim < 2 or scale_blob >= self.n_blobs or scale_blob == i:
                    self.fail(where, f"int8 blob of {ndim} axes with scale_blob {scale_blob}: needs 2 or more axes "
                                     f"and another of the file's {self.n_blobs} blobs for its scales")
            elif scale_blob != spec.NONE:
                self.fail(where, f"scale_blob must be NONE for a {self.DTYPE_NAMES[dtype]} blob")
            shape = tuple(dims[:ndim])
            itemsize = np.dtype(self.DTYPE_NUMPY[dtype]).itemsize
            if nbytes != math.prod(shape) * itemsize:
                self.fail(where, f"nbytes {nbytes} does not match dims {list(shape)} of {self.DTYPE_NAMES[dtype]} "
                                 f"({math.prod(shape) * itemsize} bytes)")
            if offset % spec.ALIGN or offset < self.table_end or offset + nbytes > len(self.data):
                self.fail(where, f"offset {offset} (+{nbytes} bytes) must be {spec.ALIGN}-byte aligned, after the "
                                 f"tables (end {self.table_end}) and inside the {len(self.data)}-byte file")
            self.blob_info.append((offset, shape, dtype, scale_blob))
            spans.append((offset, offset + nbytes, i))
        spans.sort()
        for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
            if begin < end:
                self.fail(f"blob {b}", f"data at {begin} overlaps blob {a} (which ends at {end})")

    def take(self, where: str, field: str, index: int, shape, optional=False, stored=False):
        """The float32 array of blob `index`, checked against `shape` (None entries: any size). With `stored`
        (a recurrent weight), (dtype name, values as stored, int8 row scales or None) instead."""
        if index == spec.NONE:
            if optional:
                return ("float32", None, None) if stored else None
            self.fail(where, f"{field} is missing (blob NONE)")
        if index >= self.n_blobs:
            self.fail(where, f"{field} names blob {index}, the file has {self.n_blobs}")
        if self.blob_used[index] is not None:
            self.fail(where, f"{field} reuses blob {index}, already used by {self.blob_used[index]}")
        self.blob_used[index] = f"{where} {field}"
        offset, got, dtype, scale_blob = self.blob_info[index]
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
            want = [("?" if e is None else e) for e in shape]
            self.fail(where, f"{field} (blob {index}) has shape {list(got)}, expected {want}")
        if (dtype != spec.DTYPE_F32 and not stored) or dtype not in spec.DTYPE_NAMES:
            self.fail(where, f"{field} (blob {index}) is {self.DTYPE_NAMES[dtype]}: only the recurrent weights w_ih, "
                             f"w_hh and w_hr may be stored as float16 or int8")
        values = np.frombuffer(self.data, spec.DTYPE_NUMPY[dtype], math.prod(got), offset).reshape(got)
        if not stored:
            return values.astype(np.float32)
        scale = None
        if dtype == spec.DTYPE_I8:
            scale = self.scales(where, field, scale_blob, got[:-1])
            values = values.astype(np.int8)
        else:
            values = values.astype(np.float16 if dtype == spec.DTYPE_F16 else np.float32)
        return spec.DTYPE_NAMES[dtype], values, scale

    def scales(self, where: str, field: str, index: int, shape) -> np.ndarray:
        """The float32 scales (blob `index`, of `shape`) of `field`'s int8 values: every one finite."""
        scale = self.take(where, f"{field} scales", index, shape)
        if not np.all(np.isfinite(scale)):
            self.fail(where, f"{field} scales (blob {index}) are not all finite")
        return scale

    # ---- records ----

    def activation(self, where: str, at: int, used: bool):
        kind, reserved, alpha, beta = spec.ACTIVATION.unpack_from(self.data, at)
        if not used:
            if any(self.data[at:at + spec.ACTIVATION.size]):
                self.fail(where, "an unused activation slot is not all zero")
            return None
        if kind >= len(spec.ACTIVATIONS):
            self.fail(where, f"activation kind {kind} is unknown (0..{len(spec.ACTIVATIONS) - 1})")
        if reserved or not (math.isfinite(alpha) and math.isfinite(beta)):
            self.fail(where, "activation reserved field must be 0 and alpha, beta finite")
        return Activation(spec.ACTIVATIONS[kind], alpha, beta)

    def layer(self, index: int, owner: str) -> RecurrentLayer:
        """Layer record `index`; `owner` names the record using it in messages ("stage 1", "node 4")."""
        at = self.layers_at + spec.LAYER_SIZE * index
        where = f"layer {index} ({owner})"
        (cell, direction, input_size, hidden_size, proj_size, flags, clip, name_off, name_len,
         b_w_ih, b_w_hh, b_b_ih, b_b_hh, b_peep, b_w_hr) = spec.LAYER_HEAD.unpack_from(self.data, at)
        if cell >= len(spec.CELLS):
            self.fail(where, f"cell {cell} is unknown (0 rnn, 1 gru, 2 lstm)")
        if direction >= len(spec.DIRECTIONS):
            self.fail(where, f"direction {direction} is unknown (0 forward, 1 reverse, 2 bidirectional)")
        cell, direction = spec.CELLS[cell], spec.DIRECTIONS[direction]
        name = self.string(where, name_off, name_len)
        if input_size < 1 or hidden_size < 1:
            self.fail(where, f"input_size {input_size} and hidden_size {hidden_size} must be >= 1")
        if proj_size and cell != "lstm":
            self.fail(where, f"proj_size {proj_size} on a {cell}: projection is LSTM only")
        if flags & ~(spec.LAYER_INPUT_FORGET | spec.LAYER_LINEAR_BEFORE_RESET | spec.LAYER_HAS_CLIP):
            self.fail(where, f"flags 0x{flags:x} has unknown bits")
        if flags & spec.LAYER_INPUT_FORGET and cell != "lstm":
            self.fail(where, f"input_forget on a {cell}: LSTM only")
        if flags & spec.LAYER_LINEAR_BEFORE_RESET and cell != "gru":
            self.fail(where, f"linear_before_reset on a {cell}: GRU only")
        if flags & spec.LAYER_HAS_CLIP:
            if not (math.isfinite(clip) and clip > 0):
                self.fail(where, f"clip {clip} must be finite and > 0")
        elif clip != 0:
            self.fail(where, f"clip {clip} without the has-clip flag (must be 0)")
        if b_peep != spec.NONE and cell != "lstm":
            self.fail(where, f"peepholes on a {cell}: LSTM only")
        if (b_w_hr != spec.NONE) != (proj_size > 0):
            self.fail(where, f"w_hr blob {b_w_hr} does not agree with proj_size {proj_size} (NONE iff 0)")
        D, GH, H = (2 if direction == "bidirectional" else 1), N_GATES[cell] * hidden_size, hidden_size
        P = proj_size or H
        n_act = N_ACTIVATIONS[cell]
        acts = []
        for d in range(2):
            row = []
            for k in range(3):
                a = self.activation(f"{where} activation [{d}][{k}]",
                                    at + spec.LAYER_HEAD.size + (3 * d + k) * spec.ACTIVATION.size,
                                    d < D and k < n_act)
                if a is not None:
                    row.append(a)
            if row:
                acts.append(tuple(row))
        weights = {"w_ih": self.take(where, "w_ih", b_w_ih, (D, GH, input_size), stored=True),
                   "w_hh": self.take(where, "w_hh", b_w_hh, (D, GH, P), stored=True),
                   "w_hr": self.take(where, "w_hr", b_w_hr, (D, P, H), optional=True, stored=True)}
        present = {k: v for k, v in weights.items() if v[1] is not None}
        dtypes = {v[0] for v in present.values()}
        if len(dtypes) > 1:
            self.fail(where, "w_ih, w_hh and w_hr are stored in different dtypes ("
                             + ", ".join(f"{k} {v[0]}" for k, v in present.items()) + "): a layer has one")
        weight_dtype = dtypes.pop()
        quantized = weight_dtype != "float32"
        return RecurrentLayer(
            cell=cell, direction=direction, hidden_size=H, input_size=input_size,
            w_ih=None if quantized else weights["w_ih"][1],
            w_hh=None if quantized else weights["w_hh"][1],
            b_ih=self.take(where, "b_ih", b_b_ih, (D, GH)),
            b_hh=self.take(where, "b_hh", b_b_hh, (D, GH)),
            activations=tuple(acts), clip=clip if flags & spec.LAYER_HAS_CLIP else None,
            input_forget=bool(flags & spec.LAYER_INPUT_FORGET),
            linear_before_reset=bool(flags & spec.LAYER_LINEAR_BEFORE_RESET),
            peepholes=self.take(where, "peepholes", b_peep, (D, 3 * H), optional=True),
            w_hr=None if quantized else weights["w_hr"][1],
            name=name, source=f"{self.name}: {where}", weight_dtype=weight_dtype,
            qweights={k: (v[1], v[2]) for k, v in present.items()} if quantized else None)

    def stage(self, index: int, next_layer: int):
        at = self.stages_at + spec.STAGE.size * index
        kind, flags, name_off, name_len, arg0, arg1, arg2, reserved = spec.STAGE.unpack_from(self.data, at)
        where = f"stage {index}"
        if kind not in spec.STAGE_KINDS:
            self.fail(where, f"kind {kind} is unknown (1 Embedding, 2 Recurrent, 3 Dense)")
        where = f"stage {index} ({spec.STAGE_KINDS[kind]})"
        name = self.string(where, name_off, name_len)
        if reserved:
            self.fail(where, "reserved field is not zero")
        if kind == spec.STAGE_EMBEDDING:
            if flags & ~spec.EMBEDDING_MASK_ZERO or arg1 or arg2:
                self.fail(where, f"flags 0x{flags:x}, arg1 {arg1}, arg2 {arg2}: only flag bit 0 may be set, "
                                 f"args 1 and 2 must be 0")
            table = self.take(where, "table", arg0, (None, None))
            return EmbeddingStage(table, mask_zero=bool(flags & spec.EMBEDDING_MASK_ZERO), name=name), next_layer
        if kind == spec.STAGE_DENSE:
            if flags or arg2 >= len(spec.DENSE_ACTIVATIONS):
                self.fail(where, f"flags 0x{flags:x} must be 0 and activation {arg2} one of "
                                 f"{dict(enumerate(spec.DENSE_ACTIVATIONS))}")
            weight = self.take(where, "weight", arg0, (None, None))
            bias = self.take(where, "bias", arg1, (weight.shape[0],), optional=True)
            return DenseStage(weight, bias, spec.DENSE_ACTIVATIONS[arg2], name=name), next_layer
        if flags & ~(spec.RECURRENT_RETURN_SEQUENCES | spec.RECURRENT_MASK_ZERO_OUTPUT) or arg2:
            self.fail(where, f"flags 0x{flags:x} has unknown bits or arg2 {arg2} is not 0")
        if arg0 != next_layer or arg1 < 1 or arg0 + arg1 > self.n_layers:
            self.fail(where, f"layers {arg0}..{arg0 + arg1 - 1}: expected 1 or more layers starting at "
                             f"{next_layer}, within the file's {self.n_layers}")
        layers = [self.layer(k, f"stage {index}") for k in range(arg0, arg0 + arg1)]
        for k in range(1, len(layers)):
            prev, nxt = layers[k - 1], layers[k]
            if nxt.input_size != prev.n_dirs * prev.output_size:
                self.fail(f"layer {arg0 + k} (stage {index})", f"input_size {nxt.input_size}, the layer before "
                                                               f"gives {prev.n_dirs * prev.output_size}")
        stage = RecurrentStage(layers, return_sequences=bool(flags & spec.RECURRENT_RETURN_SEQUENCES),
                               mask_zero_output=bool(flags & spec.RECURRENT_MASK_ZERO_OUTPUT), name=name)
        return stage, arg0 + arg1

    def pipeline(self) -> Pipeline:
        """The file's chain: its stages in order, batch_first and name as stored."""
        self.header()
        self.blobs()
        stages, next_layer = [], 0
        for i in range(self.n_stages):
            stage, next_layer = self.stage(i, next_layer)
            stages.append(stage)
        if next_layer != self.n_layers:
            self.fail("stages", f"use layers 0..{next_layer - 1} of the {self.n_layers} layer records")
        unused = [i for i, u in enumerate(self.blob_used) if u is None]
        if unused:
            self.fail(f"blob {unused[0]}", f"not used by any record ({len(unused)} unused blob(s))")
        self.chain(stages)
        return Pipeline(stages, batch_first=self.batch_first, name=self.pipeline_name, source=self.name)

    def chain(self, stages):
        if not any(isinstance(s, RecurrentStage) for s in stages):
            self.fail("stages", "no recurrent stage")
        width, sequence = None, True
        for i, s in enumerate(stages):
            where = f"stage {i} ({type(s).__name__[:-5]})"
            if isinstance(s, EmbeddingStage) and i:
                self.fail(where, "an Embedding can only be stage 0")
            if isinstance(s, RecurrentStage) and not sequence:
                self.fail(where, "follows a stage that returned no sequence")
            if not isinstance(s, EmbeddingStage) and width is not None and s.input_size != width:
                self.fail(where, f"takes {s.input_size} features, stage {i - 1} gives {width}")
            width = s.output_size
            sequence = sequence and not (isinstance(s, RecurrentStage) and not s.return_sequences)


def load_rnnf(data, name: str = "<bytes>") -> Pipeline:
    """The Pipeline stored in .rnnf content `data` (bytes, bytearray, memoryview or mmap); `name` is used in
    error messages."""
    return _Reader(data, name).pipeline()


def load_rnnf_model(data, name: str = "<bytes>", n_threads=None):
    """rnnfast.load's entry: a version 2 file's graph, compiled for the C executor (importers/rnnf_graph.py), or a
    version 1 file's chain built as a graph (input `input`, output `output`) and compiled for it (graph/chain.py)."""
    from ..graph.chain import ChainGraph
    from ..model import Model

    head = bytes(memoryview(data)[:8])
    if len(head) == 8 and head[:4] == spec.MAGIC and int.from_bytes(head[4:6], "little") == spec.GRAPH_MAJOR:
        from .rnnf_graph import load_rnnf_graph_model

        return load_rnnf_graph_model(data, name, n_threads)

    chain = load_rnnf(data, name)
    return Model(ChainGraph(chain.stages, chain.batch_first, name, name=chain.name), source=name)
