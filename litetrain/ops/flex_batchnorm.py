"""FusedBatchNormV3 and FusedBatchNormGradV3 (Flex): what Keras' BatchNormalization (and
LayerNormalization, which reuses the fused kernel) become in converted training graphs.
Semantics of TensorFlow's CPU kernels:

* training: normalise with the batch mean and *biased* variance; ``batch_mean`` /
  ``batch_variance`` are the new moving statistics — the batch's (variance
  Bessel-corrected) or, with ``exponential_avg_factor`` f ≠ 1,
  ``(1 - f) * old + f * batch``; ``reserve_space_1/2`` keep the batch mean and biased
  variance for the gradient; ``reserve_space_3`` is empty;
* inference: normalise with the given mean and variance and pass them through.

The channel axis is the last (NHWC) or axis 1 (NCHW); every other axis is reduced.
"""

from __future__ import annotations

import numpy as np

from .registry import NodeInfo, OpDef, Shaped
from .shapes import shape_of


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _layout(attrs, x) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(axes reduced, shape that broadcasts a per-channel vector against ``x``)."""
    fmt = _text(attrs.get("data_format", "NHWC"))
    channel = 1 if fmt.startswith("NC") else x.ndim - 1
    shape = tuple(x.shape[channel] if k == channel else 1 for k in range(x.ndim))
    return tuple(k for k in range(x.ndim) if k != channel), shape


def fused_batch_norm(attrs, x, scale, offset, mean, variance):
    axes, per_channel = _layout(attrs, x)
    u = scale.dtype
    eps = u.type(attrs.get("epsilon", 1e-4))
    xu = x.astype(u, copy=False)
    if not attrs.get("is_training", True):
        inv = (1 / np.sqrt(variance + eps) * scale).reshape(per_channel)
        y = (xu - mean.reshape(per_channel)) * inv + offset.reshape(per_channel)
        empty = np.zeros(0, u)
        return y.astype(x.dtype), mean, variance, mean, variance, empty
    rest = int(np.prod([x.shape[a] for a in axes]))
    rest_inv = u.type(1.0 / rest)
    adjust = u.type(rest / max(rest - 1, 1))  # Bessel's correction for the moving variance
    batch_mean = xu.sum(axis=axes) * rest_inv
    centered = xu - batch_mean.reshape(per_channel)
    batch_var = np.square(centered).sum(axis=axes) * rest_inv
    factor = (1 / np.sqrt(batch_var + eps) * scale).reshape(per_channel)
    y = (centered * factor + offset.reshape(per_channel)).astype(x.dtype)
    f = u.type(attrs.get("exponential_avg_factor", 1.0))
    if f == 1:
        new_mean, new_var = batch_mean, batch_var * adjust
    else:
        new_mean = (1 - f) * mean + f * batch_mean
        new_var = (1 - f) * variance + (f * adjust) * batch_var
    return y, new_mean, new_var, batch_mean, batch_var, np.zeros(0, u)


def fused_batch_norm_grad(attrs, dy, x, scale, mean, variance, reserve_space_3=None):
    """Gradients for x, scale and offset, with the batch statistics the forward pass kept
    (training) or the population ones (inference)."""
    axes, per_channel = _layout(attrs, x)
    u = scale.dtype
    eps = u.type(attrs.get("epsilon", 1e-4))
    du, xu = dy.astype(u, copy=False), x.astype(u, copy=False)
    centered = xu - mean.reshape(per_channel)
    rsqrt = 1 / np.sqrt(variance + eps)
    offset_grad = du.sum(axis=axes)
    empty = np.zeros(0, u)
    if not attrs.get("is_training", True):
        scale_grad = (du * centered).sum(axis=axes) * rsqrt
        dx = du * (rsqrt * scale).reshape(per_channel)
        return dx.astype(x.dtype), scale_grad, offset_grad, empty, empty
    rest = int(np.prod([x.shape[a] for a in axes]))
    scale_grad = (du * (centered * rsqrt.reshape(per_channel))).sum(axis=axes)
    dy_centered = du - (offset_grad * u.type(1.0 / rest)).reshape(per_channel)
    dy_x_mean = (du * centered).sum(axis=axes) / u.type(rest)
    coef1 = (scale * rsqrt).reshape(per_channel)
    coef2 = (np.square(rsqrt) * dy_x_mean).reshape(per_channel)
    dx = coef1 * (dy_centered - centered * coef2)
    return dx.astype(x.dtype), scale_grad, offset_grad, empty, empty


def _forward_shape(info: NodeInfo):
    x, c = shape_of(info, 0), shape_of(info, 1)
    return (Shaped(x), Shaped(c), Shaped(c), Shaped(c), Shaped(c), Shaped((0,)))


def _grad_shape(info: NodeInfo):
    x, c = shape_of(info, 1), shape_of(info, 2)
    return (Shaped(x), Shaped(c), Shaped(c), Shaped((0,)), Shaped((0,)))


OPS = [
    OpDef("FlexFusedBatchNormV3", fused_batch_norm, shape=_forward_shape, shape_inputs=(),
          num_outputs=6),
    OpDef("FlexFusedBatchNormGradV3", fused_batch_norm_grad, shape=_grad_shape,
          fresh_output=True, shape_inputs=(), num_outputs=5),
]
