"""A deep ``aᵀ · b`` BATCH_MATMUL in OpenBLAS's order, compiled
(runtime/transposed_product.py): the op kernel's bits (NaN of both signs, infinities,
signed zeros) where proven, the op's kernel otherwise; which steps are rewritten; train
steps of a CNN with a 1×1 convolution stay identical with
``experimental_preserve_all_tensors``."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup
from litetrain.runtime import transposed_product as tp
from litetrain.runtime.filter_grad import proof_operand
from litetrain.runtime.step import Step
from litetrain.runtime.threads import blas_threads

from ..bits import same_bits
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
_LOADER = fast.kernels("filter_grad")
_MATMUL = lookup("batch_matmul").kernel


def _module():
    module = None if _LOADER is None else _LOADER.wait()
    if module is None:
        pytest.skip("no compiled filter_grad kernels")
    return module


def _step(rows: int, c: int, o: int, **attrs):
    attrs = {"adj_x": True, "adj_y": False, **attrs}
    a = np.zeros((rows, c), np.float32)
    b = np.zeros((rows, o), np.float32)
    step = Step(7, "batch_matmul", _MATMUL, False, (0, 1), (2,), (np.dtype(np.float32),),
                attrs)
    return tp.block_transposed_products([step], [a, b, _MATMUL(attrs, a, b)])[0]


@pytest.mark.parametrize("shape", [(1024, 8, 24), (8192, 16, 32), (2048, 32, 40),
                                   (900, 16, 17)], ids=str)
def test_the_compiled_product_gives_the_kernels_bits(shape, monkeypatch, rng):
    module = _module()
    step = _step(*shape)
    assert step.op == "batch_matmul[blocked]"
    s = step.settings
    rows, c, o = shape
    with blas_threads(1):
        for kind in ("zeros", "specials"):
            a, b = proof_operand(rng, (rows, c), kind), proof_operand(rng, (rows, o), kind)
            want = _MATMUL(s.attrs, a, b)
            verdict = tp.proven(s, module)
            used = []
            monkeypatch.setattr(module, "strided_taps",
                                lambda *x, f=module.strided_taps, u=used: u.append(1) or f(*x))
            s.kernels.ready()
            same_bits(tp.blocked_product(s, a, b), want)
            a.flags.writeable = False  # a read-only ``a``: compiled all the same
            same_bits(tp.blocked_product(s, a, b), want)
            same_bits(tp.blocked_product(s, a, np.asfortranarray(b)), want)  # not: kernel
            assert len(used) == 2 * verdict
            monkeypatch.undo()
    if shape == (8192, 16, 32) and not verdict:
        pytest.skip("this BLAS sums these products in another order")


def test_a_failed_proof_runs_the_kernel(monkeypatch, rng):
    module = _module()
    s = _step(1024, 8, 24).settings
    monkeypatch.setattr(tp, "proven", lambda *a: False)
    monkeypatch.setattr(module, "strided_taps", lambda *a: pytest.fail("compiled form used"))
    s.kernels.ready()
    a, b = proof_operand(rng, (1024, 8), "zeros"), proof_operand(rng, (1024, 24), "zeros")
    same_bits(tp.blocked_product(s, a, b), _MATMUL(s.attrs, a, b))


def test_a_kernel_one_ulp_off_is_refused(monkeypatch):
    module = _module()
    s = _step(8192, 16, 32).settings

    class OneUlpOff:
        @staticmethod
        def strided_taps(*args):
            module.strided_taps(*args)
            out = args[-1]
            out[...] = np.nextafter(out, np.float32(np.inf))
    monkeypatch.setattr(tp, "_PROVEN", {})
    with blas_threads(1):
        if not tp.proven(s, module):
            pytest.skip("this BLAS sums these products in another order")
        tp._PROVEN.clear()
        assert not tp.proven(s, OneUlpOff)


@pytest.mark.parametrize(("shape", "attrs"), [
    ((8192, 12, 32), {}), ((8192, 16, 16), {}), ((800, 16, 32), {}),
    ((8192, 16, 32), {"adj_y": True})], ids=str)
def test_other_products_are_left_alone(shape, attrs):
    if _LOADER is None:
        pytest.skip("no compiled kernels: nothing is rewritten")
    rows, c, o = shape
    if attrs:  # b given transposed: [o, rows]
        a, b = np.zeros((rows, c), np.float32), np.zeros((o, rows), np.float32)
        attrs = {"adj_x": True, **attrs}
        step = Step(7, "batch_matmul", _MATMUL, False, (0, 1), (2,),
                    (np.dtype(np.float32),), attrs)
        assert tp.block_transposed_products([step], [a, b, _MATMUL(attrs, a, b)]) == [step]
        return
    assert _step(*shape).op == "batch_matmul"


def test_train_steps_are_identical(monkeypatch):
    module = _module()
    used = []
    monkeypatch.setattr(module, "strided_taps",
                        lambda *x, f=module.strided_taps: used.append(1) or f(*x))
    model = lt.nn.Sequential([lt.nn.Conv2D(16, 3, padding="same", input_shape=(16, 16, 2)),
                              lt.nn.Conv2D(32, 1, activation="relu"),
                              lt.nn.Flatten(), lt.nn.Dense(3)])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    _same_run(lt.convert(m), _train_infer_calls((16, 16, 2), 3, [32, 32, 1, 32]))
    if not any(v for k, v in tp._PROVEN.items() if k[:3] == (8192, 16, 32)):
        pytest.skip("this BLAS sums these products in another order")
    assert used
