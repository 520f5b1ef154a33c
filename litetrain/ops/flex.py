"""Flex ops: the TensorFlow ops the converter leaves as ``Flex<Op>`` in training graphs.

Attrs come from the op's NodeDef (see ``litetrain.tflite.flex``), with TF's names:
``strides``/``ksize``/``dilations`` as NHWC lists, ``padding`` as "SAME"/"VALID"/"EXPLICIT".
TF filters are HWIO (``[kh, kw, in, out]``); depthwise filters ``[kh, kw, in, mult]``.
Gradient kernels scatter each filter tap's contribution with strided slices, so every
window position is handled by NumPy, never by a Python loop over pixels.
"""

from __future__ import annotations

import numpy as np

from ..checkpoint.expect import expect
from ..errors import CheckpointError
from .common import SAME, VALID, as_int_tuple, pad_before_after
from .registry import NodeInfo, OpDef
from .shapes import DYNAMIC, one, require_values, same_as, shape_of
from .windows import im2col, windows

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _nhwc(attrs) -> None:
    fmt = _text(attrs.get("data_format", "NHWC"))
    if fmt != "NHWC":
        raise ValueError(f"data_format {fmt} is not supported (only NHWC, as TFLite uses)")


def _geometry(attrs, x_shape, kh, kw):
    """TFLite-style window attrs from TF attrs, plus explicit pads (top, bottom, left, right)."""
    _nhwc(attrs)
    s = attrs.get("strides", (1, 1, 1, 1))
    d = attrs.get("dilations", (1, 1, 1, 1))
    pad = _text(attrs.get("padding", "VALID"))
    geo = {"stride_h": s[1], "stride_w": s[2], "padding": SAME if pad == "SAME" else VALID}
    if pad == "EXPLICIT":
        e = attrs.get("explicit_paddings", ())
        pads = (e[2], e[3], e[4], e[5])
    else:
        _, t, b = pad_before_after(x_shape[1], kh, s[1], d[1], geo["padding"])
        _, left, r = pad_before_after(x_shape[2], kw, s[2], d[2], geo["padding"])
        pads = (t, b, left, r)
    return geo, (d[1], d[2]), pads


def _pad_explicit(x, pads, value=0.0):
    t, b, left, r = pads
    return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=value)


def _scatter_taps(contrib, x_shape, kh, kw, geo, dil, pads):
    """Sum per-tap gradients ``contrib[n, oh, ow, kh, kw, c]`` back onto the input grid."""
    n, h, w, c = x_shape
    t, b, left, r = pads
    oh, ow = contrib.shape[1:3]
    sh, sw = geo["stride_h"], geo["stride_w"]
    full = np.zeros((n, h + t + b, w + left + r, c), contrib.dtype)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dil[0], j * dil[1]
            full[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :] += \
                contrib[:, :, :, i, j, :]
    return full[:, t:t + h, left:left + w, :]


def _valid(geo):
    return {**geo, "padding": VALID}


def conv2d_backprop_filter(attrs, x, filter_sizes, dy):
    kh, kw, ci, co = as_int_tuple(filter_sizes)
    geo, dil, pads = _geometry(attrs, x.shape, kh, kw)
    cols = im2col(_pad_explicit(x, pads), kh, kw, _valid(geo), *dil)
    if x.shape[3] != ci:
        raise ValueError(f"grouped convolution gradients are not supported ({x.shape[3]} "
                         f"input channels, filter depth {ci})")
    dw = cols.reshape(-1, kh * kw * ci).T @ dy.reshape(-1, co)
    return dw.reshape(kh, kw, ci, co)


def conv2d_backprop_input(attrs, input_sizes, w, dy):
    x_shape = as_int_tuple(input_sizes)
    kh, kw, ci, co = w.shape
    geo, dil, pads = _geometry(attrs, x_shape, kh, kw)
    contrib = (dy.reshape(-1, co) @ w.reshape(kh * kw * ci, co).T)
    contrib = contrib.reshape(*dy.shape[:3], kh, kw, ci)
    return _scatter_taps(contrib, x_shape, kh, kw, geo, dil, pads)


def depthwise_backprop_input(attrs, input_sizes, w, dy):
    x_shape = as_int_tuple(input_sizes)
    kh, kw, c, m = w.shape
    geo, dil, pads = _geometry(attrs, x_shape, kh, kw)
    dy = dy.reshape(*dy.shape[:3], c, m)
    contrib = np.einsum("nhwcm,ijcm->nhwijc", dy, w, optimize=True)
    return _scatter_taps(contrib, x_shape, kh, kw, geo, dil, pads)


def depthwise_backprop_filter(attrs, x, filter_sizes, dy):
    kh, kw, c, m = as_int_tuple(filter_sizes)
    geo, dil, pads = _geometry(attrs, x.shape, kh, kw)
    cols = im2col(_pad_explicit(x, pads), kh, kw, _valid(geo), *dil)
    dy = dy.reshape(*dy.shape[:3], c, m)
    return np.einsum("nhwijc,nhwcm->ijcm", cols, dy, optimize=True)


def _pool_geometry(attrs, x_shape):
    k = attrs.get("ksize", (1, 1, 1, 1))
    geo, _, pads = _geometry(attrs, x_shape, k[1], k[2])
    return k[1], k[2], geo, pads


def max_pool_grad(attrs, x, y, dy):
    kh, kw, geo, pads = _pool_geometry(attrs, x.shape)
    xp = _pad_explicit(x, pads, -np.inf)
    taken = np.zeros(y.shape, bool)
    contrib = np.zeros((*y.shape[:3], kh, kw, y.shape[3]), dy.dtype)
    # The gradient goes to the first maximum of each window, scanning row-major as TF does.
    for (i, j), win in windows(xp, kh, kw, _valid(geo)):
        hit = (win == y) & ~taken
        contrib[:, :, :, i, j, :] = np.where(hit, dy, 0)
        taken |= hit
    return _scatter_taps(contrib, x.shape, kh, kw, geo, (1, 1), pads)


def avg_pool_grad(attrs, orig_input_shape, dy):
    x_shape = as_int_tuple(orig_input_shape)
    kh, kw, geo, pads = _pool_geometry(attrs, x_shape)
    ones = _pad_explicit(np.ones((1, *x_shape[1:3], 1), dy.dtype), pads)
    count = sum(win for _, win in windows(ones, kh, kw, _valid(geo)))
    share = dy / count
    contrib = np.broadcast_to(share[:, :, :, None, None, :], (*dy.shape[:3], kh, kw, dy.shape[3]))
    return _scatter_taps(contrib, x_shape, kh, kw, geo, (1, 1), pads)


def bias_add_grad(attrs, dy):
    axis = 1 if _text(attrs.get("data_format", "NHWC")) == "NCHW" else dy.ndim - 1
    return dy.sum(axis=tuple(a for a in range(dy.ndim) if a != axis))


def _names(arr) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for v in np.asarray(arr, object).reshape(-1)]


def _path(arr) -> str:
    (p,) = _names(arr)
    return p


def save(ctx, attrs, filename, tensor_names, *data):
    names = _names(tensor_names)
    if len(names) != len(data):
        raise CheckpointError(f"Save got {len(names)} names for {len(data)} tensors")
    ctx.write_checkpoint(_path(filename), dict(zip(names, data, strict=True)), "v1")


def save_v2(ctx, attrs, prefix, tensor_names, shape_and_slices, *data):
    names = _names(tensor_names)
    if any(_names(shape_and_slices)):
        raise CheckpointError("SaveV2 of partial slices is not supported")
    ctx.write_checkpoint(_path(prefix), dict(zip(names, data, strict=True)), "v2")


def _restore_prepare(info: NodeInfo) -> tuple[tuple[np.dtype, tuple[int, ...] | None], ...]:
    """What each restored tensor must be: the output's dtype, and its shape when the file
    gives a complete one (TensorFlow writes ``[]`` without a shape signature when it could
    not infer the shape; that is "unknown", not "scalar")."""
    return tuple((t.dtype, t.shape or None) for t in info.outputs)


def _restored(ctx, path, name, want):
    dtype, shape = want
    return expect(ctx.read_checkpoint(path), name, dtype, shape, path)


def restore(ctx, wants, file_pattern, tensor_name):
    return _restored(ctx, _path(file_pattern), _path(tensor_name), wants[0])


def restore_v2(ctx, wants, prefix, tensor_names, shape_and_slices):
    path = _path(prefix)
    names = _names(tensor_names)
    if len(names) != len(wants):
        raise CheckpointError(f"RestoreV2 names {len(names)} tensors for {len(wants)} outputs")
    return tuple(_restored(ctx, path, n, w) for n, w in zip(names, wants, strict=True))


def ensure_shape(attrs, x):
    want = attrs.get("shape")
    if want is not None and (len(want) != x.ndim or any(
            w not in (-1, d) for w, d in zip(want, x.shape, strict=True))):
        raise ValueError(f"EnsureShape: shape {list(x.shape)} is not compatible with "
                         f"{list(want)}")
    return x


def _grad(fn):
    return lambda attrs, dy, v: fn(attrs, dy, v).astype(dy.dtype, copy=False)


def _bias_add_grad_shape(info: NodeInfo):
    dy = shape_of(info, 0)
    nchw = _text(info.attrs.get("data_format", "NHWC")) == "NCHW"
    return one((dy[1] if nchw else dy[-1],))


def _sized_by(k: int):
    """The output's shape is input ``k``'s value (``input_sizes``/``filter_sizes``)."""
    def rule(info: NodeInfo):
        return one(tuple(DYNAMIC if d is None else d for d in require_values(info, k, "sizes")))
    return rule


def _activation_grad(name: str, fn) -> OpDef:
    return OpDef(name, _grad(fn), shape=same_as(0), fresh_output=True, shape_inputs=())


OPS = [
    _activation_grad("FlexReluGrad", lambda a, dy, x: dy * (x > 0)),
    _activation_grad("FlexRelu6Grad", lambda a, dy, x: dy * ((x > 0) & (x < 6))),
    _activation_grad("FlexLeakyReluGrad", lambda a, dy, x: np.where(
        x > 0, dy, dy * dy.dtype.type(a.get("alpha", 0.2)))),
    _activation_grad("FlexEluGrad", lambda a, dy, y: np.where(y > 0, dy, dy * (y + 1))),
    _activation_grad("FlexSeluGrad", lambda a, dy, y: np.where(
        y > 0, dy * _SELU_SCALE, dy * (y + _SELU_SCALE * _SELU_ALPHA))),
    _activation_grad("FlexSoftplusGrad", lambda a, dy, x: dy / (1 + np.exp(-x))),
    OpDef("FlexBiasAddGrad", bias_add_grad, shape=_bias_add_grad_shape, shape_inputs=()),
    OpDef("FlexConv2DBackpropInput", conv2d_backprop_input, shape=_sized_by(0),
          shape_inputs=(0,)),
    OpDef("FlexConv2DBackpropFilter", conv2d_backprop_filter, shape=_sized_by(1),
          shape_inputs=(1,)),
    OpDef("FlexDepthwiseConv2dNativeBackpropInput", depthwise_backprop_input,
          shape=_sized_by(0), shape_inputs=(0,)),
    OpDef("FlexDepthwiseConv2dNativeBackpropFilter", depthwise_backprop_filter,
          shape=_sized_by(1), shape_inputs=(1,)),
    OpDef("FlexMaxPoolGrad", max_pool_grad, shape=same_as(0), shape_inputs=()),
    OpDef("FlexAvgPoolGrad", avg_pool_grad, shape=_sized_by(0), shape_inputs=(0,)),
    OpDef("FlexEnsureShape", ensure_shape, shape=same_as(0), shape_inputs=()),
    OpDef("FlexIdentity", lambda attrs, x: x, shape=same_as(0), shape_inputs=()),
    OpDef("FlexSave", save, shape=lambda info: (), stateful=True, num_outputs=0),
    OpDef("FlexSaveV2", save_v2, shape=lambda info: (), stateful=True, num_outputs=0),
    OpDef("FlexRestore", restore, prepare=_restore_prepare, stateful=True),
    OpDef("FlexRestoreV2", restore_v2, prepare=_restore_prepare, stateful=True,
          num_outputs=None),
]
