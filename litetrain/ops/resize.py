"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR (NHWC) — kernels, shape rules, integer
behaviour. ``align_corners`` and ``half_pixel_centers`` follow TFLite's coordinate rules."""

from __future__ import annotations

import numpy as np

from ..errors import TraceError, user_frame
from .common import as_int_tuple
from .quantized.fixed_point import dtype_range, round_half_away
from .quantized.lib import Quantized, integer
from .registry import NodeInfo, OpDef
from .shapes import fully_known, one, shape_of


def _resize_scale(in_size: int, out_size: int, align_corners: bool) -> float:
    if align_corners and out_size > 1:
        return (in_size - 1) / (out_size - 1)
    return in_size / out_size


def resize_bilinear(attrs, x, size):
    oh, ow = as_int_tuple(size)
    ac, hp = attrs.get("align_corners", False), attrs.get("half_pixel_centers", False)

    def coords(in_size, out_size):
        scale = _resize_scale(in_size, out_size, ac)
        v = np.arange(out_size, dtype=np.float32)
        v = (v + 0.5) * scale - 0.5 if hp else v * scale
        lo = np.maximum(np.floor(v), 0).astype(np.int64)
        hi = np.minimum(np.ceil(v), in_size - 1).astype(np.int64)
        return v - lo, lo, hi

    fy, y0, y1 = coords(x.shape[1], oh)
    fx, x0, x1 = coords(x.shape[2], ow)
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(x.dtype)


def resize_nearest_neighbor(attrs, x, size):
    oh, ow = as_int_tuple(size)
    ac, hp = attrs.get("align_corners", False), attrs.get("half_pixel_centers", False)

    def index(in_size, out_size):
        scale = _resize_scale(in_size, out_size, ac)
        v = (np.arange(out_size) + (0.5 if hp else 0.0)) * scale
        # TFLite rounds half away from zero when aligning corners, else floors.
        i = np.floor(v + 0.5) if ac else np.floor(v)
        return np.clip(i.astype(np.int64), 0, in_size - 1)

    return x[:, index(x.shape[1], oh)][:, :, index(x.shape[2], ow)]


def _resize_shape(info: NodeInfo):
    n, _, _, c = shape_of(info, 0)
    oh, ow = fully_known(info, 1, "size")
    return one((n, oh, ow, c))


def _nearest_vjp(g, attrs, ins, outs, dy):
    """Upsampling by whole factors (UpSampling2D): each input pixel's cotangent is the sum
    of the block it was copied into."""
    x = ins[0]
    (_, h, w, c), (oh, ow) = x.shape, outs[0].shape[1:3]
    if attrs.get("align_corners") or attrs.get("half_pixel_centers") or oh % h or ow % w:
        raise TraceError(f"{user_frame()}: gradients of resize_nearest_neighbor need whole "
                         "upsampling factors without align_corners/half_pixel_centers")
    fh, fw = oh // h, ow // w
    blocks = g.op("reshape", dy, g.const(np.array([-1, h, fh, w, fw, c], np.int32)))
    return [g.op("sum", blocks, g.const(np.array([2, 4], np.int32)), keep_dims=False), None]


def _resize_bilinear_integer(s: Quantized, x, size):
    out = resize_bilinear(s.attrs, x.astype(np.float32), size)
    return np.clip(round_half_away(out), *dtype_range(x.dtype)).astype(x.dtype)


OPS = [
    OpDef("resize_bilinear", resize_bilinear, "ResizeBilinearOptions", shape=_resize_shape,
          integer=integer(_resize_bilinear_integer), shape_inputs=(1,)),
    OpDef("resize_nearest_neighbor", resize_nearest_neighbor, "ResizeNearestNeighborOptions",
          shape=_resize_shape, vjp=_nearest_vjp, passthrough=True,
          output_quantization="same_as_input", shape_inputs=(1,)),
]
