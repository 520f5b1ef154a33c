"""Every op's shape rule against its kernel.

For each row: with static input shapes the rule must give exactly the shapes the kernel
makes; with the first non-constant input's leading dim marked dynamic (-1, as a batch),
every dim the rule calls static must equal the kernel's, and must stay the same when that
input's leading dim really changes (a rule may only call a dim static if it is).
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import NodeInfo, TensorInfo, all_ops, lookup
from litetrain.ops.evaluate import evaluate, node_info

R = np.random.default_rng(5)


class C:
    """An operand whose value is known before running (a constant)."""

    def __init__(self, value):
        self.value = np.asarray(value)


def f(*shape):
    return R.uniform(-2, 2, shape).astype(np.float32)


def i(*values):
    return C(np.array(values, np.int32))


CONV = {"padding": 0, "stride_h": 2, "stride_w": 1}
POOL = {"padding": 1, "stride_h": 2, "stride_w": 2, "filter_height": 2, "filter_width": 2}
CASES = {
    "add": ("add", [f(3, 4), f(4)], {}),
    "mul_broadcast": ("mul", [f(3, 1, 4), f(2, 1)], {}),
    "div": ("div", [f(3, 4), C(f(1, 4) + 3)], {}),
    "maximum": ("maximum", [f(3, 4), C(np.float32(0.5))], {}),
    "add_n": ("add_n", [f(2, 3), f(2, 3), f(2, 3)], {}),
    "exp": ("exp", [f(2, 3)], {}),
    "relu6": ("relu6", [f(2, 3)], {}),
    "softmax": ("softmax", [f(4, 5)], {}),
    "gelu": ("gelu", [f(4, 5)], {}),
    "prelu": ("prelu", [f(2, 3, 4), C(f(4))], {}),
    "greater": ("greater", [f(3, 4), C(f(4))], {}),
    "logical_not": ("logical_not", [R.random((3, 2)) > 0.5], {}),
    "select": ("select", [R.random(3) > 0.5, f(3, 2), f(3, 2)], {}),
    "select_v2": ("select_v2", [R.random((3, 1)) > 0.5, f(3, 4), C(f(4))], {}),
    "where_xy": ("where", [R.random((3, 4)) > 0.5, f(3, 4), f(3, 4)], {}),
    "fully_connected": ("fully_connected", [f(6, 4), C(f(3, 4)), C(f(3))], {}),
    "fully_connected_flatten": ("fully_connected", [f(2, 3, 4), C(f(5, 12))], {}),
    "fully_connected_keep": ("fully_connected", [f(2, 3, 4), C(f(5, 4))],
                             {"keep_num_dims": True}),
    "batch_matmul": ("batch_matmul", [f(2, 3, 4), C(f(4, 5))], {}),
    "batch_matmul_adj": ("batch_matmul", [f(2, 4, 3), C(f(2, 5, 4))],
                         {"adj_x": True, "adj_y": True}),
    "conv_2d": ("conv_2d", [f(2, 7, 6, 3), C(f(4, 3, 3, 3)), C(f(4))], CONV),
    "conv_2d_valid_dilated": ("conv_2d", [f(1, 9, 9, 2), C(f(3, 3, 3, 2)), C(f(3))],
                              {**CONV, "padding": 1, "dilation_h_factor": 2}),
    "depthwise": ("depthwise_conv_2d", [f(2, 7, 6, 3), C(f(1, 3, 3, 6)), C(f(6))],
                  {**CONV, "depth_multiplier": 2}),
    "transpose_conv": ("transpose_conv", [i(2, 8, 10, 3), C(f(3, 3, 3, 2)), f(2, 4, 5, 2)],
                       {"padding": 0, "stride_h": 2, "stride_w": 2}),
    "max_pool": ("max_pool_2d", [f(2, 7, 6, 3)], POOL),
    "average_pool_same": ("average_pool_2d", [f(2, 7, 6, 3)], {**POOL, "padding": 0}),
    "mean": ("mean", [f(2, 3, 4), i(1)], {}),
    "sum_keep": ("sum", [f(2, 3, 4), i(0, -1)], {"keep_dims": True}),
    "reduce_prod": ("reduce_prod", [np.array([[2, 3], [4, 5]], np.int32), i(0)], {}),
    "arg_max": ("arg_max", [f(3, 5), i(1)], {}),
    "cumsum": ("cumsum", [f(3, 5), C(np.int32(1))], {"reverse": True}),
    "reshape": ("reshape", [f(4, 6), i(-1, 3, 2)], {}),
    "reshape_attr": ("reshape", [f(4, 6)], {"new_shape": np.array([2, 12], np.int32)}),
    "shape": ("shape", [f(4, 6)], {}),
    "rank": ("rank", [f(4, 6)], {}),
    "squeeze": ("squeeze", [f(3, 1, 2, 1)], {"squeeze_dims": np.array([1], np.int32)}),
    "expand_dims": ("expand_dims", [f(3, 2), i(-1)], {}),
    "transpose": ("transpose", [f(3, 2, 4), i(2, 0, 1)], {}),
    "cast": ("cast", [f(3, 2)], {}),
    "tile": ("tile", [f(3, 2), i(2, 3)], {}),
    "broadcast_to": ("broadcast_to", [f(1, 3), i(4, 3)], {}),
    "fill": ("fill", [i(2, 3), C(np.float32(1.5))], {}),
    "zeros_like": ("zeros_like", [f(3, 2)], {}),
    "range": ("range", [C(np.int32(1)), C(np.int32(9)), C(np.int32(3))], {}),
    "one_hot": ("one_hot", [np.array([1, 0, 2], np.int32), C(np.int32(4)),
                            C(np.float32(1)), C(np.float32(0))], {"axis": 0}),
    "slice": ("slice", [f(4, 5, 3), i(1, 0, 1), i(2, -1, 2)], {}),
    "strided_slice": ("strided_slice", [f(4, 5, 6), i(1, 0, 5), i(3, 0, 0), i(1, 1, -2)],
                      {"begin_mask": 2, "end_mask": 6}),
    "strided_slice_shrink": ("strided_slice", [f(4, 5, 6), i(0, 1), i(0, 4), i(1, 2)],
                             {"begin_mask": 1, "end_mask": 1, "shrink_axis_mask": 0}),
    "concatenation": ("concatenation", [f(2, 3), C(f(2, 2))], {"axis": 1}),
    "pack": ("pack", [f(2, 3), f(2, 3)], {"axis": 1, "values_count": 2}),
    "unpack": ("unpack", [f(3, 2, 4)], {"axis": 1, "num": 2}),
    "split": ("split", [C(np.int32(1)), f(2, 6)], {"num_splits": 3}),
    "split_v": ("split_v", [f(3, 7), i(2, -1, 3), C(np.int32(1))], {"num_splits": 3}),
    "pad": ("pad", [f(2, 3), C(np.array([[1, 0], [2, 1]], np.int32))], {}),
    "mirror_pad": ("mirror_pad", [f(3, 4), C(np.array([[1, 1], [2, 1]], np.int32))], {}),
    "reverse_v2": ("reverse_v2", [f(2, 3, 4), i(1)], {}),
    "gather": ("gather", [f(5, 3), C(np.array([[4, 0], [1, 1]], np.int32))], {}),
    "gather_axis1": ("gather", [f(2, 5, 3), C(np.array([4, 0, 2], np.int32))], {"axis": 1}),
    "gather_nd": ("gather_nd", [f(4, 3, 2), C(np.array([[3, 1], [0, 2]], np.int32))], {}),
    "space_to_batch": ("space_to_batch_nd", [f(2, 4, 6, 3), i(2, 3),
                                             C(np.array([[0, 0], [1, 2]], np.int32))], {}),
    "batch_to_space": ("batch_to_space_nd", [f(12, 2, 3, 3), i(2, 3),
                                             C(np.array([[0, 1], [1, 0]], np.int32))], {}),
    "resize_bilinear": ("resize_bilinear", [f(2, 5, 7, 2), i(9, 4)], {}),
    "resize_nearest": ("resize_nearest_neighbor", [f(2, 5, 7, 2), i(3, 14)], {}),
    "quantize_free_dequantize": ("dequantize", [f(3, 2).astype(np.float16)], {}),
    "relu_grad": ("FlexReluGrad", [f(3, 4), f(3, 4)], {}),
    "bias_add_grad": ("FlexBiasAddGrad", [f(2, 3, 4)], {}),
    "conv_backprop_input": ("FlexConv2DBackpropInput", [i(2, 7, 6, 3), C(f(3, 3, 3, 4)),
                                                        f(2, 4, 6, 4)],
                            {"strides": [1, 2, 1, 1], "padding": b"SAME"}),
    "avg_pool_grad": ("FlexAvgPoolGrad", [i(2, 4, 4, 3), f(2, 2, 2, 3)],
                      {"ksize": [1, 2, 2, 1], "strides": [1, 2, 2, 1], "padding": b"VALID"}),
}
OUT_DTYPES = {"cast": [np.int32]}


def _infos(operands, arrays, dynamic: int | None):
    infos = []
    for k, (o, a) in enumerate(zip(operands, arrays, strict=True)):
        shape = tuple(a.shape)
        if k == dynamic:
            shape = (-1, *shape[1:])
        infos.append(TensorInfo(a.dtype, shape, a if isinstance(o, C) else None))
    return tuple(infos)


def _rule(op, attrs, operands, arrays, dynamic=None):
    base = node_info(op, arrays, attrs)
    info = type(base)(op, base.attrs, _infos(operands, arrays, dynamic), base.outputs)
    return lookup(op).shape(info)


def _outputs(op, arrays, attrs):
    out = evaluate(op, *arrays, attrs=attrs, out_dtypes=OUT_DTYPES.get(op, ()))
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("case", sorted(CASES))
def test_shape_rule_matches_kernel(case):
    op, operands, attrs = CASES[case]
    arrays = [o.value if isinstance(o, C) else o for o in operands]
    outs = _outputs(op, arrays, attrs)
    static = _rule(op, attrs, operands, arrays)
    assert [s.shape for s in static] == [o.shape for o in outs]
    dynamic = next((k for k, o in enumerate(operands) if not isinstance(o, C)
                    and np.ndim(o) > 0), None)
    if dynamic is None:
        return
    shaped = _rule(op, attrs, operands, arrays, dynamic)
    for s, o in zip(shaped, outs, strict=True):
        assert len(s.shape) == o.ndim and all(d in (-1, e) for d, e in zip(s.shape, o.shape,
                                                                           strict=True))
    grown = list(arrays)
    grown[dynamic] = np.concatenate([arrays[dynamic], arrays[dynamic][:1]])
    try:
        bigger = _outputs(op, grown, attrs)
    except Exception:  # the other operands fix that dim: nothing to compare
        return
    for s, o, b in zip(shaped, outs, bigger, strict=True):
        for d, e, g in zip(s.shape, o.shape, b.shape, strict=True):
            assert d == -1 or e == g, f"{case}: rule says {s.shape}, sizes {o.shape} -> {b.shape}"


def test_shape_vectors_carry_known_values():
    """SHAPE of a batch-dynamic tensor, then the GATHER a MEAN gradient builds from it."""
    i32 = np.dtype(np.int32)
    x = TensorInfo(np.dtype(np.float32), (-1, 3, 4))
    (shape,) = lookup("shape").shape(NodeInfo("shape", {"out_type": 2}, (x,), ()))
    assert shape.shape == (3,) and shape.known == (None, 3, 4)
    vec = TensorInfo(i32, (3,), None, shape.known)
    for picked, want in (([1, 2], (3, 4)), ([0, 2], (None, 4))):
        idx = TensorInfo(i32, (2,), np.array(picked, np.int32))
        (g,) = lookup("gather").shape(NodeInfo("gather", {"axis": 0, "batch_dims": 0},
                                               (vec, idx), ()))
        assert g.known == want
    (n,) = lookup("reduce_prod").shape(NodeInfo(
        "reduce_prod", {"keep_dims": False}, (TensorInfo(i32, (2,), None, (3, 4)),
                                              TensorInfo(i32, (1,), np.array([0], np.int32))),
        ()))
    assert n.shape == () and n.known == (12,)


def test_every_op_declares_a_shape_rule():
    # READ_VARIABLE and Restore return whatever the variable or file holds, IF whatever the
    # branch taken returns: their shapes come from the file (or, while tracing, from the
    # values made).
    exempt = {"read_variable", "FlexRestore", "FlexRestoreV2", "if"}
    assert sorted(n for n, o in all_ops().items() if o.shape is None) == sorted(exempt)
