"""A sum (or mean) over the leading axes of a product, without the product array (a
:func:`.simplify.specialise` pass, once per input shapes).

CNN gradient rules reduce products over batch and space: batch norm's ``SUM(MUL(dy,
xc))`` and ``MEAN(SQUARE(xc))``, a depthwise filter's ``SUM(MUL(window, dy))`` per tap.
NumPy writes the product (a full-size array), then sums it with BLAS (``ones @ p``,
``ops/reduce.py``). The fused step reads the operands once and adds the products in
registers, in the order BLAS adds ``p``'s rows; a MEAN then divides as MEAN does.

Invariant: the same bits. Each product is the float32 product of the same operands in
the same order; the sum is BLAS's: OpenBLAS's SGEMV computes ``ones @ p`` in an order
that depends only on the call's shape and BLAS thread count (here: rows in groups of
eight, each group summed in order, the groups' sums added to a total), which the
compiled kernel (``ops/fast/train.py``: ``product_sum``) computes. That order is not
assumed: before a shape uses the kernel, :func:`proven` compares BLAS's and the
kernel's bits on random data of that shape at the current BLAS thread count (once per
shape, as ``ops/conv_exact.py`` does for GEMMs); anything else, and runs before the
kernels load, run the two original kernels one after the other. Fused only when the
product is read by the reduction alone (and is no subgraph output), both operands are
float32 of the product's shape, the reduction is the op's own float kernel over every
axis but the last (a constant axis operand) and its rows are a multiple of eight and at
least 64 (NumPy's BLAS path).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..ops import lookup
from ..ops.conv_exact import blas_threads
from ..ops.fast import WithKernels, kernels
from ..ops.reduce import _ones
from .liveness import is_stand_in
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)
_VERDICTS: dict[tuple[int, int, int], bool] = {}
_OUTPUTS = 1 << 12  # sums compared per shape at least


@dataclass(frozen=True)
class Reduced:
    """The fused step's settings: the product step's kernel and settings, whether it
    is a SQUARE (one operand), the reduction's kernel and settings, its axis operand as
    prepared, whether it is a MEAN, the compiled kernels' loader."""

    product: object
    product_settings: object
    square: bool
    reduce: object
    reduce_settings: object
    axis: np.ndarray
    mean: bool
    keep: bool
    kernels: WithKernels | None


def product_sum(settings: Reduced, *operands):
    """The fused step's kernel: ``operands`` are the product's (one for SQUARE), then
    the reduction's axis."""
    *factors, axis = operands
    k = settings.kernels
    if k is not None and axis is settings.axis:
        module = k.ready()
        a = factors[0]
        b = a if settings.square else factors[1]
        if module is not None and a.__class__ is np.ndarray and b.__class__ is np.ndarray \
                and a.dtype == _F32 and b.dtype == _F32 and a.ndim == 4 and a.shape == b.shape:
            n, h, w, c = a.shape
            rows = n * h * w
            fa, fb = _flat(a), _flat(b)
            if fa is not None and fb is not None and rows % 8 == 0 and rows >= 64 \
                    and proven(module, rows, c):
                total = module.product_sum(*fa, *fb, n, h, w, c, np.empty(c, _F32))
                if settings.keep:
                    total = total.reshape(1, 1, 1, c)
                if settings.mean:
                    total = np.divide(total, a.size // max(total.size, 1), dtype=_F32)
                return total
    p = settings.product(settings.product_settings, *factors)
    return settings.reduce(settings.reduce_settings, p, axis)


def _flat(v: np.ndarray) -> tuple | None:
    """(the 1-D float32 array ``v`` lies in, the offset and image and row strides of
    ``v`` in it) when ``v``'s rows of ``w·c`` values are contiguous, else ``None``."""
    found = _rooted(v)
    if found is None:
        return None
    root, offset, s0, s1 = found
    return root.reshape(-1), offset, s0, s1


def _rooted(v: np.ndarray) -> tuple | None:
    """(the C-contiguous memory ``v`` is a view of, as float32, ``v``'s offset and
    image and row strides in it, in elements) when ``v``'s rows of ``w·c`` values are
    contiguous, else ``None``."""
    c = v.shape[3]
    s0, s1, s2, s3 = v.strides
    if s3 != 4 or s2 != 4 * c or s0 % 4 or s1 % 4:
        return None
    if v.flags.c_contiguous:
        return v, 0, s0 // 4, s1 // 4
    root = v
    while root.base is not None and root.base.__class__ is np.ndarray:
        root = root.base  # e.g. a kept buffer's bytes (runtime/arena.py)
    start = root.__array_interface__["data"][0]
    offset = v.__array_interface__["data"][0] - start
    if root is v or not root.flags.c_contiguous or root.nbytes % 4 or start % 4 \
            or offset < 0 or offset % 4:
        return None
    if root.dtype != _F32:
        root = root.reshape(-1).view(_F32)
    return root, offset // 4, s0 // 4, s1 // 4


def proven(module, rows: int, c: int) -> bool:
    """Whether the compiled order is BLAS's for ``ones(rows) @ p[rows, c]`` at the
    current BLAS thread count (checked once per shape: see the module docstring)."""
    key = (rows, c, blas_threads())
    verdict = _VERDICTS.get(key)
    if verdict is None:
        verdict = _VERDICTS[key] = _check(module, rows, c)
    return verdict


def _check(module, rows: int, c: int) -> bool:
    rng = np.random.default_rng([rows, c])
    ones = _ones(rows, "f")
    for _ in range(max(1, -(-_OUTPUTS // c))):
        p = rng.standard_normal((rows, c), np.float32)
        want = ones @ p
        got = module.leading_sum(p, np.empty(c, _F32))
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True


def fuse_product_sums(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each sum or mean over the leading axes of a MUL or SQUARE read by
    it alone replaced by one step (see the module docstring)."""
    loader = kernels("train")
    if loader is None:  # the NumPy form would be the two kernels: nothing to gain
        return steps
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        found = _match(steps, pos, values, outputs, producer, readers)
        if found is None or found[0] in dropped:
            continue
        p, settings = found
        prod = steps[p]
        settings = Reduced(prod.kernel, prod.settings, prod.op == "square", step.kernel,
                           step.settings, values[step.inputs[1]], step.op == "mean",
                           bool(step.settings.get("keep_dims", False)),
                           WithKernels({}, loader))
        out[pos] = Step(step.index, f"{step.op}[{prod.op}]", product_sum, False,
                        (*prod.inputs, step.inputs[1]), step.outputs, step.out_dtypes,
                        settings, fresh=True)
        dropped.add(p)
    return fuse_packed_sums([s for q, s in enumerate(out) if q not in dropped], outputs)


def _plain(step: Step, op: str, arity: int) -> bool:
    return (step.op == op and len(step.inputs) == arity and len(step.outputs) == 1
            and not step.stateful and step.kernel is lookup(op).kernel
            and step.settings.__class__ in (dict, MappingProxyType)
            and not step.settings.get("fused_activation_function", 0))


def _match(steps, pos, values, outputs, producer, readers):
    """(the product step's position, True) when the step at ``pos`` reduces a product
    as the module docstring says, else ``None``."""
    step = steps[pos]
    if not (_plain(step, "sum", 2) or _plain(step, "mean", 2)):
        return None
    x, axis = step.inputs
    p = producer.get(x)
    if p is None or readers.get(x) != 1 or x in outputs:
        return None
    prod = steps[p]
    if not (_plain(prod, "mul", 2) or _plain(prod, "square", 1)):
        return None
    a = values[axis] if axis >= 0 else None
    if (producer.get(axis) is not None or a.__class__ is not np.ndarray or is_stand_in(a)
            or a.dtype.kind != "i"):
        return None
    v = values[x]
    if not (isinstance(v, np.ndarray) and v.dtype == _F32 and v.ndim == 4):
        return None
    if sorted(int(i) % 4 for i in a.reshape(-1)) != [0, 1, 2]:
        return None
    for i in prod.inputs:
        f = values[i] if i >= 0 else None
        if not (isinstance(f, np.ndarray) and f.dtype == _F32 and f.shape == v.shape):
            return None
    rows = v.shape[0] * v.shape[1] * v.shape[2]
    if rows % 8 or rows < 64:
        return None
    return p, True


# --- a depthwise filter's taps: one pass --------------------------------------------------

@dataclass(frozen=True)
class Packed:
    """The settings of a PACK of fused sums sharing ``B``: each tap's :class:`Reduced`
    (the fallback), the PACK's kernel and settings."""

    taps: tuple[Reduced, ...]
    pack: object
    pack_settings: object


def packed_product_sums(settings: Packed, *operands):
    """The fused step's kernel: ``operands`` are each tap's ``A``, then ``B`` and the
    axis; ``[taps, c]``, row ``t`` the sum of ``A_t * B`` (see :func:`fuse_packed_sums`)."""
    *views, b, axis = operands
    first = settings.taps[0]
    module = first.kernels.ready() if axis is first.axis else None
    if module is not None and b.__class__ is np.ndarray and b.dtype == _F32 and b.ndim == 4:
        n, h, w, c = b.shape
        rows = n * h * w
        fb = _flat(b)
        found = [_rooted(v) if v.__class__ is np.ndarray and v.dtype == _F32
                 and v.shape == b.shape else None for v in views]
        if fb is not None and all(f is not None for f in found) and rows % 8 == 0 \
                and rows >= 64 and len({(f[0].__array_interface__["data"][0], f[0].size, f[2], f[3])
                                        for f in found}) == 1 \
                and proven(module, rows, c):
            root, _, a0, a1 = found[0]
            offsets = np.array([f[1] for f in found], np.int64)
            return module.product_sums(root.reshape(-1), offsets, a0, a1, *fb, n, h, w, c,
                                       np.empty((len(views), c), _F32))
    sums = [product_sum(s, v, b, axis) for s, v in zip(settings.taps, views, strict=True)]
    return settings.pack(settings.pack_settings, *sums)


def fuse_packed_sums(steps: list[Step], outputs: set[int]) -> list[Step]:
    """``steps`` with each PACK (axis 0) of fused sums (:func:`product_sum`, plain sums
    of MUL(A_t, B), one ``B`` and axis, each read by the PACK alone) replaced by one
    step: every tap's sum in one pass over ``B`` (a depthwise filter gradient)."""
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        if (step.op != "pack" or step.kernel is not lookup("pack").kernel or step.stateful
                or len(step.outputs) != 1 or len(step.inputs) < 2
                or step.settings.get("axis", 0) != 0):
            continue
        taps = []
        for t in step.inputs:
            p = producer.get(t)
            s = steps[p] if p is not None else None
            if (s is None or s.kernel is not product_sum or readers.get(t) != 1
                    or t in outputs or s.settings.square or s.settings.mean
                    or s.settings.keep or s.settings.kernels is None):
                break
            taps.append((p, s))
        if len(taps) != len(step.inputs) or len({s.inputs[1:] for _, s in taps}) != 1:
            continue
        settings = Packed(tuple(s.settings for _, s in taps), step.kernel, step.settings)
        out[pos] = Step(step.index, "pack[product_sums]", packed_product_sums, False,
                        (*(s.inputs[0] for _, s in taps), *taps[0][1].inputs[1:]),
                        step.outputs, step.out_dtypes, settings, fresh=True)
        dropped.update(p for p, _ in taps)
    return [s for q, s in enumerate(out) if q not in dropped]
