"""Fast, bit-identical forms of TFLite's integer rescaling, with everything that does not
depend on the data folded into constants once at prepare.

:class:`Requantizer` computes exactly what :func:`.lib.rescale` computes for a node's
rounding (``fixed_point.ROUNDINGS``: ``single``, ``neon``, ``double``, ``int64``) or
XNNPACK's float32 scale (``fp32``):
``clip(ROUNDINGS[rounding](acc + bias, multiplier, shift) + zero_point, lo, hi)``.

Every integer form is one multiply and one arithmetic right shift, ``(x * m + c0) >> t``,
once its two steps are merged (``floor(floor(y / 2**a) + k) / 2**b) = floor((y + k *
2**a) / 2**(a + b))``): ``single`` is ``m = M``, ``t = 31 - S``, ``c0 = 2**(t-1)``;
``int64`` the same with ``M`` rounded to 16 bits and ``t = 15 - S``; ``neon``
(``vqrdmulh`` then ``vrshl``) is ``m = M << L``, ``t = 31 + R``, ``c0 = 2**30 +
(2**R >> 1) * 2**31`` (``L``/``R`` the left/right parts of the shift ``S``); ``double``
(TFLite's saturating rounding doubling high multiply, then a rounding divide by ``2**R``
whose halves go away from zero) is ``neon``'s form less ``2**31`` wherever the high
product ``floor((x * M + 2**30) / 2**31)`` is negative, i.e. where ``x * m + c < d`` for a
per-channel constant ``d`` (one compare and one masked subtract). The output zero point
(``zp << t``) and a constant bias (``bias * m``) fold into ``c = c0 + ...``. The identities
are exact integer arithmetic; prepare checks that nothing overflows int64 and that ``(acc
+ bias) << L`` stays in int32 (TFLite's accumulator wraps there) from a bound on the
accumulator, and otherwise keeps the plain formula (:attr:`Requantizer.fast` False).

``fp32``: ``float32(acc + bias) * scale``, clamped to the range less the zero point,
rounded to nearest even, plus the zero point — all in float32 in place; a constant bias
exactly representable in float32 is added in float32 to a float32 accumulator (both exact,
so the sum is rounded once, as ``float32(int sum)`` is).

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

from .fixed_point import INT32_MIN, ROUNDINGS

_INT64_LIMIT = 1 << 63
_INT32_LIMIT = 1 << 31
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
    rounding: str = "single"
    d: np.ndarray | int | None = None  # ``double``: subtract 2**31 where ``x*m + c < d``
    fp32: np.ndarray | None = None  # XNNPACK's float32 scales (per channel or one)
    bias32: np.ndarray | None = None  # the folded bias in float32 when exact there

    def __call__(self, acc: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        """``acc`` (an integer or integer-valued float array, channels last) plus ``bias``
        (a run-time bias: one not folded at prepare), rescaled, clamped, converted."""
        if self.fp32 is not None:
            return self._float32(acc, bias)
        if not self.fast:
            out = acc.astype(np.int64)
            if bias is not None:
                out += bias.astype(np.int64, copy=False)
            if self.folded_bias is not None:
                out += self.folded_bias
            out = ROUNDINGS[self.rounding](out, self.multiplier, self.shift)
            out += self.zero_point
            return clip_to(out, self.lo, self.hi, self.dtype)
        if acc.size <= _BLOCK:
            out = acc.astype(np.int64)
            if bias is not None:
                out += bias.astype(np.int64, copy=False)
            return clip_to(self._shifted(out), self.lo, self.hi, self.dtype)
        # Block by block through one small int64 buffer: the int64 passes stay in cache
        # and no array the size of the whole tensor is allocated in int64.
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
            self._shifted(out)
            if out.size > 4096:
                np.clip(out, lo, hi, out=out)
            else:
                np.maximum(out, lo, out=out)
                np.minimum(out, hi, out=out)
            res[start:start + rows] = out
        return res.reshape(shape)

    def _shifted(self, out: np.ndarray) -> np.ndarray:
        """``(out * m + c [- 2**31 where below d]) >> t`` in place (int64)."""
        out *= self.m
        out += self.c
        if self.d is not None:
            np.subtract(out, _INT32_LIMIT, out=out, where=out < self.d)
        out >>= self.t
        return out

    def _float32(self, acc: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        if bias is None and self.folded_bias is None:
            f = np.multiply(acc, self.fp32, dtype=np.float32)
        elif bias is None and self.bias32 is not None and acc.dtype == np.float32:
            f = np.add(acc, self.bias32)
            f *= self.fp32
        else:
            b = self.folded_bias if bias is None else bias.astype(np.int64, copy=False)
            if acc.dtype == np.float64 or acc.dtype == np.float32:
                x = np.rint(acc).astype(np.int64)  # integer-valued: exact
            else:
                x = acc.astype(np.int64)
            x += b
            f = np.multiply(x, self.fp32, dtype=np.float32)
        lo, hi = np.float32(self.lo - self.zero_point), np.float32(self.hi - self.zero_point)
        if f.size > 4096:
            np.clip(f, lo, hi, out=f)
        else:  # np.clip's Python-level checks cost more than the work here; no NaN in f
            np.maximum(f, lo, out=f)
            np.minimum(f, hi, out=f)
        np.rint(f, out=f)
        if self.zero_point:
            f += np.float32(self.zero_point)
        return f.astype(self.dtype)


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


def _form(rounding: str, mult: int, shift: int) -> tuple[int, int, int, int, bool] | None:
    """``(m, t, c0, left, corrected)`` of one channel's merged form, or ``None`` when
    the form does not apply (shifts out of range)."""
    if rounding == "single":
        m, t, left = mult, 31 - shift, 0
        c0 = 1 << (t - 1) if t >= 1 else 0
        ok = 1 <= t <= 62
        return (m, t, c0, left, False) if ok else None
    if rounding == "int64":
        m = (mult + (1 << 15)) >> 16 if mult < 0x7FFF0000 else 0x7FFF
        t = 15 - shift
        return (m, t, 1 << (t - 1), 0, False) if 1 <= t <= 62 else None
    if rounding in ("neon", "double"):
        left, right = max(shift, 0), max(-shift, 0)
        if left > 31 or right > 31:
            return None
        c0 = (1 << 30) + (((1 << right) >> 1) << 31)
        return mult << left, 31 + right, c0, left, rounding == "double" and right > 0
    return None


def requantizer(multiplier, shift, zero_point: int, lo: int, hi: int, dtype,
                acc_bound: int | None, bias: np.ndarray | None = None,
                rounding: str = "single", fp32: np.ndarray | None = None) -> Requantizer:
    """The rescaling of accumulators (run-time bias included) bounded by ``|acc| <=
    acc_bound`` (``None``: no bound known, plain formula), with a constant ``bias`` (per
    channel or one) folded in; ``rounding`` one of ``fixed_point.ROUNDINGS``, or
    ``fp32`` XNNPACK's float32 scales (then ``rounding`` is unused)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    b = None if bias is None else np.asarray(bias).astype(np.int64).reshape(-1)
    common = (multiplier, shift, int(zero_point), int(lo), int(hi), np.dtype(dtype))
    if fp32 is not None:
        scale = np.asarray(fp32, np.float32)
        scale = scale.reshape(-1) if scale.size > 1 else np.float32(scale.reshape(-1)[0])
        b32 = None
        if b is not None and np.array_equal(b.astype(np.float32).astype(np.int64), b):
            b32 = b.astype(np.float32) if b.size > 1 else np.float32(b[0])
        # "fast" here: the accumulators are exact integers (else the caller rounds them)
        return Requantizer(*common, acc_bound is not None, folded_bias=b, rounding=rounding,
                           fp32=scale, bias32=b32)
    plain = Requantizer(*common, False, folded_bias=b, rounding=rounding)
    mult = np.asarray(multiplier, np.int64).reshape(-1)
    shifts = np.asarray(shift, np.int64).reshape(-1)
    n = max(mult.size, shifts.size, 1 if b is None else b.size)
    if (acc_bound is None or any(v.size not in (1, n) for v in (mult, shifts))
            or (b is not None and b.size not in (1, n)) or np.any(mult < 0)):
        return plain
    zp = int(zero_point)
    ms, ts, cs, ds = [], [], [], []
    corrected = False
    for k in range(n):
        form = _form(rounding, int(mult[k % mult.size]), int(shifts[k % shifts.size]))
        if form is None:
            return plain
        m, t, c0, left, corr = form
        bk = 0 if b is None else int(b[k % b.size])
        if rounding in ("neon", "double") and (int(acc_bound) + abs(bk)) << left >= _INT32_LIMIT:
            return plain  # TFLite's int32 accumulator (or its left shift) could wrap
        c = c0 + (zp << t) + bk * m
        if int(acc_bound) * m + abs(c) + _INT32_LIMIT >= _INT64_LIMIT:
            return plain
        ms.append(m)
        ts.append(t)
        cs.append(c)
        # the high product is negative exactly where x*m + c < c0 - 2**30 + (zp << t)
        ds.append(c0 - (1 << 30) + (zp << t) if corr else -_INT64_LIMIT)
        corrected |= corr

    def vec(vals: list[int]):
        return np.array(vals, np.int64) if n > 1 else np.int64(vals[0])

    return Requantizer(*common, True, vec(ms), vec(ts), vec(cs), b, rounding,
                       vec(ds) if corrected else None)


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
