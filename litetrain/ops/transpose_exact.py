"""Adopting the compiled TRANSPOSE_CONV in BLAS's order (``fast.transpose_conv``) only
where proven exact.

The NumPy kernel (:func:`.conv.transpose_conv`) multiplies the input rows ``[n·h·w, ci]``
by the filter's taps ``[ci, kh·kw·o]`` (both C order) in one ``np.matmul``, then adds each
tap's block into the zeroed output in tap order. The compiled kernel computes each of
those products as a chain of fused multiply-adds from +0.0, ``k`` in order, and makes the
same additions in the same order without writing the product matrix. That this is
BLAS's order for the node's GEMM shape and BLAS thread count is not assumed:
:func:`.conv_exact.proven` checks that shape bit for bit (once per shape for the
process) before the kernel runs; otherwise, and for any input that is not a C-order
float32 array (NumPy may then not call BLAS at all), the NumPy kernel runs.

The kernel family loads in the background as the conv family does: once the conv
kernels are loaded (the node's second run starts loading them), the first call starts
loading it and the NumPy
kernel runs until it is there (never on import, never in a one-shot run;
``LITETRAIN_JIT=0`` turns it off with the rest). The filter is packed per call (a few
µs; nothing of one call's arrays is kept for the next).
"""

from __future__ import annotations

import numpy as np

from . import conv_exact
from .fast import WithKernels, kernels


def transpose_conv(settings, x, w, out_shape: tuple[int, int, int, int],
                   geometry: tuple[int, int, int, int]) -> np.ndarray | None:
    """TRANSPOSE_CONV's output ``[n, oh, ow, o]`` before bias and activation, by the
    compiled kernel, for input ``x`` [n, h, w, ci] and filter ``w`` [o, kh, kw, ci] with
    ``geometry`` ``(sh, sw, ph, pw)``; ``None`` when it does not apply (see the module
    docstring): the NumPy kernel then runs."""
    # (the conv kernels' loader is asked without counting a run: the NumPy path's
    # compiled col2im counts this node's runs, once per run)
    if settings.__class__ is not WithKernels or settings.loader.module is None:
        return None
    if not (x.__class__ is np.ndarray and w.__class__ is np.ndarray and x.ndim == 4
            and w.ndim == 4 and x.dtype == np.float32 and w.dtype == np.float32
            and x.flags.c_contiguous):
        return None
    n, h, wd, ci = x.shape
    o, kh, kw, wci = w.shape
    if wci != ci or out_shape[0] != n or out_shape[3] != o or 0 in x.shape \
            or 0 in out_shape:
        return None
    module = _module()
    if module is None or conv_exact.module() is None:
        return None
    if not (faster(o) and conv_exact.proven([n * h * wd], ci, kh * kw * o)):
        return None
    out = np.empty(out_shape, np.float32)
    module.transpose_conv(x, pack_taps(w), out, kh, kw, *geometry)
    return out


def faster(channels: int) -> bool:
    """Whether the compiled kernel beats BLAS + the column-to-image pass for this many
    output channels: a multiple of sixteen, every lane of its register tiles used (and
    the NumPy kernel's additions then run in NumPy's vector loops, whose choice of NaN
    when two meet the kernel follows; with a few channels its short loops keep the
    other one).
    Measured interleaved at batch 32 (3×3, strides 1 and 2, 16 to 64 channels, 4×4 to
    32×32 inputs): 0.52–0.91× its time, 0.96–1.02× at batch 1; with 24 channels 1.4×,
    with 8 or 4 (a half or a quarter of each tile used) 1.4× and 2.1×."""
    return channels % 16 == 0


def _module():
    """The compiled kernels when loaded; else ``None`` (and loading starts)."""
    loader = kernels("transpose_conv")
    if loader is None:
        return None
    if loader.module is None:
        loader.start()
    return loader.module


def pack_taps(w: np.ndarray) -> np.ndarray:
    """The filter ``[o, kh, kw, ci]`` as the kernel reads it: per tap ``(i, j)`` (rows in
    C order), its ``[ci, o]`` in C order when ``o`` is a multiple of sixteen, else per
    sixteen output channels ``[ci, 16]`` (zeros past ``o``)."""
    o, kh, kw, ci = w.shape
    taps = w.transpose(1, 2, 3, 0)  # [kh, kw, ci, o]
    if o % 16 == 0:
        return np.ascontiguousarray(taps, np.float32).reshape(kh * kw, ci * o)
    tiles = -(-o // 16)
    padded = np.zeros((kh * kw, ci, tiles * 16), np.float32)
    padded[:, :, :o] = taps.reshape(kh * kw, ci, o)
    return np.ascontiguousarray(padded.reshape(kh * kw, ci, tiles, 16).transpose(0, 2, 1, 3)
                                ).reshape(kh * kw, tiles * ci * 16)
