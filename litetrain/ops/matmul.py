"""FULLY_CONNECTED and BATCH_MATMUL — kernels, shape rules, gradients, integer and hybrid
(dynamic-range) kernels, quantizer facts.

FULLY_CONNECTED weights are ``[units, depth]`` (per-channel along axis 0); the input is
flattened into rows of ``depth``. A depth-1 product (a batch-1 weight gradient) goes to
BLAS through ``np.dot``: NumPy's matmul would send it to a loop ~10x slower.
"""

from __future__ import annotations

import numpy as np

from ..errors import TraceError, user_frame
from . import compiled_int8
from .common import fused
from .quantized.gemm import gemm_variant
from .quantized.lib import (
    Quantized,
    Rescaled,
    Variant,
    dequantized_weights,
    hybrid_conv,
    hybrid_input,
    quantized,
    rescaled,
)
from .registry import NodeInfo, OpDef
from .shapes import DYNAMIC, broadcast, one, shape_of


def fully_connected(attrs, x, w, b=None):
    units, depth = w.shape
    if x.size % depth:
        raise ValueError(f"input of shape {list(x.shape)} cannot be flattened into rows of "
                         f"{depth} (weights {list(w.shape)})")
    out = x.reshape(-1, depth) @ w.T
    if b is not None:
        out += b
    if attrs.get("keep_num_dims", False):
        out = out.reshape(*x.shape[:-1], units)
    return fused(out, attrs.get("fused_activation_function", 0))


def batch_matmul(attrs, a, b):
    if attrs.get("adj_x", False):
        a = np.swapaxes(a, -1, -2)
    if attrs.get("adj_y", False):
        b = np.swapaxes(b, -1, -2)
    return matmul(a, b)


def matmul_bias(activation: int, attrs, a, b, bias, transposed=None):
    """BATCH_MATMUL, then ADD of ``bias`` and the fused ``activation`` in place on the
    fresh product (:mod:`litetrain.runtime.simplify`'s one step for the pair);
    ``transposed(b)``, when given, is ``b``'s last two axes swapped, contiguous, for a
    product with ``adj_y`` (its bits checked equal by the caller)."""
    out = batch_matmul(attrs, a, b) if transposed is None else np.matmul(a, transposed(b))
    out += bias
    return fused(out, activation)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul``, except for a depth-1 product (a batch-1 weight gradient), which
    NumPy's matmul sends to a loop ~10x slower than BLAS: in 2-D ``np.dot`` hands it to
    BLAS, in N-D it is the broadcast product it is. Same values: each element is one
    product either way."""
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1 and b.shape[-2] == 1:
        return np.dot(a, b) if a.ndim == b.ndim == 2 else np.multiply(a, b)
    return np.matmul(a, b)


# --- shape rules -------------------------------------------------------------------------

def _fully_connected_shape(info: NodeInfo):
    x, (units, depth) = shape_of(info, 0), shape_of(info, 1)
    if info.attrs.get("keep_num_dims", False):
        return one((*x[:-1], units))
    rows = DYNAMIC if DYNAMIC in x else int(np.prod(x)) // depth
    return one((rows, units))


def _batch_matmul_shape(info: NodeInfo):
    a, b = shape_of(info, 0), shape_of(info, 1)
    rows = a[-1] if info.attrs.get("adj_x", False) else a[-2]
    cols = b[-2] if info.attrs.get("adj_y", False) else b[-1]
    return one((*broadcast(a[:-2], b[:-2]), rows, cols))


# --- gradients ---------------------------------------------------------------------------

def _batch_matmul_vjp(g, attrs, ins, outs, dy):
    a, b = ins
    if a.ndim != b.ndim:
        raise TraceError(f"{user_frame()}: gradients of batch_matmul with broadcast batch "
                         "dims are not supported; reshape to equal ranks first")
    ax, ay = attrs.get("adj_x", False), attrs.get("adj_y", False)

    def mm(p, q, tp, tq):
        return g.op("batch_matmul", p, q, adj_x=tp, adj_y=tq)

    if not ax and not ay:
        return [mm(dy, b, False, True), mm(a, dy, True, False)]
    if ax and not ay:
        return [mm(b, dy, False, True), mm(a, dy, False, False)]
    if not ax and ay:
        return [mm(dy, b, False, False), mm(dy, a, True, False)]
    return [mm(b, dy, True, True), mm(dy, a, True, True)]


# --- integer and hybrid ------------------------------------------------------------------

def _batch_matmul_prepare(info: NodeInfo) -> Rescaled:
    """One double-rounded multiplier (TFLite's reference and optimized BATCH_MATMUL; XNNPACK
    does not take it)."""
    q = quantized(info)
    real = np.float64(q.qin[0].s) * np.float64(q.qin[1].s) / np.float64(q.qout[0].s)
    return rescaled(info, np.array([real]))


def _batch_matmul_output_axis(info: NodeInfo) -> int:
    """The axis of ``b`` that indexes output columns."""
    return -2 if info.attrs.get("adj_y", False) else -1


_batch_matmul_integer = gemm_variant(lambda attrs, a, b, _bias: batch_matmul(attrs, a, b),
                                     out_axis=_batch_matmul_output_axis,
                                     rescaling=_batch_matmul_prepare)


def _batch_matmul_hybrid(s: Quantized, a, b):
    adj_x = s.attrs.get("adj_x", False)
    rows = a.size // a.shape[-1] if not adj_x else a.size // a.shape[-2]
    ad = hybrid_input(a, max(rows, 1), s.attrs.get("asymmetric_quantize_inputs", False))
    return batch_matmul(s.attrs, ad, dequantized_weights(b, s.qin[1])).astype(np.float32)


OPS = [
    OpDef("fully_connected", fully_connected, "FullyConnectedOptions",
          shape=_fully_connected_shape,
          integer=compiled_int8.gemm(gemm_variant(fully_connected, out_axis=0,
                                                  channelwise=False)),
          hybrid=hybrid_conv(fully_connected, per_row=True), weight_axis=0,
          fresh_output=True, shape_inputs=()),
    OpDef("batch_matmul", batch_matmul, "BatchMatMulOptions", shape=_batch_matmul_shape,
          vjp=_batch_matmul_vjp, integer=_batch_matmul_integer,
          hybrid=Variant(_batch_matmul_hybrid, quantized), fresh_output=True,
          shape_inputs=()),
]
