"""The three quantization modes, each a rewrite of one frozen float subgraph.

* ``float16``: float32 constants stored as float16, a DEQUANTIZE node restoring each;
* ``dynamic_range``: FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D weights with at least
  ``min_elements`` values become symmetric per-channel int8 (the hybrid kernels quantize
  activations on the fly);
* ``int8``: everything integer, with activation ranges calibrated on representative data;
  weights per-channel symmetric int8, biases int32 at ``input scale × weight scale``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import dtypes
from ..ir import OMITTED, Node, Quantization, Subgraph
from ..ops import has, lookup


def _weight_axis(op: str) -> int | None:
    """The per-channel axis of a node's weights (input 1), from the op table."""
    return lookup(op).weight_axis if has(op) else None


def _q(scale, zero_point, axis: int = 0) -> Quantization:
    return Quantization(np.asarray(scale, np.float32).reshape(-1),
                        np.asarray(zero_point, np.int64).reshape(-1), axis)


def per_channel_int8(w: np.ndarray, axis: int) -> tuple[np.ndarray, Quantization]:
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = np.abs(moved).max(axis=1).astype(np.float64) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, _q(scale, np.zeros(scale.size), axis)


def float16(sg: Subgraph) -> Subgraph:
    tensors, front = list(sg.tensors), []
    for k, t in enumerate(sg.tensors):
        if t.data is not None and t.dtype == dtypes.FLOAT32 and t.data.size > 1:
            half = dataclasses.replace(t, name=t.name + "/float16", dtype=dtypes.FLOAT16,
                                       data=t.data.astype(np.float16), buffer=0)
            tensors.append(half)
            tensors[k] = dataclasses.replace(t, data=None, buffer=0)
            front.append(Node("dequantize", (len(tensors) - 1,), (k,)))
    return Subgraph(sg.name, tensors, sg.inputs, sg.outputs, front + list(sg.nodes))


def dynamic_range(sg: Subgraph, min_elements: int = 1024) -> Subgraph:
    tensors, nodes = list(sg.tensors), []
    for n in sg.nodes:
        axis = _weight_axis(n.op)
        w = tensors[n.inputs[1]] if axis is not None else None
        if w is not None and w.data is not None and w.dtype == dtypes.FLOAT32 and \
                w.data.size >= min_elements:
            q, params = per_channel_int8(w.data, axis)
            tensors[n.inputs[1]] = dataclasses.replace(w, dtype=dtypes.INT8, data=q,
                                                       quantization=params, buffer=0)
            n = Node(n.op, n.inputs, n.outputs, {**n.attrs, "asymmetric_quantize_inputs": True},
                     n.version)
        nodes.append(n)
    return Subgraph(sg.name, tensors, sg.inputs, sg.outputs, nodes)


def _activation_params(lo: float, hi: float) -> Quantization:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0 / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return _q([scale], [zp])


def int8(sg: Subgraph, ranges: dict[int, tuple[float, float]], int8_io: bool = False
         ) -> Subgraph:
    """Full-integer rewrite; ``ranges`` maps each float activation tensor to its
    calibrated (min, max)."""
    tensors = list(sg.tensors)
    params: dict[int, Quantization] = {}
    for k, t in enumerate(tensors):
        if t.data is None and t.dtype == dtypes.FLOAT32 and k in ranges:
            params[k] = _activation_params(*ranges[k])
    for n in sg.nodes:  # ops that must keep their input's parameters, fixed-range outputs
        out = n.outputs[0]
        rule = lookup(n.op).output_quantization if has(n.op) else None
        if rule == "same_as_input" and n.inputs[0] in params:
            params[out] = params[n.inputs[0]]
        elif isinstance(rule, tuple) and out in params:
            params[out] = _q([rule[0]], [rule[1]])
    for n in sg.nodes:  # weights and biases
        axis = _weight_axis(n.op)
        if axis is not None and tensors[n.inputs[1]].data is not None:
            w = tensors[n.inputs[1]]
            q, wp = per_channel_int8(w.data, axis)
            tensors[n.inputs[1]] = dataclasses.replace(w, dtype=dtypes.INT8, data=q,
                                                       quantization=wp, buffer=0)
            if len(n.inputs) > 2 and n.inputs[2] != OMITTED:
                b = tensors[n.inputs[2]]
                bscale = params[n.inputs[0]].scale[0].astype(np.float64) * wp.scale
                tensors[n.inputs[2]] = dataclasses.replace(
                    b, dtype=dtypes.INT32, buffer=0,
                    data=np.round(b.data / bscale).astype(np.int32),
                    quantization=_q(bscale, np.zeros(bscale.size), 0))
    for k, t in enumerate(tensors):  # remaining float constants: per-tensor
        if t.data is not None and t.dtype == dtypes.FLOAT32:
            p = _activation_params(float(t.data.min()), float(t.data.max()))
            q = np.clip(np.round(t.data / p.scale[0]) + p.zero_point[0], -128, 127)
            tensors[k] = dataclasses.replace(t, dtype=dtypes.INT8, data=q.astype(np.int8),
                                             quantization=p, buffer=0)
    for k, p in params.items():
        tensors[k] = dataclasses.replace(tensors[k], dtype=dtypes.INT8, quantization=p)
    nodes = list(sg.nodes)
    if int8_io:
        return Subgraph(sg.name, tensors, sg.inputs, sg.outputs, nodes)
    # float model inputs/outputs: QUANTIZE in, DEQUANTIZE out
    rename: dict[int, int] = {}
    front, back = [], []
    for i in sg.inputs:
        tensors.append(tensors[i])
        rename[i] = len(tensors) - 1
        tensors[i] = dataclasses.replace(tensors[i], dtype=dtypes.FLOAT32, quantization=None)
        front.append(Node("quantize", (i,), (rename[i],)))
    nodes = [Node(n.op, tuple(rename.get(i, i) for i in n.inputs), n.outputs, n.attrs,
                  n.version) for n in nodes]
    out_rename: dict[int, int] = {}
    for o in sg.outputs:
        tensors.append(tensors[o])
        out_rename[o] = len(tensors) - 1
        tensors[o] = dataclasses.replace(tensors[o], dtype=dtypes.FLOAT32, quantization=None)
        back.append(Node("dequantize", (out_rename[o],), (o,)))
    nodes = [Node(n.op, tuple(out_rename.get(i, i) for i in n.inputs),
                  tuple(out_rename.get(i, i) for i in n.outputs), n.attrs, n.version)
             for n in nodes]
    return Subgraph(sg.name, tensors, sg.inputs, sg.outputs, front + nodes + back)
