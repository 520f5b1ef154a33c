"""A RELU / RELU6 after a convolution runs as its fused activation (runtime/
conv_activation.py): train and inference steps stay bit-identical with
``experimental_preserve_all_tensors``, with the NumPy kernels and with the compiled ones
(the ``[fast]`` extra), and the pass leaves alone what it must."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup
from litetrain.runtime import conv_activation
from litetrain.runtime.step import Step

from .test_simplify import _same_run, _train_infer_calls

# conv results that are exactly 0 or -0 and NaN inputs come through (RELU's zero signs)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _spy(monkeypatch) -> list[str]:
    seen: list[str] = []
    original = conv_activation.fuse_conv_activations

    def spy(steps, values, outputs):
        out = original(steps, values, outputs)
        seen.extend(s.op for s in out if "+relu" in s.op)
        return out
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_conv_activations", spy)
    return seen


@pytest.mark.parametrize("compiled", [False, True])
def test_cnn_train_step_is_identical_with_fused_relus(compiled, monkeypatch):
    if compiled:
        if fast.kernels("conv") is None:
            pytest.skip("the [fast] extra (numba) is not installed")
        for family in ("conv", "train"):
            fast.kernels(family).wait()
    else:
        monkeypatch.setattr(fast, "kernels", lambda family: None)
    seen = _spy(monkeypatch)
    model = lt.nn.Sequential([
        lt.nn.Conv2D(8, 3, padding="same", activation="relu", input_shape=(12, 12, 3)),
        lt.nn.DepthwiseConv2D(3, padding="same", activation="relu"),
        lt.nn.Conv2D(8, 1, activation="relu6"),
        lt.nn.Conv2D(6, 3, strides=2, activation="relu"),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    _same_run(lt.convert(m), _train_infer_calls((12, 12, 3), 3, [20, 20, 1, 20]))
    # (RELU6's gradient reads its input: fused in the inference signature only)
    assert set(seen) == {"conv_2d+relu", "depthwise_conv_2d+relu", "conv_2d+relu6"}


def _step(op, inputs, out, settings=None, fresh=True):
    return Step(index=out, op=op, kernel=lookup(op).kernel, stateful=False, inputs=inputs,
                outputs=(out,), out_dtypes=(np.dtype(np.float32),),
                settings={} if settings is None else settings, fresh=fresh)


def test_results_read_elsewhere_or_not_float32_are_left_alone():
    x = np.zeros((2, 4, 4, 3), np.float32)
    w = np.zeros((5, 1, 1, 3), np.float32)
    y = np.zeros((2, 4, 4, 5), np.float32)
    values = [x, w, y, y, y]
    attrs = {"padding": 1, "stride_h": 1, "stride_w": 1}
    steps = [_step("conv_2d", (0, 1), 2, attrs), _step("relu", (2,), 3)]
    fused = conv_activation.fuse_conv_activations(steps, values, set())
    assert [s.op for s in fused] == ["conv_2d+relu"]
    assert fused[0].outputs == (3,) and fused[0].settings["fused_activation_function"] == 1
    assert "fused_activation_function" not in attrs
    # the result read by another step too, or returned: left alone
    reread = [*steps, _step("add", (2, 3), 4)]
    assert len(conv_activation.fuse_conv_activations(reread, values, set())) == 3
    assert len(conv_activation.fuse_conv_activations(steps, values, {2})) == 2
    # an activation already fused, or float64 operands: left alone
    act = [_step("conv_2d", (0, 1), 2, {**attrs, "fused_activation_function": 3}),
           _step("relu", (2,), 3)]
    assert len(conv_activation.fuse_conv_activations(act, values, set())) == 2
    wide = [x.astype(np.float64), w, y, y, y]
    assert len(conv_activation.fuse_conv_activations(steps, wide, set())) == 2


def test_constant_filter_keeps_its_layout_and_the_bits(rng):
    from litetrain.ops import compiled

    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    x[0, 0, 0] = np.nan
    attrs = {"padding": 0, "stride_h": 1, "stride_w": 1}
    settings = compiled.Compiled(attrs, w, fast.kernels("conv"), False)
    conv = lookup("conv_2d")
    y = conv.kernel(settings, x, w, b)
    values = [x, w, b, y, y]
    steps = [Step(index=3, op="conv_2d", kernel=conv.kernel, stateful=False, inputs=(0, 1, 2),
                  outputs=(3,), out_dtypes=(np.dtype(np.float32),), settings=settings,
                  fresh=True), _step("relu", (3,), 4)]
    (fused,) = conv_activation.fuse_conv_activations(steps, values, set())
    assert fused.settings.gemm is settings.gemm and fused.settings.filter is w
    want = lookup("relu").kernel({}, y)
    got = fused.kernel(fused.settings, x, w, b)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    if fast.kernels("conv") is not None and fast.kernels("conv").wait() is not None:
        got = fused.kernel(fused.settings, x, w, b)  # the compiled kernels' epilogue
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
