"""Convolution and pooling layers (NHWC), Keras names and weight layouts."""

from __future__ import annotations

import numpy as np

from ..ops.common import SAME, VALID, conv_out_size
from .functional import activation as get_activation
from .functional import reduce_mean
from .layers import Layer


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _padding_code(padding: str) -> int:
    if padding.lower() not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return SAME if padding.lower() == "same" else VALID


class Conv2D(Layer):
    """2-D convolution, NHWC. The kernel is stored in Keras' ``[kh, kw, in, out]`` layout
    and transposed to TFLite's ``[out, kh, kw, in]`` in the graph, as TF's converter does."""

    default_name = "conv2d"

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid",
                 activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), _pair(kernel_size), \
            _pair(strides)
        self.kernel_regularizer = kernel_regularizer
        self.padding = _padding_code(padding)
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, input_shape[-1], self.filters),
                                      self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        self.built = True

    def output_shape(self, input_shape):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        oh = conv_out_size(input_shape[1], kh, sh, 1, self.padding)
        ow = conv_out_size(input_shape[2], kw, sw, 1, self.padding)
        return (input_shape[0], oh, ow, self.filters)

    def call(self, x, training=False):
        g = x.graph
        w = g.op("transpose", self.kernel.read(), g.const(np.array([3, 0, 1, 2], np.int32)))
        b = self.bias.read() if self.use_bias else None
        y = g.op("conv_2d", x, w, b, padding=self.padding, stride_h=self.strides[0],
                 stride_w=self.strides[1])
        return self.activation(y)


class Conv1D(Conv2D):
    """1-D convolution over ``[batch, steps, channels]``: a CONV_2D on a height-1 image (as
    TensorFlow's converter lowers it). Keras kernel layout ``[k, in, out]``."""

    default_name = "conv1d"

    def __init__(self, filters: int, kernel_size: int, strides: int = 1,
                 padding: str = "valid", **kwargs):
        super().__init__(filters, (1, int(kernel_size)), (1, int(strides)), padding, **kwargs)

    def build(self, input_shape):
        super().build((input_shape[0], 1, *input_shape[1:]))
        # Keras keeps a 1-D kernel [k, in, out]; the graph adds the height axis.
        self.kernel.initial_value = self.kernel.initial_value[0]

    def output_shape(self, input_shape):
        n, _, steps, c = super().output_shape((input_shape[0], 1, *input_shape[1:]))
        return (n, steps, c)

    def call(self, x, training=False):
        g = x.graph
        k, ci, o = self.kernel.shape
        w = g.op("reshape", self.kernel.read(), g.const(np.array([1, k, ci, o], np.int32)))
        w = g.op("transpose", w, g.const(np.array([3, 0, 1, 2], np.int32)))
        b = self.bias.read() if self.use_bias else None
        image = g.op("expand_dims", x, g.const(np.int32(1)))
        y = g.op("conv_2d", image, w, b, padding=self.padding, stride_h=1,
                 stride_w=self.strides[1])
        return self.activation(g.op("squeeze", y, squeeze_dims=np.array([1], np.int32)))


class UpSampling2D(Layer):
    """Repeats rows and columns ``size`` times (nearest neighbour, Keras' default)."""

    default_name = "up_sampling2d"

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = _pair(size)

    def output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h * self.size[0], w * self.size[1], c)

    def call(self, x, training=False):
        g = x.graph
        size = np.array([x.shape[1] * self.size[0], x.shape[2] * self.size[1]], np.int32)
        return g.op("resize_nearest_neighbor", x, g.const(size))


class Conv2DTranspose(Conv2D):
    """Transposed 2-D convolution (upsampling), NHWC. Keras kernel layout
    ``[kh, kw, out, in]``, transposed to TFLite's ``[out, kh, kw, in]`` in the graph."""

    default_name = "conv2d_transpose"

    def build(self, input_shape):
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, self.filters, input_shape[-1]),
                                      self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        self.built = True

    def _size(self, n: int, k: int, s: int) -> int:
        return n * s if self.padding == SAME else n * s + max(k - s, 0)

    def output_shape(self, input_shape):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (input_shape[0], self._size(input_shape[1], kh, sh),
                self._size(input_shape[2], kw, sw), self.filters)

    def call(self, x, training=False):
        g = x.graph
        w = g.op("transpose", self.kernel.read(), g.const(np.array([2, 0, 1, 3], np.int32)))
        _, oh, ow, _ = self.output_shape((None, *x.shape[1:]))
        batch = g.op("strided_slice", g.op("shape", x, out_type=2), g.const(np.array(
            [0], np.int32)), g.const(np.array([1], np.int32)), g.const(np.array([1], np.int32)))
        size = g.op("concatenation", batch, g.const(np.array([oh, ow, self.filters], np.int32)),
                    axis=0)
        b = self.bias.read() if self.use_bias else None
        y = g.op("transpose_conv", size, w, x, b, padding=self.padding,
                 stride_h=self.strides[0], stride_w=self.strides[1])
        return self.activation(y)


class DepthwiseConv2D(Layer):
    """Depthwise 2-D convolution, NHWC: each input channel convolved with its own
    ``depth_multiplier`` filters. Keras layout ``[kh, kw, in, multiplier]``, reshaped to
    TFLite's ``[1, kh, kw, in * multiplier]`` in the graph."""

    default_name = "depthwise_conv2d"

    def __init__(self, kernel_size, strides=1, padding: str = "valid", depth_multiplier: int = 1,
                 activation=None, use_bias: bool = True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.strides = _pair(kernel_size), _pair(strides)
        self.padding = _padding_code(padding)
        self.depth_multiplier = int(depth_multiplier)
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.depthwise_initializer, self.bias_initializer = depthwise_initializer, \
            bias_initializer

    def build(self, input_shape):
        kh, kw = self.kernel_size
        c = input_shape[-1]
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", (kh, kw, c, self.depth_multiplier), self.depthwise_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (c * self.depth_multiplier,),
                                        self.bias_initializer)
        self.built = True

    def output_shape(self, input_shape):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        oh = conv_out_size(input_shape[1], kh, sh, 1, self.padding)
        ow = conv_out_size(input_shape[2], kw, sw, 1, self.padding)
        return (input_shape[0], oh, ow, input_shape[3] * self.depth_multiplier)

    def call(self, x, training=False):
        g = x.graph
        kh, kw, c, m = self.depthwise_kernel.shape
        w = g.op("reshape", self.depthwise_kernel.read(),
                 g.const(np.array([1, kh, kw, c * m], np.int32)))
        b = self.bias.read() if self.use_bias else None
        y = g.op("depthwise_conv_2d", x, w, b, padding=self.padding,
                 stride_h=self.strides[0], stride_w=self.strides[1], depth_multiplier=m)
        return self.activation(y)


class ZeroPadding2D(Layer):
    """Zero rows and columns around each image: ``padding`` as an int, ``(h, w)`` or
    ``((top, bottom), (left, right))``, as in Keras."""

    default_name = "zero_padding2d"

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if np.isscalar(padding):
            padding = ((padding, padding), (padding, padding))
        elif np.isscalar(padding[0]):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)

    def output_shape(self, input_shape):
        (t, b), (left, r) = self.padding
        n, h, w, c = input_shape
        return (n, None if h is None else h + t + b, None if w is None else w + left + r, c)

    def call(self, x, training=False):
        (t, b), (left, r) = self.padding
        pads = np.array([[0, 0], [t, b], [left, r], [0, 0]], np.int32)
        return x.graph.op("pad", x, x.graph.const(pads))


class SeparableConv2D(Layer):
    """Depthwise then pointwise (1×1) convolution, Keras' weights ``depthwise_kernel``
    ``[kh, kw, in, multiplier]``, ``pointwise_kernel`` ``[1, 1, in * multiplier, filters]``,
    ``bias``."""

    default_name = "separable_conv2d"

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid",
                 depth_multiplier: int = 1, activation=None, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), _pair(kernel_size), \
            _pair(strides)
        self.padding, self.depth_multiplier = _padding_code(padding), int(depth_multiplier)
        self.activation, self.use_bias = get_activation(activation), use_bias

    def build(self, input_shape):
        (kh, kw), c, m = self.kernel_size, input_shape[-1], self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (kh, kw, c, m),
                                                "glorot_uniform")
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, c * m, self.filters),
                                                "glorot_uniform")
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), "zeros")
        self.built = True

    def output_shape(self, input_shape):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (input_shape[0], conv_out_size(input_shape[1], kh, sh, 1, self.padding),
                conv_out_size(input_shape[2], kw, sw, 1, self.padding), self.filters)

    def call(self, x, training=False):
        g = x.graph
        kh, kw, c, m = self.depthwise_kernel.shape
        dw = g.op("reshape", self.depthwise_kernel.read(),
                  g.const(np.array([1, kh, kw, c * m], np.int32)))
        y = g.op("depthwise_conv_2d", x, dw, g.const(np.zeros(c * m, np.float32)),
                 padding=self.padding, stride_h=self.strides[0], stride_w=self.strides[1],
                 depth_multiplier=m)
        pw = g.op("transpose", self.pointwise_kernel.read(),
                  g.const(np.array([3, 0, 1, 2], np.int32)))
        b = self.bias.read() if self.use_bias else None
        return self.activation(g.op("conv_2d", y, pw, b, padding=VALID, stride_h=1,
                                    stride_w=1))


class _Pool2D(Layer):
    op = ""

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides) if strides is not None else self.pool_size
        self.padding = _padding_code(padding)

    def output_shape(self, input_shape):
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        return (input_shape[0], conv_out_size(input_shape[1], kh, sh, 1, self.padding),
                conv_out_size(input_shape[2], kw, sw, 1, self.padding), input_shape[3])

    def call(self, x, training=False):
        return x.graph.op(self.op, x, padding=self.padding, stride_h=self.strides[0],
                          stride_w=self.strides[1], filter_height=self.pool_size[0],
                          filter_width=self.pool_size[1])


class MaxPool2D(_Pool2D):
    default_name = "max_pooling2d"
    op = "max_pool_2d"


class AveragePooling2D(_Pool2D):
    default_name = "average_pooling2d"
    op = "average_pool_2d"


class GlobalAveragePooling2D(Layer):
    default_name = "global_average_pooling2d"

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[3])

    def call(self, x, training=False):
        return reduce_mean(x, axis=(1, 2))




class GlobalAveragePooling1D(Layer):
    """The mean over the time axis: ``[batch, time, features]`` → ``[batch, features]``."""

    default_name = "global_average_pooling1d"

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def call(self, x, training=False):
        if x.ndim != 3:
            raise ValueError(f"GlobalAveragePooling1D expects [batch, time, features] inputs, "
                             f"got {list(x.shape)}")
        return reduce_mean(x, axis=1)
