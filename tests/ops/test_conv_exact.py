"""CONV_2D in BLAS's own order (``fast.gemm``, adopted by ``conv_exact``) against the NumPy
kernel, bit for bit.

* Random geometries (1×1, 3×3, 5×5, strided, dilated, SAME/VALID), with and without a
  bias, every fused activation, a fused HARD_SWISH, a fused MUL, a fused input rescaling,
  NaN and signed zeros in the input: the node prepared with compiled kernels (which adopts
  the BLAS-order kernel wherever :func:`conv_exact.proven` holds) gives the bits of the
  plain NumPy kernel; on this machine's BLAS most shapes are adopted (checked, so the
  comparison cannot pass by never running the kernel).
* The adoption: a kernel summing in another order is refused and the node keeps the
  NumPy path (same bits); ``K`` beyond one BLAS K block is never adopted.
* Whole MobileNets at batch 1: with the BLAS-order kernels, without any compiled kernel,
  and with ``experimental_preserve_all_tensors``: the same bits.
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import compiled, conv_exact, fast
from litetrain.ops.common import SAME, VALID, pad_before_after
from litetrain.ops.conv import conv_2d
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

from ..conftest import FIXTURES

_CONV, _GEMM = fast.kernels("conv"), fast.kernels("gemm")
pytestmark = pytest.mark.needs_kernels(_CONV, _GEMM)


def _geometries(count: int, seed: int):
    r = np.random.default_rng(seed)
    for _ in range(count):
        k = int(r.choice([1, 1, 3, 3, 5]))
        kh, kw = (k, k) if r.random() < 0.8 else (k, int(r.integers(1, 4)))
        s = int(r.choice([1, 1, 2]))
        d = 1 if s > 1 or r.random() < 0.8 else 2
        padding = SAME if r.random() < 0.7 else VALID
        h, wd = (int(v) for v in r.integers(max(kh, kw) * d, 19, 2))
        yield (int(r.integers(1, 4)), h, wd, int(r.choice([3, 8, 16, 24])),
               int(r.choice([8, 16, 24, 32, 40, 48, 96])), (kh, kw), s, d, padding)


def _attrs(k, s, d, padding, act=0):
    return {"stride_h": s, "stride_w": s, "dilation_h_factor": d, "dilation_w_factor": d,
            "padding": padding, "fused_activation_function": act}


def _prepared(x, w, b, attrs, with_kernels: bool = True) -> compiled.Compiled:
    """The node's prepared settings, with its compiled kernels or without (NumPy only:
    the reference, with the same C-order GEMM filter)."""
    s = lookup("conv_2d").settings(node_info("conv_2d", [x, w, b], attrs))
    assert isinstance(s, compiled.Compiled)
    if with_kernels:
        assert s.loader.wait() is not None and s.ready() is not None
    else:
        s.loader = None
    return s


def _numpy(x, w, b, attrs, **fused):
    return conv_2d(_prepared(x, w, b, attrs, False), x, w, b, **fused)


def blas_order_plan(s) -> bool:
    return any(s.exact.values()) or bool(s.pointwise and s.pointwise[8])


@pytest.mark.parametrize("case", list(_geometries(24, seed=3)), ids=str)
def test_blas_order_conv_gives_the_numpy_bits(case, rng):
    n, h, wd, ci, o, k, st, d, padding = case
    x = with_specials(rng, (n, h, wd, ci))
    w = rng.standard_normal((o, *k, ci)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    adopted = 0
    for act in (0, 1, 2, 3, 4):
        for b in (bias, None):
            attrs = _attrs(k, st, d, padding, act)
            s = _prepared(x, w, b, attrs)
            same_bits(conv_2d(s, x, w, b), _numpy(x, w, b, attrs))
            adopted += blas_order_plan(s)
    attrs = _attrs(k, st, d, padding, 3)
    s = _prepared(x, w, bias, attrs)
    hard_swish = {"fused_activation_function": 0}
    same_bits(conv_2d(s, x, w, bias, hard_swish=hard_swish),
              _numpy(x, w, bias, attrs, hard_swish=hard_swish))
    scale = np.array([0.37], np.float32)
    same_bits(conv_2d(s, x, w, bias, scale=scale), _numpy(x, w, bias, attrs, scale=scale))
    adopted += blas_order_plan(s)
    oh = pad_before_after(h, k[0], st, d, padding)[0]
    rows = n * oh * pad_before_after(wd, k[1], st, d, padding)[0]  # one chunk
    if (o % 16 == 0 and conv_exact.faster([rows])
            and conv_exact.proven([64], k[0] * k[1] * ci, o)):
        assert adopted  # this machine's BLAS sums in the kernel's order: it was used


@pytest.mark.parametrize("geometry", [((3, 3), 2, 1, SAME, (2, 96, 96, 3)),
                                      ((3, 3), 1, 1, SAME, (1, 13, 11, 3)),
                                      ((5, 5), 1, 2, VALID, (2, 14, 15, 4))], ids=str)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_a_conv_with_its_input_rescaling_fused_gives_the_numpy_bits(geometry, rng):
    """The MobileNet stem ([n, 96, 96, 3], 3×3 stride 2 SAME, 16 out, HARD_SWISH fused) and
    others, the input rescaling ``x * (1 / 127.5) - 1`` fused into the patches: the plain
    path's bits (the rescaled input, then the convolution), adopted."""
    from litetrain.ops.conv_gemm import chunked_conv

    k, st, d, padding, shape = geometry
    x = rng.uniform(0, 255, shape).astype(np.float32)
    x.reshape(-1)[:5] = [np.nan, -0.0, 0.0, np.inf, -np.inf]
    w = rng.standard_normal((16, *k, shape[3])).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    attrs = _attrs(k, st, d, padding)
    rescale = (np.float32(1 / 127.5), np.float32(-1.0))
    hard_swish = {"fused_activation_function": 0}
    s = _prepared(x, w, b, attrs)
    got = chunked_conv(s, x, w, b, True, hard_swish, rescale)
    want = _numpy(np.add(np.multiply(x, rescale[0]), rescale[1]), w, b, attrs,
                  hard_swish=hard_swish)
    same_bits(got, want)
    if shape[0] * 48 * 48 == 4608 and conv_exact.proven([2304], 27, 16):
        assert any(s.exact.values())


def test_a_1x1_conv_of_many_chunks_gives_the_numpy_bits(rng):
    """[4, 48, 48, 16] to 96 channels: several chunks of rows on the NumPy path (each its
    own GEMM shape, all checked), one compiled call here."""
    x = with_specials(rng, (4, 48, 48, 16))
    w = rng.standard_normal((96, 1, 1, 16)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    attrs = _attrs((1, 1), 1, 1, SAME, 3)
    s = _prepared(x, w, b, attrs)
    same_bits(conv_2d(s, x, w, b), _numpy(x, w, b, attrs))
    if conv_exact.proven([1152], 16, 96):
        assert any(s.exact.values())


def test_a_kernel_in_another_order_is_refused_and_numpy_runs(rng, monkeypatch):
    def pairwise(a, b):  # products summed by NumPy's float32 pairwise sum: another order
        return (a[:, :, None] * b[None]).sum(axis=1, dtype=np.float32)

    assert not conv_exact.proven([64, 40], 24, 32, kernel=pairwise)
    monkeypatch.setattr(conv_exact, "_VERDICTS", {})
    monkeypatch.setattr(conv_exact, "_compiled", pairwise)
    x = with_specials(rng, (2, 9, 9, 8))
    w = rng.standard_normal((32, 3, 3, 8)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    for k in ((3, 3), (1, 1)):
        wk = w[:, :k[0], :k[1]].copy()
        attrs = _attrs(k, 1, 1, SAME, 3)
        s = _prepared(x, wk, b, attrs)
        same_bits(conv_2d(s, x, wk, b), _numpy(x, wk, b, attrs))
        assert s.exact and not blas_order_plan(s)  # checked, refused


def test_row_counts_below_one_tile_are_not_adopted():
    assert conv_exact.faster([8, 9, 12, 13, 36, 2304]) and not conv_exact.faster([7])
    assert not conv_exact.faster([2304, 1]) and not conv_exact.faster([4])


def test_k_beyond_one_blas_block_is_never_adopted(rng):
    assert not conv_exact.proven([32], conv_exact.K_MAX + 1, 16)
    x = rng.standard_normal((1, 4, 4, 64)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 64)).astype(np.float32)  # K = 576
    attrs = _attrs((3, 3), 1, 1, SAME)
    s = _prepared(x, w, None, attrs)
    same_bits(conv_2d(s, x, w), _numpy(x, w, None, attrs))
    assert not any(s.exact.values())


MOBILENETS = [FIXTURES / "tf_quantized" / d / "float.tflite"
              for d in ("mobilenet_v2_035", "mobilenet_v3_small")]


@pytest.mark.parametrize("path", MOBILENETS, ids=lambda p: p.parent.name)
def test_mobilenets_at_batch_1_give_the_same_bits_in_blas_order(path, rng, monkeypatch):
    import litetrain

    x = rng.uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)

    def run(**kw):
        it = litetrain.Interpreter(model_path=path, **kw)
        index = it.get_input_details()[0]["index"]
        it.set_tensor(index, x)
        it.invoke()
        for family in fast.FAMILIES:
            loader = fast.kernels(family)
            assert loader is not None and loader.wait() is not None
        it.invoke()
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    with_kernels = run()
    same_bits(run(experimental_preserve_all_tensors=True), with_kernels)
    monkeypatch.setattr(compiled, "applies", lambda *args: False)
    monkeypatch.setattr(conv_exact, "module", lambda: None)
    same_bits(run(), with_kernels)
