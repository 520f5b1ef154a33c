"""Differential tests: one-op models run in litetrain and in the official LiteRT runtime.

Each row builds a model with a single node (constants baked in, the rest fed through a
signature), runs it in both, and compares. LiteRT is a test-only dependency; without it
these tests are skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

import litetrain
from litetrain import dtypes, ir, options
from litetrain.ops import lookup
from litetrain.ops.evaluate import evaluate
from litetrain.tflite.writer import write_model

litert = pytest.importorskip("ai_edge_litert.interpreter")
R = np.random.default_rng(3)


class C:
    """Marks an operand baked into the model as a constant."""

    def __init__(self, value):
        self.value = np.asarray(value)


def one_op_model(op: str, operands: list, attrs: dict, out_dtypes=()
                 ) -> tuple[bytes, dict[str, np.ndarray]]:
    opdef = lookup(op)
    full = options.defaults(opdef.options) if opdef.options else {}
    full.update(attrs)
    arrays = [o.value if isinstance(o, C) else o for o in operands]
    outs = evaluate(op, *arrays, attrs=full, out_dtypes=out_dtypes)
    outs = outs if isinstance(outs, tuple) else (outs,)
    tensors, feeds, sig_inputs = [], {}, {}
    for k, (operand, arr) in enumerate(zip(operands, arrays, strict=True)):
        is_const = isinstance(operand, C)
        tensors.append(ir.Tensor(f"in{k}", dtypes.from_numpy(arr.dtype), arr.shape,
                                 data=arr if is_const else None))
        if not is_const:
            sig_inputs[f"in{k}"] = k
            feeds[f"in{k}"] = arr
    outputs = {}
    for j, o in enumerate(outs):
        o = np.asarray(o)
        outputs[f"out{j}"] = len(tensors)
        tensors.append(ir.Tensor(f"out{j}", dtypes.from_numpy(o.dtype), o.shape))
    node = ir.Node(op, tuple(range(len(operands))), tuple(outputs.values()), full)
    sg = ir.Subgraph("main", tensors, list(sig_inputs.values()), list(outputs.values()), [node])
    model = ir.Model([sg], [ir.Signature("run", 0, sig_inputs, outputs)])
    return write_model(model), feeds


def both(op: str, operands: list, out_dtypes=(), **attrs):
    data, feeds = one_op_model(op, operands, attrs, out_dtypes)
    ours = litetrain.Interpreter(model_content=data).get_signature_runner("run")(**feeds)
    ref = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    ).get_signature_runner("run")(**feeds)
    return ours, ref


def f32(*shape, lo=-3.0, hi=3.0):
    return R.uniform(lo, hi, shape).astype(np.float32)


def i32(*values):
    return C(np.array(values, np.int32))


IMG = f32(1, 5, 7, 2)
CASES = {
    "reverse_v2": ("reverse_v2", [f32(2, 3, 4), i32(1)], {}),
    "reverse_v2_two_axes": ("reverse_v2", [f32(2, 3, 4), i32(1, 2)], {}),
    "resize_bilinear": ("resize_bilinear", [IMG, i32(9, 4)], {}),
    "resize_bilinear_align": ("resize_bilinear", [IMG, i32(9, 13)], {"align_corners": True}),
    "resize_bilinear_half": ("resize_bilinear", [IMG, i32(8, 3)],
                             {"half_pixel_centers": True}),
    "resize_nearest": ("resize_nearest_neighbor", [IMG, i32(9, 4)], {}),
    "resize_nearest_align": ("resize_nearest_neighbor", [IMG, i32(9, 13)],
                             {"align_corners": True}),
    "resize_nearest_half": ("resize_nearest_neighbor", [IMG, i32(8, 3)],
                            {"half_pixel_centers": True}),
    "mirror_reflect": ("mirror_pad", [f32(3, 4), C(np.array([[1, 2], [2, 1]], np.int32))],
                       {"mode": 0}),
    "mirror_symmetric": ("mirror_pad", [f32(3, 4), C(np.array([[2, 1], [0, 3]], np.int32))],
                         {"mode": 1}),
    "strided_masks": ("strided_slice", [f32(4, 5, 6), i32(1, 0, 5), i32(3, 0, 0),
                                        i32(1, 1, -2)],
                      {"begin_mask": 2, "end_mask": 6, "shrink_axis_mask": 0}),
    "strided_shrink": ("strided_slice", [f32(4, 5, 6), i32(2, 1), i32(3, 4), i32(1, 2)],
                       {"shrink_axis_mask": 1}),
    "strided_ellipsis_newaxis": ("strided_slice", [f32(4, 5, 6), i32(0, 0, 1), i32(0, 0, 4),
                                                   i32(1, 1, 1)],
                                 {"ellipsis_mask": 1, "new_axis_mask": 2}),
    "gather_batch": ("gather", [f32(2, 5, 3), C(np.array([[4, 0], [1, 1]], np.int32))],
                     {"axis": 1, "batch_dims": 1}),
    "gather_nd": ("gather_nd", [f32(4, 3, 2), C(np.array([[3, 1], [0, 2]], np.int32))], {}),
    "space_to_batch": ("space_to_batch_nd", [f32(2, 4, 6, 3), i32(2, 3),
                                             C(np.array([[0, 0], [1, 2]], np.int32))], {}),
    "batch_to_space": ("batch_to_space_nd", [f32(12, 2, 3, 3), i32(2, 3),
                                             C(np.array([[0, 1], [1, 0]], np.int32))], {}),
    "transpose_conv_same": ("transpose_conv", [i32(1, 8, 10, 3), C(f32(3, 3, 3, 2)),
                                               f32(1, 4, 5, 2)],
                            {"padding": 0, "stride_h": 2, "stride_w": 2}),
    "transpose_conv_valid": ("transpose_conv", [i32(1, 9, 11, 2), C(f32(2, 3, 3, 2)),
                                                f32(1, 4, 5, 2)],
                             {"padding": 1, "stride_h": 2, "stride_w": 2}),
    "depthwise_dilated": ("depthwise_conv_2d", [f32(1, 9, 9, 2), C(f32(1, 3, 3, 4)),
                                                C(f32(4))],
                          {"padding": 0, "stride_h": 1, "stride_w": 1, "depth_multiplier": 2,
                           "dilation_h_factor": 2, "dilation_w_factor": 2}),
    "conv_strided_same": ("conv_2d", [f32(2, 7, 8, 3), C(f32(4, 3, 3, 3)), C(f32(4))],
                          {"padding": 0, "stride_h": 2, "stride_w": 2,
                           "fused_activation_function": 3}),
    "avg_pool_same": ("average_pool_2d", [f32(1, 7, 6, 2)],
                      {"padding": 0, "stride_h": 2, "stride_w": 2, "filter_height": 3,
                       "filter_width": 3}),
    "max_pool_same": ("max_pool_2d", [f32(1, 7, 6, 2)],
                      {"padding": 0, "stride_h": 2, "stride_w": 2, "filter_height": 3,
                       "filter_width": 2}),
    "l2_norm": ("l2_normalization", [f32(3, 8)], {}),
    "gelu": ("gelu", [f32(4, 6)], {}),
    "gelu_approx": ("gelu", [f32(4, 6)], {"approximate": True}),
    "hard_swish": ("hard_swish", [f32(4, 6, lo=-5, hi=5)], {}),
    "elu": ("elu", [f32(4, 6)], {}),
    "leaky_relu": ("leaky_relu", [f32(4, 6)], {"alpha": 0.15}),
    "prelu": ("prelu", [f32(2, 3, 4), C(f32(4, lo=0, hi=1))], {}),
    "round_halves": ("round", [C(np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.7], np.float32))
                               .value], {}),
    "floor_mod_float": ("floor_mod", [f32(3, 4), C(np.float32(-1.3))], {}),
    "floor_div_int": ("floor_div", [np.array([-7, 7, -8, 9], np.int32),
                                    C(np.array([2, -2, 3, -4], np.int32))], {}),
    "div_int": ("div", [np.array([-7, 7, -8, 9], np.int32),
                        C(np.array([2, -2, 3, -4], np.int32))], {}),
    "softmax_beta": ("softmax", [f32(3, 7)], {"beta": 0.5}),
    "log_softmax": ("log_softmax", [f32(3, 7)], {}),
    "mean_keep": ("mean", [f32(2, 3, 4), i32(0, 2)], {"keep_dims": True}),
    "reduce_max_neg_axis": ("reduce_max", [f32(2, 3, 4), i32(-1)], {}),
    "sum_int32": ("sum", [np.arange(12, dtype=np.int32).reshape(3, 4), i32(1)], {}),
    "reduce_prod_int32": ("reduce_prod", [np.array([[2, 3], [4, 5]], np.int32), i32(0)], {}),
    "arg_max": ("arg_max", [f32(3, 5), i32(1)], {"output_type": 2}),
    "split_v": ("split_v", [f32(3, 7), i32(2, -1, 3), C(np.int32(1))], {"num_splits": 3}),
    "cumsum": ("cumsum", [f32(3, 5), C(np.int32(1))], {}),
    "cumsum_exclusive_reverse": ("cumsum", [f32(4, 3), C(np.int32(0))],
                                 {"exclusive": True, "reverse": True}),
    "squared_difference": ("squared_difference", [f32(2, 3), f32(3)], {}),
    "select_v2": ("select_v2", [R.random((2, 1, 4)) > 0.5, f32(2, 3, 4), f32(1, 3, 1)], {}),
    "fully_connected_keep": ("fully_connected", [f32(2, 3, 6), C(f32(5, 6)), C(f32(5))],
                             {"keep_num_dims": True, "fused_activation_function": 1}),
    "batch_matmul_adj": ("batch_matmul", [f32(2, 4, 3), f32(2, 5, 4)],
                         {"adj_x": True, "adj_y": True}),
    "tile": ("tile", [f32(2, 3), i32(2, 3)], {}),
    "pad": ("pad", [f32(2, 3), C(np.array([[1, 0], [2, 1]], np.int32))], {}),
    "range": ("range", [C(np.int32(2)), C(np.int32(17)), C(np.int32(4))], {}),
    "cast_f2i": ("cast", [f32(2, 5, lo=-9, hi=9)], {}),
    "one_hot": ("one_hot", [np.array([[0, 3], [2, 7]], np.int32), C(np.int32(5)),
                            C(np.float32(2.0)), C(np.float32(-1.0))], {"axis": -1}),
    "one_hot_axis0": ("one_hot", [np.array([1, 0, 2], np.int32), C(np.int32(4)),
                                  C(np.float32(1.0)), C(np.float32(0.0))], {"axis": 0}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_litert(case):
    op, operands, attrs = CASES[case]
    out_dtypes = [np.int32] if op == "cast" else ()
    ours, ref = both(op, operands, out_dtypes, **attrs)
    assert set(ours) == set(ref)
    for k in ours:
        assert ours[k].shape == ref[k].shape, (k, ours[k].shape, ref[k].shape)
        np.testing.assert_allclose(ours[k], ref[k], rtol=2e-5, atol=2e-5, err_msg=case)
