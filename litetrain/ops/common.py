"""Helpers shared by kernels: fused activations, padding arithmetic, axis handling."""

from __future__ import annotations

import numpy as np

# ActivationFunctionType from the schema.
NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT = 0, 1, 2, 3, 4, 5
# Padding from the schema.
SAME, VALID = 0, 1


def fused(x: np.ndarray, code: int) -> np.ndarray:
    """Apply a fused activation in place when possible and return the result."""
    if code == NONE:
        return x
    if code == RELU:
        return np.maximum(x, 0, out=x) if x.flags.writeable else np.maximum(x, 0)
    if code == RELU6:
        return np.clip(x, 0, 6)
    if code == RELU_N1_TO_1:
        return np.clip(x, -1, 1)
    if code == TANH:
        return np.tanh(x)
    if code == SIGN_BIT:
        return np.signbit(x).astype(x.dtype)
    raise ValueError(f"unknown fused activation function code {code}")


def conv_out_size(size: int, k: int, stride: int, dilation: int, padding: int) -> int:
    eff = (k - 1) * dilation + 1
    if padding == SAME:
        return -(-size // stride)
    return -(-(size - eff + 1) // stride)


def pad_before_after(size: int, k: int, stride: int, dilation: int, padding: int
                     ) -> tuple[int, int, int]:
    """(output size, pad before, pad after) along one spatial dim, TFLite's rule."""
    out = conv_out_size(size, k, stride, dilation, padding)
    if out <= 0:
        raise ValueError(f"window {k} (dilation {dilation}) does not fit in input size {size}")
    if padding != SAME:
        return out, 0, 0
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


def window_geometry(cache: dict, attrs, x: np.ndarray, kh: int, kw: int
                    ) -> tuple[int, ...]:
    """(sh, sw, dh, dw, pt, pl, oh, ow) of a ``kh`` × ``kw`` window over NHWC ``x`` under a
    conv/pool node's ``attrs``, computed once per input size into ``cache`` (a node's
    prepared settings own one)."""
    g = cache.get(x.shape[1:3])
    if g is None:
        sh, sw = attrs["stride_h"], attrs["stride_w"]
        dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
        oh, pt, _ = pad_before_after(x.shape[1], kh, sh, dh, attrs["padding"])
        ow, pl, _ = pad_before_after(x.shape[2], kw, sw, dw, attrs["padding"])
        g = cache[x.shape[1:3]] = (sh, sw, dh, dw, pt, pl, oh, ow)
    return g


def axes(axis: np.ndarray | int, rank: int) -> tuple[int, ...]:
    """Normalised, de-duplicated axes (negative axes count from the end)."""
    out: list[int] = []
    for a in np.asarray(axis).ravel().tolist():
        if not -rank <= a < max(rank, 1):
            raise ValueError(f"axis {a} is out of range for rank {rank}")
        a = a % rank if rank else 0
        if a not in out:
            out.append(a)
    return tuple(out)


def as_int_tuple(x: np.ndarray) -> tuple[int, ...]:
    return tuple(np.asarray(x).ravel().tolist())


def erf(x: np.ndarray) -> np.ndarray:
    """Error function to float32 precision (Abramowitz & Stegun 7.1.26 refined; |err| < 2e-7)."""
    xd = np.asarray(x, np.float64)
    s = np.sign(xd)
    a = np.abs(xd)
    t = 1.0 / (1.0 + 0.5 * a)
    # Numerical Recipes erfc approximation, fractional error < 1.2e-7 everywhere.
    poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    return (s * (1.0 - t * np.exp(poly))).astype(np.asarray(x).dtype)
