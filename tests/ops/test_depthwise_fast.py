"""The compiled float DEPTHWISE_CONV_2D (``[fast]`` extra, numba: ``ops/fast/conv.py``)
against the NumPy kernel it replaces: the same bits on random geometries — strides,
filter sizes (the unrolled 3×3 and 5×5 forms and the any-size one), multipliers,
paddings, dilations, odd output heights (row pairs spanning two images), channel counts
that are not a multiple of the vector width, more channels than the unrolled forms take,
filters that are not constants (a reversed view, as the input gradient passes) — with
signed zeros and NaN; with infinities too, where only NaN payloads may differ (two NaNs
meeting in a sum keep either's payload)."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import compiled, fast
from litetrain.ops.common import SAME, VALID
from litetrain.ops.conv import depthwise_conv_2d
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

_LOADER = fast.kernels("conv")
pytestmark = pytest.mark.needs_kernels(_LOADER)


def _attrs(k_stride_dilation, padding, act, mult):
    (_, _), (sh, sw), (dh, dw) = k_stride_dilation
    return {"stride_h": sh, "stride_w": sw, "dilation_h_factor": dh, "dilation_w_factor": dw,
            "padding": padding, "fused_activation_function": act, "depth_multiplier": mult}


def _prepared(x, w, b, attrs, constant=True):
    """The node's settings as prepare makes them: for a constant filter, or (``constant``
    False) for a filter read at run time."""
    info = node_info("depthwise_conv_2d", [x, w, b], attrs)
    if not constant:
        runtime = info.inputs[1].__class__(np.dtype(np.float32), w.shape)
        info = info.__class__(info.op, info.attrs, (info.inputs[0], runtime,
                                                    *info.inputs[2:]), info.outputs)
    s = lookup("depthwise_conv_2d").settings(info)
    assert isinstance(s, compiled.Compiled)
    return s


def _case(rng, n, h, wd, c, k, stride, dilation, padding, act, mult, bias):
    x = with_specials(rng, (n, h, wd, c))
    w = rng.standard_normal((1, *k, c * mult)).astype(np.float32)
    w.reshape(-1)[::7] = -0.0
    b = rng.standard_normal(c * mult).astype(np.float32) if bias else None
    return x, w, b, _attrs((k, stride, dilation), padding, act, mult)


def _check(x, w, b, attrs, constant=True):
    s = _prepared(x, w, b, attrs, constant)
    assert compiled.applies(s, x, w)
    same_bits(depthwise_conv_2d(s, x, w, b), depthwise_conv_2d(attrs, x, w, b))


# (filter, stride, dilation): the unrolled forms, their general (strided, dilated) and
# shared-row (stride 1) variants, and the any-size form.
WINDOWS = [((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 2), (2, 1)),
           ((3, 3), (3, 1), (1, 2)), ((5, 5), (1, 1), (1, 1)), ((5, 5), (2, 2), (1, 1)),
           ((5, 5), (1, 2), (2, 2)), ((2, 3), (1, 1), (1, 1)), ((1, 1), (2, 2), (1, 1)),
           ((7, 1), (1, 1), (1, 1)), ((4, 4), (3, 2), (1, 1))]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("padding", [SAME, VALID])
def test_compiled_depthwise_gives_the_numpy_bits(window, padding, rng):
    k, stride, dilation = window
    span = ((k[0] - 1) * dilation[0] + 1, (k[1] - 1) * dilation[1] + 1)
    for n, h, wd, c, act, mult, bias in ((1, 7, 9, 16, 3, 1, True), (3, 5, 6, 3, 0, 2, False),
                                         (2, 9, 4, 40, 1, 1, True), (2, 6, 7, 5, 2, 3, True),
                                         (3, 3, 3, 24, 4, 1, False)):
        if padding == VALID and (h < span[0] or wd < span[1]):
            continue
        _check(*_case(rng, n, h, wd, c, k, stride, dilation, padding, act, mult, bias))


@pytest.mark.parametrize("k", [(3, 3), (5, 5), (2, 2)])
def test_filters_read_at_run_time_and_reversed_views(k, rng):
    """A filter that is not a constant (a variable's value, the input gradient's reversed
    filter view) is laid out per call, any strides."""
    x, w, b, attrs = _case(rng, 2, 8, 7, 16, k, (1, 1), (1, 1), SAME, 3, 1, True)
    _check(x, w, b, attrs, constant=False)
    _check(x, np.ascontiguousarray(w[:, ::-1, ::-1]), b, attrs, constant=False)
    reversed_view = w[:, ::-1, ::-1]
    s = _prepared(x, w, b, attrs, constant=False)
    same_bits(depthwise_conv_2d(s, x, reversed_view, b),
              depthwise_conv_2d(attrs, x, reversed_view, b))


def test_more_channels_than_the_unrolled_forms_take(rng):
    """Filter tiles longer than the kernels' constant row stride take the any-size form."""
    channels = compiled._STRIDE + 60
    for k in ((3, 3), (5, 5)):
        _check(*_case(rng, 2, 4, 3, channels, k, (1, 1), (1, 1), SAME, 3, 1, True))


def test_one_node_over_batches_sizes_and_biases(rng):
    """A node's per-shape geometry and last-bias tiles follow its inputs: other batch
    sizes and image sizes, another bias, no bias, a bias of another dtype (NumPy adds
    it), a non-contiguous and a read-only input."""
    x, w, b, attrs = _case(rng, 3, 10, 10, 24, (3, 3), (2, 2), (1, 1), SAME, 3, 1, True)
    s = _prepared(x, w, b, attrs)
    # (a float32 dtype that is not numpy's own instance, as some tensors of a run have)
    le = x.view(np.dtype(np.float32).newbyteorder("<"))
    for xi in (x, x[:1], x[:, 1:, 2:], np.concatenate([x, x], axis=3)[..., ::2], le, le):
        for bi in (b, b * 2, None, b.astype(np.float64), b):
            same_bits(depthwise_conv_2d(s, xi, w, bi), depthwise_conv_2d(attrs, xi, w, bi))
    x.flags.writeable = False
    out = depthwise_conv_2d(s, x, w, b)
    same_bits(out, depthwise_conv_2d(attrs, x, w, b))
    assert out.flags.writeable and out.flags.c_contiguous and out.base is not x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_infinities_give_the_numpy_values(rng):
    """±inf in inputs and filters: the same values and zero signs; NaN where NumPy has
    NaN (their payloads may differ: a sum of two NaNs keeps either one's)."""
    for k, stride in (((3, 3), (1, 1)), ((3, 3), (2, 2)), ((5, 5), (1, 1))):
        x, w, b, attrs = _case(rng, 2, 7, 8, 16, k, stride, (1, 1), SAME, 0, 1, True)
        x.reshape(-1)[::13] = np.inf
        x.reshape(-1)[5::17] = -np.inf
        w.reshape(-1)[3::11] = np.inf
        got = depthwise_conv_2d(_prepared(x, w, b, attrs), x, w, b)
        want = depthwise_conv_2d(attrs, x, w, b)
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan)
        same_bits(np.where(nan, 0, got), np.where(nan, 0, want))


def test_the_kernels_and_their_layouts_agree_on_the_row_stride():
    assert compiled._STRIDE == _LOADER.module.STRIDE


@pytest.mark.parametrize("window", [WINDOWS[0], WINDOWS[1], WINDOWS[4], WINDOWS[7]])
def test_fused_hard_swish_gives_the_two_nodes_bits(window, rng):
    """A HARD_SWISH fused into the step (``hard_swish``: that node's settings) is applied
    in the compiled kernel's store: the bits of the depthwise node's result put through
    the HARD_SWISH node, for clamping activations and others (applied afterwards), with
    the node's repeated calls (its last arguments kept) and a bias or input changing."""
    hs_op = lookup("hard_swish")
    k, stride, dilation = window
    for act in (0, 3, 1, 4):
        x, w, b, attrs = _case(rng, 2, 7, 6, 16, k, stride, dilation, SAME, act, 1, True)
        hs = hs_op.settings(node_info("hard_swish", [x], {}))
        s = _prepared(x, w, b, attrs)
        for xi, bi in ((x, b), (x, b), (x[:1], b), (x, b * 2), (x, None)):
            want = hs_op.kernel(hs, depthwise_conv_2d(attrs, xi, w, bi))
            same_bits(depthwise_conv_2d(s, xi, w, bi, hard_swish=hs), want)
            same_bits(depthwise_conv_2d(s, xi, w, bi), depthwise_conv_2d(attrs, xi, w, bi))
        # the last arguments are kept for clamping activations (TANH: NumPy finishes)
        assert (s.last_run is not None) == (act != 4)
