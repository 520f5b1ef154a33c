"""Fast, bit-identical forms of TFLite's integer rescaling, with everything that does not
depend on the data folded into constants once at prepare.

:class:`Requantizer` computes exactly
``clip(multiply_by_quantized_multiplier(acc + bias, multiplier, shift) + zero_point,
lo, hi)`` (``fixed_point``'s single-rounding form) as ``(acc * m + c) >> t``, clipped, in
three in-place int64 passes: ``t = 31 - shift``, and ``c = 2**(t-1) + zero_point * 2**t
+ bias * m`` folds the rounding term, the output zero point (adding ``z * 2**t`` before an
arithmetic right shift by ``t`` adds ``z`` after it) and a constant bias into one
per-channel constant. The identity is exact integer arithmetic, so the only condition is
that nothing overflows int64: prepare checks ``|acc| * m + |c| < 2**63`` from a bound on
the accumulator and otherwise keeps the plain formula (:attr:`Requantizer.fast` is False).

:func:`double_rounding` is ``rounding_divide_by_pot(saturating_rounding_doubling_high_mul(
x, m), -shift)`` (the ``MultiplyByQuantizedMultiplierSmallerThanOneExp`` pair) in shifts
and adds: for ``m`` other than ``INT32_MIN`` the doubling high multiply is
``(x * m + 2**30) >> 31`` for either sign (``(ab + 1 - 2**30)`` truncated toward zero is
``floor((ab + 2**30) / 2**31)`` for negative ``ab``), and the rounding divide is
``(h + 2**(e-1) - (h < 0)) >> e`` with ``h < 0`` read off as ``-(h >> 63)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed_point import INT32_MIN, multiply_by_quantized_multiplier

_INT64_LIMIT = 1 << 63
_BLOCK = 1 << 16  # int64 elements rescaled at a time (512 KiB)


@dataclass(frozen=True)
class Requantizer:
    """Rescaling of one node's integer accumulators to its output type (see the module
    docstring); ``fast`` False keeps the plain formula."""

    multiplier: np.ndarray | int  # as fixed_point gives them, per channel or one
    shift: np.ndarray | int
    zero_point: int
    lo: int
    hi: int
    dtype: np.dtype
    fast: bool
    m: np.ndarray | int = 0
    t: np.ndarray | int = 0
    c: np.ndarray | int = 0
    folded_bias: np.ndarray | None = None  # int64, what ``c`` holds (plain path adds it)

    def __call__(self, acc: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        """``acc`` (an integer or integer-valued float array, channels last) plus ``bias``
        (a run-time bias: one not folded at prepare), rescaled, clamped, converted."""
        if self.fast and acc.size <= _BLOCK:
            out = acc.astype(np.int64)
            if bias is not None:
                out += bias.astype(np.int64, copy=False)
            out *= self.m
            out += self.c
            out >>= self.t
            return clip_to(out, self.lo, self.hi, self.dtype)
        if not self.fast:
            out = acc.astype(np.int64)
            if bias is not None:
                out += bias.astype(np.int64, copy=False)
            if self.folded_bias is not None:
                out += self.folded_bias
            out = multiply_by_quantized_multiplier(out, self.multiplier, self.shift)
            out += self.zero_point
            return clip_to(out, self.lo, self.hi, self.dtype)
        # Block by block through one small int64 buffer: the five int64 passes stay in
        # cache and no array the size of the whole tensor is allocated in int64.
        shape = acc.shape
        flat = acc.reshape(-1, shape[-1] if acc.ndim else 1)
        res = np.empty(flat.shape, self.dtype)
        rows = max(1, _BLOCK // max(flat.shape[1], 1))
        buf = np.empty((min(rows, flat.shape[0]), flat.shape[1]), np.int64)
        lo, hi = np.int64(self.lo), np.int64(self.hi)
        b = None if bias is None else bias.astype(np.int64, copy=False)
        for start in range(0, flat.shape[0], rows):
            block = flat[start:start + rows]
            out = buf[:block.shape[0]]
            np.copyto(out, block, casting="unsafe")  # integer-valued: exact
            if b is not None:
                out += b
            out *= self.m
            out += self.c
            out >>= self.t
            if out.size > 4096:
                np.clip(out, lo, hi, out=out)
            else:
                np.maximum(out, lo, out=out)
                np.minimum(out, hi, out=out)
            res[start:start + rows] = out
        return res.reshape(shape)


def clip_to(out: np.ndarray, lo: int, hi: int, dtype: np.dtype) -> np.ndarray:
    """``np.clip(out, lo, hi).astype(dtype)``, clipping ``out`` in place (NumPy scalars
    for the bounds, and minimum/maximum for small arrays: ``np.clip``'s Python-level
    checks cost more than the work below a few thousand elements)."""
    lo_, hi_ = out.dtype.type(lo), out.dtype.type(hi)
    if out.size > 4096:
        np.clip(out, lo_, hi_, out=out)
    else:
        np.maximum(out, lo_, out=out)
        np.minimum(out, hi_, out=out)
    return out.astype(dtype)


def requantizer(multiplier, shift, zero_point: int, lo: int, hi: int, dtype,
                acc_bound: int | None, bias: np.ndarray | None = None) -> Requantizer:
    """The rescaling of accumulators (run-time bias included) bounded by ``|acc| <=
    acc_bound`` (``None``: no bound known, plain formula), with a constant ``bias`` (per
    channel or one) folded in."""
    m = np.asarray(multiplier, np.int64).reshape(-1)
    t = 31 - np.asarray(shift, np.int64).reshape(-1)
    b = None if bias is None else np.asarray(bias).astype(np.int64).reshape(-1)
    plain = Requantizer(multiplier, shift, int(zero_point), int(lo), int(hi), np.dtype(dtype),
                        False, folded_bias=b)
    n = max(m.size, t.size, 1 if b is None else b.size)
    if (acc_bound is None or any(v.size not in (1, n) for v in (m, t))
            or (b is not None and b.size not in (1, n))
            or np.any(t < 1) or np.any(t > 62) or np.any(m < 0)):
        return plain
    ms = [int(m[k % m.size]) for k in range(n)]  # exact Python integers from here on
    ts = [int(t[k % t.size]) for k in range(n)]
    bs = [0] * n if b is None else [int(b[k % b.size]) for k in range(n)]
    cs = [(1 << (ts[k] - 1)) + (int(zero_point) << ts[k]) + bs[k] * ms[k] for k in range(n)]
    if any(int(acc_bound) * ms[k] + abs(cs[k]) >= _INT64_LIMIT for k in range(n)):
        return plain

    def vec(vals: list[int]):
        return np.array(vals, np.int64) if n > 1 else vals[0]

    return Requantizer(multiplier, shift, int(zero_point), int(lo), int(hi), np.dtype(dtype),
                       True, vec(ms), vec(ts), vec(cs))


def double_rounding(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """``rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier),
    -shift)`` for int64 ``x`` holding int32 values, bit for bit (see module doc); a new
    int64 array. ``shift <= 0`` as TFLite's "smaller than one" multipliers have."""
    multiplier, exponent = int(multiplier), -int(shift)
    if multiplier == INT32_MIN or exponent < 0:
        from .fixed_point import rounding_divide_by_pot, saturating_rounding_doubling_high_mul
        return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier),
                                      exponent)
    h = np.multiply(x, multiplier, dtype=np.int64)
    h += 1 << 30
    h >>= 31
    if exponent:
        h += h >> 63  # -1 where negative: halves of negatives round away from zero
        h += 1 << (exponent - 1)
        h >>= exponent
    return h
