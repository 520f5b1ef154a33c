"""The AVX-512 VNNI kernels (:mod:`litetrain.ops.fast.vnni`, adopted by
:mod:`litetrain.ops.compiled_vnni`) equal the NumPy integer kernels bit for bit:

* CONV_2D (1×1, k×k, strided, dilated, SAME/VALID, the 3×3 stride-2 stem on three
  channels) and FULLY_CONNECTED over random geometries: int8 and uint8 inputs, zero
  points at the extremes, per-channel and per-tensor scales, every resolver (both
  rescaling forms), depths not a multiple of four, channels not a multiple of sixteen,
  row counts off the register tile and past one block, every fused activation;
* the output lookup table hook (the identity and a random permutation);
* nodes that do not fit (a filter outside signed bytes, sums past int32) get no plan;
* the TensorFlow-made int8 fixtures: every tensor equal with and without the VNNI
  kernels, and the outputs still TensorFlow's.

Skipped where the CPU has no AVX-512 VNNI or numba is missing.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from litetrain.ops import compiled_int8, compiled_vnni, fast
from litetrain.ops.evaluate import node_info
from litetrain.ops.quantized.params import QParams
from litetrain.ops.registry import lookup
from litetrain.ops.resolver import OpResolverType
from tests.quantized.fixture_runs import invoked
from tests.quantized.test_tf_resolvers import KINDS, RESOLVERS, ROOT, _input


def _loaded(family):
    loader = fast.kernels(family)
    return None if loader is None else loader.wait()


def needs_vnni(test):
    """Skip ``test`` without AVX-512 VNNI on this CPU or without the compiled kernels."""
    marked = pytest.mark.needs_kernels("int8", "vnni")(test)
    return pytest.mark.skipif(not compiled_vnni.host_has_vnni(),
                              reason="no AVX-512 VNNI on this CPU")(marked)


def _qp(scale, zp, dtype=np.int8, axis=0):
    return QParams(np.atleast_1d(np.asarray(scale, np.float32)),
                   np.atleast_1d(np.asarray(zp, np.int64)), axis, np.dtype(dtype))


def _zero_point(rng, dtype):
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    return int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1))]))


def _geometry(rng, trial):
    """(input shape, filter shape, attrs): the stem, 1×1 and random windows."""
    act = int(rng.choice([0, 1, 2, 3]))
    if trial == 0:  # the stem: 3×3 stride 2 SAME on three channels (K = 27)
        return (2, 17, 16, 3), (16, 3, 3, 3), {"padding": 0, "stride_h": 2, "stride_w": 2,
                                               "fused_activation_function": act}
    if trial == 1:  # 1×1 stride 1, rows past one block
        return (3, 20, 21, 24), (40, 1, 1, 24), {"padding": 1, "stride_h": 1, "stride_w": 1,
                                                 "fused_activation_function": act}
    while True:
        n, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 12)), int(rng.integers(1, 12))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        padding = int(rng.integers(0, 2))  # SAME, VALID
        if padding == 1 and ((kh - 1) * dh >= h or (kw - 1) * dw >= w):
            continue
        return ((n, h, w, int(rng.integers(1, 37))), (int(rng.integers(1, 50)), kh, kw, 0),
                {"padding": padding, "stride_h": sh, "stride_w": sw, "dilation_h_factor": dh,
                 "dilation_w_factor": dw, "fused_activation_function": act})


def _case(rng, op, dtype, trial):
    """(inputs, their QParams, output QParams, attrs) of a random node whose centred
    filter fits in signed bytes."""
    per_channel = trial % 2 == 0
    if op == "fully_connected":
        depth, units = int(rng.integers(1, 200)), int(rng.integers(1, 70))
        xs, ws = (int(rng.integers(3, 40)), depth), (units, depth)
        attrs = {"fused_activation_function": int(rng.choice([0, 1, 2, 3]))}
    else:
        xs, ws, attrs = _geometry(rng, trial)
        ws = (*ws[:3], xs[3])
    channels = ws[0]
    x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, xs).astype(dtype)
    if dtype == np.int8:
        w = rng.integers(-127, 128, ws).astype(np.int8)
        scale = rng.uniform(1e-3, 2e-2, channels) if per_channel else rng.uniform(1e-3, 2e-2)
        wq = _qp(scale, np.zeros(channels if per_channel else 1, np.int64))
    else:  # uint8: per-tensor weights with a zero point, centred values in signed bytes
        zw = _zero_point(rng, dtype)
        w = rng.integers(max(0, zw - 128), min(255, zw + 127) + 1, ws).astype(np.uint8)
        wq = _qp(rng.uniform(1e-3, 2e-2), zw, dtype)
    xq = _qp(rng.uniform(1e-3, 5e-2), _zero_point(rng, dtype), dtype)
    oq = _qp(rng.uniform(2e-3, 2e-1), _zero_point(rng, dtype), dtype)
    inputs, qin = [x, w], [xq, wq]
    if trial % 3:
        inputs.append(rng.integers(-2**16, 2**16, channels).astype(np.int32))
        qin.append(None)
    return inputs, qin, oq, attrs


def _prepared(op, inputs, qin, oq, attrs, resolver):
    info = node_info(op, inputs, attrs, [oq.dtype], qin, [oq])
    return lookup(op).integer.prepare(dataclasses.replace(info, resolver=resolver))


@pytest.fixture
def vnni_calls(monkeypatch):
    """How many times each VNNI entry point ran."""
    calls = {"gemm": 0, "conv": 0}

    def counting(key, run):
        def counted(*args):
            out = run(*args)
            calls[key] += out is not None
            return out
        return counted
    monkeypatch.setattr(compiled_vnni, "run_gemm", counting("gemm", compiled_vnni.run_gemm))
    monkeypatch.setattr(compiled_vnni, "run_conv", counting("conv", compiled_vnni.run_conv))
    return calls


@needs_vnni
@pytest.mark.parametrize("resolver", list(OpResolverType), ids=lambda r: r.name)
@pytest.mark.parametrize("op", ["conv_2d", "fully_connected"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_vnni_equals_the_numpy_integer_kernel(op, dtype, resolver, rng, vnni_calls):
    module = _loaded("int8")
    variant = lookup(op).integer
    direct = set()
    for trial in range(10):
        inputs, qin, oq, attrs = _case(rng, op, dtype, trial)
        s = _prepared(op, inputs, qin, oq, attrs, resolver)
        assert isinstance(s, compiled_int8.Int8) and s.vnni is not None, (op, trial)
        if op == "conv_2d" and inputs[1].shape[1] * inputs[1].shape[2] > 1:
            direct.add(s.vnni.direct)  # in place, or patch rows gathered (dilated)
        want = variant.kernel.wraps.kernel(s.inner, *inputs)  # the NumPy kernel
        got = compiled_int8._RUN[s.kind](s, module, inputs[0])
        assert got.dtype == want.dtype == oq.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want, err_msg=f"{op} {trial} {attrs}")
    assert vnni_calls["gemm"] + vnni_calls["conv"] == 10
    if op == "conv_2d":
        assert vnni_calls["gemm"] and vnni_calls["conv"] and direct == {True, False}


@needs_vnni
@pytest.mark.parametrize("op", ["conv_2d", "fully_connected"])
def test_few_rows_equal_the_numpy_integer_kernel(op, rng):
    """One to five rows (batch 1 on a 1×1 map, a small FULLY_CONNECTED; fewer than four
    go channel tile by channel tile), on the kernels directly."""
    variant = lookup(op).integer
    for trial in range(12):
        dtype = (np.int8, np.uint8)[trial % 2]
        inputs, qin, oq, attrs = _case(rng, "fully_connected", dtype, trial)
        rows = min(trial % 5 + 1, inputs[0].shape[0])
        inputs[0] = inputs[0][:rows]
        if op == "conv_2d":  # the same product as a 1×1 convolution on a [rows, 1] map
            inputs[0] = inputs[0].reshape(rows, 1, 1, -1)
            inputs[1] = inputs[1].reshape(*inputs[1].shape[:1], 1, 1, -1)
            qin[1] = dataclasses.replace(qin[1], axis=0)
            attrs = {**attrs, "padding": 1, "stride_h": 1, "stride_w": 1}
        s = _prepared(op, inputs, qin, oq, attrs, list(OpResolverType)[trial % 4])
        want = variant.kernel.wraps.kernel(s.inner, *inputs)
        got = compiled_vnni.run_gemm(s.vnni, inputs[0].reshape(rows, -1))
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=str(trial))


@needs_vnni
def test_both_rescaling_forms_are_exercised(rng):
    """XNNPACK's float32 form under the default resolver, the integer form under the
    reference one (the parametrized test above covers each)."""
    inputs, qin, oq, attrs = _case(rng, "conv_2d", np.int8, 3)
    assert _prepared("conv_2d", inputs, qin, oq, attrs, OpResolverType.AUTO).vnni.fp32
    assert not _prepared("conv_2d", inputs, qin, oq, attrs,
                         OpResolverType.BUILTIN_REF).vnni.fp32


@needs_vnni
@pytest.mark.parametrize("op", ["conv_2d", "fully_connected"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_output_table_is_applied_to_the_output_bytes(op, dtype, rng, monkeypatch,
                                                     vnni_calls):
    """``out = table[byte]`` with the identity and a random permutation (the stem, 1×1
    and k×k), through the VNNI kernels and through every other path of the node's
    kernel (VNNI or int8 kernels not loaded)."""
    module = _loaded("int8")
    kernel = lookup(op).integer.kernel
    for trial in (0, 1, 2, 4):
        inputs, qin, oq, attrs = _case(rng, op, dtype, trial)
        base = _prepared(op, inputs, qin, oq, attrs, OpResolverType.AUTO)
        plain = compiled_int8._RUN[base.kind](base, module, inputs[0])
        for table in (np.arange(256, dtype=np.uint8), rng.permutation(256).astype(np.uint8)):
            want = table[plain.view(np.uint8)].view(plain.dtype)
            s = base.with_table(table)
            before = dict(vnni_calls)
            np.testing.assert_array_equal(kernel(s, *inputs), want)
            assert vnni_calls != before
            with monkeypatch.context() as m:
                m.setattr(compiled_vnni.Plan, "module", lambda self: None)
                np.testing.assert_array_equal(kernel(s, *inputs), want)
                m.setattr(s.loader, "module", None)
                np.testing.assert_array_equal(kernel(s, *inputs), want)
            assert vnni_calls != before


def test_what_does_not_fit_gets_no_plan():
    """A centred filter outside signed bytes, or sums that could pass int32."""
    q = np.zeros((5, 1), np.int64)
    args = ((q, np.ones(1, np.float32), True, -128, 127, 0), 0, np.dtype(np.int8),
            np.dtype(np.int8))
    assert compiled_vnni.plan(np.full((4, 1), 128.0, np.float32), *args, 255) is None
    assert compiled_vnni.plan(np.full((70000, 1), 127.0, np.float32), *args, 255) is None
    assert compiled_vnni.plan(np.full((4, 1), 1.5, np.float32), *args, 255) is None
    assert compiled_vnni.plan(np.zeros((0, 1), np.float32), *args, 255) is None
    assert compiled_vnni.plan(np.ones((4, 1), np.float32), q, 0, np.dtype(np.int16),
                              np.dtype(np.int8), 255) is None


def test_pack_filter_layout():
    """Per sixteen channels and four depth values, each channel's four bytes."""
    w = np.arange(5 * 18).reshape(5, 18) % 100
    p = compiled_vnni.pack_filter(w)
    assert p.shape == (2, 2, 64) and p.dtype == np.int8
    for k in range(8):
        for o in range(32):
            want = w[k, o] if k < 5 and o < 18 else 0
            assert p[o // 16, k // 4, (o % 16) * 4 + k % 4] == want


@needs_vnni
def test_fixtures_equal_with_and_without_vnni(monkeypatch, vnni_calls):
    """Every tensor of every int8 fixture under every resolver (preserved), VNNI on and
    off; and the outputs are TensorFlow's."""
    for model in KINDS:
        meta = json.loads((ROOT / model / "meta.json").read_text())
        with np.load(ROOT / model / "expected.npz") as f:
            expected = dict(f)
        for name, resolver in RESOLVERS.items():
            batch = meta["batches"][-1]
            x = _input(expected, "int8", batch)
            path = ROOT / model / "int8.tflite"
            runs = []
            for on in (True, False):
                with monkeypatch.context() as m:
                    if not on:
                        m.setattr(compiled_vnni.Plan, "module", lambda self: None)
                    it = invoked(path, x, resolver, preserve=True)
                    runs.append({d["index"]: it.get_tensor(d["index"]).copy()
                                 for d in it.get_tensor_details()
                                 if d["dtype"] in (np.int8, np.uint8)})
            assert runs[0].keys() == runs[1].keys()
            for k in runs[0]:
                np.testing.assert_array_equal(runs[0][k], runs[1][k],
                                              err_msg=f"{model} {name} tensor {k}")
            it = invoked(path, x, resolver)
            np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]),
                                          expected[f"int8/{name}/b{batch}/out0"],
                                          err_msg=f"{model} {name}")
    assert vnni_calls["gemm"] and vnni_calls["conv"]
