"""A sum or mean over the leading axes of a product without the product array
(runtime/product_sum.py): the fused step gives the two kernels' bits (NaN, infinities,
signed zeros, strided views, row groups crossing image rows, channel counts off the
sixteen lanes), the compiled order is used only where proven BLAS's, and train steps
stay bit-identical with ``experimental_preserve_all_tensors``."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup
from litetrain.runtime import product_sum as ps
from litetrain.runtime.threads import blas_threads

from ..bits import same_bits, with_specials
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
_AXES = np.array([0, 1, 2], np.int32)


def _module():
    loader = fast.kernels("train")
    module = None if loader is None else loader.wait()
    if module is None:
        pytest.skip("no compiled train kernels")
    return loader, module


def _settings(loader, op: str, square: bool):
    attrs = MappingProxyType({"keep_dims": False})
    settings = ps.Reduced(lookup("square" if square else "mul").kernel, attrs, square,
                          lookup(op).kernel, attrs, _AXES, op == "mean", False,
                          fast.WithKernels({}, loader))
    settings.kernels.ready()
    return settings


def _reference(op, a, b):
    p = lookup("mul").kernel({}, a, b) if b is not None else lookup("square").kernel({}, a)
    return lookup(op).kernel({"keep_dims": False}, p, _AXES)


@pytest.mark.parametrize("shape", [(4, 4, 4, 16), (2, 8, 8, 32), (4, 6, 6, 16),
                                   (3, 5, 8, 20), (2, 4, 16, 8)])
@pytest.mark.parametrize(("op", "square"), [("sum", False), ("mean", False), ("mean", True)])
def test_fused_step_gives_the_kernels_bits(shape, op, square, rng, monkeypatch):
    loader, module = _module()
    used = []
    monkeypatch.setattr(module, "product_sum", lambda *a, f=module.product_sum:
                        used.append(1) or f(*a), raising=True)
    settings = _settings(loader, op, square)
    a = with_specials(rng, shape)
    a.reshape(-1)[:3] = [np.inf, -np.inf, -0.0]
    b = None if square else with_specials(rng, shape)
    # contiguous operands, and strided views of padded arrays (rows of w·c contiguous)
    big = np.zeros((shape[0], shape[1] + 2, shape[2] + 2, shape[3]), np.float32)
    big[:, 1:-1, 1:-1] = a
    for x in (a, big[:, 1:-1, 1:-1]):
        with blas_threads(1):
            got = ps.product_sum(settings, *((x,) if square else (x, b)), _AXES)
            want = _reference(op, a, b)
        same_bits(got, want)
    rows, c = shape[0] * shape[1] * shape[2], shape[3]
    with blas_threads(1):
        proven = ps.proven(module, rows, c)
    assert bool(used) == proven


def test_the_compiled_order_is_blas_on_this_machine():
    """The shapes of a CNN step's batch-norm statistics (one BLAS thread)."""
    _, module = _module()
    with blas_threads(1):
        verdicts = [ps.proven(module, rows, c) for rows, c in [(8192, 16), (2048, 32)]]
    if not any(verdicts):
        pytest.skip("this machine's BLAS sums in another order: the two kernels run")
    assert all(verdicts)


def _cnn() -> bytes:
    model = lt.nn.Sequential([
        lt.nn.Conv2D(16, 3, padding="same", activation="relu", input_shape=(8, 8, 3)),
        lt.nn.BatchNormalization(),
        lt.nn.DepthwiseConv2D(3, padding="same", activation="relu"),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


def test_train_steps_are_identical_and_fused(monkeypatch):
    _module()
    fused = []
    original = ps.fuse_product_sums

    def spy(*args):
        steps = original(*args)
        fused.extend(s.op for s in steps
                     if s.kernel in (ps.product_sum, ps.packed_product_sums))
        return steps
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_product_sums", spy)
    calls = _train_infer_calls((8, 8, 3), 3, [8, 8, 2, 8, 8])
    with blas_threads(1):
        _same_run(_cnn(), calls)
    _same_run(_cnn(), calls)
    assert {"mean[square]", "sum[mul]", "pack[product_sums]"} <= set(fused)


@pytest.mark.parametrize("shape", [(2, 8, 8, 16), (3, 4, 6, 32), (2, 8, 8, 8)])
def test_packed_taps_give_the_kernels_bits(shape, rng, monkeypatch):
    """A depthwise filter gradient's taps: views of one padded array times one ``B``."""
    loader, module = _module()
    used = []
    monkeypatch.setattr(module, "product_sums", lambda *a, f=module.product_sums:
                        used.append(1) or f(*a), raising=True)
    n, h, w, c = shape
    x = with_specials(rng, (n, h + 2, w + 2, c))
    x.reshape(-1)[:3] = [np.inf, -np.inf, -0.0]
    b = with_specials(rng, shape)
    views = [x[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]
    tap = _settings(loader, "sum", False)
    settings = ps.Packed((tap,) * 9, lookup("pack").kernel, MappingProxyType({"axis": 0}))
    with blas_threads(1):
        got = ps.packed_product_sums(settings, *views, b, _AXES)
        want = np.stack([_reference("sum", v, b) for v in views])
        proven = ps.proven(module, n * h * w, c)
    same_bits(got, want)
    assert bool(used) == proven
    # the same values in a float32 view of bytes (as a kept buffer of runtime/arena.py)
    raw = np.empty(x.nbytes + 64, np.uint8)[64:].view(np.float32).reshape(x.shape)
    raw[...] = x
    with blas_threads(1):
        same_bits(ps.packed_product_sums(settings, *(raw[:, i:i + h, j:j + w]
                                                     for i in range(3) for j in range(3)),
                                         b, _AXES), want)
    assert len(used) == 2 * proven
    # views of different arrays: one tap at a time, the same bits
    views[4] = views[4].copy()
    with blas_threads(1):
        same_bits(ps.packed_product_sums(settings, *views, b, _AXES), want)
