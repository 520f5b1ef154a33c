"""Elementwise 8-bit integer kernels as lookup tables, bit-identical by construction.

An elementwise kernel whose operands are int8/uint8 with per-tensor parameters sees at
most 256 distinct values per operand, so its whole behaviour is a table: 256 entries for
a unary op, 65536 for a binary one. :func:`tabulated` wraps an op's integer
:class:`Variant`: prepare runs the wrapped prepare, then the wrapped kernel itself once on
every possible operand value (or pair, as a 256×256 broadcast), and invoke is one gather
``table[a_bits]`` or ``table[a_bits << 8 | b_bits]`` (a bit-view of the operands as
uint8, indices widened to uint16) instead of a chain of int64/float passes; a unary table
runs as ``bytes.translate`` (C's byte-for-byte lookup, no widened index array), or with
the ``[fast]`` extra as one compiled pass (:func:`..fast.int8.lookup1`, chosen at prepare,
loaded as :mod:`..fast` says). Results are the wrapped kernel's own, element for element.

Only for ops whose output element depends on the operand elements at the same
(broadcast) position alone — ADD, SUB, MUL, the activations, unary math; not reductions,
softmax or normalizations. Anything else (16-bit, per-channel parameters, a float or
missing operand, a third operand) keeps the wrapped kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fast import WithKernels, kernels
from ..registry import NodeInfo, Variant

_BYTES = (np.dtype(np.int8), np.dtype(np.uint8))
_ALL = np.arange(256, dtype=np.uint8)


@dataclass(frozen=True)
class Tabulated:
    """The wrapped kernel's settings and, when tabulable, its table."""

    inner: object
    table: np.ndarray | None
    in_dtypes: tuple[np.dtype, ...]
    translation: bytes | None = None  # a unary table's bytes, for bytes.translate
    # a unary table's compiled lookup (``[fast]`` extra: the int8 family's loader, counted
    # per node), None without the extra
    compiled: WithKernels | None = None


def unary(table: np.ndarray, dtype: np.dtype, inner: object = None) -> Tabulated:
    """The settings of a unary 8-bit table (256 entries of the output type, indexed by
    the operand's bits) run by :func:`lookup_unary`."""
    table = np.ascontiguousarray(table)
    loader = kernels("int8")
    return Tabulated(inner, table, (np.dtype(dtype),), table.view(np.uint8).tobytes(),
                     None if loader is None else WithKernels({}, loader))


def lookup_unary(s: Tabulated, x) -> np.ndarray:
    """``s.table[x's bits]`` (a unary table's settings): one compiled pass with the
    ``[fast]`` extra once loaded, else ``bytes.translate``; a new C-order array."""
    x = np.asarray(x)
    module = None if s.compiled is None else s.compiled.ready()
    if module is not None:  # one pass, no copies of the operand
        out = np.empty(x.shape, s.table.dtype)
        module.lookup1(np.ascontiguousarray(x).reshape(-1).view(np.uint8),
                       s.table.view(np.uint8), out.reshape(-1).view(np.uint8))
        return out
    out = bytearray(x.tobytes()).translate(s.translation)  # C order, writable
    return np.frombuffer(out, s.table.dtype).reshape(x.shape)


def _eight_bit(t) -> bool:
    q = None if t is None else t.quantization
    return (q is not None and t.dtype in _BYTES and q.scale.size == 1
            and q.zero_point.size <= 1)


def tabulated(variant: Variant) -> Variant:
    """``variant`` (an elementwise integer kernel) as a lookup table where it can be."""
    def prepare(info: NodeInfo) -> Tabulated:
        inner = variant.prepare(info)
        ins = info.inputs
        if not 1 <= len(ins) <= 2 or len(info.outputs) != 1 or not all(
                _eight_bit(t) for t in (*ins, info.outputs[0])):
            return Tabulated(inner, None, ())
        dtypes = tuple(t.dtype for t in ins)
        grid = [_ALL.view(dtypes[0])]
        if len(ins) == 2:
            grid = [_ALL.view(dtypes[0])[:, None], _ALL.view(dtypes[1])[None, :]]
        try:
            with np.errstate(all="ignore"):
                table = np.asarray(variant.kernel(inner, *grid))
        except Exception:  # the wrapped kernel will report it on invoke
            return Tabulated(inner, None, ())
        if table.shape != (256,) * len(ins) or table.dtype != info.outputs[0].dtype:
            return Tabulated(inner, None, ())
        table = np.ascontiguousarray(table.reshape(-1))
        if len(ins) == 2:
            return Tabulated(inner, table, dtypes)
        return unary(table, dtypes[0], inner)

    def kernel(s: Tabulated, *inputs):
        if s.table is None:
            return variant.kernel(s.inner, *inputs)
        if s.translation is not None:
            return lookup_unary(s, inputs[0])
        a = np.asarray(inputs[0]).view(np.uint8)
        b = np.asarray(inputs[1]).view(np.uint8)
        index = np.left_shift(a, 8, dtype=np.uint16)
        if a.shape == b.shape or (b.ndim <= a.ndim and a.shape == np.broadcast_shapes(
                a.shape, b.shape)):
            index |= b
        else:
            index = index | b
        return s.table.take(index)
    kernel.tabulates = variant  # the wrapped variant, for tests and tools
    return Variant(kernel, prepare)
