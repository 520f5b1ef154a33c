"""The chunked CONV_2D, its prepared GEMM filter and the compiled kernels of issue 15
against their references.

* The NumPy CONV_2D in chunks of output rows (whole images together, or rows of one
  image, the patch rows of each gathered from only the input rows it reads) against the
  float64 sum over taps, for every geometry and chunk size.
* The compiled patch gathering (im2col) against the NumPy one: the same values, bit for
  bit, for every geometry and span of outputs.
* CONV_2D and DEPTHWISE_CONV_2D with their compiled kernels against the same prepared
  node without them (same GEMM filter layout): the same bits, forced small chunks
  included, with NaN and signed zeros, every activation and bias form.
* Whole MobileNets: compiled kernels vs the NumPy kernels vs
  ``experimental_preserve_all_tensors``: the same bits.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from litetrain.ops import compiled, conv_gemm, fast
from litetrain.ops.common import SAME, VALID, pad_before_after
from litetrain.ops.conv import conv_2d, depthwise_conv_2d
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

from ..conftest import FIXTURES

# (batch, h, w, kernel, stride, dilation, padding)
GEOMETRIES = [
    (2, 9, 8, (3, 3), (1, 1), (1, 1), SAME),
    (3, 11, 10, (3, 3), (2, 2), (1, 1), SAME),
    (2, 9, 7, (5, 5), (2, 1), (1, 1), SAME),
    (2, 11, 10, (3, 2), (1, 2), (2, 1), VALID),
    (2, 6, 5, (1, 1), (1, 1), (1, 1), SAME),
    (2, 6, 5, (1, 1), (2, 2), (1, 1), SAME),
    (1, 9, 9, (3, 3), (1, 1), (2, 2), SAME),
    (2, 7, 6, (3, 3), (3, 3), (1, 1), VALID),
]
ACTIVATIONS = [0, 1, 2, 3, 4]  # NONE, RELU, RELU_N1_TO_1, RELU6, TANH

_LOADER = fast.kernels("conv")
needs_numba = pytest.mark.needs_kernels(_LOADER)


def _attrs(k, stride, dilation, padding, act=0, **extra):
    return {"stride_h": stride[0], "stride_w": stride[1], "dilation_h_factor": dilation[0],
            "dilation_w_factor": dilation[1], "padding": padding,
            "fused_activation_function": act, **extra}


def _direct(x, w, attrs):
    """float64 sum over taps of the zero-padded input (the definition)."""
    _, h, wd, _ = x.shape
    _, kh, kw, _ = w.shape
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    dh, dw = attrs["dilation_h_factor"], attrs["dilation_w_factor"]
    oh, pt, pb = pad_before_after(h, kh, sh, dh, attrs["padding"])
    ow, pl, pr = pad_before_after(wd, kw, sw, dw, attrs["padding"])
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out = 0
    for i, j in itertools.product(range(kh), range(kw)):
        win = xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
        out = out + win @ w[:, i, j].T.astype(np.float64)
    return out




def _prepared(op, x, w, b, attrs, with_kernels: bool):
    """The node's prepared settings, with its compiled kernels or without (NumPy only)."""
    s = lookup(op).settings(node_info(op, [x, w, b], attrs))
    assert isinstance(s, compiled.Compiled)
    if with_kernels:
        assert s.loader.wait() is not None  # (another test may have made a new loader)
    else:
        s.loader = None
    return s


# Chunk sizes: rows of one image at a time (tiny), a few images at a time, one chunk.
CHUNKS = [1, 600, 1 << 19]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunked_conv_2d_matches_the_direct_sum(geometry, chunk, rng, monkeypatch):
    monkeypatch.setattr(conv_gemm, "CHUNK_BYTES", chunk)
    n, h, wd, k, stride, dilation, padding = geometry
    x = rng.standard_normal((n, h, wd, 5)).astype(np.float32)
    w = rng.standard_normal((4, *k, 5)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    attrs = _attrs(k, stride, dilation, padding)
    want = _direct(x, w, attrs) + b
    np.testing.assert_allclose(conv_2d(attrs, x, w, b), want, rtol=1e-5, atol=1e-5)
    settings = _prepared("conv_2d", x, w, b, attrs, with_kernels=False)
    np.testing.assert_allclose(conv_2d(settings, x, w, b), want, rtol=1e-5, atol=1e-5)
    # A strided view of the input, float64 (no prepared data): the same sums.
    xv = np.concatenate([x, x], axis=3)[..., :5]
    np.testing.assert_allclose(conv_2d(attrs, xv, w, b), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv_2d(attrs, x.astype(np.float64), w.astype(np.float64), b),
                               want, rtol=1e-12, atol=1e-12)


def test_chunks_cover_the_output_once():
    for n, oh, lines in [(3, 5, 1), (3, 5, 2), (3, 5, 5), (3, 5, 11), (1, 4, 100), (4, 3, 7)]:
        seen = np.zeros((n, oh), int)
        for b0, b1, y0, y1 in conv_gemm.chunks(n, oh, lines):
            assert (b1 - b0) * (y1 - y0) <= max(lines, oh if lines >= oh else lines)
            assert b1 - b0 == 1 or (y0, y1) == (0, oh)  # contiguous blocks
            seen[b0:b1, y0:y1] += 1
        assert (seen == 1).all()


@needs_numba
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_compiled_im2col_gives_the_numpy_patches(geometry, rng):
    n, h, wd, (kh, kw), (sh, sw), (dh, dw), padding = geometry
    x = with_specials(rng, (n, h, wd, 3))
    oh, pt, _ = pad_before_after(h, kh, sh, dh, padding)
    ow, pl, pr = pad_before_after(wd, kw, sw, dw, padding)
    s = _prepared("conv_2d", x, rng.standard_normal((2, kh, kw, 3)).astype(np.float32), None,
                  _attrs((kh, kw), (sh, sw), (dh, dw), padding), with_kernels=True)
    assert s.ready() is not None
    scratch = np.full(n * oh * ow * kh * kw * 3 + 7, np.float32(5))
    spans = [(0, n, 0, oh), (n - 1, n, oh // 2, oh), (0, 1, 0, 1)]
    for span in spans:
        want = conv_gemm._patch_rows(x, (kh, kw, sh, sw, dh, dw, pt, pl, pr, ow), span)
        got = compiled.im2col(s, x, scratch, span, (kh, kw, sh, sw, dh, dw, pt, pl, ow))
        same_bits(got, want)
    x.flags.writeable = False  # read-only inputs take the same kernel
    got = compiled.im2col(s, x, scratch, spans[0], (kh, kw, sh, sw, dh, dw, pt, pl, ow))
    same_bits(got, conv_gemm._patch_rows(x, (kh, kw, sh, sw, dh, dw, pt, pl, pr, ow), spans[0]))


@needs_numba
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_compiled_conv_2d_gives_the_numpy_bits(geometry, act, chunk, rng, monkeypatch):
    monkeypatch.setattr(conv_gemm, "CHUNK_BYTES", chunk)
    n, h, wd, k, stride, dilation, padding = geometry
    attrs = _attrs(k, stride, dilation, padding, act)
    x = with_specials(rng, (n, h, wd, 3))
    w = rng.standard_normal((5, *k, 3)).astype(np.float32)
    w.reshape(-1)[::7] = -0.0
    # One prepared node run with one bias after another (its epilogue keeps the last).
    b1 = rng.standard_normal(5).astype(np.float32)
    fast_ = _prepared("conv_2d", x, w, b1, attrs, with_kernels=True)
    plain = _prepared("conv_2d", x, w, b1, attrs, with_kernels=False)
    assert compiled.applies(fast_, x, w) and not compiled.applies(plain, x, w)
    for b in (b1, None, np.ones((1, 1, 5), np.float32), np.float32(0.5), b1 * 2, b1):
        same_bits(conv_2d(fast_, x, w, b), conv_2d(plain, x, w, b))


@needs_numba
@pytest.mark.parametrize("shape", [(2, 13, 12, 16), (1, 10, 9, 48), (2, 7, 8, 24)])
@pytest.mark.parametrize("k_stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_compiled_depthwise_gives_the_numpy_bits_on_mobilenet_like_shapes(shape, k_stride,
                                                                         rng):
    """Channel counts of MobileNets (the long row-wise loops), strides (the rearranged
    image), multipliers."""
    k, s = k_stride
    for mult, act in ((1, 3), (2, 0), (1, 1)):
        x = with_specials(rng, shape)
        w = rng.standard_normal((1, k, k, shape[3] * mult)).astype(np.float32)
        b = rng.standard_normal(shape[3] * mult).astype(np.float32)
        attrs = _attrs((k, k), (s, s), (1, 1), SAME, act, depth_multiplier=mult)
        want = depthwise_conv_2d(attrs, x, w, b)
        settings = _prepared("depthwise_conv_2d", x, w, b, attrs, with_kernels=True)
        assert compiled.applies(settings, x, w)
        same_bits(depthwise_conv_2d(settings, x, w, b), want)
        same_bits(depthwise_conv_2d(settings, x[:1, 1:], w, b),  # another input size
                   depthwise_conv_2d(attrs, x[:1, 1:], w, b))


MOBILENETS = [FIXTURES / "tf_quantized" / d / "float.tflite"
              for d in ("mobilenet_v2_035", "mobilenet_v3_small")]


@needs_numba
@pytest.mark.parametrize("path", MOBILENETS, ids=lambda p: p.parent.name)
def test_mobilenets_give_the_same_bits_with_and_without_compiled_kernels(path, rng,
                                                                         monkeypatch):
    import litetrain

    x = rng.uniform(-1, 1, (3, 96, 96, 3)).astype(np.float32)

    def run(**kw):
        it = litetrain.Interpreter(model_path=path, **kw)
        index = it.get_input_details()[0]["index"]
        it.resize_tensor_input(index, list(x.shape))
        it.allocate_tensors()
        it.set_tensor(index, x)
        it.invoke()
        for family in fast.FAMILIES:
            loader = fast.kernels(family)
            assert loader is not None and loader.wait() is not None
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    with_kernels = run()
    same_bits(run(experimental_preserve_all_tensors=True), with_kernels)
    monkeypatch.setattr(compiled, "applies", lambda *args: False)
    same_bits(run(), with_kernels)


@pytest.mark.parametrize("shape", [(1, 7, 5, 16), (3, 1, 1, 9), (2, 3, 4, 1), (4, 12, 12, 40)])
def test_compiled_mean_over_height_and_width_gives_the_numpy_bits(shape, rng):
    loader = fast.kernels("reduce")
    if loader is None or loader.wait() is None:
        pytest.skip("the [fast] extra (numba) is not installed")
    opdef = lookup("mean")
    x = with_specials(rng, shape) * np.float32(1e3)
    x.reshape(-1)[1::11] = np.inf
    for axis in ([1, 2], [2, 1], [-3, -2], [1, -2]):
        a = np.array(axis, np.int32)
        for keep in (False, True):
            s = opdef.settings(node_info("mean", [x, a], {"keep_dims": keep}))
            assert isinstance(s, fast.WithKernels)
            want = opdef.kernel({"keep_dims": keep}, x, a)
            same_bits(opdef.kernel(s, x, a), want)
            xv = np.concatenate([x, x], axis=3)[..., :shape[3]]  # a strided view
            same_bits(opdef.kernel(s, xv, a), want)
            # float32 but not numpy's own dtype instance (as some tensors of a run are)
            le = x.view(np.dtype(np.float32).newbyteorder("<"))
            same_bits(opdef.kernel(s, le, a), want)
    # Other axes, dtypes, ranks: not prepared for the compiled mean, NumPy's results.
    for x_, a in ((x, np.array([1], np.int32)), (x.astype(np.float64), np.array([1, 2])),
                  (x[0], np.array([0, 1], np.int32))):
        s = opdef.settings(node_info("mean", [x_, a], {"keep_dims": False}))
        assert not isinstance(s, fast.WithKernels)


def _padded_max_pool(x, attrs):
    """MAX_POOL_2D by definition: the maxima over windows of the -inf-padded input."""
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    oh, pt, pb = pad_before_after(x.shape[1], kh, sh, 1, attrs["padding"])
    ow, pl, pr = pad_before_after(x.shape[2], kw, sw, 1, attrs["padding"])
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-np.inf)
    out = None
    for i, j in itertools.product(range(kh), range(kw)):
        win = xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
        out = win.copy() if out is None else np.maximum(out, win)
    return out


@pytest.mark.parametrize("geometry", [((3, 3), (2, 2), SAME), ((2, 2), (2, 2), SAME),
                                      ((3, 2), (1, 2), SAME), ((5, 5), (3, 2), SAME),
                                      ((3, 3), (2, 2), VALID), ((1, 1), (1, 1), SAME)])
def test_max_pool_without_a_padded_copy_gives_the_padded_maxima(geometry, rng):
    (kh, kw), (sh, sw), padding = geometry
    attrs = {"filter_height": kh, "filter_width": kw, "stride_h": sh, "stride_w": sw,
             "padding": padding, "fused_activation_function": 0}
    for shape in ((2, 7, 9, 3), (1, 4, 5, 2), (1, 1, 1, 4)):
        if padding == VALID and (shape[1] < kh or shape[2] < kw):
            continue
        x = with_specials(rng, shape)
        x.reshape(-1)[::7] = -np.inf
        for xv in (x, np.concatenate([x, x], axis=3)[..., :shape[3]]):
            same_bits(lookup("max_pool_2d").kernel(attrs, xv), _padded_max_pool(xv, attrs))
