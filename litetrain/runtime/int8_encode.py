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

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ops import lookup
from ..ops.common import window_geometry
from ..ops.compiled_int8 import Int8, Mean, Quantize, Table
from ..ops.fast import int8_codes as codes
from ..ops.quantized.activations_int import Softmax8
from ..ops.quantized.lib import Quantized
from ..ops.quantized.tables import Tabulated
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
    try:
        opdef = lookup(step.op)
    except UnsupportedOpError:
        return None
    out = values[step.outputs[0]]
    if (out.__class__ is not np.ndarray or out.dtype != step.out_dtypes[0]
            or out.dtype not in (_INT8, _F32)):
        return None
    if step.op == "reshape":
        x = values[step.inputs[0]]
        if (step.kernel is not opdef.kernel or x.__class__ is not np.ndarray
                or x.dtype != _INT8 or x.size != out.size):
            return None
        return Template([], (step.inputs[0],), (step.outputs[0],), step.inputs[0])
    if opdef.integer is None or step.kernel is not opdef.integer.kernel:
        return None
    s = step.settings
    ins = [values[i] if i >= 0 else None for i in step.inputs]
    how = _ENCODERS.get(s.__class__) if s.__class__ is not Quantized else _PLAIN.get(step.op)
    if how is None or (out.dtype != _INT8 and how is not _dequantize):
        return None
    return how(step, s, ins, out, consts)


# The template of a step folded into the next one's instruction (it still runs as a step
# while the executor loads).
ABSORBED = Template([], (), ())


def compose(unary: Step, binary: Step, values: list, consts: Consts) -> Template | None:
    """``BINARY(x, UNARY(x))`` (swish: ``MUL(x, LOGISTIC(x))``), both encodable, as one
    unary table over ``x``: the binary table's entry at ``(x, unary table[x])``, which is
    what the two steps compute (their tables' entries, see :mod:`.quantized.tables`).
    ``None`` unless the binary step reads exactly ``x`` and the unary's result, whole."""
    s1, s2 = unary.settings, binary.settings
    x, y = unary.inputs[0], unary.outputs[0]
    if (s1.__class__ is not Tabulated or s2.__class__ is not Table or x == y
            or sorted(binary.inputs) != sorted((x, y))
            or values[x].shape != values[binary.outputs[0]].shape):
        return None
    bits = np.arange(256)
    lut = s1.table.view(np.uint8).astype(np.int64)
    pairs = s2.rows[bits, lut] if binary.inputs[0] == x else s2.rows[lut, bits]
    table = np.ascontiguousarray(pairs).view(np.int8)
    out = binary.outputs[0]
    return Template([codes.OP_LOOKUP1, Ref(x), values[x].size, consts.add(table), Ref(out)],
                    (x,), (out,))


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
    if kh == kw == 1 and sh == sw == 1 and pt == pl == 0 and (oh, ow) == (h, w):
        return Template([codes.OP_GEMM, Ref(xi), n * h * w, c, s.zx, consts.add(s.small), o,
                         *_rescaling(consts, s.rescaling), Ref(yi), *_packed(consts, s)],
                        (xi,), (yi,))
    return Template([codes.OP_CONV, Ref(xi), n, h, w, c, s.zx, consts.add(s.small), kh, kw, o,
                     *geometry, *_rescaling(consts, s.rescaling), Ref(yi),
                     *_packed(consts, s)], (xi,), (yi,))


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


def _softmax(step: Step, s: Quantized, ins: list, out: np.ndarray, consts: Consts):
    """``activations._softmax_integer``: its float32 exponentials of the 256 possible
    differences from the row's maximum, computed here as it computes them."""
    x = ins[0]
    qi, qo = s.qin[0], s.qout[0]
    beta = np.float32(s.attrs.get("beta", 1.0))
    if (x.__class__ is not np.ndarray or x.dtype != _INT8 or x.ndim < 1 or x.size == 0
            or out.shape != x.shape or qo is None or qo.dtype != _INT8 or not beta > 0
            or not qi.s > 0):
        return None
    diff = -np.arange(256, dtype=np.int64).astype(np.float32)
    table = np.exp(np.float32(qi.s) * beta * diff, dtype=np.float32)
    if not np.isfinite(table).all():
        return None
    xi, yi = step.inputs[0], step.outputs[0]
    n = x.shape[-1]
    return Template([codes.OP_SOFTMAX, Ref(xi), x.size // n, n, consts.add(table),
                     consts.add(np.array([qo.s], np.float32)), qo.zp, -128, 127, Ref(yi)],
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
_PLAIN = {"softmax": _softmax, "dequantize": _dequantize}


def _softmax8(step: Step, s: Softmax8, ins: list, out: np.ndarray, consts: Consts):
    """SOFTMAX prepared for its compiled per-step kernel: its NumPy settings' encoding."""
    return _softmax(step, s.inner, ins, out, consts)


_ENCODERS = {Int8: _int8, Mean: _mean, Tabulated: _unary, Table: _binary, Softmax8: _softmax8,
             Quantize: _quantize}
