"""A strided convolution's filter gradient with its taps read in place and summed in
OpenBLAS's level-3 order (``fast.filter_grad.strided_taps``, adopted by
runtime/filter_grad.py after its proof): the chain's bits (NaN of both signs, infinities,
signed zeros) over several geometries and depths of one to several K blocks; a failed
proof, or a kernel one unit in the last place off, keeps the gathered path; train steps
stay identical with ``experimental_preserve_all_tensors``."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast
from litetrain.runtime import filter_grad
from litetrain.runtime.threads import blas_threads

from ..bits import same_bits
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
_LOADER = fast.kernels("filter_grad")


def _cnn(channels: int, filters: int, kernel: int, stride: int, padding: str,
         size: int) -> bytes:
    model = lt.nn.Sequential([
        lt.nn.Conv2D(channels, 1, input_shape=(size, size, 2)),
        lt.nn.Conv2D(filters, kernel, strides=stride, padding=padding, activation="relu"),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


def _module():
    module = None if _LOADER is None else _LOADER.wait()
    if module is None:
        pytest.skip("no compiled filter_grad kernels")
    return module


def _fused_step(monkeypatch, rng, case, batch):
    """(the fused step, the first run's values) of the case's train signature."""
    seen = []
    original = filter_grad.fuse_filter_grad_taps

    def spy(steps, values, outputs):
        after = original(steps, values, outputs)
        seen.extend((s, values) for s in after if s.op == "pack[filter_grad_taps]")
        return after
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_filter_grad_taps", spy)
    size = case[-1]
    run = lt.Interpreter(model_content=_cnn(*case)).get_signature_runner("train")
    run(x=rng.random((batch, size, size, 2), np.float32),
        y=np.eye(3, dtype=np.float32)[[0] * batch])
    monkeypatch.undo()
    ((step, values),) = seen
    return step, values


def _counting(monkeypatch, module) -> list:
    used = []
    monkeypatch.setattr(module, "strided_taps",
                        lambda *a, f=module.strided_taps: used.append(1) or f(*a))
    return used


def _operands(rng, step, values):
    """``x`` and ``d`` with signed zeros, a tiny value, NaN and infinities mixed in."""
    s = step.settings
    x = filter_grad.proof_operand(rng, s.x_shape, "zeros")
    d = filter_grad.proof_operand(rng, values[step.inputs[1]].shape, "zeros")
    return x, d, [values[i] for i in step.inputs[2:]]


@pytest.mark.parametrize(("case", "batch"), [
    ((8, 16, 3, 2, "same", 8), 2), ((16, 5, 3, 2, "valid", 9), 1),
    ((8, 40, 2, 3, "same", 10), 3), ((8, 32, 3, 2, "same", 16), 16),
    ((16, 33, 3, 2, "same", 12), 40), ((32, 32, 3, 2, "same", 16), 32)], ids=str)
def test_the_blocked_sums_give_the_chains_bits(case, batch, monkeypatch, rng):
    module = _module()
    step, values = _fused_step(monkeypatch, rng, case, batch)
    s = step.settings
    with blas_threads(1):
        for kind in ("zeros", "specials"):
            x, d, consts = _operands(rng, step, values)
            if kind == "specials":
                x = filter_grad.proof_operand(rng, s.x_shape, kind)
                d = filter_grad.proof_operand(rng, d.shape, kind)
            want = filter_grad._original(s, x, d, consts)
            verdict = filter_grad.blocked_proven(s, module, d.shape[1])
            s.blocked.ready()
            used = _counting(monkeypatch, module)
            same_bits(filter_grad.gathered_taps(s, x, d, *consts), want)
            assert len(used) == verdict
            assert np.isnan(want).any() and (kind == "specials" or not np.isnan(want).all())
            monkeypatch.undo()


def test_a_failed_proof_keeps_the_gathered_path(monkeypatch, rng):
    module = _module()
    step, values = _fused_step(monkeypatch, rng, (8, 16, 3, 2, "same", 16), 16)
    s = step.settings
    x, d, consts = _operands(rng, step, values)
    monkeypatch.setattr(filter_grad, "blocked_proven", lambda *a: False)
    monkeypatch.setattr(module, "strided_taps", lambda *a: pytest.fail("compiled form used"))
    s.blocked.ready()
    same_bits(filter_grad.gathered_taps(s, x, d, *consts),
              filter_grad._original(s, x, d, consts))


def test_a_kernel_one_ulp_off_is_refused(monkeypatch, rng):
    module = _module()
    step, _ = _fused_step(monkeypatch, rng, (32, 32, 3, 2, "same", 16), 32)

    class OneUlpOff:
        @staticmethod
        def strided_taps(*args):
            module.strided_taps(*args)
            out = args[-1]
            out[...] = np.nextafter(out, np.float32(np.inf))
    monkeypatch.setattr(filter_grad, "_BLOCKED", {})
    with blas_threads(1):
        if not filter_grad.blocked_proven(step.settings, module, 32):
            pytest.skip("this BLAS sums these products in another order")
        filter_grad._BLOCKED.clear()
        assert not filter_grad.blocked_proven(step.settings, OneUlpOff, 32)


def test_level3_blocks():
    assert filter_grad.level3_blocks(2048).tolist() == [0, 448, 896, 1344, 1696, 2048]
    assert filter_grad.level3_blocks(448).tolist() == [0, 448]
    assert filter_grad.level3_blocks(500).tolist() == [0, 256, 500]
    assert filter_grad.level3_blocks(896).tolist() == [0, 448, 896]


@pytest.mark.parametrize("case", [(8, 16, 3, 2, "same", 8), (16, 8, 2, 2, "valid", 9),
                                  (32, 32, 3, 2, "same", 16)], ids=str)
def test_train_steps_are_identical(case, monkeypatch):
    module = _module()
    used, verdicts, proving = [], [], []
    proof = filter_grad.blocked_proven

    def recorded(*args):
        proving.append(1)
        verdicts.append(proof(*args))
        proving.pop()
        return verdicts[-1]
    monkeypatch.setattr(filter_grad, "blocked_proven", recorded)
    kernel = module.strided_taps

    def counted(*args):
        if not proving:  # (the proof's own calls are not uses)
            used.append(1)
        return kernel(*args)
    monkeypatch.setattr(module, "strided_taps", counted)
    size = case[-1]
    _same_run(_cnn(*case), _train_infer_calls((size, size, 2), 3, [32, 32, 1, 32]))
    assert verdicts and len(used) == sum(verdicts)
    if case[0] == 32 and not any(verdicts):  # [2048, 32]ᵀ·[2048, 32] per tap
        pytest.skip("this BLAS sums these products in another order")


def test_a_batch_32_cnns_strided_layer_is_adopted_here(monkeypatch, rng):
    """[32, 16, 16, 32] 3×3 stride 2 SAME to 32 channels (one BLAS thread): per tap a
    [2048, 32]ᵀ·[2048, 32] product, which this machine's OpenBLAS sums in level-3 K
    blocks: the compiled sums are proven (elsewhere: the gathered path runs, and this
    says so by skipping)."""
    module = _module()
    step, _ = _fused_step(monkeypatch, rng, (32, 32, 3, 2, "same", 16), 32)
    with blas_threads(1):
        verdict = filter_grad.blocked_proven(step.settings, module, 32)
    if not verdict:
        pytest.skip("this BLAS sums these products in another order")
