"""Every gradient rule against central finite differences, through a real traced module.

Each case computes ``loss = sum(op(params) * r)`` for a fixed random ``r`` inside a
signature, asks the tape for the gradients w.r.t. float64 variables, and compares them
with numeric derivatives of the same kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import run_kernel
from tests.ops.test_flex_grads import numeric_vjp

R = np.random.default_rng(11)


def away(x, kinks=(0.0,), margin=0.05):
    for k in kinks:
        x[np.abs(x - k) < margin] += 2 * margin
    return x


def i32(*v):
    return np.array(v, np.int32)


CASES = {  # name: (op, differentiable inputs, constant inputs (position: value), attrs)
    "add_broadcast": ("add", [R.normal(size=(3, 4)), R.normal(size=(4,))], {}, {}),
    "sub_broadcast": ("sub", [R.normal(size=(2, 1, 4)), R.normal(size=(3, 1))], {}, {}),
    "mul": ("mul", [R.normal(size=(3, 4)), R.normal(size=(3, 4))], {}, {}),
    "div": ("div", [R.normal(size=(3, 4)), R.uniform(1, 2, (1, 4))], {}, {}),
    "squared_difference": ("squared_difference", [R.normal(size=(3, 4)),
                                                  R.normal(size=(4,))], {}, {}),
    "neg": ("neg", [R.normal(size=(5,))], {}, {}),
    "abs": ("abs", [away(R.normal(size=(5,)))], {}, {}),
    "maximum": ("maximum", [R.normal(size=(3, 4)), R.normal(size=(4,))], {}, {}),
    "minimum": ("minimum", [R.normal(size=(3, 4)), R.normal(size=(3, 1))], {}, {}),
    "square": ("square", [R.normal(size=(5,))], {}, {}),
    "exp": ("exp", [R.normal(size=(5,))], {}, {}),
    "log": ("log", [R.uniform(0.5, 2, (5,))], {}, {}),
    "sqrt": ("sqrt", [R.uniform(0.5, 2, (5,))], {}, {}),
    "rsqrt": ("rsqrt", [R.uniform(0.5, 2, (5,))], {}, {}),
    "logistic": ("logistic", [R.normal(size=(3, 4))], {}, {}),
    "tanh": ("tanh", [R.normal(size=(3, 4))], {}, {}),
    "relu": ("relu", [away(R.normal(size=(3, 4)))], {}, {}),
    "relu6": ("relu6", [away(R.normal(scale=4, size=(3, 4)), (0.0, 6.0))], {}, {}),
    "leaky_relu": ("leaky_relu", [away(R.normal(size=(3, 4)))], {}, {"alpha": 0.3}),
    "elu": ("elu", [away(R.normal(size=(3, 4)))], {}, {}),
    "gelu": ("gelu", [np.append(R.normal(size=(3, 4)), [0.0, -7.0, 1e-30])], {}, {}),
    "gelu_tanh": ("gelu", [R.normal(size=(3, 4))], {}, {"approximate": True}),
    "softmax": ("softmax", [R.normal(size=(3, 5))], {}, {"beta": 0.7}),
    "log_softmax": ("log_softmax", [R.normal(size=(3, 5))], {}, {}),
    "batch_matmul": ("batch_matmul", [R.normal(size=(3, 4)), R.normal(size=(4, 2))], {}, {}),
    "batch_matmul_adj_x": ("batch_matmul", [R.normal(size=(4, 3)), R.normal(size=(4, 2))], {},
                           {"adj_x": True}),
    "batch_matmul_adj_y": ("batch_matmul", [R.normal(size=(2, 3, 4)),
                                            R.normal(size=(2, 5, 4))], {}, {"adj_y": True}),
    "batch_matmul_adj_xy": ("batch_matmul", [R.normal(size=(4, 3)), R.normal(size=(2, 4))],
                            {}, {"adj_x": True, "adj_y": True}),
    "reshape": ("reshape", [R.normal(size=(2, 6))], {1: i32(3, -1)}, {}),
    "expand_dims": ("expand_dims", [R.normal(size=(2, 3))], {1: np.int32(1)}, {}),
    "squeeze": ("squeeze", [R.normal(size=(2, 1, 3, 1))], {}, {"squeeze_dims": i32(1)}),
    "squeeze_all": ("squeeze", [R.normal(size=(1, 3, 1, 2))], {}, {}),
    "cast": ("cast", [R.normal(size=(3, 4))], {}, {"out_dtypes": [np.float64]}),
    "sum": ("sum", [R.normal(size=(2, 3, 4))], {1: i32(0, 2)}, {}),
    "sum_keep": ("sum", [R.normal(size=(2, 3, 4))], {1: i32(-1)}, {"keep_dims": True}),
    "mean": ("mean", [R.normal(size=(2, 3, 4))], {1: i32(1)}, {}),
    "mean_all": ("mean", [R.normal(size=(2, 3))], {1: i32(0, 1)}, {}),
    "cumsum": ("cumsum", [R.normal(size=(3, 4))], {1: np.int32(1)}, {}),
    "gather_rows": ("gather", [R.normal(size=(5, 3))],
                    {1: np.array([[4, 0], [4, 2]], np.int32)}, {}),  # a repeated row
    "pack": ("pack", [R.normal(size=(2, 3)), R.normal(size=(2, 3))], {},
             {"axis": 1, "values_count": 2}),
    "unpack": ("unpack", [R.normal(size=(2, 3, 4))], {}, {"axis": 1, "num": 3}),
    "split": ("split", [R.normal(size=(2, 6))], {0: np.int32(1)}, {"num_splits": 3}),
    "transpose_conv": ("transpose_conv", [R.normal(size=(3, 3, 3, 2)), R.normal(size=(2, 3, 4, 2)),
                                          R.normal(size=3)], {0: i32(2, 7, 9, 3)},
                       {"padding": 1, "stride_h": 2, "stride_w": 2}),
    "transpose_conv_same": ("transpose_conv", [R.normal(size=(2, 3, 3, 2)),
                                               R.normal(size=(1, 3, 3, 2))],
                            {0: i32(1, 6, 6, 2)}, {"padding": 0, "stride_h": 2, "stride_w": 2}),
    "max_pool_overlapping": ("max_pool_2d", [R.permutation(2 * 6 * 5 * 2).reshape(2, 6, 5, 2)
                                             / 9.0], {},
                             {"padding": 0, "stride_h": 1, "stride_w": 2, "filter_height": 3,
                              "filter_width": 3}),
    "avg_pool_overlapping_same": ("average_pool_2d", [R.normal(size=(1, 6, 5, 2))], {},
                                  {"padding": 0, "stride_h": 2, "stride_w": 1,
                                   "filter_height": 3, "filter_width": 2}),
    "avg_pool_overlapping_valid": ("average_pool_2d", [R.normal(size=(2, 7, 6, 1))], {},
                                   {"padding": 1, "stride_h": 2, "stride_w": 2,
                                    "filter_height": 3, "filter_width": 3}),
    "pad": ("pad", [R.normal(size=(2, 3, 2))], {1: i32([0, 1], [2, 0], [1, 1])}, {}),
    "upsample_nearest": ("resize_nearest_neighbor", [R.normal(size=(2, 3, 2, 2))],
                         {1: i32(6, 4)}, {}),
    "cumsum_exclusive_reverse": ("cumsum", [R.normal(size=(4, 3))], {1: np.int32(0)},
                                 {"exclusive": True, "reverse": True}),
    "transpose": ("transpose", [R.normal(size=(2, 3, 4))], {1: i32(2, 0, 1)}, {}),
    "select_v2": ("select_v2", [R.normal(size=(3, 4)), R.normal(size=(4,))],
                  {0: R.random((3, 4)) > 0.5}, {}),
    "concatenation": ("concatenation", [R.normal(size=(2, 3)), R.normal(size=(2, 2))], {},
                      {"axis": 1}),
    "conv_2d_same": ("conv_2d", [R.normal(size=(2, 7, 6, 3)), R.normal(size=(4, 3, 3, 3)),
                                 R.normal(size=4)], {},
                     {"padding": 0, "stride_h": 1, "stride_w": 1}),
    "conv_2d_strided": ("conv_2d", [R.normal(size=(1, 8, 8, 2)), R.normal(size=(3, 3, 3, 2)),
                                    R.normal(size=3)], {},
                        {"padding": 0, "stride_h": 2, "stride_w": 2}),
    "conv_2d_valid": ("conv_2d", [R.normal(size=(2, 9, 7, 2)), R.normal(size=(2, 3, 3, 2)),
                                  R.normal(size=2)], {},
                      {"padding": 1, "stride_h": 2, "stride_w": 1}),
    # strided filter gradients: taps padded on both sides, 5x5 at stride 3, 1x1 strided,
    # and taps that read only padding (the padded-input form)
    "conv_2d_same_odd_strided": ("conv_2d", [R.normal(size=(2, 7, 9, 3)),
                                             R.normal(size=(2, 3, 3, 3))], {},
                                 {"padding": 0, "stride_h": 2, "stride_w": 2}),
    "conv_2d_5x5_stride_3": ("conv_2d", [R.normal(size=(1, 10, 8, 2)),
                                         R.normal(size=(2, 5, 5, 2)), R.normal(size=2)], {},
                             {"padding": 0, "stride_h": 3, "stride_w": 2}),
    "conv_2d_pointwise_strided": ("conv_2d", [R.normal(size=(2, 5, 6, 3)),
                                              R.normal(size=(2, 1, 1, 3))], {},
                                  {"padding": 1, "stride_h": 2, "stride_w": 2}),
    "conv_2d_pointwise": ("conv_2d", [R.normal(size=(2, 5, 4, 3)), R.normal(size=(2, 1, 1, 3)),
                                      R.normal(size=2)], {},
                          {"padding": 0, "stride_h": 1, "stride_w": 1}),
    "conv_2d_taps_in_padding": ("conv_2d", [R.normal(size=(1, 1, 3, 2)),
                                            R.normal(size=(2, 5, 5, 2))], {},
                                {"padding": 0, "stride_h": 2, "stride_w": 2}),
    "depthwise_same_strided": ("depthwise_conv_2d", [
        R.normal(size=(2, 7, 6, 3)), R.normal(size=(1, 3, 3, 3)), R.normal(size=3)], {},
        {"padding": 0, "stride_h": 2, "stride_w": 2, "depth_multiplier": 1}),
    "depthwise_valid_multiplier": ("depthwise_conv_2d", [
        R.normal(size=(2, 8, 7, 2)), R.normal(size=(1, 3, 2, 6)), R.normal(size=6)], {},
        {"padding": 1, "stride_h": 1, "stride_w": 2, "depth_multiplier": 3}),
    "depthwise_same_even_kernel": ("depthwise_conv_2d", [
        R.normal(size=(1, 6, 5, 2)), R.normal(size=(1, 4, 2, 2))], {},
        {"padding": 0, "stride_h": 3, "stride_w": 1, "depth_multiplier": 1}),
    "max_pool_2d": ("max_pool_2d", [R.permutation(2 * 7 * 6 * 2).reshape(2, 7, 6, 2) / 9.0],
                    {}, {"padding": 1, "stride_h": 2, "stride_w": 2, "filter_height": 2,
                         "filter_width": 2}),
    "average_pool_2d": ("average_pool_2d", [R.normal(size=(1, 6, 4, 3))], {},
                        {"padding": 0, "stride_h": 2, "stride_w": 2, "filter_height": 2,
                         "filter_width": 2}),
}


# The erf kernel is accurate to float32 (|err| < 2e-7), so finite differences of the GELU
# kernel in float64 carry that error; the analytic rule is exact.
TOLERANCE = {"gelu": 1e-6}


def _split(op, params, consts):
    n = len(params) + len(consts)
    it = iter(params)
    return [consts[i] if i in consts else next(it) for i in range(n)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_vjp_matches_finite_differences(case):
    op, params, consts, attrs = CASES[case]
    params = [np.asarray(p, np.float64) for p in params]
    outs = run_kernel(op, *_split(op, params, consts), **attrs)
    # One random weight per output element (several outputs: a tuple of them).
    r = tuple(R.normal(size=np.shape(o)) for o in outs) if isinstance(outs, tuple) else \
        R.normal(size=np.shape(outs))
    variables = [lt.Variable(p, f"p{i}", dtype=np.float64) for i, p in enumerate(params)]

    class M(lt.Module):
        @lt.signature()
        def grads(self):
            with lt.GradientTape() as tape:
                vals = [v.read() for v in variables]
                g = vals[0].graph
                out = g.op(op, *_split(op, vals, {k: g.const(v) for k, v in consts.items()}),
                           **attrs)
                pairs = zip(out, r, strict=True) if isinstance(out, tuple) else [(out, r)]
                loss = None
                for o, w in pairs:
                    term = lt.nn.reduce_sum(o * g.const(w, np.float64))
                    loss = term if loss is None else loss + term
            return tuple(tape.gradient(loss, variables))

    got = M().grads()
    for k, p in enumerate(params):
        def f(theta, k=k):
            ps = list(params)
            ps[k] = theta
            return run_kernel(op, *_split(op, ps, consts), **attrs)
        if isinstance(r, tuple):  # d/dθ sum_k <out_k(θ), r_k>
            want = sum(numeric_vjp(lambda t, f=f, k=k: f(t)[k], p.copy(), w)
                       for k, w in enumerate(r))
        else:
            want = numeric_vjp(f, p.copy(), r)
        np.testing.assert_allclose(got[f"output_{k}"], want, rtol=1e-6,
                                   atol=TOLERANCE.get(case, 1e-7),
                                   err_msg=f"{case}: input {k}")


def test_unused_and_frozen_variables_get_none():
    a, b = lt.Variable(np.ones(3), "a"), lt.Variable(np.ones(3), "b")

    class M(lt.Module):
        @lt.signature()
        def run(self):
            with lt.GradientTape() as tape:
                loss = lt.nn.reduce_sum(a.read() * 2.0)
            ga, gb = tape.gradient(loss, [a, b])
            assert gb is None
            return ga

    np.testing.assert_array_equal(M().run(), [2.0, 2.0, 2.0])


def test_fan_out_adds_up():
    w = lt.Variable(np.array([1.5, -2.0]), "w")

    class M(lt.Module):
        @lt.signature()
        def run(self):
            with lt.GradientTape() as tape:
                x = w.read()
                loss = lt.nn.reduce_sum(x * x + x * 3.0)
            (g,) = tape.gradient(loss, [w])
            return g

    np.testing.assert_allclose(M().run(), 2 * np.array([1.5, -2.0]) + 3)


def test_missing_rule_names_the_op():
    w = lt.Variable(np.array([1.0, 2.0]), "w")

    class M(lt.Module):
        @lt.signature()
        def run(self):
            with lt.GradientTape() as tape:
                loss = lt.nn.reduce_sum(w.read().graph.op("floor", w.read()))
            return tape.gradient(loss, [w])[0]

    with pytest.raises(lt.TraceError, match="no gradient rule for op 'floor'"):
        M().run()
