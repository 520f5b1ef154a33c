"""Flex ops TensorFlow's converter leaves in the gradients of common Keras layers and
losses: BroadcastGradientArgs, AddN, ZerosLike, Erf, the activation gradients
TanhGrad/SigmoidGrad/RsqrtGrad/SqrtGrad/ReciprocalGrad, (Sparse)SoftmaxCrossEntropyWithLogits
and StridedSliceGrad — semantics from TensorFlow's op definitions and CPU kernels.

Attrs are the NodeDef's (``T``, ``Tlabels``, the strided-slice masks, ...).
"""

from __future__ import annotations

import numpy as np

from .common import as_int_tuple, erf
from .flex_lists import add_lists, zeros_like_list
from .registry import NodeInfo, OpDef, Shaped
from .shapes import DYNAMIC, ShapeRuleError, elementwise, one, require_values, same_as, shape_of
from .slicing import _strided_spec


def broadcast_gradient_args(attrs, s0, s1):
    """The axes each operand's gradient sums over: TensorFlow's ``BCast`` without its
    fewer-dims optimisation. Shapes are compared from the innermost dim; a dim that is 1
    in an operand (including both being 1) is reduced for it; identical shapes reduce
    nothing."""
    x, y = [int(d) for d in np.asarray(s0).ravel()], [int(d) for d in np.asarray(s1).ravel()]
    dtype = np.asarray(s0).dtype
    if x == y:
        return np.zeros(0, dtype), np.zeros(0, dtype)
    n = max(len(x), len(y))
    x, y = [1] * (n - len(x)) + x, [1] * (n - len(y)) + y
    rx, ry = [], []
    for i, (a, b) in enumerate(zip(x, y, strict=True)):
        if a == b:
            if a == 1:
                rx.append(i)
                ry.append(i)
        elif a == 1:
            rx.append(i)
        elif b == 1:
            ry.append(i)
        else:
            raise ValueError(f"incompatible shapes for broadcasting: {x} and {y}")
    return np.array(rx, dtype), np.array(ry, dtype)


def _broadcast_gradient_args_shape(info: NodeInfo):
    a, b = require_values(info, 0, "shape"), require_values(info, 1, "shape")
    if None in a or None in b:  # which dims reduce depends on run-time sizes
        return Shaped((DYNAMIC,)), Shaped((DYNAMIC,))
    rx, ry = broadcast_gradient_args({}, np.array(a), np.array(b))
    return Shaped(rx.shape, tuple(rx.tolist())), Shaped(ry.shape, tuple(ry.tolist()))


def add_n(attrs, x, *xs):
    if x.dtype == object:  # variants: TensorLists, added element by element
        return add_lists(x, *xs)
    out = np.array(x, copy=True)
    for y in xs:
        out += y
    return out


def zeros_like(attrs, x):
    if x.dtype == object:
        return zeros_like_list(x)
    return np.zeros_like(x)


def sparse_softmax_cross_entropy(attrs, logits, labels):
    """Per-row loss ``logsumexp(logits) - logits[label]`` and its gradient
    ``softmax(logits) - one_hot(label)``; a label outside ``[0, classes)`` is an error."""
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must be in [0, {classes}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)
    rows = np.arange(labels.size)
    flat = shifted.reshape(-1, classes)
    loss = (np.log(total).reshape(-1) - flat[rows, labels.reshape(-1)]).reshape(labels.shape)
    backprop = exp / total
    backprop.reshape(-1, classes)[rows, labels.reshape(-1)] -= 1
    return loss.astype(logits.dtype), backprop.astype(logits.dtype)


def softmax_cross_entropy(attrs, logits, labels):
    """Per-row ``sum(-labels * log_softmax(logits))`` and ``softmax - labels``."""
    logits, labels = np.broadcast_arrays(logits, labels)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)
    loss = np.sum(labels * (np.log(total) - shifted), axis=-1)
    return loss.astype(logits.dtype), (exp / total - labels).astype(logits.dtype)


def _xent_shape(info: NodeInfo):
    logits = shape_of(info, 0)
    return Shaped(logits[:-1]), Shaped(logits)


def strided_slice_grad(attrs, shape, begin, end, strides, dy):
    """The gradient of STRIDED_SLICE: ``dy`` placed where the slice came from, zeros
    elsewhere."""
    out = np.zeros(as_int_tuple(shape), dy.dtype)
    spec = _strided_spec(attrs, as_int_tuple(begin), as_int_tuple(end), as_int_tuple(strides))
    out[spec] = dy.reshape(out[spec].shape)
    return out


def _grad(fn):
    """``*Grad(y, dy)`` ops: TensorFlow passes the forward *output* first."""
    return lambda attrs, y, dy: fn(y, dy).astype(dy.dtype, copy=False)


def _sized(info: NodeInfo):
    dims = require_values(info, 0, "shape")
    return one(tuple(DYNAMIC if d is None else d for d in dims))


def _same_or_fail(info: NodeInfo):
    try:
        return elementwise(info)
    except ShapeRuleError:
        return one(shape_of(info, 0))


OPS = [
    OpDef("FlexBroadcastGradientArgs", broadcast_gradient_args,
          shape=_broadcast_gradient_args_shape, fresh_output=True, shape_inputs=(0, 1),
          num_outputs=2),
    OpDef("FlexAddN", add_n, shape=_same_or_fail, fresh_output=True, shape_inputs=()),
    OpDef("FlexZerosLike", zeros_like, shape=same_as(0), fresh_output=True, shape_inputs=()),
    OpDef("FlexErf", lambda attrs, x: erf(x), shape=same_as(0), fresh_output=True,
          shape_inputs=()),
    OpDef("FlexTanhGrad", _grad(lambda y, dy: dy * (1 - y * y)), shape=same_as(0),
          fresh_output=True, shape_inputs=()),
    OpDef("FlexSigmoidGrad", _grad(lambda y, dy: dy * y * (1 - y)), shape=same_as(0),
          fresh_output=True, shape_inputs=()),
    OpDef("FlexRsqrtGrad", _grad(lambda y, dy: dy * y * y * y * -0.5), shape=same_as(0),
          fresh_output=True, shape_inputs=()),
    OpDef("FlexSqrtGrad", _grad(lambda y, dy: dy * 0.5 / y), shape=same_as(0),
          fresh_output=True, shape_inputs=()),
    OpDef("FlexReciprocalGrad", _grad(lambda y, dy: -dy * y * y), shape=same_as(0),
          fresh_output=True, shape_inputs=()),
    OpDef("FlexSparseSoftmaxCrossEntropyWithLogits", sparse_softmax_cross_entropy,
          shape=_xent_shape, fresh_output=True, shape_inputs=(), num_outputs=2),
    OpDef("FlexSoftmaxCrossEntropyWithLogits", softmax_cross_entropy, shape=_xent_shape,
          fresh_output=True, shape_inputs=(), num_outputs=2),
    OpDef("FlexStridedSliceGrad", strided_slice_grad, shape=_sized, fresh_output=True,
          shape_inputs=(0, 1, 2, 3)),
]
