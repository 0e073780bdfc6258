"""A whole graph as named arrays plus one JSON text: what the .npz and .safetensors writers store (docs/format.md,
"Graphs in .npz and .safetensors"). The description is .rnnf 2's (exporters/rnnf_graph.py's graph_parts, one walk
of the graph for every container): its tables as lists of records with the fields in .rnnf 2's order, its pools as
lists, its strings as one text; each blob becomes an array named after the tensor or layer weight it holds."""
from __future__ import annotations

import json

import numpy as np

from .. import rnnf_spec as spec
from ..graph.runtime import compiled_graph_of
from .rnnf_graph import graph_parts

LAYER_BLOBS = ("w_ih", "w_hh", "b_ih", "b_hh", "peepholes", "w_hr")  # spec.LAYER_HEAD's blob fields, in order


def graph_entries(model, weight_dtype: str | None = None, lengths: bool = False,
                  scope: str = "recurrent") -> tuple[str, dict]:
    """(structure JSON, name -> array) of a Model whose graph runs fully in C (FormatError naming why not);
    `lengths`: the variant with a sequence_lens input (graph/runtime.py's compiled_graph_of); weight_dtype, scope:
    rnnfast/quantize.py's rule."""
    compiled = compiled_graph_of(model, purpose=".npz or .safetensors", lengths=lengths)
    parts = graph_parts(compiled, getattr(model, "source", "") or "", weight_dtype, scope)
    doc = {"format": spec.CONTAINER_FORMAT, "version": [spec.GRAPH_MAJOR, parts.minor],
           "source": list(parts.source), "producer": list(parts.producer)}
    for key, st in spec.RECORDS.items():
        doc[key] = [list(rec) for rec in st.iter_unpack(parts.tables[key])]
    for key, fmt in spec.POOLS.items():
        doc[key] = np.frombuffer(parts.tables[key], fmt).tolist()
    doc["strings"] = parts.tables["strings"].decode("utf-8")
    names = _blob_names(doc, parts)
    doc["blobs"] = [[name, code, scale] for name, (_, code, scale) in zip(names, parts.blobs)]
    return json.dumps(doc, separators=(",", ":")), {name: arr for name, (arr, _, _) in zip(names, parts.blobs)}


def _blob_names(doc: dict, parts) -> list:
    """Each blob named after what uses it: a constant by its tensor, a layer weight as node.layer.key, an int8
    weight's scales as that name + ".scale"; a repeated or empty name gets the blob's number."""
    pool = parts.tables["strings"]
    names = [""] * len(parts.blobs)

    def text(off, length):
        return pool[off:off + length].decode("utf-8")

    for rec in doc["tensors"]:  # dtype, rank, dims_at, alias_of, blob, default, name_off, name_len
        if rec[4] != spec.NONE:
            names[rec[4]] = text(rec[6], rec[7])
    for rec in doc["nodes"]:  # ..., name_off, name_len at 2, 3; first_layer, n_layers at 12, 13
        for j in range(rec[13]):
            layer = doc["layers"][rec[12] + j]  # name_off, name_len at 7, 8; the blobs at 9..14
            base = f"{text(rec[2], rec[3])}.{text(layer[7], layer[8]) or j}"
            for key, blob in zip(LAYER_BLOBS, layer[9:15]):
                if blob != spec.NONE:
                    names[blob] = f"{base}.{key}"
    for k, (_, _, scale) in enumerate(parts.blobs):
        if scale != spec.NONE:
            names[scale] = f"{names[k]}.scale"
    seen = set()
    for k, name in enumerate(names):
        if not name or name in seen or name == spec.NPZ_STRUCTURE or name.startswith("__"):
            names[k] = f"{name}#{k}"
        seen.add(names[k])
    return names
