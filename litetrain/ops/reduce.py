"""Reductions over an axis tensor (``keep_dims`` attr), and ARG_MAX/ARG_MIN."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .common import axes
from .registry import OpDef


def _reducer(fn):
    def kernel(attrs, x, axis):
        ax = axes(axis, x.ndim)
        if not ax:  # reducing over no axes is the identity
            return x.copy()
        out = fn(x, axis=ax, keepdims=bool(attrs.get("keep_dims", False)))
        # TFLite keeps the input type (NumPy would widen int32 sums/products to int64).
        return np.asarray(out).astype(x.dtype, copy=False)
    return kernel


def _mean(x, axis, keepdims):
    if np.issubdtype(x.dtype, np.integer):  # TFLite rounds integer means to nearest
        return np.rint(np.mean(x, axis=axis, keepdims=keepdims)).astype(x.dtype)
    return np.mean(x, axis=axis, keepdims=keepdims)


def _arg(fn):
    def kernel(attrs, x, axis):
        (a,) = axes(axis, x.ndim)
        return fn(x, axis=a).astype(np.int64 if attrs.get("output_type", 4) == 4 else np.int32)
    return kernel


OPS = [
    OpDef("mean", _reducer(_mean), "ReducerOptions", shape_inputs=(1,)),
    OpDef("sum", _reducer(np.sum), "ReducerOptions", shape_inputs=(1,)),
    OpDef("reduce_prod", _reducer(np.prod), "ReducerOptions", shape_inputs=(1,)),
    OpDef("reduce_max", _reducer(np.max), "ReducerOptions", shape_inputs=(1,)),
    OpDef("reduce_min", _reducer(np.min), "ReducerOptions", shape_inputs=(1,)),
    OpDef("reduce_any", _reducer(np.any), "ReducerOptions", shape_inputs=(1,)),
    OpDef("reduce_all", _reducer(np.all), "ReducerOptions", shape_inputs=(1,)),
    OpDef("arg_max", _arg(np.argmax), "ArgMaxOptions", shape_inputs=(1,)),
    OpDef("arg_min", _arg(np.argmin), "ArgMinOptions", shape_inputs=(1,)),
]
OPS = [replace(op, fresh_output=True) for op in OPS]  # every kernel returns a new array
