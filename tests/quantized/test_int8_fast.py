"""The compiled 8-bit kernels (``[fast]`` extra, :mod:`litetrain.ops.fast.int8`, chosen by
:mod:`litetrain.ops.compiled_int8`) equal the NumPy integer kernels bit for bit:

* their rescaling against :class:`Requantizer` for every rounding form and XNNPACK's
  float32 form, at every rounding decision;
* CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED on random shapes, strides, paddings,
  dilations, depth multipliers, zero points, per-channel and per-tensor scales, fused
  activations and 8-bit types, under every resolver; MEAN over height and width
  (XNNPACK's); binary lookup tables (ADD, SUB, MUL, ...) on broadcast operands; MUL
  computed on every operand pair; unary tables (activations); QUANTIZE float → integer on
  special values;
* the TensorFlow-made fixtures stay bit-exact with TF Lite with the compiled kernels on
  (and they do run there);
* what does not qualify keeps the NumPy kernel, and so does a node whose kernels are
  still loading.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import compiled_int8, fast
from litetrain.ops.evaluate import node_info
from litetrain.ops.quantized.fixed_point import quantize_multiplier
from litetrain.ops.quantized.gemm import Gemm
from litetrain.ops.quantized.params import QParams
from litetrain.ops.quantized.requantize import requantizer
from litetrain.ops.registry import lookup
from litetrain.ops.resolver import OpResolverType
from tests.quantized.fixture_runs import invoked
from tests.quantized.test_int8_speed_paths import _decisions
from tests.quantized.test_tf_resolvers import KINDS, RESOLVERS, ROOT, _input

_LOADER = fast.kernels("int8")
needs_numba = pytest.mark.needs_kernels(_LOADER)


def _module():
    """The compiled kernels (another test may have cleared the loaders' cache)."""
    return fast.kernels("int8").wait()


def _qp(scale, zp, dtype=np.int8, axis=0):
    return QParams(np.atleast_1d(np.asarray(scale, np.float32)),
                   np.atleast_1d(np.asarray(zp, np.int64)), axis, np.dtype(dtype))


def _ints(rng, shape, dtype=np.int8):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


# --- rescaling ---------------------------------------------------------------------------

@needs_numba
@pytest.mark.parametrize("rounding", ["single", "neon", "double", "int64", "fp32"])
@pytest.mark.parametrize("out_dtype", [np.int8, np.uint8, np.int16])
def test_compiled_rescaling_equals_the_requantizer(rounding, out_dtype, rng):
    """Every rounding decision (and its neighbours) of random multipliers, with and
    without a folded bias, per channel and per tensor, float32 and float64 sums."""
    module = _module()
    lo, hi = np.iinfo(out_dtype).min, np.iinfo(out_dtype).max
    for trial in range(12):
        channels = 1 if trial % 3 == 0 else int(rng.integers(2, 7))
        reals = rng.choice([rng.uniform(1e-5, 2.0), 2.0 ** -int(rng.integers(0, 16))],
                           channels)
        pairs = [quantize_multiplier(float(r)) for r in reals]
        m = np.array([p[0] for p in pairs], np.int64)
        shift = np.array([p[1] for p in pairs], np.int64)
        if channels == 1:
            m, shift = int(m[0]), int(shift[0])
        zp = int(rng.integers(lo, hi + 1))
        clamp = (max(lo, zp), hi) if trial % 2 else (lo, hi)
        bias = rng.integers(-2**20, 2**20, channels) if trial % 4 < 2 else None
        bound = 2**23
        acc = rng.integers(-bound, bound + 1, (64, channels))
        for k, (mk, sk) in enumerate(pairs):
            ways = _decisions(mk, sk, bound - 2**20)[:40]
            acc[:len(ways), k] = ways if bias is None else [a - int(bias[k]) for a in ways]
        fp32 = np.asarray(reals, np.float32) if rounding == "fp32" else None
        req = requantizer(m, shift, zp, *clamp, out_dtype, bound + 2**20, bias,
                          "single" if fp32 is not None else rounding, fp32)
        assert req.fast
        for dtype in (np.float32, np.float64):
            a = acc.astype(dtype)
            got = module.requantize(a, *compiled_int8.rescaling(req, channels),
                                    np.empty(a.shape, out_dtype))
            np.testing.assert_array_equal(got, req(a), err_msg=f"{rounding} {dtype}")


# --- kernels -----------------------------------------------------------------------------

def _geometry(rng, op):
    """(input shape, filter shape, attrs) of a random convolution that fits."""
    while True:
        n, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 13)), int(rng.integers(1, 13))
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        padding = int(rng.integers(0, 2))  # SAME, VALID
        if padding == 1 and ((kh - 1) * dh >= h or (kw - 1) * dw >= w):
            continue
        c = int(rng.integers(1, 40))
        attrs = {"padding": padding, "stride_h": sh, "stride_w": sw, "dilation_h_factor": dh,
                 "dilation_w_factor": dw,
                 "fused_activation_function": int(rng.choice([0, 1, 2, 3]))}
        if op == "depthwise_conv_2d":
            mult = int(rng.choice([1, 1, 2, 3]))
            return (n, h, w, c), (1, kh, kw, c * mult), {**attrs, "depth_multiplier": mult}
        return (n, h, w, c), (int(rng.integers(1, 40)), kh, kw, c), attrs


def _case(rng, op, dtype, per_channel):
    """(op's inputs, their QParams, output QParams, attrs) of a random node."""
    if op == "fully_connected":
        depth, units = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        xs, ws = (int(rng.integers(1, 5)), int(rng.integers(1, 4)), depth), (units, depth)
        attrs = {"keep_num_dims": bool(rng.integers(0, 2)),
                 "fused_activation_function": int(rng.choice([0, 1, 3]))}
        axis, channels = 0, units
    else:
        xs, ws, attrs = _geometry(rng, op)
        axis = 3 if op == "depthwise_conv_2d" else 0
        channels = ws[axis]
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    x = _ints(rng, xs, dtype)
    w = _ints(rng, ws, dtype)
    if dtype == np.int8:
        w[w == -128] = -127  # TFLite's symmetric int8 weights
        wq = _qp(rng.uniform(1e-3, 2e-2, channels) if per_channel else rng.uniform(1e-3, 2e-2),
                 np.zeros(channels if per_channel else 1, np.int64), axis=axis)
    else:  # uint8: per-tensor weights with a zero point
        wq = _qp(rng.uniform(1e-3, 2e-2), int(rng.integers(lo, hi + 1)), dtype, axis=axis)
    xq = _qp(rng.uniform(1e-3, 5e-2), int(rng.integers(lo, hi + 1)), dtype)
    oq = _qp(rng.uniform(2e-3, 2e-1), int(rng.integers(lo, hi + 1)), dtype)
    inputs, qin = [x, w], [xq, wq]
    if rng.integers(0, 3):
        inputs.append(rng.integers(-2**16, 2**16, channels).astype(np.int32))
        qin.append(None)
    return inputs, qin, oq, attrs


def _prepared(op, inputs, qin, oq, attrs, resolver):
    info = node_info(op, inputs, attrs, [oq.dtype], qin, [oq])
    return lookup(op).integer.prepare(dataclasses.replace(info, resolver=resolver))


@needs_numba
@pytest.mark.parametrize("resolver", list(OpResolverType), ids=lambda r: r.name)
@pytest.mark.parametrize("op", ["conv_2d", "depthwise_conv_2d", "fully_connected"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_compiled_kernels_equal_the_numpy_integer_kernels(op, dtype, resolver, rng,
                                                          monkeypatch):
    """Products on BLAS in one block, in blocks of a few rows (``BLOCK``), then (CONV_2D,
    FULLY_CONNECTED) every one whole in the compiled kernel (``SMALL_ROWS``)."""
    module = _module()
    variant = lookup(op).integer
    ways = ((0, 1 << 16), (0, 50), (1 << 30, 1 << 16))
    for small, block in ways if op != "depthwise_conv_2d" else ways[:1]:
        monkeypatch.setattr(compiled_int8, "SMALL_ROWS", small)
        monkeypatch.setattr(compiled_int8, "BLOCK", block)
        for trial in range(8):
            inputs, qin, oq, attrs = _case(rng, op, dtype, per_channel=trial % 2 == 0)
            s = _prepared(op, inputs, qin, oq, attrs, resolver)
            assert isinstance(s, compiled_int8.Int8), (op, trial)
            want = variant.kernel.wraps.kernel(s.inner, *inputs)  # the NumPy kernel
            got = compiled_int8._RUN[s.kind](s, module, inputs[0])
            assert got is not None and got.dtype == want.dtype == oq.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{op} {trial} {attrs}")
            x = inputs[0].copy()
            x.flags.writeable = False  # read-only inputs, through the op's kernel
            np.testing.assert_array_equal(variant.kernel(s, x, *inputs[1:]), want)


@needs_numba
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_depthwise_row_kernel_and_its_limits(dtype, rng, monkeypatch):
    """Stride 1, multiplier 1: the row kernel (float32 sums) for every channel count up to
    ``ROWS_BELOW`` and, forced, beyond; a filter whose sums may reach 2**24 keeps the
    per-pixel kernel (int32 sums). Both equal the NumPy kernel."""
    module = _module()
    variant = lookup("depthwise_conv_2d").integer
    monkeypatch.setattr(compiled_int8, "ROWS_BELOW", 1 << 20)
    for trial in range(6):
        c = (3, 16, 70, 1100, 5, 9)[trial]
        k = 17 if trial >= 4 else 3
        x = _ints(rng, (2, 18, 17, c), dtype)
        w = _ints(rng, (1, k, k, c), dtype)
        if trial >= 4:
            w[...] = np.iinfo(dtype).max if dtype == np.uint8 else 127
        lo = np.iinfo(dtype).min
        wq = _qp(1e-3, lo if dtype == np.uint8 else 0, dtype, axis=3)  # |w - zw| up to 255
        attrs = {"padding": trial % 2, "stride_h": 1, "stride_w": 1, "depth_multiplier": 1,
                 "dilation_h_factor": 1 + (trial < 4) * (trial % 2), "dilation_w_factor": 1,
                 "fused_activation_function": 0}
        info = node_info("depthwise_conv_2d", [x, w], attrs, [dtype],
                         [_qp(0.02, lo if trial >= 4 else int(rng.integers(lo, lo + 256)),
                              dtype), wq],
                         [_qp(0.5, int(rng.integers(lo, lo + 256)), dtype)])
        s = variant.prepare(info)
        assert isinstance(s, compiled_int8.Int8)
        assert (s.rows is None) == (trial >= 4 and dtype == np.uint8), trial
        got = compiled_int8._RUN["depthwise"](s, module, x)
        np.testing.assert_array_equal(got, variant.kernel.wraps.kernel(s.inner, x, w), str(c))


@needs_numba
def test_what_does_not_qualify_keeps_the_numpy_kernel(rng):
    inputs, qin, oq, attrs = _case(rng, "conv_2d", np.int8, True)
    auto = OpResolverType.AUTO
    # a run-time filter or bias, 16-bit activations: the NumPy kernel's own settings
    bias = np.zeros(inputs[1].shape[0], np.int32)
    for runtime in (1, 2):
        info = node_info("conv_2d", [*inputs[:2], bias], attrs, [oq.dtype], [*qin[:2], None],
                         [oq])
        ins = list(info.inputs)
        ins[runtime] = dataclasses.replace(ins[runtime], value=None)
        s = lookup("conv_2d").integer.prepare(dataclasses.replace(info, inputs=tuple(ins)))
        assert isinstance(s, Gemm), runtime
    x16 = rng.integers(-300, 300, inputs[0].shape).astype(np.int16)
    s = _prepared("conv_2d", [x16, *inputs[1:]], [_qp(1e-3, 0, np.int16), *qin[1:]],
                  _qp(1e-2, 0, np.int16), attrs, auto)
    assert isinstance(s, Gemm)
    # a grouped convolution (input channels a multiple of the filter's) at run time
    x = _ints(rng, (1, 6, 6, 4))
    w = _ints(rng, (6, 3, 3, 2))
    s = _prepared("conv_2d", [x, w], [_qp(0.02, 3), _qp(0.01, 0)], _qp(0.1, -5),
                  {**attrs, "padding": 0}, auto)
    assert isinstance(s, compiled_int8.Int8)
    assert compiled_int8._RUN[s.kind](s, _module(), x) is None
    wrapped = lookup("conv_2d").integer.kernel.wraps
    np.testing.assert_array_equal(lookup("conv_2d").integer.kernel(s, x, w),
                                  wrapped.kernel(s.inner, x, w))


def test_kernels_still_loading_leave_it_to_numpy(rng):
    inputs, qin, oq, attrs = _case(rng, "depthwise_conv_2d", np.int8, True)
    info = node_info("depthwise_conv_2d", inputs, attrs, [oq.dtype], qin, [oq])
    inner = lookup("depthwise_conv_2d").integer.kernel.wraps.prepare(info)
    started = []
    loading = type("Loading", (), {"module": None, "start": lambda self: started.append(1)})()
    s = compiled_int8.Int8(inner, loading, "depthwise", inner.weights.shape[3],
                           np.ascontiguousarray(inner.weights[0], np.int32))
    kernel = lookup("depthwise_conv_2d").integer.kernel
    want = kernel.wraps.kernel(inner, *inputs)
    for run in range(3):
        np.testing.assert_array_equal(kernel(s, *inputs), want)
        assert len(started) == (run >= 1)  # the second run starts loading


def test_jit_off_keeps_numpy_settings(monkeypatch, rng):
    monkeypatch.setenv("LITETRAIN_JIT", "0")
    fast.kernels.cache_clear()
    try:
        inputs, qin, oq, attrs = _case(rng, "fully_connected", np.int8, False)
        s = _prepared("fully_connected", inputs, qin, oq, attrs, OpResolverType.AUTO)
        assert isinstance(s, Gemm)
    finally:
        monkeypatch.delenv("LITETRAIN_JIT")
        fast.kernels.cache_clear()


@needs_numba
@pytest.mark.parametrize("axis", [[1, 2], [2, 1], [-2, -3]])
@pytest.mark.parametrize("keep", [True, False])
def test_compiled_mean_equals_the_numpy_kernel(axis, keep, rng):
    module = _module()
    variant = lookup("mean").integer
    for shape in ((1, 1, 1, 1), (1, 3, 3, 288), (3, 7, 5, 17), (2, 24, 24, 16), (2, 7, 5, 3),
                  (1, 1, 2, 1500), (2, 9, 9, 1024)):
        x = _ints(rng, shape)
        qi = _qp(rng.uniform(1e-3, 5e-2), int(rng.integers(-128, 128)))
        qo = _qp(rng.uniform(1e-3, 5e-2), int(rng.integers(-128, 128)))
        ax = np.array(axis, np.int32)
        info = node_info("mean", [x, ax], {"keep_dims": keep}, [np.int8], [qi, None], [qo])
        s = variant.prepare(info)
        assert isinstance(s, compiled_int8.Mean)
        want = variant.kernel.wraps.kernel(s.inner, x, ax)
        got = variant.kernel(s, x, ax)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=str(shape))
        assert module is not None
    # other resolvers (their integer means), other axes: the NumPy kernel
    for resolver in (OpResolverType.BUILTIN_REF, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        assert not isinstance(variant.prepare(dataclasses.replace(info, resolver=resolver)),
                              compiled_int8.Mean)
    info = node_info("mean", [x, np.array([3], np.int32)], {}, [np.int8], [qi, None], [qo])
    assert not isinstance(variant.prepare(info), compiled_int8.Mean)


_SHAPES = [((3, 5, 8), (3, 5, 8)), ((2, 6, 6, 16), (2, 1, 1, 16)), ((3, 5, 8), (8,)),
           ((4, 7), ()), ((1,), (4, 7)), ((5,), (1,)), ((2, 1, 3, 1, 5), (1, 4, 1, 6, 1)),
           ((6, 1, 4), (1, 5, 1)), ((0, 3), (3,))]


@needs_numba
@pytest.mark.parametrize("name", ["add", "sub", "mul", "maximum", "squared_difference"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_compiled_tables_equal_the_tables(name, dtype, rng):
    """Same, broadcast, scalar, non-mergeable (five dims: the NumPy table) and empty
    operands, contiguous or not, under each resolver."""
    _module()
    variant = lookup(name).integer
    for resolver in OpResolverType:
        for a_shape, b_shape in _SHAPES:
            a, b = _ints(rng, a_shape, dtype), _ints(rng, b_shape, dtype)
            qa, qb, qo = (_qp(rng.uniform(0.01, 0.1), int(rng.integers(-10, 10)) % 256
                              if dtype == np.uint8 else int(rng.integers(-10, 10)), dtype)
                          for _ in range(3))
            info = node_info(name, [a, b], {"fused_activation_function": 1}, [dtype],
                             [qa, qb], [qo])
            s = variant.prepare(dataclasses.replace(info, resolver=resolver))
            assert isinstance(s, compiled_int8.Table)
            for x, y in ((a, b), (np.asfortranarray(a), b)):
                want = variant.kernel.wraps.kernel(s.inner, x, y)
                got = variant.kernel(s, x, y)
                assert got.shape == want.shape and got.dtype == want.dtype
                np.testing.assert_array_equal(got, want, err_msg=f"{a_shape} {b_shape}")


@needs_numba
@pytest.mark.parametrize("name", ["mul", "add", "sub"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_computed_ops_equal_their_tables_on_every_operand_pair(name, dtype, rng):
    """MUL (every resolver) and ADD/SUB (XNNPACK's int8 form, the default resolver) are
    computed, not looked up: all 65536 operand pairs against the table (the NumPy
    kernel's own values), random parameters and activations."""
    _module()
    variant = lookup(name).integer
    every = np.arange(256, dtype=np.uint8).view(dtype)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    for resolver in OpResolverType:
        for trial in range(6):
            qa, qb, qo = (_qp(rng.uniform(1e-3, 0.2), int(rng.integers(lo, hi + 1)), dtype)
                          for _ in range(3))
            a, b = every[:, None], every[None, :]
            info = node_info(name, [a, b], {"fused_activation_function": trial % 4},
                             [dtype], [qa, qb], [qo])
            s = variant.prepare(dataclasses.replace(info, resolver=resolver))
            computed = name == "mul" or (dtype == np.int8 and resolver.xnnpack)
            assert isinstance(s, compiled_int8.Table)
            assert (s.direct is not None) == computed, (name, resolver)
            want = s.inner.table.reshape(256, 256)
            for x, y in ((a, b), (np.repeat(a, 256, 1), np.repeat(b, 256, 0))):
                np.testing.assert_array_equal(variant.kernel(s, x, y), want,
                                              err_msg=f"{resolver} {trial}")


@needs_numba
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_squeeze_excite_mul_equals_the_table(dtype, rng):
    """MUL of a feature map by a per-item channel vector (``mul_channels``), either operand
    order, one or many items, channels below and above a run, every resolver."""
    module = _module()
    calls = []
    kernel = module.mul_channels
    variant = lookup("mul").integer
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    for resolver in OpResolverType:
        for n, h, w, c in ((1, 16, 16, 16), (3, 8, 8, 96), (2, 5, 3, 1), (2, 4, 4, 127)):
            x, g = _ints(rng, (n, h, w, c), dtype), _ints(rng, (n, 1, 1, c), dtype)
            qa, qb, qo = (_qp(rng.uniform(1e-3, 0.2), int(rng.integers(lo, hi + 1)), dtype)
                          for _ in range(3))
            for a, b, q in ((x, g, [qa, qb]), (g, x, [qb, qa])):
                info = node_info("mul", [a, b], {"fused_activation_function": c % 2}, [dtype],
                                 q, [qo])
                s = variant.prepare(dataclasses.replace(info, resolver=resolver))
                assert isinstance(s, compiled_int8.Table) and s.direct is not None
                want = variant.kernel.wraps.kernel(s.inner, a, b)
                module.mul_channels = lambda *args: calls.append(1) or kernel(*args)
                try:
                    got = variant.kernel(s, a, b)
                finally:
                    module.mul_channels = kernel
                assert got.shape == want.shape and got.dtype == want.dtype
                np.testing.assert_array_equal(got, want, err_msg=f"{resolver} {(n, h, w, c)}")
    assert calls


@needs_numba
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_compiled_quantize_equals_the_numpy_kernel(dtype, rng):
    """Float32 → integer on random values, exact halves, signed zeros, NaN, ±inf and
    huge values; integer → integer keeps the NumPy kernel."""
    _module()
    variant = lookup("quantize").integer
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    for _ in range(6):
        qo = _qp(rng.uniform(1e-4, 0.5), int(rng.integers(lo, hi + 1)), dtype)
        halves = (rng.integers(-300, 300, 64) + np.float32(0.5)) * np.float32(qo.s)
        special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45],
                           np.float32)
        x = np.concatenate([rng.standard_normal(200).astype(np.float32) * 40,
                            halves.astype(np.float32), special]).reshape(4, -1)
        info = node_info("quantize", [x], {}, [dtype], [None], [qo])
        s = variant.prepare(info)
        assert isinstance(s, compiled_int8.Quantize)
        with np.errstate(all="ignore"):
            want = variant.kernel.wraps.kernel(s.inner, x)
            for v in (x, x[:, ::2], x[0, 0]):  # strided and 0-d inputs
                np.testing.assert_array_equal(variant.kernel(s, v),
                                              variant.kernel.wraps.kernel(s.inner, v))
        np.testing.assert_array_equal(variant.kernel(s, x), want)
    q8 = _ints(rng, (3, 4))
    info = node_info("quantize", [q8], {}, [np.int8], [_qp(0.02, 3)], [_qp(0.05, -1)])
    assert not isinstance(variant.prepare(info), compiled_int8.Quantize)


@needs_numba
@pytest.mark.parametrize("name", ["logistic", "hard_swish", "tanh", "relu6", "leaky_relu"])
def test_compiled_unary_tables_equal_the_kernels(name, monkeypatch):
    """Every 8-bit value, in any layout and rank (strided, 0-d, reversed), through the
    compiled lookup, against the kernel the table holds."""
    module = _module()
    calls = []

    def counted(*args):
        calls.append(1)
        return kernel(*args)
    kernel = module.lookup1
    monkeypatch.setattr(module, "lookup1", counted)
    opdef = lookup(name)
    for dtype in (np.int8, np.uint8):
        x = np.arange(256).astype(np.uint8).view(dtype).reshape(4, 8, 8)
        zp = -3 if dtype == np.int8 else 120
        qo = _qp(1 / 256 if name != "hard_swish" else 0.04, -128 if dtype == np.int8 else 0,
                 dtype)
        info = node_info(name, [x], {"alpha": 0.3}, [dtype], [_qp(0.05, zp, dtype)], [qo])
        s = opdef.integer.prepare(info)
        assert s.compiled is not None
        plain = opdef.integer.kernel.tabulates
        ps = plain.prepare(info)
        for v in (x, x[:, ::2, 1:].transpose(2, 0, 1), x[1, 2, 3], x.reshape(-1)[::-3]):
            got = opdef.integer.kernel(s, v)
            want = plain.kernel(ps, np.asarray(v))
            assert got.shape == np.shape(want) and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert calls


@needs_numba
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_compiled_softmax_equals_the_numpy_kernel(dtype, rng):
    """Rows of 1 to 1000 values (NumPy's pairwise sums: in order, eight partial sums, split
    halves), constant rows, every rank, random scales, zero points and betas; a negative
    beta and 16-bit keep the NumPy kernel."""
    from litetrain.ops.activations import _softmax_integer
    from litetrain.ops.quantized.activations_int import Softmax8

    _module()
    variant = lookup("softmax").integer
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    for trial, shape in enumerate([(32, 10), (1, 10), (3, 1000), (2, 3, 7), (5, 1), (4, 129),
                                   (1, 300), (7,), (2, 8), (1, 1, 1, 16)] * 3):
        x = _ints(rng, shape, dtype)
        if trial % 4 == 0:
            x[...] = x.reshape(-1)[0]
        qo = (_qp(1 / 256, lo, dtype) if trial % 3 else
              _qp(rng.uniform(1e-3, 0.1), int(rng.integers(lo, hi + 1)), dtype))
        qi = _qp(rng.uniform(1e-3, 0.5), int(rng.integers(lo, hi + 1)), dtype)
        beta = float(rng.choice([1.0, 0.5, 2.0, 1.7]))
        s = variant.prepare(node_info("softmax", [x], {"beta": beta}, [dtype], [qi], [qo]))
        assert isinstance(s, Softmax8)
        want = _softmax_integer(s.inner, x)
        for v in (x, x[..., ::-1]):  # (a strided view)
            got = variant.kernel(s, v)
            assert got.dtype == want.dtype and got.shape == v.shape
            np.testing.assert_array_equal(got, _softmax_integer(s.inner, v), err_msg=str(shape))
    x = _ints(rng, (2, 10), dtype)
    info = node_info("softmax", [x], {"beta": -1.0}, [dtype], [qi], [qo])
    assert not isinstance(variant.prepare(info), Softmax8)


@needs_numba
def test_unary_lookup_64_bytes_at_a_time_equals_numpy(rng):
    """``lookup1`` (VBMI: 64 bytes per step, where the CPU has it) and the in-place row
    lookup of the fused depthwise store, every length around the 64-byte steps, operands
    read-only or not."""
    module = _module()
    table = rng.integers(0, 256, 256).astype(np.uint8)
    for n in (*range(0, 200), 4096 + 63):
        x = rng.integers(0, 256, n).astype(np.uint8)
        for v in (x, x.copy()):
            v.flags.writeable = v is x
            out = np.empty(n, np.uint8)
            np.testing.assert_array_equal(module.lookup1(v, table, out), table[x], str(n))


# --- TensorFlow-made fixtures ------------------------------------------------------------

@needs_numba
def test_fixtures_stay_bit_exact_with_tensorflow_with_compiled_kernels(monkeypatch):
    module = _module()
    ran = dict.fromkeys(["depthwise_conv_2d", "im2col", "requantize", "gemm", "mean_hw", "mul",
                         "add", "lookup", "lookup1", "quantize", "softmax"], 0)

    def counted(name, kernel):
        def run(*args):
            ran[name] += 1
            return kernel(*args)
        return run
    for name in ran:
        monkeypatch.setattr(module, name, counted(name, getattr(module, name)))
    for model in KINDS:
        meta = json.loads((ROOT / model / "meta.json").read_text())
        with np.load(ROOT / model / "expected.npz") as f:
            expected = dict(f)
        for variant in ("int8", "int8_io"):
            for name, resolver in RESOLVERS.items():
                for batch in meta["batches"]:
                    it = invoked(ROOT / model / f"{variant}.tflite",
                              _input(expected, variant, batch), resolver)
                    got = it.get_tensor(it.get_output_details()[0]["index"])
                    want = expected[f"{variant}/{name}/b{batch}/out0"]
                    np.testing.assert_array_equal(got, want,
                                                  err_msg=f"{model} {variant} {name} b{batch}")
    assert all(ran.values()), ran


def test_interpreter_results_do_not_depend_on_the_compiled_kernels():
    """Same model, same input: the second run (compiled if loaded) equals the first."""
    x = np.load(ROOT / "mobilenet_v3_small" / "expected.npz")["input/b1/in0"]
    it = lt.Interpreter(model_path=str(ROOT / "mobilenet_v3_small" / "int8.tflite"))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    out = []
    for _ in range(3):
        it.invoke()
        out.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_numba_is_not_loaded_by_a_one_shot_int8_run():
    """An int8 model's first run never imports numba (cold start); its second run starts
    loading the int8 kernels in the background."""
    import subprocess
    import sys

    code = f"""
import sys, numpy as np, litetrain
x = np.load({str(ROOT / "mobilenet_v3_small" / "expected.npz")!r})["input/b1/in0"]
it = litetrain.Interpreter(model_path={str(ROOT / "mobilenet_v3_small" / "int8.tflite")!r})
it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]['index'], x)
it.invoke()
assert 'numba' not in sys.modules
it.invoke()
from litetrain.ops.fast import kernels
loader = kernels('int8')
print(loader is not None and loader._started)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == str(_LOADER is not None)
