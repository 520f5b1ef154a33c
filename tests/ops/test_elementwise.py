"""Elementwise kernels against scalar references (Python ``math``), over broadcast shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import run_kernel

BROADCAST_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((1, 4), (3, 1)), ((), (2, 3)),
                    ((2, 1, 3), (1, 4, 1)), ((5,), ())]


def scalar_reference(fn, *arrays, out_dtype=np.float64):
    """Apply a Python scalar function elementwise after NumPy broadcasting."""
    b = np.broadcast_arrays(*arrays)
    out = np.empty(b[0].shape, out_dtype)
    for idx in np.ndindex(b[0].shape):
        out[idx] = fn(*(a[idx].item() for a in b))
    return out


def _trunc_div(a, b):
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


BINARY_FLOAT = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("squared_difference", lambda a, b: (a - b) ** 2),
    ("maximum", max), ("minimum", min), ("floor_div", lambda a, b: math.floor(a / b)),
    ("floor_mod", lambda a, b: a - math.floor(a / b) * b),
    ("pow", lambda a, b: abs(a) ** b),
]
BINARY_INT = [
    ("add", lambda a, b: a + b), ("mul", lambda a, b: a * b), ("div", _trunc_div),
    ("floor_div", lambda a, b: a // b), ("floor_mod", lambda a, b: a % b),
    ("maximum", max), ("minimum", min), ("pow", lambda a, b: a ** abs(b)),
]
COMPARE = [("equal", lambda a, b: a == b), ("not_equal", lambda a, b: a != b),
           ("greater", lambda a, b: a > b), ("greater_equal", lambda a, b: a >= b),
           ("less", lambda a, b: a < b), ("less_equal", lambda a, b: a <= b)]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
@pytest.mark.parametrize(("op", "ref"), BINARY_FLOAT, ids=[r[0] for r in BINARY_FLOAT])
def test_binary_float(op, ref, shapes, rng):
    a = rng.uniform(0.5, 3, shapes[0]).astype(np.float32)
    b = rng.uniform(0.5, 2, shapes[1]).astype(np.float32)
    if op in ("sub", "floor_div", "floor_mod", "add"):
        a = a * np.float32(rng.choice([-1, 1]))
    if op == "pow":
        a = np.abs(a)
    got = run_kernel(op, a, b)
    np.testing.assert_allclose(got, scalar_reference(ref, a, b), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
@pytest.mark.parametrize(("op", "ref"), BINARY_INT, ids=[r[0] for r in BINARY_INT])
def test_binary_int(op, ref, shapes, rng):
    a = rng.integers(-20, 20, shapes[0]).astype(np.int32)
    b = rng.integers(1, 5, shapes[1]).astype(np.int32) * rng.choice([-1, 1], shapes[1])
    b = b.astype(np.int32)
    if op == "pow":
        b = np.abs(b)
    got = run_kernel(op, a, b)
    np.testing.assert_array_equal(got, scalar_reference(ref, a, b, out_dtype=np.int64))


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
@pytest.mark.parametrize(("op", "ref"), COMPARE, ids=[r[0] for r in COMPARE])
def test_comparisons(op, ref, shapes, rng):
    a = rng.integers(0, 3, shapes[0]).astype(np.float32)
    b = rng.integers(0, 3, shapes[1]).astype(np.float32)
    np.testing.assert_array_equal(run_kernel(op, a, b), scalar_reference(ref, a, b, out_dtype=bool))


def test_integer_division_by_zero_is_an_error():
    with pytest.raises(ValueError, match="division by zero"):
        run_kernel("div", np.array([1], np.int32), np.array([0], np.int32))


@pytest.mark.parametrize(("op", "ref"), [("logical_and", lambda a, b: a and b),
                                         ("logical_or", lambda a, b: a or b)])
def test_logical(op, ref, rng):
    a, b = rng.random((3, 4)) > 0.5, rng.random((4,)) > 0.5
    np.testing.assert_array_equal(run_kernel(op, a, b), scalar_reference(ref, a, b, out_dtype=bool))
    np.testing.assert_array_equal(run_kernel("logical_not", a), ~a)


def _gelu_tanh(x):
    return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY = [
    ("neg", lambda x: -x, None), ("abs", abs, None), ("exp", math.exp, None),
    ("log", math.log, "positive"), ("sqrt", math.sqrt, "positive"),
    ("rsqrt", lambda x: 1 / math.sqrt(x), "positive"), ("square", lambda x: x * x, None),
    ("sin", math.sin, None), ("cos", math.cos, None), ("floor", math.floor, None),
    ("ceil", math.ceil, None), ("round", round, "halves"),
    ("sign", lambda x: (x > 0) - (x < 0), None),
    ("relu", lambda x: max(x, 0.0), None), ("relu6", lambda x: min(max(x, 0.0), 6.0), None),
    ("relu_n1_to_1", lambda x: min(max(x, -1.0), 1.0), None),
    ("elu", lambda x: x if x >= 0 else math.expm1(x), None),
    ("logistic", lambda x: 1 / (1 + math.exp(-x)), None), ("tanh", math.tanh, None),
    ("hard_swish", lambda x: x * min(max(x + 3, 0.0), 6.0) / 6, None),
    ("gelu", lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))), None),
]


@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 5)])
@pytest.mark.parametrize(("op", "ref", "domain"), UNARY, ids=[u[0] for u in UNARY])
def test_unary(op, ref, domain, shape, rng):
    x = rng.uniform(-8, 8, shape).astype(np.float32)
    if domain == "positive":
        x = np.abs(x) + np.float32(0.1)
    if domain == "halves":  # exact .5 cases check half-to-even rounding
        x = (np.round(x * 2) / 2).astype(np.float32)
    np.testing.assert_allclose(run_kernel(op, x), scalar_reference(ref, x), rtol=1e-5,
                               atol=2e-6)


def test_gelu_tanh_approximation(rng):
    x = rng.uniform(-5, 5, (40,)).astype(np.float32)
    np.testing.assert_allclose(run_kernel("gelu", x, approximate=True),
                               scalar_reference(_gelu_tanh, x), rtol=1e-5, atol=1e-6)


def test_leaky_relu_and_prelu(rng):
    x = rng.normal(size=(4, 5)).astype(np.float32)
    ref = scalar_reference(lambda v: v if v >= 0 else 0.3 * v, x)
    np.testing.assert_allclose(run_kernel("leaky_relu", x, alpha=0.3), ref, rtol=1e-6)
    alpha = rng.uniform(0, 1, (5,)).astype(np.float32)
    ref = scalar_reference(lambda v, a: v if v >= 0 else a * v, x, alpha)
    np.testing.assert_allclose(run_kernel("prelu", x, alpha), ref, rtol=1e-6)


def _softmax_rows(x, beta=1.0):
    out = np.empty(x.shape)
    for idx in np.ndindex(x.shape[:-1]):
        row = [beta * float(v) for v in x[idx]]
        m = max(row)
        e = [math.exp(v - m) for v in row]
        out[idx] = [v / sum(e) for v in e]
    return out


@pytest.mark.parametrize("shape", [(5,), (3, 10), (2, 3, 4)])
def test_softmax_family(shape, rng):
    x = rng.normal(scale=4, size=shape).astype(np.float32)
    np.testing.assert_allclose(run_kernel("softmax", x, beta=0.5), _softmax_rows(x, 0.5),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(run_kernel("log_softmax", x), np.log(_softmax_rows(x)),
                               rtol=1e-5, atol=1e-5)


def test_l2_normalization(rng):
    x = rng.normal(size=(3, 6)).astype(np.float32)
    ref = np.array([[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in x])
    np.testing.assert_allclose(run_kernel("l2_normalization", x), ref, rtol=1e-5)


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_fused_activation_on_add(code, rng):
    a, b = (rng.normal(scale=5, size=(4, 4)).astype(np.float32) for _ in range(2))
    lo, hi = {0: (-np.inf, np.inf), 1: (0, np.inf), 2: (-1, 1), 3: (0, 6)}[code]
    np.testing.assert_allclose(run_kernel("add", a, b, fused_activation_function=code),
                               np.clip(a + b, lo, hi), rtol=1e-6)


def test_select_forms(rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    rows = np.array([True, False, True])
    expect = np.array([a[0], b[1], a[2]])
    np.testing.assert_array_equal(run_kernel("select", rows, a, b), expect)
    cond = rng.random((1, 4)) > 0.5
    np.testing.assert_array_equal(run_kernel("select_v2", cond, a, np.float64(0)),
                                  scalar_reference(lambda c, x: x if c else 0.0, cond, a))
    np.testing.assert_array_equal(run_kernel("where", rows), [[0], [2]])
    np.testing.assert_array_equal(run_kernel("add_n", a, b, a), a + b + a)
