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
NumPy path's ``np.matmul`` calls, its ``K`` and output channels, the layout of the
operands it passes (C order; for a filter read from a variable, the filter's transposed
view, which BLAS takes with another transpose flag: some shapes, such as 9 rows by 32 by
16, then sum in another order), the BLAS thread count at that moment — :func:`proven`
runs BLAS and the compiled kernel on the same random operands and compares every
output's bit pattern. Since the order depends on the shapes alone, equality on random
data (which makes any other order round differently somewhere) shows the two compute the
same function of the operands; anything short of 100 % equality keeps the NumPy path for
that shape. The verdict is kept per shape for the process, so each shape is checked
once. The epilogue (the same float32 operations as the conv family's ``bias_activation``
kernels) is exact by construction and held to NumPy's bits by the tests.

The compiled kernels are adopted only where they are also faster (:func:`faster`:
measured per shape class on this machine against BLAS plus the epilogue pass,
interleaved: 0.3–0.9× its time wherever the kernel's register tiles of eight rows, and
four for a short last one, are mostly full: from eight rows on; a 3×3 image's nine rows
at batch 1 took 1.8–3× BLAS's time with eight-row tiles alone, 0.6–1.1× with the
four-row one) and only once loaded: they start loading on a background thread the first
time a node runs with the conv family's compiled kernels ready (never on import, never
in a one-shot run); ``LITETRAIN_JIT=0`` turns them off with the rest.

A convolution with few input channels (a network's stem: three colour channels, patch
rows gathered in runs of ``kw * c`` floats) runs the direct-read form instead
(``fast.gemm.conv_2d_direct``: tiles read each pixel's patch values in place from a
padded copy of the image, no patch rows; 0.6× the gathering kernel's time for the
MobileNet stem, 0.6–0.8× for 3×3 convolutions of 3 to 8 channels, 0.9–1.1× from 16
on: :func:`direct`). It multiplies and adds the same values in the same order as the
gathering form, which :func:`direct_proven` confirms bit for bit on the node's
geometry before it is used (once per geometry).

The XNNPACK-order float CONV_2D of a dynamic-range model (:mod:`.xnnpack_float`) has its
own direct-read form, ``fast.xnnpack.conv_direct``: each sum starts from the bias, as
XNNPACK's, and the clamp and a fused HARD_SWISH are XNNPACK's. It is chosen by the same
:func:`direct` rule and :func:`xnnpack_direct_proven` confirms it on the node's
geometry against the family's gathering kernel (``fast.xnnpack.conv``, held to the NumPy
form's bits by the tests) with the rescaling and HARD_SWISH it fuses done as the
separate nodes do them.
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
_VERDICTS: dict[tuple[int, int, int, int, bool], bool] = {}
# Input channels up to which the direct-read kernel is chosen (see the docstring).
DIRECT_CHANNELS = 8
_DIRECT: dict[tuple, bool] = {}
_XNN_DIRECT: dict[tuple, bool] = {}


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


def proven(rows: Iterable[int], k: int, o: int, kernel=None, transposed: bool = False
           ) -> bool:
    """Whether ``kernel`` (default: ``fast.gemm.pointwise``) gives BLAS's bits for
    ``[m, k] @ [k, o]`` (float32, C-order ``[m, k]``, ``np.matmul`` into a C-order
    output) for every ``m`` in ``rows``, at the current BLAS thread count; checked once
    per shape and layout (see the module docstring). The filter operand ``[k, o]`` is
    C-order, or with ``transposed`` the transposed view of a C-order ``[o, k]`` (what a
    node without a constant filter passes: BLAS is then called with another transpose
    flag, which some shapes sum in another order). ``kernel(a, b)`` returns its
    ``a @ b``."""
    if k > K_MAX or k < 1 or o < 1:
        return False
    threads = blas_threads()
    for m in sorted(set(rows)):
        key = (m, k, o, threads, transposed)
        verdict = _VERDICTS.get(key) if kernel is None else None
        if verdict is None:
            verdict = _check(m, k, o, kernel or _compiled, transposed)
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


def _check(m: int, k: int, o: int, kernel, transposed: bool = False) -> bool:
    rng = np.random.default_rng([m, k, o])
    for _ in range(max(1, -(-_OUTPUTS // (m * o)))):
        a = rng.standard_normal((m, k), np.float32)
        b = (rng.standard_normal((o, k), np.float32).T if transposed
             else rng.standard_normal((k, o), np.float32))
        want = np.empty((m, o), np.float32)
        np.matmul(a, b, out=want)
        got = kernel(a, b)
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True


def direct(channels: int) -> bool:
    """Whether a convolution of this many input channels runs the direct-read kernel."""
    return channels <= DIRECT_CHANNELS


def direct_proven(image: tuple[int, int, int], oh: int, o: int, geometry: tuple[int, ...],
                  kernel=None) -> bool:
    """Whether ``kernel`` (default: ``fast.gemm.conv_2d_direct``) gives the gathering
    kernel's bits (``fast.gemm.conv_2d``) for a CONV_2D of images ``[h, w, c]`` to
    ``oh`` output rows of ``o`` channels with ``geometry`` ``(kh, kw, sh, sw, dh, dw, pt,
    pl, ow)``, input rescaling fused: two images of random values, infinities, NaN and
    signed zeros, random filter and bias. Checked once per geometry (kept for the
    process)."""
    key = (image, oh, o, geometry)
    verdict = _DIRECT.get(key) if kernel is None else None
    if verdict is None:
        verdict = _check_direct(image, oh, o, geometry, kernel)
        if kernel is None:
            _DIRECT[key] = verdict
    return verdict


def _check_direct(image, oh, o, geometry, kernel) -> bool:
    mod = module()
    if mod is None:
        return False
    kernel = kernel or mod.conv_2d_direct
    rng = np.random.default_rng([*image, o, *geometry])
    x = _two_images(rng, image)
    kh, kw, ow = geometry[0], geometry[1], geometry[-1]
    w = mod.pack(rng.standard_normal((kh * kw * image[2], o), np.float32))
    b = mod.pack_bias(rng.standard_normal(o, np.float32), o)
    inf, one = np.float32(np.inf), np.float32(1)
    mul, add = np.float32(rng.uniform(0.5, 2)), np.float32(rng.standard_normal())
    outs = []
    for run in (mod.conv_2d, kernel):
        out = np.empty((2 * oh * ow, o), np.float32)
        run(x, w, out, b, -inf, inf, mod.PLAIN, one, *geometry, True, mul, add)
        outs.append(out)
    return bool(np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32)))


def _two_images(rng: np.random.Generator, image: tuple[int, int, int]) -> np.ndarray:
    """Two random images ``[h, w, c]`` with infinities, NaN, signed zeros and a huge
    value at random places (what a direct kernel's check runs on)."""
    x = rng.standard_normal((2, *image), np.float32)
    flat = x.reshape(-1)
    spots = rng.choice(flat.size, min(flat.size, 8), replace=False)
    flat[spots] = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 0.0, -0.0, 1e30],
                           np.float32)[:spots.size]
    return x


def xnnpack_direct_proven(jit: ModuleType, image: tuple[int, int, int], o: int,
                          geometry: tuple[int, ...], lo: np.float32, hi: np.float32,
                          kernel=None) -> bool:
    """Whether ``kernel`` (default: ``jit.conv_direct``, ``jit`` the loaded
    ``fast.xnnpack``) gives the bits of ``jit.conv`` for an XNNPACK-order CONV_2D of
    images ``[h, w, c]`` to ``o`` channels with ``geometry`` ``(kh, kw, sh, sw, dh, dw,
    pt, pl, oh, ow)`` and clamp ``[lo, hi]``: with and without a fused input rescaling
    (``jit.conv`` then reads NumPy's ``x * mul + add``) and a fused HARD_SWISH
    (``jit.hard_swish`` after it), on two images of random values, infinities, NaN and
    signed zeros, a random filter with an infinity and signed zeros, a random bias and
    none (+0.0). Checked once per geometry and clamp (kept for the process)."""
    key = (image, o, geometry, float(lo), float(hi))
    verdict = _XNN_DIRECT.get(key) if kernel is None else None
    if verdict is None:
        verdict = _check_xnnpack_direct(jit, image, o, geometry, lo, hi,
                                        kernel or jit.conv_direct)
        if kernel is None:
            _XNN_DIRECT[key] = verdict
    return verdict


def _check_xnnpack_direct(jit, image, o, geometry, lo, hi, kernel) -> bool:
    rng = np.random.default_rng([*image, o, *geometry])
    x = _two_images(rng, image)
    kh, kw = geometry[:2]
    tiles, k = -(-o // 16), kh * kw * image[2]
    w = rng.standard_normal((tiles, k, 16), np.float32)  # the packed layout
    w[-1, :, o - 16 * (tiles - 1):] = 0.0  # zeros past o
    w.reshape(-1)[:3] = [np.inf, -0.0, 0.0]
    w = w.reshape(tiles, -1)
    mul, add = np.float32(rng.uniform(0.5, 2)), np.float32(rng.standard_normal())
    with np.errstate(invalid="ignore", over="ignore"):
        rescaled = np.add(np.multiply(x, mul), add)
        for bias in (rng.standard_normal(tiles * 16, np.float32), np.zeros(tiles * 16,
                                                                            np.float32)):
            for affine in (False, True):
                want = jit.conv(rescaled if affine else x, w, bias, o, lo, hi, *geometry)
                for swish in (False, True):
                    got = kernel(x, w, bias, o, lo, hi, swish, affine, mul, add, *geometry)
                    if swish:
                        ref = np.empty_like(want)
                        jit.hard_swish(want.reshape(-1), ref.reshape(-1))
                    else:
                        ref = want
                    if not np.array_equal(ref.view(np.uint32), got.view(np.uint32)):
                        return False
    return True
