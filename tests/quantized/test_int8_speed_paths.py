"""The fast int8 paths equal the plain ones bit for bit: the folded rescaling
(``requantize``) against ``multiply_by_quantized_multiplier``, the shift-only double
rounding against TFLite's two-step form, the float BLAS matmul-like kernels (``gemm``)
against the float64 ``matmul_like`` reference, and lookup tables (``tables``) against the
kernels they tabulate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litetrain.ops.evaluate import node_info
from litetrain.ops.quantized import gemm
from litetrain.ops.quantized.fixed_point import (
    ROUNDINGS,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize_fp32,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from litetrain.ops.quantized.gemm import gemm_variant
from litetrain.ops.quantized.lib import (
    accumulate,
    matmul_like,
    quantized,
    requantize_float,
    rescale,
    rescaled,
)
from litetrain.ops.quantized.params import QParams
from litetrain.ops.quantized.requantize import double_rounding, requantizer
from litetrain.ops.registry import Variant, lookup
from litetrain.ops.resolver import OpResolverType

R = np.random.default_rng(7)


def _plain(acc, bias, m, shift, zp, lo, hi, dtype):
    out = acc.astype(np.int64) + (0 if bias is None else bias.astype(np.int64))
    out = multiply_by_quantized_multiplier(out, m, shift) + zp
    return np.clip(out, lo, hi).astype(dtype)


# Dyadic multipliers (m with many trailing zeros) make exact half-way points reachable.
reals = st.one_of(st.floats(1e-7, 8.0, allow_nan=False, allow_infinity=False),
                  st.builds(lambda k, o: o * 2.0**-k, st.integers(0, 20),
                            st.sampled_from([1, 3, 5, 7])))


def _halfway(m: int, t: int, bound: int) -> list[int]:
    """Accumulators whose product with ``m`` lies exactly half-way between multiples of
    ``2**t`` (the rounding decision), within ``bound``."""
    v = (m & -m).bit_length() - 1 if m else 0
    step = 1 << max(t - 1 - v, 0)
    return [a for a in (step, -step, 3 * step, -3 * step) if abs(a) <= bound and m]


@settings(max_examples=200, deadline=None)
@given(st.lists(reals, min_size=1, max_size=4), st.integers(-128, 127),
       st.integers(0, 2**24), st.booleans(), st.booleans(), st.integers(0, 2**31 - 1))
def test_requantizer_equals_multiply_by_quantized_multiplier(rs, zp, bound, fold, act, seed):
    rng = np.random.default_rng(seed)
    pairs = [quantize_multiplier(r) for r in rs]
    lo, hi = (zp, 127) if act else (-128, 127)
    bias = rng.integers(-2**20, 2**20, len(rs)).astype(np.int32)
    acc = rng.integers(-bound, bound + 1, (64, len(rs)))
    for k, (m, shift) in enumerate(pairs):
        ways = _halfway(m, 31 - shift, bound)
        acc[:len(ways), k] = ways
        acc[len(ways):2 * len(ways), k] = [a - int(bias[k]) for a in ways]  # acc + bias
    m = np.array([p[0] for p in pairs], np.int64)
    shift = np.array([p[1] for p in pairs], np.int64)
    if m.size == 1:
        m, shift = int(m[0]), int(shift[0])
    bound += 2**20  # the bias, added before or folded
    req = requantizer(m, shift, zp, lo, hi, np.int8, bound + (0 if fold else 2**31),
                      bias if fold else None)
    got = req(acc.astype(np.float64), None if fold else bias)
    assert req.fast
    assert np.array_equal(got, _plain(acc, bias, m, shift, zp, lo, hi, np.int8))


def _decisions(m: int, shift: int, bound: int) -> list[int]:
    """Accumulators at every rounding decision of every form: half-way for the one-step
    forms' ``2**(31 - shift)`` and the int64 form's ``2**(15 - shift)`` (16-bit
    multiplier), the doubling high multiply's ``2**31`` and the two-step forms'
    ``2**(31 + right shift)``; with their neighbours."""
    m16 = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
    out = []
    for mm, t in ((m, 31 - shift), (m, 31), (m, 31 + max(-shift, 0)), (m16, 15 - shift)):
        for a in _halfway(mm, t, bound):
            out += [a - 1, a, a + 1]
    return [a for a in out if abs(a) <= bound]


@pytest.mark.parametrize("rounding", ["single", "neon", "double", "int64", "fp32"])
@settings(max_examples=60, deadline=None)
@given(rs=st.lists(reals, min_size=1, max_size=4), zp=st.integers(-128, 127),
       bound=st.integers(0, 2**24), fold=st.booleans(), act=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_requantizer_equals_each_rounding(rounding, rs, zp, bound, fold, act, seed):
    """Every merged form (and XNNPACK's float32 path) against ``fixed_point``'s plain
    formula: ``ROUNDINGS[rounding]`` (or ``requantize_fp32``), zero point, clamp."""
    rng = np.random.default_rng(seed)
    pairs = [quantize_multiplier(r) for r in rs]
    lo, hi = (zp, 127) if act else (-128, 127)
    big = rounding == "fp32" and seed % 3 == 0  # a bias float32 cannot hold
    bias = rng.integers(-2**26 if big else -2**20, 2**26 if big else 2**20, len(rs)) \
        .astype(np.int32)
    acc = rng.integers(-bound, bound + 1, (96, len(rs)))
    for k, (m, shift) in enumerate(pairs):
        ways = _decisions(m, shift, bound)[:48]
        acc[:len(ways), k] = ways
        acc[48:48 + len(ways), k] = [a - int(bias[k]) for a in ways]  # acc + bias
    m = np.array([p[0] for p in pairs], np.int64)
    shift = np.array([p[1] for p in pairs], np.int64)
    if m.size == 1:
        m, shift = int(m[0]), int(shift[0])
    fp32 = (np.asarray(rs, np.float32) if rounding == "fp32" else None)
    req = requantizer(m, shift, zp, lo, hi, np.int8, int(np.abs(acc).max()) + 2**26,
                      bias if fold else None, "single" if fp32 is not None else rounding, fp32)
    assert req.fast
    x = acc + bias.astype(np.int64)
    if fp32 is not None:
        want = np.clip(requantize_fp32(x, fp32, lo, hi, zp), lo, hi).astype(np.int8)
    else:
        want = np.clip(ROUNDINGS[rounding](x, m, shift) + zp, lo, hi).astype(np.int8)
    for dtype in (np.float32, np.float64):
        if dtype == np.float32 and np.abs(acc).max() >= 2**24:
            continue  # float32 accumulators are exact integers below 2**24 only
        got = req(acc.astype(dtype), None if fold else bias)
        assert np.array_equal(got, want), (rounding, dtype)
    if np.abs(x).max() < 2**24:  # no bias at all (DEPTHWISE_CONV_2D without one, BATCH_MATMUL)
        bare = requantizer(m, shift, zp, lo, hi, np.int8, int(np.abs(x).max()), None,
                           "single" if fp32 is not None else rounding, fp32)
        for dtype in (np.float32, np.float64):
            assert np.array_equal(bare(x.astype(dtype)), want), (rounding, dtype, "bare")


@pytest.mark.parametrize("fold", [True, False])
def test_requantizer_blocks_cover_large_tensors(fold):
    """More elements than one int64 block: every block, the last partial one included."""
    pairs = [quantize_multiplier(r) for r in R.uniform(1e-4, 0.5, 33)]
    m = np.array([p[0] for p in pairs], np.int64)
    shift = np.array([p[1] for p in pairs], np.int64)
    bias = R.integers(-2**20, 2**20, 33).astype(np.int32)
    acc = R.integers(-2**23, 2**23, (2, 300, 7, 33)).astype(np.float32)
    req = requantizer(m, shift, -4, -128, 100, np.int8, 2**24 + 2**31,
                      bias if fold else None)
    assert req.fast and acc.size > 2 * 65536
    got = req(acc, None if fold else bias)
    assert got.shape == acc.shape
    assert np.array_equal(got, _plain(acc, bias, m, shift, -4, -128, 100, np.int8))


def test_requantizer_keeps_the_plain_formula_when_int64_could_overflow():
    m, shift = quantize_multiplier(3.0)
    req = requantizer(m, shift, 5, -128, 127, np.int8, 2**40)
    assert not req.fast
    acc = np.array([-2**33, -3, 0, 7, 2**33])
    assert np.array_equal(req(acc), _plain(acc, None, m, shift, 5, -128, 127, np.int8))
    assert not requantizer(m, shift, 5, -128, 127, np.int8, None).fast


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-6, 0.999, allow_nan=False), st.integers(0, 2**31 - 1))
def test_double_rounding_equals_tflite_two_step_form(real, seed):
    m, shift = quantize_multiplier(real)
    x = np.random.default_rng(seed).integers(-2**31, 2**31, 256)
    x[:4] = [-2**31, 2**31 - 1, 0, -1]
    want = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m), -shift)
    assert np.array_equal(double_rounding(x, m, shift), want)


def test_double_rounding_exhaustive_on_small_values():
    x = np.arange(-2**16, 2**16)
    for real in (0.5, 0.25, 0.3, 1 / 3, 2**-10, 0.999):
        m, shift = quantize_multiplier(real)
        want = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x << 12, m),
                                      -shift)
        assert np.array_equal(double_rounding(x << 12, m, shift), want)


# --- matmul-like kernels ----------------------------------------------------------------

def _qp(scale, zp, dtype=np.int8, axis=0):
    return QParams(np.atleast_1d(np.asarray(scale, np.float32)),
                   np.atleast_1d(np.asarray(zp, np.int64)), axis, np.dtype(dtype))


def _ints(shape, dtype=np.int8):
    info = np.iinfo(dtype)
    return R.integers(info.min, info.max + 1, shape).astype(dtype)


CONV = {"padding": 1, "stride_h": 1, "stride_w": 1, "dilation_h_factor": 1,
        "dilation_w_factor": 1}


def _cases():
    out = _qp(0.05, -7)
    yield "fully_connected", {"fused_activation_function": 1}, (
        (_ints((5, 40)), _qp(0.02, 11)), (_ints((9, 40)), _qp(R.uniform(.001, .01, 9), 0)),
        (R.integers(-5000, 5000, 9).astype(np.int32), None)), out, 0, 1
    for k, stride, pad, act in ((3, 2, 0, 3), (1, 1, 1, 0), (5, 1, 1, 1)):
        yield "conv_2d", {**CONV, "stride_h": stride, "stride_w": stride, "padding": pad,
                          "fused_activation_function": act}, (
            (_ints((2, 9, 8, 6)), _qp(0.02, -3)),
            (_ints((7, k, k, 6)), _qp(R.uniform(.001, .01, 7), 0)),
            (R.integers(-5000, 5000, 7).astype(np.int32), None)), out, 0, 1
    yield "conv_2d", {**CONV, "padding": 0, "dilation_h_factor": 2}, (  # SAME, dilated
        (_ints((2, 9, 8, 6)), _qp(0.02, -3)),
        (_ints((7, 3, 2, 6)), _qp(R.uniform(.001, .01, 7), 0)),
        (R.integers(-5000, 5000, 7).astype(np.int32), None)), out, 0, 1
    yield "depthwise_conv_2d", {**CONV, "padding": 0, "stride_w": 2}, (  # SAME
        (_ints((2, 9, 8, 4)), _qp(0.02, 100)),
        (_ints((1, 5, 5, 4)), _qp(R.uniform(.001, .01, 4), 0, axis=3)), (None, None)), out, 0, 1
    for mult, pad, dil in ((2, 0, 2), (1, 1, 1)):  # 32 and 40 channels: the einsum path
        c = 16 if mult == 2 else 40
        yield "depthwise_conv_2d", {**CONV, "padding": pad, "stride_h": 2, "depth_multiplier":
                                    mult, "dilation_w_factor": dil}, (
            (_ints((2, 9, 10, c)), _qp(0.02, -7)),
            (_ints((1, 3, 3, c * mult)), _qp(R.uniform(.001, .01, c * mult), 0, axis=3)),
            (R.integers(-5000, 5000, c * mult).astype(np.int32), None)), out, 0, 1
    yield "depthwise_conv_2d", {**CONV, "depth_multiplier": 2, "stride_h": 2}, (
        (_ints((2, 9, 8, 3)), _qp(0.02, 100)),
        (_ints((1, 3, 3, 6)), _qp(R.uniform(.001, .01, 6), 0, axis=3)),
        (R.integers(-5000, 5000, 6).astype(np.int32), None)), out, 0, 1
    yield "transpose_conv", {"padding": 0, "stride_h": 2, "stride_w": 2}, (
        (np.array([2, 10, 9, 4], np.int32), None),
        (_ints((4, 3, 3, 5)), _qp(R.uniform(.001, .01, 4), 0)),
        (_ints((2, 4, 4, 5)), _qp(0.02, -20)),
        (R.integers(-5000, 5000, 4).astype(np.int32), None)), out, 2, 1
    yield "batch_matmul", {"adj_y": True}, (
        (_ints((3, 4, 30)), _qp(0.02, 5)), (_ints((3, 6, 30)), _qp(0.03, -2))), out, 0, 1
    # 16x8: int16 activations overflow float32's exact range, so float64 takes it
    yield "fully_connected", {}, (
        (_ints((4, 300), np.int16), _qp(0.001, 0, np.int16)),
        (_ints((5, 300)), _qp(0.01, 0)), (R.integers(-2**40, 2**40, 5), None)), _qp(
        0.01, 0, np.int16), 0, 1


def _batch_matmul_reference(s, a, b):
    """The float64 path BATCH_MATMUL had before ``gemm``."""
    qa, qb, qo = s.qin[0], s.qin[1], s.qout[0]
    real = np.float64(qa.s) * np.float64(qb.s) / np.float64(qo.s)
    info = dataclasses.replace(node_info("batch_matmul", [a, b], s.attrs, [qo.dtype],
                                         [qa, qb], [qo]))
    r = rescaled(info, np.array([real]))
    return rescale(accumulate(lookup("batch_matmul").kernel, r, (a, qa), (b, qb)), r)


def _info(name, cases, qout, attrs, runtime):
    inputs = [v for v, _ in cases]
    info = node_info(name, inputs, attrs, [qout.dtype], [q for _, q in cases], [qout])
    ins = list(info.inputs)
    for i in runtime:
        ins[i] = dataclasses.replace(ins[i], value=None)
    return dataclasses.replace(info, inputs=tuple(ins)), inputs


def _reference_variant(name, opdef, x_pos, w_pos):
    """The float64 ``matmul_like`` path with the options the op table gives ``gemm``."""
    if name == "batch_matmul":
        return Variant(_batch_matmul_reference, quantized)
    options = {"fully_connected": {"channelwise": False},
               "transpose_conv": {"xnnpack": False}}.get(name, {})
    return matmul_like(opdef.kernel, x_pos, w_pos, **options)


@pytest.mark.parametrize("resolver", list(OpResolverType), ids=lambda r: r.name)
@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: c[0])
@pytest.mark.parametrize("runtime", [(), (1,), (1, 3)], ids=["const", "rt-w", "rt-w-b"])
def test_gemm_kernels_equal_the_float64_reference(case, runtime, resolver, monkeypatch):
    monkeypatch.setattr(gemm, "EINSUM_MIN_SIZE", 0)  # small tensors take the einsum path too
    name, attrs, cases, qout, x_pos, w_pos = case
    opdef = lookup(name)
    ref_variant = _reference_variant(name, opdef, x_pos, w_pos)
    runtime = tuple(i if i != 1 else w_pos for i in runtime if i < len(cases))
    info, inputs = _info(name, cases, qout, attrs, runtime)
    info = dataclasses.replace(info, resolver=resolver)
    s = opdef.integer.prepare(info)
    got = opdef.integer.kernel(s, *inputs)
    want = ref_variant.kernel(ref_variant.prepare(info), *inputs)
    assert got.dtype == want.dtype == qout.dtype
    assert np.array_equal(got, want)
    int16 = qout.dtype == np.int16
    assert s.dtype is (np.float64 if int16 else np.float32)
    # 16x8 may overflow int64 in the merged form; a run-time int32 bias could make
    # TFLite's int32 accumulator wrap, which the plain NEON/double-rounding formula keeps
    wraps = 3 in runtime and s.requantize.rounding in ("neon", "double") and \
        s.requantize.fp32 is None
    assert s.requantize.fast or int16 or wraps


def test_gemm_bound_uses_the_actual_weights():
    """K = 4096 int8 weights that are mostly small stay in float32 (the column sums of
    |w|, not K * 127, bound the sums); the same K with full-range weights does not."""
    x = _ints((2, 4096))
    qx, qw, qo = _qp(0.02, 0), _qp(0.01, 0), _qp(0.05, 0)
    small = R.integers(-3, 4, (3, 4096)).astype(np.int8)
    for w, dtype in ((small, np.float32), (np.full((3, 4096), -127, np.int8), np.float64)):
        info, inputs = _info("fully_connected", [(x, qx), (w, qw)], qo, {}, ())
        variant = gemm_variant(lookup("fully_connected").kernel)
        s = variant.prepare(info)
        assert s.dtype is dtype
        ref = matmul_like(lookup("fully_connected").kernel)
        assert np.array_equal(variant.kernel(s, *inputs), ref.kernel(ref.prepare(info),
                                                                    *inputs))


# --- lookup tables ----------------------------------------------------------------------

@pytest.mark.parametrize("resolver", list(OpResolverType), ids=lambda r: r.name)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "maximum", "squared_difference"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_binary_tables_equal_the_kernels_they_tabulate(name, dtype, resolver):
    """Under each resolver (XNNPACK's ADD/SUB/MUL arithmetic differs from TFLite's)."""
    opdef = lookup(name)
    a, b = _ints((3, 5, 8), dtype), _ints((8,), dtype)
    qa, qb, qo = _qp(0.03, 4, dtype), _qp(0.05, -9 if dtype == np.int8 else 130, dtype), \
        _qp(0.07, 2, dtype)
    info, _ = _info(name, [(a, qa), (b, qb)], qo, {"fused_activation_function": 1}, (0, 1))
    info = dataclasses.replace(info, resolver=resolver)
    table = opdef.integer
    s = table.prepare(info)
    assert s.table is not None and s.table.size == 65536
    for x, y in ((a, b), (b, a), (a, a[0, 0, 0])):
        info2, _ = _info(name, [(x, qa), (y, qb)], qo, {"fused_activation_function": 1}, (0, 1))
        info2 = dataclasses.replace(info2, resolver=resolver)
        plain = _unwrapped(opdef)
        assert np.array_equal(table.kernel(s, x, np.asarray(y)),
                              plain.kernel(plain.prepare(info2), x, np.asarray(y)))


@pytest.mark.parametrize("name", ["logistic", "tanh", "hard_swish", "relu", "relu6",
                                  "relu_n1_to_1", "relu_0_to_1", "leaky_relu", "exp"])
def test_unary_tables_equal_the_kernels_they_tabulate(name):
    """The tables hold TFLite's integer kernels (HARD_SWISH's 16-bit fixed point, the ReLU
    family's requantizing clamp) value for value."""
    opdef = lookup(name)
    x = np.arange(-128, 128).astype(np.int8).reshape(4, 8, 8)  # every value
    info, _ = _info(name, [(x, _qp(0.05, -3))], _qp(1 / 256 if name != "hard_swish" else 0.04,
                                                     -128), {"alpha": 0.3}, (0,))
    s = opdef.integer.prepare(info)
    assert s.table is not None and s.table.size == 256
    plain = _unwrapped(opdef)
    assert np.array_equal(opdef.integer.kernel(s, x), plain.kernel(plain.prepare(info), x))
    # The byte-translation path: any layout, any rank, a fresh writable result.
    for v in (x[:, ::2, 1:].transpose(2, 0, 1), x[1, 2, 3], x.reshape(-1)[::-3]):
        got = opdef.integer.kernel(s, v)
        want = plain.kernel(plain.prepare(info), np.asarray(v))
        assert got.shape == np.shape(want) and got.dtype == want.dtype
        assert np.array_equal(got, want) and got.flags.writeable


def test_tables_keep_the_kernel_for_16_bit_and_per_channel_operands():
    opdef = lookup("add")
    a = _ints((2, 3), np.int16)
    info, _ = _info("add", [(a, _qp(0.01, 0, np.int16)), (a, _qp(0.02, 0, np.int16))],
                    _qp(0.03, 0, np.int16), {}, (0, 1))
    s = opdef.integer.prepare(info)
    assert s.table is None
    plain = _unwrapped(opdef)
    assert np.array_equal(opdef.integer.kernel(s, a, a), plain.kernel(plain.prepare(info),
                                                                      a, a))


def _unwrapped(opdef):
    """The integer variant a table wraps."""
    return opdef.integer.kernel.tabulates


# --- float -> integer ---------------------------------------------------------------------

def _requantize_float_plain(real, q):
    """The int64 formulation ``requantize_float`` had before (finite, in-range values)."""
    lo, hi = np.iinfo(q.dtype).min, np.iinfo(q.dtype).max
    out = round_half_away(np.asarray(real, np.float32) / q.along(q.scale, real.ndim))
    out = out.astype(np.int64) + q.along(q.zero_point, real.ndim)
    return np.clip(out, lo, hi).astype(q.dtype)


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-4, 10.0), st.integers(-128, 127), st.sampled_from([np.int8, np.uint8,
                                                                       np.int16]),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_requantize_float_equals_the_int64_formula(scale, zp, dtype, per_channel, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    zp = int(np.clip(zp + (128 if dtype == np.uint8 else 0), info.min, info.max))
    if per_channel:
        q = _qp(rng.uniform(scale / 2, scale, 5), rng.integers(info.min, info.max, 5), dtype,
                axis=1)
    else:
        q = _qp(scale, zp, dtype)
    step = q.scale.astype(np.float32)
    # exact half-steps (ties), their float neighbours, and random values past the range
    k = rng.integers(-300, 300, (40, 5)).astype(np.float32) + np.float32(0.5)
    x = (k * step).astype(np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                        np.nextafter(x, np.float32(-np.inf)),
                        rng.normal(0, 200 * scale, (40, 5)).astype(np.float32),
                        np.float32([[0.0, -0.0, 1e9, -1e9, 3e-39]])])
    assert np.array_equal(requantize_float(x, q), _requantize_float_plain(x, q))


def test_requantize_float_saturates_non_finite_values():
    q = _qp(0.1, 3)
    x = np.float32([np.nan, np.inf, -np.inf, 1e30, -1e30])
    assert requantize_float(x, q).tolist() == [-128, 127, -128, 127, -128]
