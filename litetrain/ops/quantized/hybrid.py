"""Dynamic-range ("hybrid") kernels: float activations, int8 weights.

As TFLite does it, each batch row (FULLY_CONNECTED, BATCH_MATMUL) or batch item
(CONV_2D, DEPTHWISE_CONV_2D) of the float input is quantized on the fly to int8 —
symmetric (``max|x| / 127``) or, with ``asymmetric_quantize_inputs``, asymmetric with a
nudged zero point — multiplied with the integer weights, and scaled back by the input
and weight scales. Products and sums are exact, so the result equals TFLite's up to
float32 rounding.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from .fixed_point import round_half_away
from .params import QParams


def quantize_rows(x: np.ndarray, asymmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row int8 values, scaling factors and offsets (``x ≈ scale * (q - offset)``)."""
    x = x.astype(np.float32)
    if not asymmetric:
        rng = np.max(np.abs(x), axis=1)
        scale = np.where(rng > 0, rng / np.float32(127), np.float32(1)).astype(np.float32)
        inv = np.where(rng > 0, np.float32(127) / np.where(rng > 0, rng, 1), 0).astype(
            np.float32)
        q = np.clip(round_half_away(x * inv[:, None]), -127, 127)
        return q, scale, np.zeros_like(scale)
    rmin = np.minimum(x.min(axis=1), 0).astype(np.float64)
    rmax = np.maximum(x.max(axis=1), 0).astype(np.float64)
    same = rmin == rmax
    scale = np.where(same, 1.0, (rmax - rmin) / 255.0)
    zp_min, zp_max = -128 - rmin / scale, 127 - rmax / scale
    err_min, err_max = 128 + np.abs(rmin / scale), 127 + np.abs(rmax / scale)
    zp = np.where(err_min < err_max, zp_min, zp_max)
    nudged = np.where(zp <= -128, -128, np.where(zp >= 127, 127, round_half_away(zp)))
    inv = (1.0 / scale).astype(np.float32)
    q = np.clip(round_half_away(nudged[:, None].astype(np.float32) + x * inv[:, None]),
                -128, 127)
    q = np.where(same[:, None], 0, q)
    nudged = np.where(same, 0, nudged)
    return q, scale.astype(np.float32), nudged.astype(np.float32)


def _dequantized_input(x: np.ndarray, rows: int, asymmetric: bool) -> np.ndarray:
    q, scale, offset = quantize_rows(x.reshape(rows, -1), asymmetric)
    return ((q - offset[:, None]) * scale[:, None].astype(np.float64)).reshape(x.shape)


def _weights(w: np.ndarray, qw: QParams) -> np.ndarray:
    return (w.astype(np.float64) - (qw.along(qw.zero_point, w.ndim) if qw.per_channel
                                     else qw.zp)) * qw.along(qw.scale.astype(np.float64), w.ndim)


def fully_connected(attrs, qin, qout, x, w, b=None):
    depth = w.shape[1]
    xd = _dequantized_input(x, x.size // depth, attrs.get("asymmetric_quantize_inputs", False))
    out = nn.fully_connected(attrs, xd, _weights(w, qin[1]),
                             None if b is None else b.astype(np.float64))
    return out.astype(np.float32)


def _per_item(float_kernel):
    def kernel(attrs, qin, qout, x, w, b=None):
        xd = _dequantized_input(x, x.shape[0], attrs.get("asymmetric_quantize_inputs", False))
        out = float_kernel(attrs, xd, _weights(w, qin[1]),
                           None if b is None else b.astype(np.float64))
        return out.astype(np.float32)
    return kernel


def batch_matmul(attrs, qin, qout, a, b):
    rows = a.size // a.shape[-1] if not attrs.get("adj_x", False) else a.size // a.shape[-2]
    ad = _dequantized_input(a, max(rows, 1), attrs.get("asymmetric_quantize_inputs", False))
    return nn.batch_matmul(attrs, ad, _weights(b, qin[1])).astype(np.float32)


TABLE = {"fully_connected": fully_connected, "conv_2d": _per_item(nn.conv_2d),
         "depthwise_conv_2d": _per_item(nn.depthwise_conv_2d), "batch_matmul": batch_matmul}
