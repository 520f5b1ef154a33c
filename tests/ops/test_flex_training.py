"""The Flex ops of converted Keras training graphs, against NumPy references and finite
differences of their forward ops (TensorFlow-made fixtures cover them end to end)."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain import dtypes, ir
from litetrain.ops.flex_lists import TensorList
from litetrain.tflite.writer import write_model
from tests.conftest import run_kernel
from tests.ops.test_flex_grads import numeric_vjp

R = np.random.default_rng(21)


@pytest.mark.parametrize(("a", "b", "ra", "rb"), [
    ((2, 3), (2, 3), [], []),                 # identical shapes: nothing to reduce
    ((1, 1), (1, 1), [], []),                 # ... even when all ones
    ((4, 1, 3), (5, 1), [1], [0, 2]),
    ((3,), (2, 3), [0], []),
    ((2, 1, 1), (1, 1, 4), [1, 2], [0, 1]),   # a shared 1 reduces both
    ((), (2, 2), [0, 1], []),
])
def test_broadcast_gradient_args_reduce_what_broadcasting_repeated(a, b, ra, rb):
    got_a, got_b = run_kernel("FlexBroadcastGradientArgs", np.array(a, np.int32),
                              np.array(b, np.int32))
    assert got_a.tolist() == ra and got_b.tolist() == rb
    if a != b:  # the reduced gradients have each operand's size
        g = np.ones(np.broadcast_shapes(a, b))
        assert g.sum(axis=tuple(ra)).size == int(np.prod(a))


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_sparse_softmax_cross_entropy():
    logits = R.normal(size=(5, 7)).astype(np.float32) * 3
    labels = R.integers(0, 7, 5).astype(np.int64)
    loss, grad = run_kernel("FlexSparseSoftmaxCrossEntropyWithLogits", logits, labels)
    np.testing.assert_allclose(loss, -_log_softmax(logits)[np.arange(5), labels], rtol=1e-6)
    want = np.exp(_log_softmax(logits)) - np.eye(7)[labels]
    np.testing.assert_allclose(grad, want, atol=1e-7)
    with pytest.raises(ValueError, match="labels must be in"):
        run_kernel("FlexSparseSoftmaxCrossEntropyWithLogits", logits, labels + 7)


def test_softmax_cross_entropy_with_soft_labels():
    logits = R.normal(size=(3, 4))
    labels = R.dirichlet(np.ones(4), 3)
    loss, grad = run_kernel("FlexSoftmaxCrossEntropyWithLogits", logits, labels)
    np.testing.assert_allclose(loss, -(labels * _log_softmax(logits)).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(grad, np.exp(_log_softmax(logits)) - labels, atol=1e-12)


@pytest.mark.parametrize("masks", [{}, {"begin_mask": 1, "end_mask": 2},
                                   {"shrink_axis_mask": 2}, {"new_axis_mask": 1}])
def test_strided_slice_grad_is_the_adjoint_of_strided_slice(masks):
    x = R.normal(size=(4, 6))
    begin, end, strides = np.array([1, 5]), np.array([4, 0]), np.array([2, -2])
    y = run_kernel("strided_slice", x, begin, end, strides, **masks)
    dy = R.normal(size=y.shape)
    dx = run_kernel("FlexStridedSliceGrad", np.array(x.shape), begin, end, strides, dy,
                    **masks)
    want = numeric_vjp(lambda t: run_kernel("strided_slice", t, begin, end, strides, **masks),
                       x.copy(), dy)
    np.testing.assert_allclose(dx, want, atol=1e-8)


@pytest.mark.parametrize(("op", "forward"), [
    ("FlexTanhGrad", np.tanh), ("FlexSigmoidGrad", lambda v: 1 / (1 + np.exp(-v))),
    ("FlexRsqrtGrad", lambda v: 1 / np.sqrt(v)), ("FlexSqrtGrad", np.sqrt),
    ("FlexReciprocalGrad", lambda v: 1 / v)])
def test_activation_grads_take_the_forward_output(op, forward):
    x = R.uniform(0.5, 2, (3, 4))
    dy = R.normal(size=x.shape)
    got = run_kernel(op, forward(x), dy)
    np.testing.assert_allclose(got, numeric_vjp(forward, x.copy(), dy), rtol=1e-6)


def test_erf_addn_zeros_like():
    from math import erf

    x = np.linspace(-3, 3, 13, dtype=np.float32)
    np.testing.assert_allclose(run_kernel("FlexErf", x), [erf(v) for v in x], atol=2e-7)
    a, b, c = (R.normal(size=(2, 3)) for _ in range(3))
    np.testing.assert_allclose(run_kernel("FlexAddN", a, b, c), a + b + c)
    assert not run_kernel("FlexZerosLike", a).any()


BN = {"epsilon": 1e-3, "data_format": "NHWC", "is_training": True}


def _bn_inputs():
    x = R.normal(size=(2, 3, 4, 5)) * 2 + 1
    return x, R.uniform(0.5, 2, 5), R.normal(size=5), R.normal(size=5), R.uniform(1, 2, 5)


@pytest.mark.parametrize("factor", [1.0, 0.01])
def test_fused_batch_norm_training_statistics(factor):
    x, scale, offset, mean, var = _bn_inputs()
    y, new_mean, new_var, saved_mean, saved_var, empty = run_kernel(
        "FlexFusedBatchNormV3", x, scale, offset, mean, var, exponential_avg_factor=factor,
        **BN)
    m, v = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - m) / np.sqrt(v + 1e-3) * scale + offset, rtol=1e-10)
    unbiased = x.var(axis=(0, 1, 2), ddof=1)
    np.testing.assert_allclose(new_mean, (1 - factor) * mean + factor * m, rtol=1e-10)
    np.testing.assert_allclose(new_var, (1 - factor) * var + factor * unbiased, rtol=1e-10)
    np.testing.assert_allclose(saved_mean, m, rtol=1e-10)
    np.testing.assert_allclose(saved_var, v, rtol=1e-10)
    assert empty.size == 0


@pytest.mark.parametrize("training", [True, False])
def test_fused_batch_norm_grad_against_finite_differences(training):
    x, scale, offset, mean, var = _bn_inputs()
    attrs = {**BN, "is_training": training}
    y, _, _, saved_mean, saved_var, reserve = run_kernel(
        "FlexFusedBatchNormV3", x, scale, offset, mean, var, **attrs)
    dy = R.normal(size=y.shape)
    dx, dscale, doffset, _, _ = run_kernel("FlexFusedBatchNormGradV3", dy, x, scale,
                                           saved_mean, saved_var, reserve, **attrs)

    def forward(which):
        def f(t):
            args = [x, scale, offset, mean, var]
            args[which] = t
            return run_kernel("FlexFusedBatchNormV3", *args, **attrs)[0]
        return f

    for got, k, theta in ((dx, 0, x), (dscale, 1, scale), (doffset, 2, offset)):
        np.testing.assert_allclose(got, numeric_vjp(forward(k), theta.copy(), dy),
                                   rtol=1e-5, atol=1e-7)


def test_tensor_lists_round_trip():
    t = R.normal(size=(3, 2)).astype(np.float32)
    shape = np.array([2], np.int32)
    lst = run_kernel("FlexTensorListFromTensor", t, shape)
    assert isinstance(lst.item(), TensorList)
    np.testing.assert_array_equal(run_kernel("FlexTensorListStack", lst, shape), t)
    np.testing.assert_array_equal(run_kernel("FlexTensorListGetItem", lst, np.int32(1), shape,
                                             element_dtype=np.float32), t[1])
    reserved = run_kernel("FlexTensorListReserve", shape, np.int32(3),
                          element_dtype=np.float32)
    one = run_kernel("FlexTensorListSetItem", reserved, np.int32(2), t[0])
    stacked = run_kernel("FlexTensorListStack", one, shape, element_dtype=np.float32)
    np.testing.assert_array_equal(stacked, [[0, 0], [0, 0], t[0]])  # unset reads as zeros
    assert run_kernel("FlexTensorListLength", one) == 3
    empty = run_kernel("FlexEmptyTensorList", shape, np.int32(-1), element_dtype=np.float32)
    pushed = run_kernel("FlexTensorListPushBack", empty, t[2])
    rest, last = run_kernel("FlexTensorListPopBack", pushed, shape, element_dtype=np.float32)
    np.testing.assert_array_equal(last, t[2])
    assert run_kernel("FlexTensorListLength", rest) == 0
    np.testing.assert_array_equal(run_kernel("FlexTensorListElementShape", lst), [2])
    total = run_kernel("FlexAddN", lst, run_kernel("FlexZerosLike", lst))
    np.testing.assert_array_equal(run_kernel("FlexTensorListStack", total, shape), t)
    with pytest.raises(ValueError, match="out of range"):
        run_kernel("FlexTensorListGetItem", lst, np.int32(3), shape)


def _loop_model() -> bytes:
    """main: while (i < n) { i += 1; acc *= 2 }; returns acc. An IF picks +1 or -1."""
    f32, i32, b = dtypes.FLOAT32, dtypes.INT32, dtypes.BOOL
    main = ir.Subgraph("main", [ir.Tensor("i", i32, ()), ir.Tensor("n", i32, ()),
                                ir.Tensor("acc", f32, (2,)), ir.Tensor("i_out", i32, ()),
                                ir.Tensor("n_out", i32, ()), ir.Tensor("acc_out", f32, (2,)),
                                ir.Tensor("flag", b, ()), ir.Tensor("signed", f32, (2,))],
                       [0, 1, 2, 6], [5, 7],
                       [ir.Node("while", (0, 1, 2), (3, 4, 5),
                                {"cond_subgraph_index": 1, "body_subgraph_index": 2}),
                        ir.Node("if", (6, 5), (7,),
                                {"then_subgraph_index": 3, "else_subgraph_index": 4})])
    cond = ir.Subgraph("cond", [ir.Tensor("i", i32, ()), ir.Tensor("n", i32, ()),
                                ir.Tensor("acc", f32, (2,)), ir.Tensor("go", b, ())],
                       [0, 1, 2], [3], [ir.Node("less", (0, 1), (3,))])
    body = ir.Subgraph("body", [ir.Tensor("i", i32, ()), ir.Tensor("n", i32, ()),
                                ir.Tensor("acc", f32, (2,)),
                                ir.Tensor("one", i32, (), data=np.array(1, np.int32)),
                                ir.Tensor("two", f32, (), data=np.array(2, np.float32)),
                                ir.Tensor("i2", i32, ()), ir.Tensor("acc2", f32, (2,))],
                       [0, 1, 2], [5, 1, 6], [ir.Node("add", (0, 3), (5,)),
                                              ir.Node("mul", (2, 4), (6,))])
    branches = [ir.Subgraph(name, [ir.Tensor("x", f32, (2,)), ir.Tensor("y", f32, (2,))],
                            [0], [1], [ir.Node(op, (0,), (1,))])
                for name, op in (("then", "abs"), ("else", "neg"))]
    sig = ir.Signature("run", 0, {"i": 0, "n": 1, "acc": 2, "flag": 6},
                       {"acc": 5, "signed": 7})
    return write_model(ir.Model([main, cond, body, *branches], [sig]))


def test_while_and_if_run_their_subgraphs():
    run = lt.Interpreter(model_content=_loop_model()).get_signature_runner("run")
    acc = np.array([1.5, -3.0], np.float32)
    out = run(i=np.int32(2), n=np.int32(5), acc=acc, flag=np.bool_(True))
    np.testing.assert_array_equal(out["acc"], acc * 8)
    np.testing.assert_array_equal(out["signed"], np.abs(acc * 8))
    out = run(i=np.int32(7), n=np.int32(5), acc=acc, flag=np.bool_(False))
    np.testing.assert_array_equal(out["acc"], acc)  # the body never ran
    np.testing.assert_array_equal(out["signed"], -acc)
