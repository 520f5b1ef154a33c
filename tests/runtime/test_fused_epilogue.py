"""HARD_SWISH fused into the CONV_2D / DEPTHWISE_CONV_2D / ADD making its input
(:mod:`litetrain.runtime.epilogue`) changes nothing but speed.

* Kernel level: CONV_2D with a fused HARD_SWISH (compiled epilogue per GEMM block, or
  NumPy) against the two kernels run one after the other, bit for bit, over geometries,
  chunk sizes, activations, bias forms and IEEE specials.
* Model level: an authored model with every fusable and non-fusable pattern gives the
  bits of ``experimental_preserve_all_tensors`` (no rewrites), and the fusions happen
  exactly where they may; the MobileNetV3 fixture fuses its 18 HARD_SWISH nodes.
* Squeeze-and-excitation MULs ``[n, h, w, c] * [n, 1, 1, c]`` run compiled
  (:mod:`litetrain.runtime.se_scale`): the MUL's bits, either operand order, in place.
* A MUL by one value fused into the CONV_2D making its other operand: the bits of the
  two kernels, on every path; only in that operand order, only for a result read once.
* An input rescaling (MUL/ADD by constants) fused into the patch gathering of the
  convolution reading it (:mod:`litetrain.runtime.prologue`): the unrewritten bits, and
  fused exactly where it may be.
"""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import compiled, conv_gemm, fast
from litetrain.ops.common import SAME, VALID
from litetrain.ops.conv import conv_2d
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

from ..conftest import FIXTURES

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # specials on purpose

_CONV = fast.kernels("conv")
_ACT = fast.kernels("activations")
HAVE_NUMBA = _CONV is not None and _ACT is not None  # the [fast] extra, not switched off


@pytest.fixture(autouse=True)
def _kernels_loaded() -> None:
    """With numba the tests compare the compiled kernels too: wait for them here, not at
    import (collection must not compile)."""
    if HAVE_NUMBA:
        assert _CONV.wait() is not None and _ACT.wait() is not None


def _attrs(k, stride, padding, act):
    return {"stride_h": stride, "stride_w": stride, "dilation_h_factor": 1,
            "dilation_w_factor": 1, "padding": padding, "fused_activation_function": act}


def _conv_case(case, act, with_kernels: bool, rng):
    """A CONV_2D node of ``CASES``' geometry (input with IEEE specials, random filter and
    bias; the grouped case's filter has half the input's depth): (settings, attrs, x, w,
    b)."""
    n, h, wd, c, o, k, stride, padding = case
    x = with_specials(rng, (n, h, wd, c))
    ci = 3 if (k, c) == (3, 6) else c  # the grouped case
    w = rng.standard_normal((o, k, k, ci)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) * 3
    attrs = _attrs(k, stride, padding, act)
    return _settings("conv_2d", [x, w, b], attrs, with_kernels), attrs, x, w, b


def _settings(op, inputs, attrs, with_kernels: bool):
    s = lookup(op).settings(node_info(op, inputs, attrs))
    if not with_kernels:
        if isinstance(s, compiled.Compiled):
            s.loader = None
            return s
        return dict(attrs)  # HARD_SWISH: its attrs, NumPy
    if with_kernels:
        assert s.loader.wait() is not None
    return s


def _hard_swish(settings, y):
    return lookup("hard_swish").kernel(settings, y)


# (batch, h, w, c, out, kernel, stride, padding): the stem, pointwise in one chunk and in
# several, a strided 1x1, a 5x5, a grouped convolution (c = 2 * filter depth).
CASES = [(2, 20, 18, 3, 16, 3, 2, SAME), (1, 6, 6, 24, 72, 1, 1, SAME),
         (2, 16, 16, 16, 48, 1, 1, SAME), (2, 9, 9, 8, 12, 1, 2, SAME),
         (2, 11, 10, 5, 7, 5, 1, VALID), (2, 7, 7, 6, 4, 3, 1, SAME)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act", [0, 1, 3, 4])  # NONE, RELU, RELU6, TANH
@pytest.mark.parametrize("with_kernels", [True, False] if HAVE_NUMBA else [False])
def test_conv_2d_with_fused_hard_swish_gives_the_two_kernels_bits(case, act, with_kernels,
                                                                  rng, monkeypatch):
    s, attrs, x, w, b = _conv_case(case, act, with_kernels, rng)
    y = conv_2d(s, x, w, b)
    hs = _settings("hard_swish", [y], {}, with_kernels)
    for chunk in (600, 1 << 19):
        monkeypatch.setattr(conv_gemm, "CHUNK_BYTES", chunk)
        for bias in (b, None, np.float32(0.5)):
            want = _hard_swish(hs, conv_2d(s, x, w, bias))
            same_bits(conv_2d(s, x, w, bias, hard_swish=hs), want)
            same_bits(want, _hard_swish({}, conv_2d(attrs, x, w, bias)))  # plain NumPy


def _conv(g, x, o, k, stride=1, act=0, seed=0):
    r = np.random.default_rng(seed)
    w = r.standard_normal((o, k, k, x.shape[3])).astype(np.float32) / k
    b = r.standard_normal(o).astype(np.float32)
    return g.op("conv_2d", x, g.const(w), g.const(b), padding=SAME, stride_h=stride,
                stride_w=stride, fused_activation_function=act)


def _depthwise(g, x, seed=1):
    r = np.random.default_rng(seed)
    c = x.shape[3]
    return g.op("depthwise_conv_2d", x, g.const(r.standard_normal((1, 3, 3, c)).astype(
        np.float32)), g.const(r.standard_normal(c).astype(np.float32)), padding=SAME,
        stride_h=1, stride_w=1, depth_multiplier=1)


class _Blocks(lt.Module):
    """Every pattern: fusable (conv, depthwise whose HARD_SWISH is read twice, add) and
    not (a conv result read twice, a conv result that is a signature output)."""

    @lt.signature(lt.TensorSpec([None, 12, 12, 3], name="x"))
    def infer(self, x):
        g = x.graph
        stem = g.op("hard_swish", _conv(g, x, 8, 3, stride=2))  # fused (stem)
        dw = g.op("hard_swish", _depthwise(g, stem))  # fused, then read twice
        pooled = g.op("mean", dw, g.const(np.array([1, 2], np.int32)), keep_dims=True)
        se = g.op("mul", dw, g.op("logistic", pooled))
        pw = _conv(g, se, 8, 1, act=3, seed=2)
        added = g.op("hard_swish", g.op("add", pw, stem))  # fused ADD
        twice = _conv(g, added, 8, 1, seed=3)  # read by HARD_SWISH and ADD: not fused
        mixed = g.op("add", g.op("hard_swish", twice), twice)
        last = _conv(g, mixed, 4, 1, seed=4)  # a signature output: not fused
        return {"y": g.op("hard_swish", last), "last": last}


def _ops(it) -> list[str]:
    (plan,) = it._plans.values()
    steps = next(iter(plan._per_shapes.values()))[0]  # the first input shapes' steps
    return [t.op for s in steps  # (a float program's steps inside it)
            for t in (s.settings.steps if s.op == "float_program" else (s,))]


def _fused_ops(it) -> list[str]:
    return [op for op in _ops(it) if "hard_swish" in op]


@pytest.mark.parametrize("jit", [True, False] if HAVE_NUMBA else [False])
def test_fused_hard_swish_gives_the_unrewritten_bits(jit, rng, monkeypatch):
    if not jit:
        monkeypatch.setattr(compiled, "applies", lambda *args: False)
    data = lt.convert(_Blocks())
    fast_it = lt.Interpreter(model_content=data)
    plain = lt.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    for n in (3, 3, 1, 3, 1):
        x = with_specials(rng, (n, 12, 12, 3))
        a = fast_it.get_signature_runner("infer")(x=x)
        b = plain.get_signature_runner("infer")(x=x)
        for name in b:
            same_bits(a[name], b[name])
    assert sorted(_fused_ops(fast_it)) == sorted([
        "conv_2d+hard_swish", "depthwise_conv_2d+hard_swish", "add+hard_swish",
        "hard_swish", "hard_swish"])


def test_mobilenet_v3_fuses_its_hard_swish_rescaling_and_se_scaling():
    it = lt.Interpreter(model_path=FIXTURES / "tf_quantized" / "mobilenet_v3_small" /
                        "float.tflite")
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1, 96, 96, 3), np.float32))
    it.invoke()
    ops = _fused_ops(it)
    # the stem also takes the input's Rescaling (with the [fast] extra: see .prologue)
    assert ops.count("mul+add+conv_2d+hard_swish") == (1 if HAVE_NUMBA else 0)
    assert ops.count("conv_2d+hard_swish") == (9 if HAVE_NUMBA else 10)
    assert ops.count("depthwise_conv_2d+hard_swish") == 8
    assert "hard_swish" not in ops
    assert _ops(it).count("conv_2d+mul") == 9  # the hard-sigmoids' / 6
    if HAVE_NUMBA:  # the nine squeeze-and-excitation products
        assert _ops(it).count("mul[per_image_channels]") == 9


@pytest.mark.skipif(not HAVE_NUMBA, reason="the [fast] extra (numba) is not installed")
@pytest.mark.parametrize("shape", [(3, 5, 4, 16), (1, 3, 3, 7), (2, 1, 2, 33)])
def test_squeeze_and_excitation_mul_gives_the_mul_bits(shape, rng):
    from litetrain.runtime import se_scale
    from litetrain.runtime.step import Step

    mul = lookup("mul")
    n, c = shape[0], shape[3]
    x, v = with_specials(rng, shape), with_specials(rng, (n, 1, 1, max(c, 4)))[..., :c].copy()
    for big_pos in (0, 1):
        values = [x, v, np.zeros(shape, np.float32)]
        step = Step(0, "mul", mul.kernel, False, (0, 1)[::1 - 2 * big_pos], (2,),
                    (np.dtype(np.float32),), {"fused_activation_function": 0}, True,
                    mul.in_place)
        scaled = se_scale.scale_per_image_channels([step], values)[0]
        assert scaled.op == "mul[per_image_channels]"
        args = (x, v) if big_pos == 0 else (v, x)
        for _ in range(3):  # before and after the compiled kernel is used
            same_bits(scaled.kernel(scaled.settings, *args), mul.kernel({}, *args))
        into = scaled.in_place(big_pos)
        assert scaled.in_place(1 - big_pos) is None
        copy = x.copy()
        args = (copy, v) if big_pos == 0 else (v, copy)
        got = into(scaled.settings, *args)
        assert got is copy
        same_bits(got, mul.kernel({}, *((x, v) if big_pos == 0 else (v, x))))
        # other arrays than prepared for: the MUL's own kernel
        other = (x[:, :1], v) if big_pos == 0 else (v, x[:, :1])
        same_bits(scaled.kernel(scaled.settings, *other), mul.kernel({}, *other))
    # one pixel per image: a plain elementwise MUL, left alone
    values = [x[:, :1, :1].copy(), v, np.zeros((n, 1, 1, c), np.float32)]
    step = Step(0, "mul", mul.kernel, False, (0, 1), (2,), (np.dtype(np.float32),),
                {"fused_activation_function": 0}, True, mul.in_place)
    assert se_scale.scale_per_image_channels([step], values)[0] is step


def _scalar(g, v):
    return g.const(np.array(v, np.float32))


class _Rescaled(lt.Module):
    """Input rescalings before convolutions: MUL then ADD (Keras' Rescaling) into a
    3×3 stride-2 stem with a fused HARD_SWISH, MUL alone and ADD alone into 3×3
    convolutions; left alone: a rescaling read twice, one before a 1×1 convolution."""

    @lt.signature(lt.TensorSpec([None, 13, 12, 3], name="x"))
    def infer(self, x):
        g = x.graph
        stem = g.op("hard_swish", _conv(g, g.op("add", g.op("mul", x, _scalar(g, 1 / 127.5)),
                                                _scalar(g, [-1.0])), 8, 3, stride=2))
        scaled = _conv(g, g.op("mul", stem, _scalar(g, [[[[0.5]]]])), 4, 3, seed=5)
        shifted = _conv(g, g.op("add", stem, _scalar(g, -0.0)), 4, 3, act=1, seed=6)
        twice = g.op("mul", stem, _scalar(g, 3.0))
        kept = _conv(g, twice, 4, 3, seed=7)  # its MUL's result is also an output
        pointwise = _conv(g, g.op("mul", stem, _scalar(g, 2.0)), 4, 1, seed=8)
        return {"scaled": scaled, "shifted": shifted, "twice": twice, "kept": kept,
                "pointwise": pointwise}


@pytest.mark.parametrize("jit", [True, False] if HAVE_NUMBA else [False])
def test_input_rescaling_fused_into_the_patches_gives_the_unrewritten_bits(jit, rng,
                                                                           monkeypatch):
    if not jit:
        monkeypatch.setattr(compiled, "applies", lambda *args: False)
    data = lt.convert(_Rescaled())
    fast_it = lt.Interpreter(model_content=data)
    plain = lt.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    for n in (2, 2, 1, 2):
        x = with_specials(rng, (n, 13, 12, 3)) * np.float32(40)
        a = fast_it.get_signature_runner("infer")(x=x)
        b = plain.get_signature_runner("infer")(x=x)
        for name in b:
            same_bits(a[name], b[name])
    ops = _ops(fast_it)
    if not HAVE_NUMBA:  # (fused only where compiled patch gathering can run)
        assert not [op for op in ops if "+conv_2d" in op]
        return
    assert sorted(op for op in ops if "+conv_2d" in op) == [
        "add+conv_2d", "mul+add+conv_2d+hard_swish", "mul+conv_2d"]
    assert ops.count("conv_2d") == 2 and ops.count("mul") == 2


def test_tf_lite_float_order_and_mixed_types_are_left_alone(rng):
    """Under TF Lite's own float order (builtin resolvers) HARD_SWISH and the
    convolutions keep their kernels; nothing is fused, results as without rewrites."""
    data = lt.convert(_Blocks())
    kw = {"experimental_op_resolver_type": lt.OpResolverType.BUILTIN_REF}
    fast_it = lt.Interpreter(model_content=data, **kw)
    plain = lt.Interpreter(model_content=data, experimental_preserve_all_tensors=True, **kw)
    for n in (2, 2):
        x = with_specials(rng, (n, 12, 12, 3))
        a = fast_it.get_signature_runner("infer")(x=x)
        b = plain.get_signature_runner("infer")(x=x)
        for name in b:
            same_bits(a[name], b[name])
    assert not [op for op in _ops(fast_it) if "+" in op]
    # an ADD of a float64 operand is not fused (its kernel's result is float64)
    from litetrain.runtime import epilogue
    from litetrain.runtime.step import Step

    add, hs = lookup("add"), lookup("hard_swish")
    f32 = np.dtype(np.float32)
    values = [np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64),
              np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32)]
    steps = [Step(0, "add", add.kernel, False, (0, 1), (2,), (f32,), {}, True, add.in_place),
             Step(1, "hard_swish", hs.kernel, False, (2,), (3,), (f32,), {}, True,
                  hs.in_place)]
    assert epilogue.fuse_activations(steps, values, {3}) == steps
    values[1] = values[1].astype(np.float32)
    assert [s.op for s in epilogue.fuse_activations(steps, values, {3})] == ["add+hard_swish"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act", [0, 3, 4])  # NONE, RELU6, TANH
@pytest.mark.parametrize("with_kernels", [True, False] if HAVE_NUMBA else [False])
def test_conv_2d_with_fused_scale_gives_the_conv_then_mul_bits(case, act, with_kernels,
                                                               rng, monkeypatch):
    s, attrs, x, w, b = _conv_case(case, act, with_kernels, rng)
    mul = lookup("mul").kernel
    for chunk in (600, 1 << 19):
        monkeypatch.setattr(conv_gemm, "CHUNK_BYTES", chunk)
        for scale in (np.array([1 / 6], np.float32), np.array(-0.0, np.float32),
                      np.full((1, 1, 1, 1), np.nan, np.float32)):
            for bias in (b, None, np.float32(0.5)):
                want = mul({}, conv_2d(s, x, w, bias), scale)
                same_bits(conv_2d(s, x, w, bias, scale=scale), want)
                same_bits(want, mul({}, conv_2d(attrs, x, w, bias), scale))  # plain NumPy


class _Scaled(lt.Module):
    """MUL by one value after a convolution: fused (a 1×1 squeeze-and-excitation-like
    convolution with RELU6 and ``/ 6``, a 3×3 one by -0.0); left alone: the other operand
    order, a convolution result read twice."""

    @lt.signature(lt.TensorSpec([None, 6, 5, 4], name="x"))
    def infer(self, x):
        g = x.graph
        pooled = g.op("mean", x, g.const(np.array([1, 2], np.int32)), keep_dims=True)
        gate = g.op("mul", _conv(g, pooled, 4, 1, act=3), _scalar(g, 1 / 6))
        spatial = g.op("mul", _conv(g, g.op("mul", x, gate), 6, 3, seed=3),
                       _scalar(g, [[[[-0.0]]]]))
        flipped = g.op("mul", _scalar(g, 2.0), _conv(g, spatial, 4, 1, seed=4))
        twice = _conv(g, flipped, 4, 1, seed=5)
        return {"y": g.op("add", g.op("mul", twice, _scalar(g, 3.0)), twice)}


@pytest.mark.parametrize("jit", [True, False] if HAVE_NUMBA else [False])
def test_fused_scale_gives_the_unrewritten_bits(jit, rng, monkeypatch):
    if not jit:
        monkeypatch.setattr(compiled, "applies", lambda *args: False)
    data = lt.convert(_Scaled())
    fast_it = lt.Interpreter(model_content=data)
    plain = lt.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    for n in (2, 2, 1, 2):
        x = with_specials(rng, (n, 6, 5, 4))
        same_bits(fast_it.get_signature_runner("infer")(x=x)["y"],
                  plain.get_signature_runner("infer")(x=x)["y"])
    ops = _ops(fast_it)
    assert ops.count("conv_2d+mul") == 2 and ops.count("conv_2d") == 2
