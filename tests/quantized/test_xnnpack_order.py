"""XNNPACK's float order (litetrain/ops/xnnpack_float.py): the exact fused multiply-add
against rational arithmetic, each kernel bit for bit against TensorFlow Lite 2.18's default
interpreter on single-op TF-made models (tests/fixtures/tf_quantized/xnnpack_order, made by
make_xnnpack_order.py), the prepare-time choice (hybrid graphs under AUTO/BUILTIN only), and
the whole-model consequence: MobileNetV3Small's dynamic-range file under AUTO at TF's
default outputs."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import xnnpack_float
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from litetrain.tflite.reader import read_model
from tests.bits import same_bits, with_specials
from tests.conftest import FIXTURES
from tests.quantized.fixture_runs import invoked

ROOT = FIXTURES / "tf_quantized"
EXPECTED = ROOT / "xnnpack_order" / "expected.npz"
CASES = sorted({k.split("/")[0] for k in np.load(EXPECTED).files})
F32 = np.float32


def rounded(q: Fraction) -> np.float32:
    """``q`` rounded to the nearest float32, ties to even (finite range)."""
    f = F32(float(q))  # within an ulp: pick the nearest of it and its neighbours
    candidates = [f, np.nextafter(f, F32(np.inf)), np.nextafter(f, F32(-np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - q),
                                          int(np.array(c).view(np.uint32)) & 1))


def test_fma_rounds_once_where_a_float64_sum_rounds_twice():
    # a * b = 2**-24 * (1 + 2**-36): 1 + a * b lies just above the float32 midpoint
    # 1 + 2**-24, which a float64 sum rounds onto (then ties to even: 1.0).
    a = F32(2.0 ** -24 * (1 + 2.0 ** -12))
    b = F32(1 - 4095 * 2.0 ** -24)
    assert Fraction(float(a)) * Fraction(float(b)) == Fraction(2) ** -24 * (1 + Fraction(2) ** -36)
    assert F32(np.float64(a) * np.float64(b) + 1.0) == F32(1.0)  # the double rounding
    for sign in (1, -1):
        got = xnnpack_float.fma(F32(sign) * a, b, F32(sign))
        assert got == F32(sign * (1 + 2.0 ** -23))
    # Exact ties round to even.
    tiny = F32(2.0 ** -12)
    assert xnnpack_float.fma(tiny, tiny, F32(1)) == F32(1)
    assert xnnpack_float.fma(tiny, tiny, F32(1 + 2.0 ** -23)) == F32(1 + 2.0 ** -22)


def test_fma_matches_exact_rational_arithmetic(rng):
    n = 4000
    a = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(F32)
    b = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(F32)
    c = (rng.standard_normal(n) * np.exp2(rng.integers(-60, 60, n))).astype(F32)
    # Near-cancellation, exact products, float32 midpoints, subnormal results.
    c[:500] = -(a[:500].astype(np.float64) * b[:500]).astype(F32)
    c[500:1000] = (a[500:1000].astype(np.float64) * b[500:1000] * -(1 + 2.0 ** -25)).astype(F32)
    a[1000:1200], b[1000:1200] = F32(1 + 2.0 ** -23), F32(1 - 2.0 ** -24)
    a[1200:1400] *= F32(2.0 ** -70)
    b[1200:1400] *= F32(2.0 ** -70)
    c[1200:1400] *= F32(2.0 ** -100)
    got = xnnpack_float.fma(a, b, c)
    for k in range(n):
        exact = Fraction(float(a[k])) * Fraction(float(b[k])) + Fraction(float(c[k]))
        assert got[k] == rounded(exact), (a[k], b[k], c[k])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_fma_keeps_specials():
    inf, nan = F32(np.inf), F32(np.nan)
    got = xnnpack_float.fma(np.array([inf, 1, 0, nan, -0.0], F32),
                            np.array([2, inf, inf, 1, 1], F32), np.array([1, -inf, 0, 0, 0], F32))
    with np.errstate(invalid="ignore"):
        want = np.array([inf, nan, nan, nan, 0.0], F32)
    np.testing.assert_array_equal(got, want)


def single_node(case: str, z):
    """The case's one node: op, attrs and its inputs (fed and constant)."""
    model = read_model(z[f"{case}/model"].tobytes())
    sg = model.subgraphs[0]
    (node,) = sg.nodes
    feeds = {i: z[f"{case}/in{k}"] for k, i in enumerate(sg.inputs)}
    inputs = [None if i < 0 else feeds.get(i, sg.tensors[i].data) for i in node.inputs]
    return node.op, node.attrs, inputs


def prepared(op: str, attrs, inputs, hybrid_graph: bool = True,
             resolver=lt.OpResolverType.AUTO):
    info = node_info(op, inputs, attrs)
    info = dataclasses.replace(info, hybrid_graph=hybrid_graph, resolver=resolver)
    return lookup(op).settings(info)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
@pytest.mark.parametrize("case", CASES)
def test_kernels_give_tensorflow_default_bits(case):
    """Each single-op model's node, prepared for a hybrid graph under AUTO, gives the bits
    of TF's default interpreter (the NumPy forms: the compiled ones are checked against
    them below). MUL and ADD round once either way: they keep their kernels."""
    z = np.load(EXPECTED)
    op, attrs, inputs = single_node(case, z)
    settings = prepared(op, attrs, inputs)
    assert isinstance(settings, xnnpack_float.XnnOrder) == (op not in ("mul", "add"))
    if isinstance(settings, xnnpack_float.XnnOrder):
        settings.loader = None  # NumPy
    same_bits(np.asarray(lookup(op).kernel(settings, *inputs)), z[f"{case}/default"])


def test_only_hybrid_graphs_under_the_default_resolvers_choose_it():
    z = np.load(EXPECTED)
    op, attrs, inputs = single_node("conv_3x3_s2_rgb", z)
    assert isinstance(prepared(op, attrs, inputs, resolver=lt.OpResolverType.BUILTIN),
                      xnnpack_float.XnnOrder)
    assert not isinstance(prepared(op, attrs, inputs, hybrid_graph=False),
                          xnnpack_float.XnnOrder)
    for r in (lt.OpResolverType.BUILTIN_REF, lt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        assert not isinstance(prepared(op, attrs, inputs, resolver=r), xnnpack_float.XnnOrder)
    # A filter XNNPACK's delegate would not take (not a constant) keeps the other kernels.
    info = dataclasses.replace(node_info(op, inputs, attrs), hybrid_graph=True)
    w = info.inputs[1]
    info = dataclasses.replace(info, inputs=(info.inputs[0], dataclasses.replace(w, value=None),
                                             *info.inputs[2:]))
    assert xnnpack_float.prepare(info) is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_compiled_forms_give_the_numpy_bits(rng):
    from litetrain.ops import fast

    loader = fast.kernels("xnnpack")
    if loader is None or loader.wait() is None:
        pytest.skip("the [fast] extra (numba) is not installed")
    z = np.load(EXPECTED)
    plain = xnnpack_float.XnnOrder({}, None)
    for case in CASES:
        op, attrs, inputs = single_node(case, z)
        settings = prepared(op, attrs, inputs)
        if not isinstance(settings, xnnpack_float.XnnOrder):
            continue
        assert settings.loader is loader
        settings.runs = 2  # loaded already: the compiled form runs
        plain_settings = xnnpack_float.XnnOrder(settings, None)
        kernel = lookup(op).kernel
        same_bits(np.asarray(kernel(settings, *inputs)), np.asarray(kernel(plain_settings,
                                                                           *inputs)))
    x = (rng.standard_normal((2, 5, 5, 19)) * 4).astype(F32)
    x.reshape(-1)[:9] = [0.0, -0.0, np.nan, np.inf, -np.inf, -3.0, 3.0, 100.0, -100.0]
    with np.errstate(invalid="ignore"):
        same_bits(xnnpack_float.hard_swish(plain, x),
                  loader.module.hard_swish(x.reshape(-1), np.empty(x.size, F32)).reshape(x.shape))
    for shape in [(1, 24, 24, 16), (2, 1, 1, 5), (1, 8, 1, 3), (2, 7, 7, 9), (1, 15, 1, 4)]:
        x = (rng.standard_normal(shape) * 3).astype(F32)
        same_bits(xnnpack_float.mean(plain, x, np.array([1, 2])),
                  loader.module.mean_hw(x, np.empty((shape[0], shape[3]), F32)))


def test_compiled_convolutions_keep_specials_and_signed_zeros(rng):
    """NaN, infinities and signed zeros (bias -0.0, products -0.0) through the compiled
    convolutions and their clamps give the NumPy forms' bits."""
    from litetrain.ops import fast

    loader = fast.kernels("xnnpack")
    if loader is None or loader.wait() is None:
        pytest.skip("the [fast] extra (numba) is not installed")
    x = with_specials(rng, (2, 7, 6, 5))
    x[1, 2:5] = -0.0
    for op, w in (("conv_2d", np.abs(rng.standard_normal((4, 3, 3, 5))).astype(F32)),
                  ("depthwise_conv_2d", np.abs(rng.standard_normal((1, 3, 3, 5))).astype(F32))):
        b = np.zeros(w.shape[0] if op == "conv_2d" else 5, F32)
        b[::2] = -0.0
        for act in (0, 1, 3):
            attrs = {"padding": 0, "stride_h": 2, "stride_w": 1,
                     "fused_activation_function": act}
            if op == "depthwise_conv_2d":
                attrs["depth_multiplier"] = 1
            settings = prepared(op, attrs, [x, w, b])
            assert isinstance(settings, xnnpack_float.XnnOrder)
            settings.runs = 2
            plain = xnnpack_float.XnnOrder(settings, None)
            kernel = lookup(op).kernel
            with np.errstate(invalid="ignore"):
                same_bits(kernel(settings, x, w, b), kernel(plain, x, w, b))


def test_patches_gathered_by_the_conv_family_give_the_same_sums(rng):
    """The compiled CONV_2D with its patches gathered by the conv family's im2col, block
    by block, gives the bits of its own gathering (and of the NumPy form), specials and
    padding included."""
    from litetrain.ops import fast

    loader, conv = fast.kernels("xnnpack"), fast.kernels("conv")
    if loader is None or loader.wait() is None or conv.wait() is None:
        pytest.skip("the [fast] extra (numba) is not installed")
    jit = loader.module
    for shape, k, stride, padding, act in (((1, 96, 96, 3), 3, 2, 1, 3),
                                           ((3, 17, 13, 5), 3, 1, 1, 0),
                                           ((2, 20, 20, 8), 5, 2, 0, 1),
                                           ((2, 7, 6, 5), 3, 2, 0, 0)):
        x = with_specials(rng, shape)
        w = rng.standard_normal((20, k, k, shape[3])).astype(F32)
        b = rng.standard_normal(20).astype(F32)
        settings = xnnpack_float.XnnOrder({"stride_h": stride, "stride_w": stride,
                                           "padding": padding,
                                           "fused_activation_function": act}, loader)
        geometry = settings.geometry(x, k, k)
        filt, bias = settings.layout(w, b, False)
        with np.errstate(invalid="ignore"):
            own = jit.conv(x, filt, bias, 20, settings.lo, settings.hi, *geometry)
            blocks = xnnpack_float._conv_by_blocks(jit, conv.module.im2col, x, filt, bias,
                                                   20, settings, geometry)
            same_bits(own, blocks)
            if shape[0] * shape[1] < 64:
                same_bits(blocks, lookup("conv_2d").kernel(
                    xnnpack_float.XnnOrder(settings, None), x, w, b))


@pytest.mark.parametrize("batch", [1, 4])
def test_mobilenet_v3_dynamic_range_matches_default_interpreter(batch):
    expected = np.load(ROOT / "mobilenet_v3_small" / "expected.npz")
    it = invoked(ROOT / "mobilenet_v3_small" / "dynamic_range.tflite",
                 expected[f"input/b{batch}/in0"], lt.OpResolverType.AUTO)
    got = it.get_tensor(it.get_output_details()[0]["index"])
    want = expected[f"dynamic_range/default/b{batch}/out0"]
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()
    steps = it.plan(0).steps
    assert any(isinstance(s.settings, xnnpack_float.XnnOrder) for s in steps)


def test_float_models_keep_the_fast_path():
    x = np.load(ROOT / "mobilenet_v3_small" / "expected.npz")["input/b1/in0"]
    it = invoked(ROOT / "mobilenet_v3_small" / "float.tflite", x, lt.OpResolverType.AUTO)
    assert not any(isinstance(s.settings, xnnpack_float.XnnOrder) for s in it.plan(0).steps)
