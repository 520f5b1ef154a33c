"""TF Lite's 16-bit tables (litetrain/ops/quantized/lut16.py) on their own: the
interpolating lookup, the table generator, the int16 softmax and sigmoid/tanh kernels
against float references. Bit-exactness with TensorFlow is checked on TF-made models in
test_tf_resolvers.py / test_tf_ops*.py."""

from __future__ import annotations

import numpy as np

from litetrain.ops.quantized import lut16


def test_lookup_hits_the_nodes_and_interpolates_between_them():
    lut = np.arange(-16384, -16384 + 513 * 48, 48).astype(np.int16)  # slope 48 per node
    x = np.array([-32768, -32768 + 128, 0, 5, 127, 32767], np.int16)
    got = lut16.lut_lookup(x, lut)
    index = 256 + (x.astype(np.int32) >> 7)
    want = lut[index] + ((48 * (x.astype(np.int32) & 0x7F) + 64) >> 7)
    np.testing.assert_array_equal(got, want)


def test_exp_table_follows_exp_within_a_few_steps():
    span = 65535
    lut = lut16.lut_populate(np.exp, 10.0 / span, 32767, 2.0 / span, 0)
    x = np.arange(-32768, 32768, 97, dtype=np.int64)
    real = np.exp((x - 32767) * 10.0 / span)
    got = lut16.lut_lookup(x, lut)
    assert np.abs(got - real * 32768).max() <= 8  # linear interpolation over 512 segments


def test_softmax_int16_close_to_float_softmax():
    rng = np.random.default_rng(0)
    scale = 3.6e-4
    x = rng.integers(-20000, 20000, size=(6, 33)).astype(np.int16)
    got = lut16.softmax_int16(lut16.softmax_params(scale, 1.0), x)
    z = x * scale
    e = np.exp(z - z.max(-1, keepdims=True))
    want = e / e.sum(-1, keepdims=True) * 32768
    assert got.dtype == np.int16 and np.abs(got - want).max() <= 40  # ~1e-3 of full scale


def test_sigmoid_table_samples_sigmoid():
    table = lut16.sigmoid_table()
    exact = 65536.0 / (1.0 + np.exp(-np.arange(256) / 24.0))
    assert table[0] == 32768 and np.all(np.diff(table) >= 0)
    assert np.abs(table - np.minimum(exact, 65535)).max() < 1.5  # a fit, not samples


def test_logistic_and_tanh_int16_follow_the_functions():
    scale = 9.897227e-05
    x = np.arange(-32768, 32768, 61, dtype=np.int16)
    real = x * scale
    m, s = lut16.sigmoid_params(scale, tanh=False)
    got = lut16.logistic_int16(x, m, s).astype(np.float64) / 32768
    assert np.abs(got - 1 / (1 + np.exp(-real))).max() < 1e-4
    m, s = lut16.sigmoid_params(scale, tanh=True)
    got = lut16.tanh_int16(x, m, s).astype(np.float64) / 32768
    assert np.abs(got - np.tanh(real)).max() < 2e-4


def test_power_of_two_scales_are_recognised():
    assert lut16.checked_log2(2.0 ** -12) == (True, -12)
    assert lut16.checked_log2(1e-4)[0] is False
    assert lut16.sigmoid_params(2.0 ** -12, tanh=False) == (0, 0)
    assert lut16.sigmoid_params(2.0 ** -11, tanh=True) == (0, 1)
