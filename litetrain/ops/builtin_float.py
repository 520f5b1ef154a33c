"""TensorFlow Lite's own float operation order for CONV_2D, DEPTHWISE_CONV_2D and
HARD_SWISH, chosen at prepare under the resolvers that ask for TF Lite's builtin kernels.

litetrain's default float kernels sum through BLAS (FMA, blocked order): within an ulp or
two of TensorFlow Lite, never bit-identical. That is harmless on its own but not before a
dynamic-range (hybrid) kernel, which quantizes its float input on the fly: an ulp there
can flip one rounding tie and move a whole-model output by 1e-3 (MobileNetV3Small at
batch 4). Under ``BUILTIN_REF`` and ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` these kernels
compute each sum in TF Lite's order, in float32, without fused multiply-adds, so they give
TF Lite 2.18's bits (x86-64; tests/fixtures/tf_quantized, node by node):

* reference kernels (``reference_ops``): a convolution sums its taps in filter order
  ``(ky, kx, ci)`` from 0, then adds the bias; a depthwise one the same per channel;
  HARD_SWISH is ``x * min(6, max(0, x + 3)) / 6``;
* optimized kernels: CONV_2D is Eigen's contraction (``multithreaded_conv.h``; the GEMM
  path for dilations gives the same sums), whose block kernel (16-float packets, output
  channels as its rows) sums the taps in order for each whole packet of 16 channels; a
  remaining 8 (and, unverified, 4) channels go through its half-packet path, which sums
  even and odd taps apart in blocks of 8 and adds the two, then the last ``K % 8`` taps;
  the last 1–3 channels go through its swapped path: 8 lanes (tap ``k`` into lane
  ``k % 8``), reduced ``(l0 + l4) + (l2 + l6)`` plus ``(l1 + l5) + (l3 + l7)``, then the
  last ``K % 8`` taps in order. Those two tail paths take patches (output pixels) in
  blocks of 4; the last ``M % 4`` patches sum their taps in order. A single patch
  (``M == 1``) is a matrix-vector product: every channel through the 8 lanes. The bias
  comes after. Verified shapes: channels ``16k``, ``16k + 8`` and 1; any ``M``; taps
  ``K % 8 == 0`` for the lane paths.
  DEPTHWISE_CONV_2D starts from the bias and adds the taps in filter order
  (``depthwiseconv_float.h``); HARD_SWISH (NEON code, run on x86 through NEON_2_SSE)
  computes ``(x * (1/6)) * min(6, max(0, x + 3))`` in blocks of four values and
  ``(x * min(6, max(0, x + 3))) * (1/6)`` for the last ``size % 4``.

The default resolver keeps the fast kernels (XNNPACK, which TF's default interpreter
uses, fuses multiply-adds; litetrain does not reproduce it).
"""

from __future__ import annotations

import numpy as np

from .common import RELU, RELU6, RELU_N1_TO_1, fused
from .registry import NodeInfo
from .resolver import OpResolverType
from .windows import im2col, windows

_F32 = np.float32
_SIXTH = _F32(1.0) / _F32(6.0)


class TfOrder(dict):
    """A node's settings when it runs in TF Lite's order: the node's attrs (every reader
    of attrs works unchanged) plus which kernel set (``reference``)."""

    def __init__(self, attrs, reference: bool):
        super().__init__(attrs)
        self.reference = reference


def prepare(info: NodeInfo) -> TfOrder | None:
    """``TfOrder`` settings for a float32 node under ``BUILTIN_REF`` or
    ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``; ``None`` otherwise."""
    if info.resolver not in (OpResolverType.BUILTIN_REF,
                             OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        return None
    if any(t is not None and t.dtype != np.float32 for t in info.inputs):
        return None
    return TfOrder(info.attrs, info.resolver.reference)


def applies(settings, *arrays) -> bool:
    """Run-time check: prepared so, and every given array float32."""
    return settings.__class__ is TfOrder and all(
        a is None or (a.__class__ is np.ndarray and a.dtype == np.float32) for a in arrays)


def _activate(out: np.ndarray, code: int) -> np.ndarray:
    if code in (RELU, RELU6, RELU_N1_TO_1):
        lo = -1 if code == RELU_N1_TO_1 else 0
        hi = 6 if code == RELU6 else 1 if code == RELU_N1_TO_1 else np.inf
        return np.minimum(np.maximum(out, _F32(lo), out=out), _F32(hi), out=out)
    return fused(out, code)


def _in_order(cols: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``cols @ w.T`` ([m, k] by [n, k]) summed tap by tap from 0 (into ``out`` if given,
    which then holds the starting values)."""
    scratch = np.empty((cols.shape[0], w.shape[0]), _F32)
    start = 0
    if out is None:
        out = np.multiply(cols[:, :1], w[:, 0], out=np.empty_like(scratch))
        start = 1
    for k in range(start, cols.shape[1]):
        out += np.multiply(cols[:, k:k + 1], w[:, k], out=scratch)
    return out


def _even_odd(cols: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Eigen's half-packet rows: even and odd taps of each block of 8 summed apart, the
    two sums added, then the remaining taps in order."""
    k = cols.shape[1]
    peeled = k // 8 * 8
    if peeled == 0:
        return _in_order(cols, w)
    even = _in_order(cols[:, 0:peeled:2], w[:, 0:peeled:2])
    even += _in_order(cols[:, 1:peeled:2], w[:, 1:peeled:2])
    return _in_order(cols[:, peeled:], w[:, peeled:], even) if peeled < k else even


def _lanes(cols: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Eigen's one-row-at-a-time path: tap ``k`` into lane ``k % 8`` (lanes summed in
    order), the lanes reduced by halves, then the remaining taps in order."""
    m, k = cols.shape
    peeled = k // 8 * 8
    out = np.empty((m, w.shape[0]), _F32)
    for j in range(w.shape[0]):
        if peeled == 0:
            total = np.zeros(m, _F32)
        else:
            prods = (cols[:, :peeled] * w[j, :peeled]).reshape(m, peeled // 8, 8)
            lanes = prods[:, 0].copy()
            for t in range(1, peeled // 8):
                lanes += prods[:, t]
            half = lanes[:, :4] + lanes[:, 4:]
            quarter = half[:, :2] + half[:, 2:]
            total = quarter[:, 0] + quarter[:, 1]
        for i in range(peeled, k):
            total += cols[:, i] * w[j, i]
        out[:, j] = total
    return out


def _eigen_gemm(cols: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``cols @ w.T`` in the order of Eigen's kernels (module docstring)."""
    m, n = cols.shape[0], w.shape[0]
    if m == 1:  # a matrix-vector product
        return _lanes(cols, w)
    out = np.empty((m, n), _F32)
    whole = n // 16 * 16
    if whole:
        out[:, :whole] = _in_order(cols, w[:whole])
    body = m // 4 * 4  # patches in blocks of 4; the rest one at a time, taps in order
    start = whole
    for size, tail in ((8, _even_odd), (4, _even_odd), (3, _lanes), (2, _lanes), (1, _lanes)):
        if n - start < size:
            continue
        part = w[start:start + size]
        if body:
            out[:body, start:start + size] = tail(cols[:body], part)
        if body < m:
            out[body:, start:start + size] = _in_order(cols[body:], part)
        start += size
    return out


def conv_2d(settings: TfOrder, x: np.ndarray, w: np.ndarray, b: np.ndarray | None):
    """CONV_2D in TF Lite's order (grouped convolutions run the reference kernel there)."""
    o, kh, kw, ci = w.shape
    dh, dw = settings.get("dilation_h_factor", 1), settings.get("dilation_w_factor", 1)
    cols = im2col(x, kh, kw, settings, dh, dw)
    n, oh, ow = cols.shape[:3]
    groups = x.shape[3] // ci
    k = kh * kw * ci
    if groups == 1:
        flat = cols.reshape(-1, k)
        wk = w.reshape(o, k)
        out = _in_order(flat, wk) if settings.reference else _eigen_gemm(flat, wk)
    else:
        og = o // groups
        out = np.empty((n * oh * ow, o), _F32)
        for g in range(groups):
            patch = cols[..., g * ci:(g + 1) * ci].reshape(-1, k)
            out[:, g * og:(g + 1) * og] = _in_order(patch, w[g * og:(g + 1) * og].reshape(og, k))
    if b is not None:
        out += b
    return _activate(out, settings.get("fused_activation_function", 0)).reshape(n, oh, ow, o)


def depthwise_conv_2d(settings: TfOrder, x: np.ndarray, w: np.ndarray,
                      b: np.ndarray | None):
    """DEPTHWISE_CONV_2D in TF Lite's order: taps in filter order, the bias first
    (optimized) or last (reference)."""
    c, cm = x.shape[3], w.shape[3]
    mult = cm // c
    dh, dw = settings.get("dilation_h_factor", 1), settings.get("dilation_w_factor", 1)
    out = scratch = None
    for (i, j), win in windows(x, w.shape[1], w.shape[2], settings, dh, dw):
        if out is None:
            out = np.zeros((*win.shape[:3], c, mult), _F32)
            scratch = np.empty_like(out)
            if b is not None and not settings.reference:
                out += b.reshape(c, mult)
        out += np.multiply(win[..., :, None], w[0, i, j].reshape(c, mult), out=scratch)
    out = out.reshape(*out.shape[:3], cm)
    if b is not None and settings.reference:
        out += b
    return _activate(out, settings.get("fused_activation_function", 0))


def hard_swish(settings: TfOrder, x: np.ndarray) -> np.ndarray:
    """HARD_SWISH as TF Lite's reference or optimized (NEON) float kernel computes it."""
    relu6 = np.add(x, _F32(3))
    np.minimum(np.maximum(relu6, _F32(0), out=relu6), _F32(6), out=relu6)
    if settings.reference:
        return np.divide(np.multiply(x, relu6, out=relu6), _F32(6), out=relu6)
    flat, r = x.reshape(-1), relu6.reshape(-1)
    body = flat.size // 4 * 4
    out = np.empty_like(flat)
    np.multiply(np.multiply(flat[:body], _SIXTH, out=out[:body]), r[:body], out=out[:body])
    np.multiply(np.multiply(flat[body:], r[body:], out=out[body:]), _SIXTH, out=out[body:])
    return out.reshape(x.shape)
