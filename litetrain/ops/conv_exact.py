"""Adopting CONV_2D's compiled BLAS-order GEMMs (``fast.gemm``) only where proven exact.

The NumPy CONV_2D kernel multiplies patch rows by the filter with ``np.matmul`` (BLAS).
NumPy's OpenBLAS computes each output of a float32 GEMM in a fixed order that depends
only on the call's shapes, layouts and BLAS thread count, never on the values: on the
x86-64 AVX-512 kernels, from +0.0, one fused multiply-add per ``k`` in order, while ``K``
fits one of its K blocks (``GEMM_Q``: 448 here) — but other CPUs, BLAS builds and some
shapes (a single row or few columns, column tails of small matrices) take other kernels
with other orders. ``fast.gemm`` computes exactly that order with everything around it
fused (patch gathering, bias, activation, a fused HARD_SWISH or MUL).

So nothing is assumed: for a node's exact GEMM shapes — every distinct row count of the
NumPy path's ``np.matmul`` calls, its ``K`` and output channels, the C-order operands it
passes, the BLAS thread count at that moment — :func:`proven` runs BLAS and the compiled
kernel on the same random operands and compares every output's bit pattern. Since the
order depends on the shapes alone, equality on random data (which makes any other order
round differently somewhere) shows the two compute the same function of the operands;
anything short of 100 % equality keeps the NumPy path for that shape. The verdict is kept
per shape for the process, so each shape is checked once. The epilogue (the same float32
operations as the conv family's ``bias_activation`` kernels) is exact by construction and
held to NumPy's bits by the tests.

The compiled kernels are adopted only where they are also faster (:func:`faster`:
measured per shape class on this machine against BLAS plus the epilogue pass,
interleaved: 0.3–0.9× its time wherever the kernel's register tiles of eight rows, and
four for a short last one, are mostly full: from eight rows on; a 3×3 image's nine rows
at batch 1 took 1.8–3× BLAS's time with eight-row tiles alone, 0.6–1.1× with the
four-row one) and only once loaded: they start loading on a background thread the first
time a node runs with the conv family's compiled kernels ready (never on import, never
in a one-shot run); ``LITETRAIN_JIT=0`` turns them off with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from types import ModuleType

import numpy as np

from .fast import kernels

# The largest K one of OpenBLAS's K blocks holds on this machine: beyond it the sums of
# blocks are added (another order), so larger K are never even checked.
K_MAX = 448
# Outputs compared per shape at least (random operands redrawn until then): enough that
# any other summation order rounds differently somewhere.
_OUTPUTS = 1 << 14
_VERDICTS: dict[tuple[int, int, int, int], bool] = {}


def module() -> ModuleType | None:
    """The compiled ``gemm`` kernels when loaded; else ``None`` (and loading starts)."""
    loader = kernels("gemm")
    if loader is None:
        return None
    if loader.module is None:
        loader.start()
    return loader.module


@cache
def _thread_count() -> Callable[[], int]:
    """A cheap reader of NumPy's BLAS thread count (0 when there is no BLAS to ask)."""
    from threadpoolctl import ThreadpoolController

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    if not libs:
        return lambda: 0
    lib = libs[0]
    raw = getattr(lib, "_get_symbol", lambda name: None)("openblas_get_num_threads")
    return raw if raw is not None else lib.get_num_threads


def blas_threads() -> int:
    """NumPy's BLAS thread count right now (part of every verdict's key)."""
    return int(_thread_count()())


def proven(rows: Iterable[int], k: int, o: int, kernel=None) -> bool:
    """Whether ``kernel`` (default: ``fast.gemm.pointwise``) gives BLAS's bits for
    ``[m, k] @ [k, o]`` (C-order float32 operands, ``np.matmul`` into a C-order output)
    for every ``m`` in ``rows``, at the current BLAS thread count; checked once per shape
    (see the module docstring). ``kernel(a, b)`` returns its ``a @ b``."""
    if k > K_MAX or k < 1 or o < 1:
        return False
    threads = blas_threads()
    for m in sorted(set(rows)):
        key = (m, k, o, threads)
        verdict = _VERDICTS.get(key) if kernel is None else None
        if verdict is None:
            verdict = _check(m, k, o, kernel or _compiled)
            if kernel is None:
                _VERDICTS[key] = verdict
        if not verdict:
            return False
    return True


def faster(rows: Iterable[int]) -> bool:
    """Whether the compiled kernel beats BLAS + the epilogue pass for GEMMs of these row
    counts: at least eight rows each (its tiles, eight rows and four for a short last
    one, are then at least 75 % full)."""
    return all(m >= 8 for m in rows)


def _compiled(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mod = module()
    assert mod is not None
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    inf = np.float32(np.inf)
    mod.pointwise(a, mod.pack(b), out, mod.pack_bias(None, b.shape[1]), -inf, inf,
                  mod.PLAIN, np.float32(1))
    return out


def _check(m: int, k: int, o: int, kernel) -> bool:
    rng = np.random.default_rng([m, k, o])
    for _ in range(max(1, -(-_OUTPUTS // (m * o)))):
        a = rng.standard_normal((m, k), np.float32)
        b = rng.standard_normal((k, o), np.float32)
        want = np.empty((m, o), np.float32)
        np.matmul(a, b, out=want)
        got = kernel(a, b)
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True
