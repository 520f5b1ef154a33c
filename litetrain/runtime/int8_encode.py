"""One int8 step as an instruction of :mod:`litetrain.ops.fast.int8_program`, or ``None``.

:func:`encode` recognises a specialised step whose kernel is exactly the op's integer
variant (not a fused or in-place replacement: those carry other semantics) with the
compiled-kernel settings :mod:`litetrain.ops.compiled_int8` and
:mod:`litetrain.ops.quantized.tables` prepared, on int8 activations of the shapes of the
plan's first run, and only where the per-step kernel would itself take its compiled path
(so the instruction computes what that path computes: the same kernels, or the same
exact integer sums and the same rescaling). Anything else is ``None``: the step keeps
running on its own.

An instruction is a :class:`Template`: the op code and its fields, where an arena operand
is still a :class:`Ref` to a tensor (the program resolves it to a byte offset once the
arena is planned) and prepared constants are already offsets into the program's
:class:`Consts`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ops import lookup
from ..ops.common import window_geometry
from ..ops.compiled_int8 import SMALL_ROWS, VNNI_FEW_MIN, Int8, Mean, Quantize, Table
from ..ops.fast import int8_codes as codes
from ..ops.quantized.activations_int import Softmax8
from ..ops.quantized.lib import Quantized
from ..ops.quantized.tables import Tabulated, lookup_unary
from .int8_fusion import _then_table
from .step import Step

_INT8 = np.dtype(np.int8)
_F32 = np.dtype(np.float32)
ALIGN = 64


@dataclass(frozen=True)
class Ref:
    """An operand in the arena: the tensor whose bytes (C order) it reads or writes."""

    tensor: int


@dataclass
class Template:
    """A step's instruction before the arena is planned: ``fields`` (op code first) holds
    ints and :class:`Ref` s; ``reads``/``writes`` the arena tensors it uses;
    ``alias_of`` set for a RESHAPE (no instruction: its output is its input's bytes)."""

    fields: list
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    alias_of: int | None = None
    more: tuple[list, ...] = ()  # further rows, run after ``fields`` (a fused table)


class Consts:
    """The prepared constants of one program, each at a 64-byte aligned offset."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, np.ndarray]] = []
        self.size = 0
        self._seen: dict[int, tuple[np.ndarray, int]] = {}

    def add(self, array: np.ndarray) -> int:
        key = id(array)
        if key in self._seen and self._seen[key][0] is array:
            return self._seen[key][1]
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        off = -(-self.size // ALIGN) * ALIGN
        self.parts.append((off, data))
        self.size = off + data.nbytes
        self._seen[key] = (array, off)
        return off

    def build(self) -> np.ndarray:
        out = np.zeros(max(self.size, 1), np.uint8)
        for off, data in self.parts:
            out[off:off + data.nbytes] = data
        return out


def encode(step: Step, values: list, consts: Consts) -> Template | None:
    """``step`` as an instruction (module docstring), or ``None``."""
    if step.stateful or step.writes_into is not None or len(step.outputs) != 1:
        return None
    base = step.op.split("+")[0]  # "conv_2d+logistic+mul": a table fused into the step
    try:
        opdef = lookup(base)
    except UnsupportedOpError:
        return None
    out = values[step.outputs[0]]
    if (out.__class__ is not np.ndarray or out.dtype != step.out_dtypes[0]
            or out.dtype not in (_INT8, _F32)):
        return None
    if step.kernel is lookup_unary:  # a fused table step (int8_fusion: swish)
        x = values[step.inputs[0]]
        return _unary(step, step.settings, [x], out, consts)
    if step.op == "reshape":
        x = values[step.inputs[0]]
        if (step.kernel is not opdef.kernel or x.__class__ is not np.ndarray
                or x.dtype != _INT8 or x.size != out.size):
            return None
        return Template([], (step.inputs[0],), (step.outputs[0],), step.inputs[0])
    kernel, then = step.kernel, None
    if kernel.__class__ is functools.partial and kernel.func is _then_table:
        kernel, then = kernel.args  # the producer's kernel, then a unary table
        if then.table is None or then.table.dtype != _INT8:
            return None
    s = step.settings
    if opdef.integer is None or kernel is not opdef.integer.kernel or (
            step.op != base and then is None
            and (s.__class__ is not Int8 or getattr(s, "table", None) is None)):
        return None  # renamed by a fusion this does not know
    ins = [values[i] if i >= 0 else None for i in step.inputs]
    how = _ENCODERS.get(s.__class__) if s.__class__ is not Quantized else _PLAIN.get(base)
    if how is None or (out.dtype != _INT8 and how is not _dequantize):
        return None
    template = how(step, s, ins, out, consts)
    table = then.table if then is not None else (  # a depthwise's fused table
        getattr(s, "table", None) if s.__class__ is Int8 else None)
    if template is None or table is None:
        return template
    if template.fields[0] == codes.OP_VNNI:  # looked up as the tiles are stored
        if template.fields[-1] < 0:  # (a plan made with_table carries it already)
            template.fields[-1] = consts.add(np.ascontiguousarray(table).view(np.uint8))
        return template
    y = step.outputs[0]  # the producer's result looked up in place
    template.more = ([codes.OP_LOOKUP1, Ref(y), out.size, consts.add(table), Ref(y)],)
    return template


def _rescaling(consts: Consts, rescaling: tuple) -> list:
    """``q, scale`` offsets and ``fp32, lo, hi, zp`` of a :func:`compiled_int8.rescaling`."""
    q, scale, fp32, lo, hi, zp = rescaling
    return [consts.add(q), consts.add(scale), int(fp32), lo, hi, zp]


def _int8(step: Step, s: Int8, ins: list, out: np.ndarray, consts: Consts):
    x = ins[0]
    if (x.__class__ is not np.ndarray or x.dtype != _INT8 or s.inner.qin[0].dtype != _INT8
            or np.dtype(s.out_dtype) != _INT8):
        return None
    xi, yi = step.inputs[0], step.outputs[0]
    if s.kind == "fully_connected":
        units, depth = s.inner.weights.shape
        if s.small is None or x.size % depth or out.size != x.size // depth * units:
            return None
        vnni = _vnni(s, consts, x.size // depth, 0, (x.size // depth, 1, 1, depth), (1, 1),
                     (1, 1, 1, 1, 0, 0, 1, 1), units, xi, yi)
        if vnni is not None:
            return vnni
        return Template([codes.OP_GEMM, Ref(xi), x.size // depth, depth, s.zx,
                         consts.add(s.small), units, *_rescaling(consts, s.rescaling),
                         Ref(yi), *_packed(consts, s)], (xi,), (yi,))
    if x.ndim != 4:
        return None
    n, h, w, c = x.shape
    if s.kind == "depthwise":
        kh, kw, cm = s.filter.shape
        if cm % c:
            return None
        geometry = window_geometry(s.geometry, s, x, kh, kw)
        oh, ow = geometry[6:]
        if out.shape != (n, oh, ow, cm):
            return None
        q, scale = s.rescaling[:2]
        along = [consts.add(np.tile(q, (1, ow))), consts.add(np.tile(scale, ow))] \
            if cm == c else []  # the rescaling along a row, as the kernel takes it
        return Template([codes.OP_DEPTHWISE, Ref(xi), n, h, w, c, s.zx, consts.add(s.filter),
                         kh, kw, cm, *geometry, *_rescaling(consts, s.rescaling), Ref(yi),
                         *along], (xi,), (yi,))
    o, kh, kw, ci = s.inner.weights.shape
    if s.small is None or c != ci:
        return None
    geometry = window_geometry(s.geometry, s, x, kh, kw)
    sh, sw, _, _, pt, pl, oh, ow = geometry
    if out.shape != (n, oh, ow, o):
        return None
    pointwise = kh == kw == 1 and sh == sw == 1 and pt == pl == 0 and (oh, ow) == (h, w)
    vnni = _vnni(s, consts, n * oh * ow, 0 if pointwise else 1 + s.vnni.direct,
                 (n * h * w, 1, 1, c) if pointwise else x.shape, (kh, kw), geometry, o, xi,
                 yi) if s.vnni is not None else None
    if vnni is not None:
        return vnni
    if pointwise:
        return Template([codes.OP_GEMM, Ref(xi), n * h * w, c, s.zx, consts.add(s.small), o,
                         *_rescaling(consts, s.rescaling), Ref(yi), *_packed(consts, s)],
                        (xi,), (yi,))
    return Template([codes.OP_CONV, Ref(xi), n, h, w, c, s.zx, consts.add(s.small), kh, kw, o,
                     *geometry, *_rescaling(consts, s.rescaling), Ref(yi),
                     *_packed(consts, s)], (xi,), (yi,))


def _vnni(s: Int8, consts: Consts, rows: int, mode: int, shape: tuple, window: tuple,
          geometry: tuple, o: int, xi: int, yi: int) -> Template | None:
    """The product on :mod:`litetrain.ops.fast.vnni`'s kernels (``mode`` 0: ``gemm`` on
    ``shape[0]`` rows of ``shape[3]`` bytes, 1: ``conv_2d``, 2: ``conv_2d_direct``), as
    :mod:`litetrain.ops.compiled_int8` runs it (its plan, for as many rows), or ``None``."""
    p = s.vnni
    if p is None or not (rows > SMALL_ROWS or s.small is None or s.filter.size >= VNNI_FEW_MIN):
        return None
    if mode == 2 and geometry[3] != 1:
        return None  # a dilated width: compiled_int8 leaves the VNNI kernels there too
    tiles, k4, _ = p.wpack.shape
    table = consts.add(p.table) if p.table.size == 256 else -1
    return Template([codes.OP_VNNI, mode, Ref(xi), *shape, *window, *geometry, p.flip, p.pad,
                     consts.add(p.wpack), tiles, k4, consts.add(p.init), consts.add(p.q),
                     consts.add(p.scale), int(p.fp32), p.lo, p.hi, p.zp, o, Ref(yi), table],
                    (xi,), (yi,))


def _packed(consts: Consts, s: Int8) -> list:
    """For many rows' products: the float32 ``[k, o]`` filter as
    :func:`litetrain.ops.fast.gemm.pack` lays it out (offset, rows, columns), the bias its
    tiles add (offset, size), and whether that is the node's (XNNPACK's float32
    rescaling, every bias exact in float32: see ``fast.int8_program._rescale``) or -0.0."""
    filter = np.ascontiguousarray(s.filter, np.float32)
    packed = filter if filter.shape[1] % 16 == 0 else _pack(filter)
    o = filter.shape[1]
    bias = np.full(-(-o // 32) * 32, -0.0, np.float32)
    q, _, fp32 = s.rescaling[:3]
    biased = bool(fp32) and bool((q[4].astype(np.float32).astype(np.int64) == q[4]).all())
    if biased:
        bias[:o] = q[4]
    return [consts.add(packed), *packed.shape, consts.add(bias), bias.size, int(biased)]


def _pack(filter: np.ndarray) -> np.ndarray:
    """``gemm.pack``'s layout for ``o`` not a multiple of sixteen: per sixteen output
    channels, each ``k``'s sixteen values (zeros past ``o``)."""
    k, o = filter.shape
    tiles = -(-o // 16)
    padded = np.zeros((k, tiles * 16), np.float32)
    padded[:, :o] = filter
    return np.ascontiguousarray(padded.reshape(k, tiles, 16).transpose(1, 0, 2)).reshape(
        tiles, k * 16)


def _mean(step: Step, s: Mean, ins: list, out: np.ndarray, consts: Consts):
    x = ins[0]
    if x.__class__ is not np.ndarray or x.dtype != _INT8 or x.ndim != 4:
        return None
    n, h, w, c = x.shape
    if out.size != n * c:
        return None
    xi, yi = step.inputs[0], step.outputs[0]
    return Template([codes.OP_MEAN, Ref(xi), n, h, w, c, s.zx,
                     *_rescaling(consts, s.rescaling(h * w, c)), Ref(yi)], (xi,), (yi,))


def _unary(step: Step, s: Tabulated, ins: list, out: np.ndarray, consts: Consts):
    x = ins[0]
    if (s.table is None or s.translation is None or len(ins) != 1
            or x.__class__ is not np.ndarray or x.dtype != _INT8 or s.in_dtypes[0] != _INT8
            or s.table.dtype != _INT8 or out.shape != x.shape):
        return None
    xi, yi = step.inputs[0], step.outputs[0]
    return Template([codes.OP_LOOKUP1, Ref(xi), x.size, consts.add(s.table), Ref(yi)],
                    (xi,), (yi,))


def _binary(step: Step, s: Table, ins: list, out: np.ndarray, consts: Consts):
    if len(ins) != 2:
        return None
    a, b = ins
    if (a.__class__ is not np.ndarray or b.__class__ is not np.ndarray or a.dtype != _INT8
            or b.dtype != _INT8 or tuple(s.inner.in_dtypes) != (_INT8, _INT8)
            or s.inner.table.dtype != _INT8):
        return None
    walk = s.walk(a.shape, b.shape)
    if walk is None or walk[0] != out.shape:
        return None
    _, dims, sa, sb = walk
    ai, bi, yi = step.inputs[0], step.inputs[1], step.outputs[0]
    operands = [Ref(ai), a.size, Ref(bi), b.size, *sa, *sb]
    if s.direct is not None and s.computes == "mul":
        za, zb, m, c, d, t, scale, fp32, lo, hi, zp = s.direct
        fields = [codes.OP_MUL, *operands, za, zb, m, c, d, t,
                  consts.add(np.array([scale], np.float32)), int(fp32), lo, hi, zp]
    elif s.direct is not None:
        fields = [codes.OP_ADD, *operands, *s.direct]
    else:
        fields = [codes.OP_LOOKUP, *operands, consts.add(s.table)]
    return Template([*fields, *dims, Ref(yi)], (ai, bi), (yi,))


def _quantize(step: Step, s: Quantize, ins: list, out: np.ndarray, consts: Consts):
    x = ins[0]
    if (x.__class__ is not np.ndarray or x.dtype != _F32 or np.dtype(s.out_dtype) != _INT8
            or out.shape != x.shape):
        return None
    xi, yi = step.inputs[0], step.outputs[0]
    return Template([codes.OP_QUANTIZE, Ref(xi), x.size,
                     consts.add(np.array(s.args, np.float32)), Ref(yi)], (xi,), (yi,))


def _softmax(step: Step, s: Softmax8, ins: list, out: np.ndarray, consts: Consts):
    """:func:`..ops.quantized.activations_int.softmax8`'s compiled kernel, its table."""
    x = ins[0]
    if (x.__class__ is not np.ndarray or x.dtype != _INT8 or s.in_dtype != _INT8
            or s.out_dtype != _INT8 or x.ndim < 1 or x.size == 0 or out.shape != x.shape):
        return None
    xi, yi = step.inputs[0], step.outputs[0]
    n = x.shape[-1]
    s_out, zp, lo, hi = s.args
    return Template([codes.OP_SOFTMAX, Ref(xi), x.size // n, n, consts.add(s.table),
                     consts.add(np.array([s_out], np.float32)), zp, lo, hi, Ref(yi)],
                    (xi,), (yi,))


def _dequantize(step: Step, s: Quantized, ins: list, out: np.ndarray, consts: Consts):
    """``QParams.dequantize`` with one scale and zero point."""
    x, qi = ins[0], s.qin[0]
    if (x.__class__ is not np.ndarray or x.dtype != _INT8 or out.dtype != _F32
            or out.shape != x.shape or qi is None or qi.scale.size != 1
            or qi.zero_point.size != 1):
        return None
    xi, yi = step.inputs[0], step.outputs[0]
    return Template([codes.OP_DEQUANTIZE, Ref(xi), x.size, qi.zp,
                     consts.add(np.array(qi.scale, np.float32)), Ref(yi)], (xi,), (yi,))


# Settings of exactly the default ``Quantized`` class: the op's plain integer kernel.
_PLAIN = {"dequantize": _dequantize}
_ENCODERS = {Int8: _int8, Mean: _mean, Tabulated: _unary, Table: _binary,
             Quantize: _quantize, Softmax8: _softmax}
