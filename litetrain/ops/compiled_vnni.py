"""Prepare-time adoption of the AVX-512 VNNI kernels (:mod:`.fast.vnni`) for 8-bit
CONV_2D and FULLY_CONNECTED nodes that :mod:`.compiled_int8` already runs compiled.

:func:`plan` makes, once per node, what the kernels take (:class:`Plan`): the filter
packed as ``vpdpbusd`` operands, the per-channel start values of the accumulators
(``-(zx + off) * Σ_k w[k, o]``, plus the bias under XNNPACK's float32 rescaling: see
:mod:`.fast.vnni`) and the rescaling's constants padded to whole tiles of sixteen
channels. A node gets a plan when

* the CPU has AVX-512 F/BW/VNNI (LLVM's host features, as numba compiles for) and the
  ``[fast]`` extra is there (``LITETRAIN_JIT=0`` turns it off);
* its input and output are int8/uint8 with one input zero point (what ``Int8`` takes);
* its centred filter fits in signed bytes (TFLite's symmetric int8 weights do; uint8
  weights with a zero point may not);
* every final accumulator fits in int32: ``max|x - zx| * Σ_k |w[k, o]|`` (plus ``|bias|``
  when the bias is summed in) below 2**31.

The kernels load on a background thread the first time a planned node runs on compiled
int8 kernels (so never in a one-shot run); until then, and where a run does not fit
(another input type or shape), :mod:`.compiled_int8`'s own path runs. Results are the
same exact integers, rescaled alike, either way.

``Plan.table`` (a 256-entry ``uint8`` array; empty, the default, for none) is an
elementwise op fused into the node (e.g. int8 swish): set it, and the node's kernel
returns ``table[b]`` for each rescaled output byte ``b`` (its bits: ``out.view(uint8)``)
on every path — the VNNI kernels as they store, :mod:`.compiled_int8`'s other paths
after (``_tabled``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .fast import Loader, kernels

_EIGHT = (np.dtype(np.int8), np.dtype(np.uint8))
_INT32_LIMIT = 1 << 31
_INT64_MIN = np.iinfo(np.int64).min
NO_TABLE = np.zeros(0, np.uint8)


@functools.cache
def host_has_vnni() -> bool:
    """Whether LLVM (numba's code generator) sees AVX-512 F, BW and VNNI on this CPU."""
    try:
        import llvmlite.binding as ll
        features = ll.get_host_cpu_features()
    except Exception:  # no llvmlite, or it cannot tell: keep today's kernels
        return False
    return all(features.get(f, False) for f in ("avx512f", "avx512bw", "avx512vnni"))


@dataclass
class Plan:
    """What :func:`.fast.vnni.conv_2d` / ``gemm`` take for one node, made once."""

    loader: Loader
    wpack: np.ndarray  # int8 [tiles, K4, 64]
    init: np.ndarray  # int32 [tiles * 16]
    q: np.ndarray  # int64 [4, tiles * 16]: m, c, d, t
    scale: np.ndarray  # float32 [tiles * 16]
    fp32: bool
    lo: int
    hi: int
    zp: int
    flip: int  # 0x80 for int8 input (u = x + 128), 0 for uint8
    pad: int  # the unsigned byte of a padding tap: zx + off
    channels: int
    out_dtype: np.dtype
    direct: bool  # wpack in conv_2d_direct's layout (filter rows padded to whole words)
    table: np.ndarray = field(default_factory=lambda: NO_TABLE)

    def module(self):
        """The compiled kernels once loaded (starting the load), else ``None``."""
        module = self.loader.module
        if module is None:
            self.loader.start()
        return module

    def constants(self) -> tuple:
        return (self.wpack, self.init, self.q, self.scale, self.fp32, self.lo, self.hi,
                self.zp, self.table)


def pack_filter(w: np.ndarray) -> np.ndarray:
    """The GEMM filter ``[k, o]`` (integers in int8 range) as ``[tiles, K4, 64]`` int8:
    per sixteen output channels and per four depth values, each channel's four bytes
    (zeros past ``k`` and ``o``)."""
    k, o = w.shape
    k4, tiles = -(-k // 4), -(-o // 16)
    padded = np.zeros((k4 * 4, tiles * 16), np.int8)
    padded[:k, :o] = w
    # [K4, 4, tiles, 16] -> [tiles, K4, 16, 4]
    return np.ascontiguousarray(padded.reshape(k4, 4, tiles, 16).transpose(2, 0, 3, 1)
                                ).reshape(tiles, k4, 64)


def direct_filter(w: np.ndarray, kh: int) -> np.ndarray:
    """The GEMM filter ``[kh * run, o]`` (taps row by row) as ``[kh * run4, o]``: each
    filter row's ``run`` values padded with zeros to whole words (``run4``), the layout
    :func:`.fast.vnni.conv_2d_direct` reads."""
    k, o = w.shape
    run = k // kh
    run4 = -(-run // 4) * 4
    out = np.zeros((kh, run4, o), w.dtype)
    out[:, :run] = w.reshape(kh, run, o)
    return out.reshape(kh * run4, o)


def plan(w: np.ndarray, rescaling: tuple, zx: int, x_dtype: np.dtype, out_dtype: np.dtype,
         x_max: int, direct_rows: int = 0) -> Plan | None:
    """The node's :class:`Plan`, or ``None`` when it does not qualify (module doc): ``w``
    the centred GEMM filter ``[k, o]`` (integer values), ``rescaling`` as
    :func:`.compiled_int8.rescaling` gives it, ``x_max`` the largest ``|x - zx|``;
    ``direct_rows`` the filter's height ``kh`` when a CONV_2D runs in place
    (:func:`.fast.vnni.conv_2d_direct`: no dilation along the width), else 0."""
    if not host_has_vnni() or np.dtype(x_dtype) not in _EIGHT \
            or np.dtype(out_dtype) not in _EIGHT:
        return None
    loader = kernels("vnni")
    if loader is None:
        return None
    wi = np.asarray(w, np.int64)
    if wi.ndim != 2 or wi.size == 0 or not np.array_equal(wi, w) \
            or wi.min() < -128 or wi.max() > 127:
        return None  # (an empty product is left to the NumPy kernel)
    q5, scale, fp32, lo, hi, zp = rescaling
    o = wi.shape[1]
    column = np.abs(wi).sum(axis=0)
    bias = q5[4] if fp32 else np.zeros(o, np.int64)
    if int((x_max * column + np.abs(bias)).max()) >= _INT32_LIMIT:
        return None
    off = 128 if np.dtype(x_dtype) == np.int8 else 0
    tiles = -(-o // 16)
    init = np.zeros(tiles * 16, np.int64)
    init[:o] = -(zx + off) * wi.sum(axis=0) + bias
    q = np.zeros((4, tiles * 16), np.int64)
    q[2] = _INT64_MIN
    q[:, :o] = q5[:4]
    padded_scale = np.zeros(tiles * 16, np.float32)
    padded_scale[:o] = scale
    # the start values wrap as the kernel's sums do: only the final value must fit
    init32 = (init & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    packed = pack_filter(direct_filter(wi, direct_rows) if direct_rows else wi)
    return Plan(loader, packed, init32, q, padded_scale, bool(fp32), int(lo), int(hi),
                int(zp), 0x80 if off else 0, (zx + off) & 0xFF, o, np.dtype(out_dtype),
                bool(direct_rows))


def run_gemm(p: Plan, x: np.ndarray) -> np.ndarray | None:
    """``[m, o]``: the rows of ``x`` [m, k] times the filter, rescaled; ``None`` until the
    kernels are loaded."""
    module = p.module()
    if module is None:
        return None
    out = np.empty((x.shape[0], p.channels), p.out_dtype)
    module.gemm(np.ascontiguousarray(x).view(np.uint8), p.flip, *p.constants(),
                out.view(np.uint8))
    return out


def run_conv(p: Plan, x: np.ndarray, kh: int, kw: int, geometry: tuple) -> np.ndarray | None:
    """``[n * oh * ow, o]``: CONV_2D of ``x`` [n, h, w, c] (``geometry`` ``(sh, sw, dh, dw,
    pt, pl, oh, ow)``), rescaled; ``None`` until the kernels are loaded."""
    module = p.module()
    if module is None:
        return None
    sh, sw, dh, dw, pt, pl, oh, ow = geometry
    out = np.empty((x.shape[0] * oh * ow, p.channels), p.out_dtype)
    x = np.ascontiguousarray(x).view(np.uint8)
    if p.direct:
        if dw != 1:
            return None
        module.conv_2d_direct(x, p.flip, p.pad, kh, kw, sh, sw, dh, pt, pl, oh, ow,
                              *p.constants(), out.view(np.uint8))
    else:
        module.conv_2d(x, p.flip, p.pad, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow,
                       *p.constants(), out.view(np.uint8))
    return out
