"""A Pipeline's canonical weights as name -> float32 array, and its other options as a JSON-able dict: what the
.npz and .safetensors writers store (names and form in docs/format.md)."""
from __future__ import annotations

import json

import numpy as np

from ..errors import FormatError
from ..pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage

LAYER_ARRAYS = ("w_ih", "w_hh", "b_ih", "b_hh", "peepholes", "w_hr")


def canonical_arrays(p: Pipeline) -> dict:
    out = {}
    for i, s in enumerate(p.stages):
        if isinstance(s, EmbeddingStage):
            out[f"stages.{i}.table"] = s.table
        elif isinstance(s, RecurrentStage):
            for k, layer in enumerate(s.layers):
                for key in LAYER_ARRAYS:
                    arr = getattr(layer, key)
                    if arr is not None:
                        out[f"stages.{i}.layers.{k}.{key}"] = arr
        elif isinstance(s, DenseStage):
            out[f"stages.{i}.weight"] = s.weight
            if s.bias is not None:
                out[f"stages.{i}.bias"] = s.bias
        else:
            raise FormatError(f"cannot write stage of type {type(s).__name__}")
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def _layer_config(layer) -> dict:
    return {"name": layer.name, "cell": layer.cell, "direction": layer.direction, "input_size": layer.input_size,
            "hidden_size": layer.hidden_size, "proj_size": layer.proj_size, "clip": layer.clip,
            "input_forget": layer.input_forget, "linear_before_reset": layer.linear_before_reset,
            "activations": [[[a.name, a.alpha, a.beta] for a in acts] for acts in layer.activations]}


def pipeline_config(p: Pipeline) -> str:
    stages = []
    for s in p.stages:
        if isinstance(s, EmbeddingStage):
            stages.append({"kind": "embedding", "name": s.name, "mask_zero": s.mask_zero})
        elif isinstance(s, RecurrentStage):
            stages.append({"kind": "recurrent", "name": s.name, "return_sequences": s.return_sequences,
                           "mask_zero_output": s.mask_zero_output, "layers": [_layer_config(l) for l in s.layers]})
        else:
            stages.append({"kind": "dense", "name": s.name, "activation": s.activation})
    return json.dumps({"format": "rnnfast-canonical", "version": 1, "batch_first": p.batch_first, "name": p.name,
                       "stages": stages})
