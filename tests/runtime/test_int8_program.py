"""Runs of int8 steps as one compiled call (:mod:`litetrain.runtime.int8_program`, the
``[fast]`` extra's :mod:`litetrain.ops.fast.int8_program`):

* the TensorFlow-made int8 fixtures give the same bits with programs as step by step and
  as with ``experimental_preserve_all_tensors``, at batch 1 and 3, under every resolver;
  the whole of EfficientNet-like and MobileNetV3Small's plans is one program;
* a step that cannot be encoded (an op without an instruction, a fused or in-place
  kernel) stays a step; the runs around it become programs;
* ``resize_tensor_input`` encodes the plan again for the new shapes;
* while the executor loads, and when another run holds the arena, results are the same;
* the executor's own kernels equal ``fast.int8``'s.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast
from litetrain.ops.fast import int8_codes as codes
from litetrain.runtime import int8_encode, int8_program, plan
from litetrain.runtime.int8_encode import Consts, encode
from tests.quantized.test_tf_resolvers import KINDS, RESOLVERS, ROOT

_LOADER = fast.kernels("int8_program")
pytestmark = pytest.mark.needs_kernels(_LOADER)


def _module():
    return fast.kernels("int8_program").wait()


def _input(kind: str, batch: int) -> np.ndarray:
    with np.load(ROOT / kind / "expected.npz") as f:
        x = f["input/b4/in0"]
    return np.resize(x, (batch, *x.shape[1:]))


def _interpreter(kind: str, x: np.ndarray, resolver, preserve: bool = False):
    it = lt.Interpreter(model_path=str(ROOT / kind / "int8.tflite"),
                        experimental_op_resolver_type=resolver,
                        experimental_preserve_all_tensors=preserve)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    return it, d["index"], it.get_output_details()[0]["index"]


def _outputs(it, index, out, inputs) -> list[np.ndarray]:
    results = []
    for x in inputs:
        it.set_tensor(index, x)
        it.invoke()
        results.append(it.get_tensor(out).copy())
    return results


def _plan(it) -> plan.Plan:
    (p,) = it._plans.values()
    return p


def _programs(it) -> list:
    return [s for entry in _plan(it)._per_shapes.values() for s in entry[0]
            if s.op == "int8_program"]


def _steps(it) -> list[str]:
    (entry,) = _plan(it)._per_shapes.values()
    return [s.op for s in entry[0]]


def _same(a: list, b: list) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("resolver", list(RESOLVERS))
@pytest.mark.parametrize("kind", KINDS)
def test_programs_give_the_steps_bits(kind, resolver, batch, monkeypatch):
    """Programs (executor loaded), step by step, and every tensor kept: the same bits,
    on a recorded input and on noise (every rounding and clamp gets exercised)."""
    _module()
    x = _input(kind, batch)
    rng = np.random.default_rng(batch)
    noise = (x + rng.normal(0, 1, x.shape) * x.std()).astype(np.float32)
    inputs = [x, noise, x]
    it, index, out = _interpreter(kind, x, RESOLVERS[resolver])
    got = _outputs(it, index, out, inputs)
    kept = _outputs(*_interpreter(kind, x, RESOLVERS[resolver], preserve=True), inputs)
    monkeypatch.setattr(plan, "int8_programs", lambda steps, *_: steps)
    one_by_one = _outputs(*_interpreter(kind, x, RESOLVERS[resolver]), inputs)
    _same(got, kept)
    _same(got, one_by_one)
    assert _programs(it)
    if kind in ("efficientnet_like", "mobilenet_v3_small") and resolver == "default":
        assert _steps(it) == ["int8_program"]  # QUANTIZE ... SOFTMAX, DEQUANTIZE
    if kind == "efficientnet_like" and resolver == "default":
        # swish fused into the steps making its operand (runtime.int8_fusion) stays fused:
        # looked up as VNNI tiles are stored, or right after the product
        (program,) = _programs(it)
        ops = list(program.settings.code[:, 0])
        assert ops.count(codes.OP_MUL) == 5
        assert ops.count(codes.OP_LOOKUP1) + sum(
            int(row[31] >= 0) for row in program.settings.code if row[0] == codes.OP_VNNI
        ) == 21


def test_unencodable_steps_stay_steps():
    """TRANSPOSE_CONV and RESIZE_NEAREST_NEIGHBOR have no instruction: they run as steps
    between programs."""
    _module()
    x = _input("conv_transpose_ae", 1)
    it, index, out = _interpreter("conv_transpose_ae", x, lt.OpResolverType.AUTO)
    _outputs(it, index, out, [x])
    ops = _steps(it)
    assert "transpose_conv" in ops and ops.count("int8_program") >= 2


def test_fused_or_in_place_kernels_are_refused():
    """A step whose kernel is not the op's own integer variant nor one of the table
    fusions of ``runtime.int8_fusion`` (another fusion, an in-place form) is not
    encoded, even with the variant's settings."""
    _module()
    kind = "efficientnet_like"
    x = _input(kind, 1)
    it, index, out = _interpreter(kind, x, lt.OpResolverType.AUTO)
    _outputs(it, index, out, [x])
    ref, rindex, rout = _interpreter(kind, x, lt.OpResolverType.AUTO, preserve=True)
    _outputs(ref, rindex, rout, [x])
    values = [ref.get_tensor(i) for i in range(len(ref.get_tensor_details()))]
    (program,) = _programs(it)
    for step in program.settings.steps:
        assert encode(step, values, Consts()) is not None, step.op
        changes = [dataclasses.replace(step, kernel=lambda s, *a: a[0]),
                   dataclasses.replace(step, writes_into=0),
                   dataclasses.replace(step, stateful=True)]
        if "+" not in step.op:  # the op's own kernel under a fusion's name
            changes.append(dataclasses.replace(step, op=step.op + "+relu"))
        for changed in changes:
            assert encode(changed, values, Consts()) is None, step.op


def test_resizing_encodes_again():
    """Batch 1, then 3, then 1: a program per input shapes, each the steps' bits."""
    _module()
    kind = "efficientnet_like"
    x1, x3 = _input(kind, 1), _input(kind, 3)
    it, index, out = _interpreter(kind, x1, lt.OpResolverType.AUTO)
    ref, rindex, rout = _interpreter(kind, x1, lt.OpResolverType.AUTO, preserve=True)
    results, expected = [], []
    for x in (x1, x3, x1):
        for interp, i in ((it, index), (ref, rindex)):
            interp.resize_tensor_input(i, list(x.shape))
            interp.allocate_tensors()
        results += _outputs(it, index, out, [x, x])
        expected += _outputs(ref, rindex, rout, [x, x])
    _same(results, expected)
    arenas = {p.settings.arena.nbytes for p in _programs(it)}
    assert len(_programs(it)) == 2 and len(arenas) == 2


def test_loading_and_busy_arena_give_the_same_bits():
    """The program's steps one by one (while the executor loads), and a run while another
    holds the arena (it works in a copy), equal the executor's results."""
    module = _module()
    kind = "mobilenet_v3_small"
    x = _input(kind, 1)
    it, index, out = _interpreter(kind, x, lt.OpResolverType.AUTO)
    _outputs(it, index, out, [x])
    (program,) = _programs(it)
    p = program.settings
    args = (x,)
    direct = p.execute(module, args)
    steps = p.one_by_one(args)
    with p.lock:
        busy = p.execute(module, args)
    _same(list(direct), list(steps))
    _same(list(direct), list(busy))
    assert int8_program.run_program(p, x).shape == direct[0].shape


def _rescaling(rng, n):
    if rng.integers(2):
        return (np.zeros((5, n), np.int64), rng.uniform(1e-4, 1e-2, n).astype(np.float32),
                True, -128, 127, int(rng.integers(-20, 20)))
    q = np.zeros((5, n), np.int64)
    q[0] = rng.integers(1 << 20, 1 << 22, n)
    q[1] = 1 << 33
    q[2] = np.iinfo(np.int64).min
    q[3] = 34
    return q, np.zeros(n, np.float32), False, -128, 127, int(rng.integers(-20, 20))


def test_tiled_kernels_equal_the_int8_kernels():
    """The executor's own GEMM, CONV_2D (four rows at a time) and depthwise (row at a
    time) kernels against ``fast.int8``'s on random shapes, strides, dilations,
    paddings and zero points (ragged row counts included)."""
    module, int8 = _module(), fast.kernels("int8").wait()
    rng = np.random.default_rng(7)
    for trial in range(30):
        m, k, n = int(rng.integers(1, 11)), int(rng.integers(1, 40)), int(rng.integers(1, 40))
        x = rng.integers(-128, 128, (m, k)).astype(np.int8)
        w = rng.integers(-127, 128, (k, n)).astype(np.int32)
        r = _rescaling(rng, n)
        zx = int(rng.integers(-128, 128))
        np.testing.assert_array_equal(
            module.gemm(x, zx, w, *r, np.empty((m, n), np.int8)),
            int8.gemm(x, zx, w, *r, np.empty((m, n), np.int8)))
        b, h, wd, c = (int(rng.integers(1, 3)), int(rng.integers(1, 9)),
                       int(rng.integers(1, 9)), int(rng.integers(1, 20)))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw, dh, dw = (int(v) for v in rng.integers(1, 3, 4))
        pt, pl = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        oh = max(1, (h + 2 * pt - (kh - 1) * dh - 1) // sh + 1)
        ow = max(1, (wd + 2 * pl - (kw - 1) * dw - 1) // sw + 1)
        x = rng.integers(-128, 128, (b, h, wd, c)).astype(np.int8)
        o = int(rng.integers(1, 20))
        wc = rng.integers(-127, 128, (kh, kw, c, o)).astype(np.int32)
        r = _rescaling(rng, o)
        got = module.conv_2d(x, zx, wc.reshape(-1, o), kh, kw, sh, sw, dh, dw, pt, pl, *r,
                             np.empty((b, oh, ow, o), np.int8))
        # the reference: float32 patches from fast.int8.im2col (exact), int64 sums
        cols = int8.im2col(x, zx, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, 0,
                           np.empty((b * oh * ow, kh * kw * c), np.float32))
        acc = cols.astype(np.int64) @ wc.reshape(-1, o).astype(np.int64)
        want = int8.requantize(acc.astype(np.float64), *r, np.empty(acc.shape, np.int8))
        np.testing.assert_array_equal(got.reshape(-1, o), want, err_msg=f"conv {trial}")
        wdw = rng.integers(-127, 128, (kh, kw, c)).astype(np.int32)
        r = _rescaling(rng, c)
        along = (np.tile(r[0], (1, ow)), np.tile(r[1], ow), *r[2:])
        got = module.depthwise_conv_2d(x, zx, wdw, sh, sw, dh, dw, pt, pl, *along,
                                       np.empty((b, oh, ow, c), np.int8))
        no_table = np.empty(0, np.int8)
        no_table.flags.writeable = False
        want = int8.depthwise_conv_2d(x, zx, wdw, sh, sw, dh, dw, pt, pl, 1, *r, no_table,
                                      np.empty((b, oh, ow, c), np.int8))
        np.testing.assert_array_equal(got, want, err_msg=f"depthwise {trial}")


@pytest.mark.parametrize("shape", [(3, 16), (7, 32), (5, 24), (9, 40), (1, 1), (27, 8)])
def test_packed_filters_are_laid_out_as_fast_gemm_packs_them(shape):
    """The encoder lays filters out for ``fast.gemm.pointwise`` without importing numba:
    the layout must be ``fast.gemm.pack``'s."""
    gemm = fast.kernels("gemm").wait()
    w = np.random.default_rng(0).integers(-127, 128, shape).astype(np.float32)
    np.testing.assert_array_equal(int8_encode._pack(w) if shape[1] % 16 else w,
                                  gemm.pack(w.copy()))
