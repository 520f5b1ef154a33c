"""One float step as instructions of :mod:`litetrain.ops.fast.float_program`, or ``None``.

Two stages. :func:`candidate` (at a plan's first run for new shapes, nothing loaded) says
from the step alone whether it is a kind this module encodes: its reads and writes in
the arena as a :class:`~.int8_encode.Template` without fields. :func:`encode` (once the
compiled kernels are loaded) asks the step's own kernels what they would run for the
planned shapes — :func:`litetrain.ops.conv_gemm.pointwise_plan` for a 1×1 CONV_2D (the
BLAS-order kernel where :mod:`litetrain.ops.conv_exact` adopted it, else NumPy's product
and the epilogue kernel), :func:`litetrain.ops.compiled.run_depthwise`'s kept arguments
for DEPTHWISE_CONV_2D — and writes down exactly that: the same kernels on the same
prepared constants, NumPy's products as the BLAS calls NumPy makes
(:mod:`litetrain.ops.fast.blas`, each shape proven against ``np.matmul`` first), and
float32 elementwise operations NumPy does one per element (ADD of equal shapes, a bias
added). Anything else is ``None``: the step runs on its own.

Encoded kinds: CONV_2D 1×1 stride 1 in one chunk (with a fused HARD_SWISH or MUL by a
scalar), CONV_2D with patches where ``fast.gemm`` runs it whole (BLAS's order proven;
with a fused HARD_SWISH, an input rescaling), DEPTHWISE_CONV_2D (with a fused
HARD_SWISH), MEAN over height and width, squeeze-and-excitation MUL
(``mul[per_image_channels]``), ADD of equal shapes, FULLY_CONNECTED (no activation),
RESHAPE; all float32, on the compiled kernels' settings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import MappingProxyType, ModuleType

import numpy as np

from ..ops import compiled, conv_exact, conv_gemm, lookup
from ..ops.common import NONE, pad_before_after
from ..ops.conv import conv_2d, depthwise_conv_2d
from ..ops.fast import float_codes as codes
from ..ops.reduce import MeanHW
from . import float_encode_hybrid as hybrid
from .epilogue import conv_scaled
from .int8_encode import Consts, Ref, Template
from .prologue import rescaled_conv
from .step import Step

_F32 = np.dtype(np.float32)
_PLAIN = (dict, MappingProxyType)


@dataclass
class Kernels:
    """What :func:`encode` needs loaded: the conv family (depthwise, epilogue, per-image
    scaling kernels), the ``fast.gemm`` module (or ``None``), NumPy's BLAS (:mod:`.blas`'s
    :class:`~litetrain.ops.fast.blas.Blas` and module) and its thread count now."""

    conv: ModuleType
    blas: object
    blas_module: ModuleType
    threads: int


class Like:
    """A value dropped after a plan's first run, as planning sees it: its shape, dtype
    and sizes (constants stay themselves)."""

    __slots__ = ("dtype", "nbytes", "ndim", "shape", "size")

    def __init__(self, v: np.ndarray):
        self.shape, self.dtype, self.nbytes, self.size, self.ndim = (v.shape, v.dtype,
                                                                     v.nbytes, v.size, v.ndim)


def _array(v, ndim: int | None = None) -> bool:
    return ((v.__class__ is np.ndarray or v.__class__ is Like) and v.dtype == _F32
            and (ndim is None or v.ndim == ndim))


def _get(values, i):
    return values[i] if i >= 0 else None


def candidate(step: Step, values) -> Template | None:
    """The step's arena reads and writes when it is of a kind :func:`encode` takes
    (module docstring), judged from the step and the shapes alone; else ``None``."""
    return _encode(step, values, None, None)


def encode(step: Step, values, consts: Consts, k: Kernels) -> Template | None:
    """The step's instructions (module docstring), or ``None``."""
    return _encode(step, values, consts, k)


def _encode(step: Step, values, consts, k) -> Template | None:
    if step.stateful or len(step.outputs) != 1 or step.out_dtypes[0] != _F32:
        return None
    out = values[step.outputs[0]]
    if not _array(out):
        return None
    how = _KINDS.get(step.op)
    if how is None:
        return None
    if how in _HYBRID_FIRST:
        t = _HYBRID_FIRST[how](step, values, out, consts, k)
        if t is not None:
            return t
    return how(step, values, out, consts, k)


def _conv_form(step: Step) -> tuple | None:
    """(HARD_SWISH settings, index of the MUL's scalar) of a CONV_2D step's kernel form,
    or ``None`` for a kernel this does not know."""
    kernel = step.kernel
    if kernel is conv_2d:
        return None, None
    if kernel.__class__ is functools.partial:
        if kernel.func is conv_2d and not kernel.args and set(kernel.keywords) == {"hard_swish"}:
            return kernel.keywords["hard_swish"], None
        if kernel.func is conv_scaled and len(step.inputs) == 4:
            return None, step.inputs[3]
    return None


_ONE, _MINUS_ZERO = np.float32(1.0), np.float32(-0.0)


def _rescaled(step: Step, values, out, consts, k) -> Template | None:
    """A CONV_2D with an input rescaling fused (:mod:`.prologue`): ``rescaled_conv``'s
    compiled path, the patches of ``x * scale + shift``."""
    kernel = step.kernel
    if (kernel.__class__ is not functools.partial or kernel.func is not rescaled_conv
            or len(kernel.args) != 2 or len(step.inputs) < 4):
        return None
    (mul, add), hard_swish = kernel.args
    xi, si, ti = step.inputs[:3]
    scale, shift = _get(values, si), _get(values, ti)
    k1 = _ONE if mul is None else _scalar(scale)
    k2 = _MINUS_ZERO if add is None else _scalar(shift)
    if k1 is None or k2 is None or (mul is None) != (si < 0) or (add is None) != (ti < 0):
        return None
    return _windowed(step, values, out, consts, k, xi, step.inputs[3:], hard_swish, (k1, k2))


def _scalar(v) -> np.float32 | None:
    if not _array(v) or v.size != 1 or v.__class__ is not np.ndarray:
        return None
    return v.reshape(-1)[0]


def _windowed(step: Step, values, out, consts, k, xi: int, rest: tuple, hard_swish,
              rescale) -> Template | None:
    """CONV_2D with patches (not 1x1 stride 1) where :func:`..ops.conv_gemm._exact_conv`
    takes it: one ``fast.gemm`` call (direct-read or gathering, as that node decides),
    the BLAS-order GEMM and the epilogue fused; other forms are refused."""
    s = step.settings
    if s.__class__ is not compiled.Compiled or s.gemm is None or s.loader is None:
        return None
    wi, bi = rest[0], rest[1] if len(rest) > 1 else -1
    x, w, b = values[xi], values[wi], _get(values, bi)
    if not _array(x, 4) or w is not s.filter or (b is not None and not _array(b)):
        return None
    n, h, wd, c = x.shape
    o, kh, kw, ci = w.shape
    sh, sw = s["stride_h"], s["stride_w"]
    if ci != c or kh == kw == sh == sw == 1 or out.ndim != 4:
        return None
    yi = step.outputs[0]
    if consts is None:
        return Template([], (xi,), (yi,))
    dh, dw = s.get("dilation_h_factor", 1), s.get("dilation_w_factor", 1)
    oh, pt, _ = pad_before_after(h, kh, sh, dh, s["padding"])
    ow, pl, _ = pad_before_after(wd, kw, sw, dw, s["padding"])
    if out.shape != (n, oh, ow, o):
        return None
    geometry = (kh, kw, sh, sw, dh, dw, pt, pl, ow)
    lines = max(1, conv_gemm.CHUNK_BYTES // (ow * (kh * kw * c + o) * 4))
    finish = compiled.conv_epilogue(s, o, b, hard_swish)
    probe = np.zeros(x.shape, np.float32)
    verdict = conv_gemm.blas_order_plan(s, probe, s.gemm, finish, lambda: {
        (b1 - b0) * (y1 - y0) * ow for b0, b1, y0, y1 in conv_gemm.chunks(n, oh, lines)})
    if (verdict is None or finish.act != NONE or finish.late_bias is not None
            or finish.hard_swish is not None or finish.scale is not None
            or conv_exact.blas_threads() != k.threads):
        return None
    _, wpack, bpack, mode, kk = verdict
    direct = conv_gemm.direct_read(s, probe, np.zeros(out.shape, np.float32), geometry)
    affine = rescale is not None
    mul, add = rescale if affine else (np.float32(1), np.float32(0))
    params = consts.add(np.array([finish.lo, finish.hi, kk, mul, add], np.float32))
    return Template([codes.OP_CONV, Ref(xi), n, h, wd, c, consts.add(wpack), *wpack.shape,
                     consts.add(bpack), bpack.size, params, mode,
                     consts.add(np.array(geometry, np.int64)), int(affine) + 2 * int(direct),
                     Ref(yi), n * oh * ow, o], (xi,), (yi,))


def _conv(step: Step, values, out, consts, k) -> Template | None:
    s = step.settings
    if step.kernel.__class__ is functools.partial and step.kernel.func is rescaled_conv:
        return _rescaled(step, values, out, consts, k)
    form = _conv_form(step)
    if form is None or s.__class__ is not compiled.Compiled or s.gemm is None:
        return None
    hard_swish, ki = form
    xi, wi = step.inputs[0], step.inputs[1]
    bi = step.inputs[2] if len(step.inputs) > 2 else -1
    x, w, b = values[xi], values[wi], _get(values, bi)
    scale = None if ki is None else values[ki]
    if (not _array(x, 4) or w is not s.filter or (b is not None and not _array(b))
            or (ki is not None and not (_array(scale) and scale.size == 1))):
        return None
    n, h, wd, c = x.shape
    o, kh, kw, ci = w.shape
    if (kh, kw, s["stride_h"], s["stride_w"]) != (1, 1, 1, 1) and ki is None:
        return _windowed(step, values, out, consts, k, xi, step.inputs[1:], hard_swish, None)
    if ((kh, kw, s["stride_h"], s["stride_w"], ci) != (1, 1, 1, 1, c)
            or out.shape != (n, h, wd, o) or not conv_gemm.one_chunk(x, o, _F32)):
        return None
    yi = step.outputs[0]
    if consts is None:
        return Template([], (xi,), (yi,))
    planned = conv_gemm.pointwise_plan(s, np.zeros(x.shape, np.float32), b, hard_swish, scale)
    kernel, args, rows, _, exact, threads = planned
    if kernel is None:
        return None
    m = rows[0]
    if exact:
        if threads != k.threads:
            return None
        wpack, bpack, lo, hi, mode, kk = args
        return Template([codes.OP_POINTWISE, Ref(xi), m, c, consts.add(wpack), *wpack.shape,
                         consts.add(bpack), bpack.size, _params(consts, lo, hi, kk), mode,
                         Ref(yi), o], (xi,), (yi,))
    kind = {id(k.conv.bias_activation): codes.PLAIN,
            id(k.conv.bias_activation_hard_swish): codes.HARD_SWISH,
            id(k.conv.bias_activation_scale): codes.SCALE}.get(id(kernel))
    if kind is None or not _product(k, m, c, o, False):
        return None
    bias, has_bias, lo, hi = args[:4]
    extra = args[4] if kind == codes.SCALE else np.float32(1)
    epilogue = [codes.OP_EPILOGUE, Ref(yi), m, o, consts.add(bias) if has_bias else -1,
                _params(consts, lo, hi, extra), kind]
    return Template([codes.OP_MATMUL, Ref(xi), m, c, consts.add(s.gemm), o, 0, Ref(yi)],
                    (xi,), (yi,), more=(epilogue,))


def _product(k: Kernels, m: int, kk: int, n: int, transposed: bool) -> bool:
    """NumPy makes ``[m, kk] @ [kk, n]`` one BLAS call, and :mod:`.blas` gives its bits."""
    return (k.blas is not None and k.blas_module.blasable(m, kk, n)
            and k.blas_module.proven(m, kk, n, k.threads, transposed))


def _params(consts: Consts, lo, hi, scale) -> int:
    return consts.add(np.array([lo, hi, scale], np.float32))


def _depthwise(step: Step, values, out, consts, k) -> Template | None:
    s = step.settings
    kernel = step.kernel
    if kernel is depthwise_conv_2d:
        hard_swish = None
    elif (kernel.__class__ is functools.partial and kernel.func is depthwise_conv_2d
          and not kernel.args and set(kernel.keywords) == {"hard_swish"}):
        hard_swish = kernel.keywords["hard_swish"]
    else:
        return None
    if s.__class__ is not compiled.Compiled or s.filter is None:
        return None
    xi, wi = step.inputs[0], step.inputs[1]
    bi = step.inputs[2] if len(step.inputs) > 2 else -1
    x, w, b = values[xi], values[wi], _get(values, bi)
    if not _array(x, 4) or w is not s.filter or out.ndim != 4:
        return None
    yi = step.outputs[0]
    if consts is None:
        return Template([], (xi,), (yi,))
    probe = np.zeros(x.shape, np.float32)
    y = compiled.run_depthwise(s, probe, w, b, hard_swish)
    last = s.last_run
    if (y is None or last is None or last[0] is not w or last[1] is not b
            or last[2] is not hard_swish or last[3] != x.shape or y.shape != out.shape):
        return None
    kind = {id(k.conv.depthwise_conv_2d): codes.RING,
            id(k.conv.depthwise_conv_2d_hard_swish): codes.RING_HARD_SWISH,
            id(k.conv.depthwise_strided): codes.TILES,
            id(k.conv.depthwise_strided_hard_swish): codes.TILES_HARD_SWISH}.get(id(last[5]))
    taps, bias, lo, hi, g = last[6]
    if (kind is None or taps.dtype != _F32 or taps.ndim != 2 or bias.dtype != _F32
            or g.dtype != np.int64 or g.size != 11):
        return None
    return Template([codes.OP_DEPTHWISE, Ref(xi), *x.shape, kind, consts.add(taps),
                     *taps.shape, consts.add(bias), bias.size,
                     _params(consts, lo, hi, np.float32(1)), consts.add(g), Ref(yi),
                     out.size], (xi,), (yi,))


def _mean(step: Step, values, out, consts, k) -> Template | None:
    s = step.settings
    if s.__class__ is not MeanHW or step.kernel is not lookup("mean").kernel:
        return None
    xi = step.inputs[0]
    x = values[xi]
    if (not _array(x, 4) or len(step.inputs) != 2 or values[step.inputs[1]] is not s.axis
            or x.shape[1] * x.shape[2] == 0 or out.size != x.shape[0] * x.shape[3]):
        return None
    yi = step.outputs[0]
    return Template([codes.OP_MEAN, Ref(xi), *x.shape, Ref(yi)], (xi,), (yi,))


def _scale_images(step: Step, values, out, consts, k) -> Template | None:
    """``mul[per_image_channels]`` (:mod:`.se_scale`), its own or its in-place kernel:
    ``out = x * v`` with the operands in the MUL's order."""
    if len(step.inputs) != 2 or not _array(out, 4):
        return None
    ai, bi = step.inputs
    a, b = values[ai], values[bi]
    if not (_array(a, 4) and _array(b, 4)):
        return None
    n, h, w, c = out.shape
    big = 0 if a.shape == out.shape else 1 if b.shape == out.shape else None
    if big is None or (b if big == 0 else a).shape != (n, 1, 1, c):
        return None
    xi, vi = (ai, bi) if big == 0 else (bi, ai)
    yi = step.outputs[0]
    return Template([codes.OP_SCALE_IMAGES, Ref(xi), n, h, w, c, Ref(vi), Ref(yi),
                     int(big == 0)], (ai, bi), (yi,))


def _add(step: Step, values, out, consts, k) -> Template | None:
    """ADD of two equal-shape float32 arrays, no fused activation: its own kernel, or
    its form writing into an operand (the same ``np.add``)."""
    add = lookup("add")
    if (step.settings.__class__ not in _PLAIN or len(step.inputs) != 2
            or step.settings.get("fused_activation_function", 0)):
        return None
    own = step.kernel is add.kernel or (
        step.writes_into is not None and add.in_place is not None
        and getattr(step.kernel, "__qualname__", "").startswith("_into."))
    ai, bi = step.inputs
    a, b = values[ai], values[bi]
    if not own or not (_array(a) and _array(b)) or not a.shape == b.shape == out.shape:
        return None
    yi = step.outputs[0]
    return Template([codes.OP_ADD, Ref(ai), Ref(bi), out.size, Ref(yi)], (ai, bi), (yi,))


def _fully_connected(step: Step, values, out, consts, k) -> Template | None:
    """FULLY_CONNECTED's float kernel: ``x.reshape(-1, depth) @ w.T`` (NumPy's BLAS call),
    then ``+= b``; no fused activation."""
    fc = lookup("fully_connected")
    s = step.settings
    if (step.kernel is not fc.kernel or s.__class__ not in _PLAIN
            or s.get("fused_activation_function", 0) or len(step.inputs) < 2):
        return None
    xi, wi = step.inputs[0], step.inputs[1]
    bi = step.inputs[2] if len(step.inputs) > 2 else -1
    x, w, b = values[xi], values[wi], _get(values, bi)
    if not (_array(x) and _array(w, 2) and w.flags.c_contiguous) or x.size % w.shape[1]:
        return None
    units, depth = w.shape
    if b is not None and not (_array(b, 1) and b.size == units):
        return None
    m = x.size // depth
    if out.size != m * units:
        return None
    yi = step.outputs[0]
    if consts is None:
        return Template([], (xi,), (yi,))
    if not _product(k, m, depth, units, True):
        return None
    more = () if b is None else ([codes.OP_BIAS, Ref(yi), m, units, consts.add(b)],)
    return Template([codes.OP_MATMUL, Ref(xi), m, depth, consts.add(w), units, 1, Ref(yi)],
                    (xi,), (yi,), more=more)


def _reshape(step: Step, values, out, consts, k) -> Template | None:
    reshape = lookup("reshape")
    xi = step.inputs[0]
    x = values[xi]
    if step.kernel is not reshape.kernel or not _array(x) or x.size != out.size:
        return None
    return Template([], (xi,), (step.outputs[0],), xi)


_KINDS = {"conv_2d": _conv, "conv_2d+hard_swish": _conv, "conv_2d+mul": _conv,
          "mul+add+conv_2d": _conv, "mul+add+conv_2d+hard_swish": _conv,
          "mul+conv_2d": _conv, "mul+conv_2d+hard_swish": _conv, "add+conv_2d": _conv,
          "add+conv_2d+hard_swish": _conv,
          "depthwise_conv_2d": _depthwise, "depthwise_conv_2d+hard_swish": _depthwise,
          "mean": _mean, "mul[per_image_channels]": _scale_images, "add": _add,
          "fully_connected": _fully_connected, "reshape": _reshape,
          "mul": hybrid.mul_scalar}
# kinds of dynamic-range plans' steps tried first (:mod:`.float_encode_hybrid`)
_HYBRID_FIRST = {_conv: hybrid.conv, _depthwise: hybrid.depthwise,
                 _fully_connected: hybrid.hybrid, _mean: hybrid.xnn_mean}


def kernels_now(conv_module: ModuleType) -> Kernels:
    """:class:`Kernels` with the loaded conv family and NumPy's BLAS as it is now."""
    from ..ops.fast import blas

    return Kernels(conv_module, blas.find(), blas, conv_exact.blas_threads())
