"""NumPy's own BLAS called from compiled code, with the arguments ``np.matmul`` passes.

A float32 product ``a [m, k] @ b [k, n]`` of C-order operands into a C-order output is,
in NumPy (``numpy/_core/src/umath/matmul.c.src``), one call to the BLAS library it
loaded: ``cblas_sgemm(RowMajor, NoTrans, NoTrans, m, n, k, 1, a, k, b, n, 0, out, n)``
for ``m, n, k > 1`` (``matrixmatrix``); ``cblas_sgemv(RowMajor, Trans, k, n, 1, b, n, a,
1, 0, out, 1)`` for one row (``vector_matrix``: ``b`` read transposed, which is how NumPy
passes it); ``cblas_sgemv(ColMajor, Trans, k, m, 1, a, k, b, 1, 0, out, 1)`` for one
column (``matrix_vector``). :func:`matmul` makes exactly that call from njit code, so it
runs the same library code on the same arguments at the same thread count: the same bits
by construction. ``k == 1`` and a ``[1, 1]`` output are not BLAS calls in NumPy (a plain
loop, ``dot``): :func:`blasable` refuses them, and strided operands.

The library is the one BLAS threadpoolctl finds loaded (OpenBLAS only: its symbols'
prefix and suffix, e.g. ``scipy_cblas_sgemm64_``, and whether its integers are 64-bit,
are asked of the library, never assumed). :func:`find` gives the two functions' addresses,
which compiled code gets as a runtime argument (:class:`Blas.table`): an address baked
into the machine code would be wrong in the next process, whose cached code is reused.
No OpenBLAS (another vendor, none, several BLAS libraries loaded): ``None``, and callers
keep NumPy. :func:`proven` still compares the call with ``np.matmul`` bit for bit, once per
shape and BLAS thread count, before a caller relies on it.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
# CBLAS enums (cblas.h)
ROW_MAJOR, COL_MAJOR, NO_TRANS, TRANS = 101, 102, 111, 112


@dataclass(frozen=True)
class Blas:
    """The library's ``cblas_sgemm`` and ``cblas_sgemv`` addresses, whether its integers
    are 64-bit, its path; ``table``: ``[sgemm, sgemv, ilp64]`` as compiled code takes
    them."""

    sgemm: int
    sgemv: int
    ilp64: bool
    filepath: str

    @property
    def table(self) -> np.ndarray:
        return np.array([self.sgemm, self.sgemv, int(self.ilp64)], np.int64)


@functools.cache
def find() -> Blas | None:
    """NumPy's OpenBLAS (see the module docstring), or ``None``."""
    import numpy  # noqa: F401  (loads the BLAS threadpoolctl is to find)
    from threadpoolctl import ThreadpoolController

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    if len(libs) != 1 or libs[0].internal_api != "openblas":
        return None
    lib = libs[0]
    symbol = getattr(lib, "_get_symbol", None)
    if symbol is None:
        return None
    sgemm, sgemv, config = (symbol(n) for n in ("cblas_sgemm", "cblas_sgemv",
                                                "openblas_get_config"))
    if sgemm is None or sgemv is None or config is None:
        return None
    config.restype = ctypes.c_char_p
    ilp64 = b"USE64BITINT" in (config() or b"")
    address = ctypes.cast(sgemm, ctypes.c_void_p).value
    address_v = ctypes.cast(sgemv, ctypes.c_void_p).value
    if not address or not address_v:
        return None
    return Blas(address, address_v, ilp64, lib.filepath)


def _int(builder, value, ilp64: bool):
    return value if ilp64 else builder.trunc(value, ir.IntType(32))


@intrinsic
def _sgemm(typingctx, fn, ilp64, order, ta, tb, m, n, k, a, lda, b, ldb, c, ldc):
    """``cblas_sgemm(order, ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)`` through the
    address ``fn``; ``a``, ``b``, ``c`` are addresses, integers 64-bit when ``ilp64``."""
    def codegen(context, builder, signature, args):
        fn, ilp64, order, ta, tb, m, n, k, a, lda, b, ldb, c, ldc = args
        i32, f32, ptr = ir.IntType(32), ir.FloatType(), ir.IntType(8).as_pointer()
        one, zero = ir.Constant(f32, 1.0), ir.Constant(f32, 0.0)
        enums = [builder.trunc(v, i32) for v in (order, ta, tb)]
        is64 = builder.icmp_signed("!=", ilp64, ir.Constant(ilp64.type, 0))
        with builder.if_else(is64) as (wide, narrow):
            for flag, block in ((True, wide), (False, narrow)):
                with block:
                    it = ir.IntType(64) if flag else i32
                    fty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, it, it, it, f32, ptr,
                                                          it, ptr, it, f32, ptr, it])
                    f = builder.inttoptr(fn, fty.as_pointer())
                    builder.call(f, [*enums, *(_int(builder, v, flag) for v in (m, n, k)),
                                     one, builder.inttoptr(a, ptr), _int(builder, lda, flag),
                                     builder.inttoptr(b, ptr), _int(builder, ldb, flag), zero,
                                     builder.inttoptr(c, ptr), _int(builder, ldc, flag)])
        return context.get_dummy_value()
    return types.void(*(types.int64,) * 14), codegen


@intrinsic
def _sgemv(typingctx, fn, ilp64, order, ta, m, n, a, lda, x, incx, y, incy):
    """``cblas_sgemv(order, ta, m, n, 1, a, lda, x, incx, 0, y, incy)`` through ``fn``."""
    def codegen(context, builder, signature, args):
        fn, ilp64, order, ta, m, n, a, lda, x, incx, y, incy = args
        i32, f32, ptr = ir.IntType(32), ir.FloatType(), ir.IntType(8).as_pointer()
        one, zero = ir.Constant(f32, 1.0), ir.Constant(f32, 0.0)
        enums = [builder.trunc(v, i32) for v in (order, ta)]
        is64 = builder.icmp_signed("!=", ilp64, ir.Constant(ilp64.type, 0))
        with builder.if_else(is64) as (wide, narrow):
            for flag, block in ((True, wide), (False, narrow)):
                with block:
                    it = ir.IntType(64) if flag else i32
                    fty = ir.FunctionType(ir.VoidType(), [i32, i32, it, it, f32, ptr, it,
                                                          ptr, it, f32, ptr, it])
                    f = builder.inttoptr(fn, fty.as_pointer())
                    builder.call(f, [*enums, _int(builder, m, flag), _int(builder, n, flag),
                                     one, builder.inttoptr(a, ptr), _int(builder, lda, flag),
                                     builder.inttoptr(x, ptr), _int(builder, incx, flag),
                                     zero, builder.inttoptr(y, ptr),
                                     _int(builder, incy, flag)])
        return context.get_dummy_value()
    return types.void(*(types.int64,) * 12), codegen


_C2 = types.Array(types.float32, 2, "C")
# One compiled form each (writable C-order operands: the executor's arena and constants):
# every signature more is cold compile time in CI.
_SIGS = [(types.int64[::1], _C2, _C2, _C2)]


@numba.njit(_SIGS, **_JIT)
def matmul(table, a, b, out):
    """``out [m, n] = a [m, k] @ b [k, n]`` by the BLAS call ``np.matmul`` makes (module
    docstring); ``table``: :attr:`Blas.table`. The caller has checked :func:`blasable`."""
    m, k = a.shape
    n = b.shape[1]
    fn, fv, wide = table[0], table[1], table[2]
    pa, pb, po = np.int64(a.ctypes.data), np.int64(b.ctypes.data), np.int64(out.ctypes.data)
    if m == 1:
        _sgemv(fv, wide, ROW_MAJOR, TRANS, k, n, pb, n, pa, 1, po, 1)
    elif n == 1:
        _sgemv(fv, wide, COL_MAJOR, TRANS, k, m, pa, k, pb, 1, po, 1)
    else:
        _sgemm(fn, wide, ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, pa, k, pb, n, po, n)


@numba.njit(_SIGS, **_JIT)
def matmul_bt(table, a, w, out):
    """``out [m, n] = a [m, k] @ w.T`` for a C-order ``w`` [n, k] (FULLY_CONNECTED's
    ``x @ w.T``: NumPy sees a Fortran-order ``[k, n]``) by the BLAS call ``np.matmul``
    makes: ``sgemv(ColMajor, Trans, k, n, 1, w, k, a, 1, 0, out, 1)`` for one row
    (``vector_matrix``, ``b`` blasable in Fortran order), for one column as
    :func:`matmul`, else ``sgemm(RowMajor, NoTrans, Trans, m, n, k, 1, a, k, w, k, 0, out,
    n)``."""
    m, k = a.shape
    n = w.shape[0]
    fn, fv, wide = table[0], table[1], table[2]
    pa, pw, po = np.int64(a.ctypes.data), np.int64(w.ctypes.data), np.int64(out.ctypes.data)
    if m == 1:
        _sgemv(fv, wide, COL_MAJOR, TRANS, k, n, pw, k, pa, 1, po, 1)
    elif n == 1:
        _sgemv(fv, wide, COL_MAJOR, TRANS, k, m, pa, k, pw, 1, po, 1)
    else:
        _sgemm(fn, wide, ROW_MAJOR, NO_TRANS, TRANS, m, n, k, pa, k, pw, k, po, n)


def blasable(m: int, k: int, n: int) -> bool:
    """Whether NumPy multiplies C-order float32 ``[m, k] @ [k, n]`` by one BLAS call
    :func:`matmul` makes: ``k > 1`` and not a ``[1, 1]`` result (those are NumPy's own
    loop and ``dot``), sizes BLAS takes."""
    return k > 1 and (m > 1 or n > 1) and m >= 1 and n >= 1 and max(m, k, n) < 2 ** 31 - 1


def _c_order(x) -> bool:
    return (x.__class__ is np.ndarray and x.dtype == np.float32 and x.ndim == 2
            and x.flags.c_contiguous)


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
            blas: Blas | None = None, transposed: bool = False) -> np.ndarray:
    """``a @ b`` by :func:`matmul` (a helper for tests and provers), or ``a @ b.T`` by
    :func:`matmul_bt` when ``transposed``: C-order float32 2-D operands only, a shape
    :func:`blasable` takes; else ``ValueError``."""
    blas = blas or find()
    if blas is None:
        raise ValueError("no OpenBLAS loaded by NumPy to call")
    if not (_c_order(a) and _c_order(b)) or a.shape[1] != b.shape[1 if transposed else 0]:
        raise ValueError(f"expected C-order float32 [m, k] and [k, n] operands, got "
                         f"{a.dtype}{list(a.shape)} (C order: {a.flags.c_contiguous}) and "
                         f"{b.dtype}{list(b.shape)} (C order: {b.flags.c_contiguous})")
    (m, k), n = a.shape, b.shape[0 if transposed else 1]
    if not blasable(m, k, n):
        raise ValueError(f"[{m}, {k}] @ [{k}, {n}] is not one BLAS call in NumPy")
    if out is None:
        out = np.empty((m, n), np.float32)
    elif not _c_order(out) or out.shape != (m, n) or not out.flags.writeable:
        raise ValueError(f"expected a writable C-order float32 [{m}, {n}] output")
    a, b = (x if x.flags.writeable else x.copy() for x in (a, b))
    (matmul_bt if transposed else matmul)(blas.table, a, b, out)
    return out


_VERDICTS: dict[tuple[int, int, int, int, bool], bool] = {}
_OUTPUTS = 1 << 12


def proven(m: int, k: int, n: int, threads: int, transposed: bool = False) -> bool:
    """Whether :func:`matmul` gives ``np.matmul``'s bits for ``[m, k] @ [k, n]`` (or
    :func:`matmul_bt` for ``[m, k] @ w.T``, ``w`` [n, k], when ``transposed``) at the
    current BLAS thread count ``threads`` (the caller reads it): compared on random
    operands, once per shape and count (kept for the process)."""
    key = (m, k, n, threads, transposed)
    verdict = _VERDICTS.get(key)
    if verdict is None:
        verdict = _VERDICTS[key] = _check(m, k, n, transposed)
    return verdict


def _check(m: int, k: int, n: int, transposed: bool) -> bool:
    blas = find()
    if blas is None or not blasable(m, k, n):
        return False
    rng = np.random.default_rng([m, k, n])
    for _ in range(max(1, -(-_OUTPUTS // (m * n)))):
        a = rng.standard_normal((m, k), np.float32)
        b = rng.standard_normal((n, k) if transposed else (k, n), np.float32)
        want = np.empty((m, n), np.float32)
        np.matmul(a, b.T if transposed else b, out=want)
        got = product(a, b, blas=blas, transposed=transposed)
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True
