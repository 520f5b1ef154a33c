"""Gradient chains fused into one step (runtime/fused.py) give the bits of the ops they
replace, in their NumPy form and in their compiled form (the ``[fast]`` extra), in place
or not; whole train steps stay bit-identical with ``experimental_preserve_all_tensors``."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup
from litetrain.runtime import fused

from .test_simplify import _same_run, _train_infer_calls

# The inputs include IEEE specials on purpose: NumPy's overflow/invalid warnings are
# expected here (a model run computes them silently, as TF Lite does).
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0, 1e-30, 3e38, -2.5]


def _op(name, *args):
    attrs = {} if name != "cast" else np.dtype(np.float32)
    return lookup(name).kernel(attrs, *args)


# The chains as the op table's kernels compute them, step by step.
REFERENCE = {
    "masked": lambda dy, m: _op("mul", dy, _op("cast", m)),
    "masked_greater": lambda dy, x, t: _op("mul", dy, _op("cast", _op("greater", x, t))),
    "sigmoid_grad": lambda dy, y, s: _op("mul", _op("mul", dy, y), _op("sub", s, y)),
    "tanh_grad": lambda dy, y, s: _op("mul", dy, _op("sub", s, _op("mul", y, y))),
    "sigmoid_grad_of_product": lambda a, b, y, s: REFERENCE["sigmoid_grad"](
        _op("mul", a, b), y, s),
    "tanh_grad_of_product": lambda a, b, y, s: REFERENCE["tanh_grad"](_op("mul", a, b), y, s),
    "affine": lambda x, s, b: _op("add", _op("mul", x, s), b),
    "batch_norm_grad": lambda dy, s, xc, k1, k0: _op("add", _op("mul", dy, s), _op(
        "add", _op("mul", xc, k1), k0)),
    "batch_norm_grad_masked": lambda dy, s, xc, k1, k0, x, t: REFERENCE["masked_greater"](
        REFERENCE["batch_norm_grad"](dy, s, xc, k1, k0), x, t),
}
CHAINS = {c.name: c for c in (fused.MASKED, fused.MASKED_GREATER, fused.SIGMOID_GRAD,
                              fused.TANH_GRAD, fused.SIGMOID_GRAD_OF_PRODUCT,
                              fused.TANH_GRAD_OF_PRODUCT, fused.AFFINE,
                              fused.BATCH_NORM_GRAD, fused.BATCH_NORM_GRAD_MASKED)}


def _operands(name, shape, rng):
    def special(v):
        flat, n = v.reshape(-1), min(v.size, len(SPECIAL))
        flat[:n] = SPECIAL[:n]
        flat[n:2 * n] = SPECIAL[::-1][:len(flat[n:2 * n])]
        return v
    dy = special(rng.standard_normal(shape).astype(np.float32))
    second = special(rng.standard_normal(shape).astype(np.float32)[::-1].copy())
    if name in ("affine", "batch_norm_grad", "batch_norm_grad_masked"):
        vectors = [special(rng.standard_normal(shape[-1]).astype(np.float32))
                   for _ in range(3)]
        if name == "affine":
            return dy, vectors[0], vectors[1]
        if name == "batch_norm_grad":
            return dy, vectors[0], second, vectors[1], vectors[2]
        x = special(rng.standard_normal(shape).astype(np.float32)[:, ::-1].copy())
        return (dy, vectors[0], second, vectors[1], vectors[2], x,
                np.array(0.0, np.float32))
    if name == "masked":
        return dy, second > 0
    if name.endswith("_of_product"):
        third = special(rng.standard_normal(shape).astype(np.float32)[:, ::-1].copy())
        return dy, third, second, np.array(1.0, np.float32)
    scalar = np.array(0.0 if name == "masked_greater" else 1.0, np.float32)
    return dy, second, scalar


def _compiled_settings():
    loader = fast.kernels("train")
    if loader is None or loader.wait() is None:
        pytest.skip("the [fast] extra (numba) is not installed")
    return fast.WithKernels({}, loader)


@pytest.mark.parametrize("name", sorted(CHAINS))
@pytest.mark.parametrize("shape", [(5, 11), (64, 33, 9), (3, 5, 5, 16)])
def test_fused_forms_give_the_chains_bits(name, shape, rng):
    chain, ops = CHAINS[name], _operands(name, shape, rng)
    want = REFERENCE[name](*ops).view(np.uint32)
    forms = [("numpy", {}, fused.run_numpy)]
    if fast.kernels("train") is not None:
        forms.append(("compiled", _compiled_settings(), fused.run))
    for form, settings, run in forms:
        got = run(chain, settings, *ops)
        np.testing.assert_array_equal(got.view(np.uint32), want, err_msg=form)
        for k, kind in enumerate(chain.kinds):  # in place, into each full-size operand
            if kind != "array":
                continue
            target = [v.copy() for v in ops]
            got = fused._in_place(chain, functools.partial(run, chain), k)(settings, *target)
            assert got is target[k], form
            np.testing.assert_array_equal(got.view(np.uint32), want, err_msg=f"{form} {k}")


def test_compiled_form_takes_read_only_and_falls_back_on_strided(rng):
    settings = _compiled_settings()
    dy, y, s = _operands("sigmoid_grad", (40, 50), rng)
    want = REFERENCE["sigmoid_grad"](dy, y, s).view(np.uint32)
    y.flags.writeable = False
    got = fused.run(fused.SIGMOID_GRAD, settings, dy, y, s)
    np.testing.assert_array_equal(got.view(np.uint32), want)
    spread = np.zeros((40, 100), np.float32)
    spread[:, ::2] = dy
    wide = spread[:, ::2]  # dy, not contiguous: the NumPy form
    assert fused._compiled(fused.SIGMOID_GRAD, settings.loader.module, (wide, y, s),
                           None) is None
    np.testing.assert_array_equal(fused.run(fused.SIGMOID_GRAD, settings, wide, y, s)
                                  .view(np.uint32), want)


def _spy(monkeypatch) -> list[str]:
    seen: list[str] = []
    original = fused._match

    def spy(steps, pos, *rest):
        found = original(steps, pos, *rest)
        if found is not None:
            seen.append(found[0].name)
        return found
    monkeypatch.setattr(fused, "_match", spy)
    return seen


@pytest.mark.parametrize("layer", ["lstm", "gru"])
def test_recurrent_train_steps_are_identical_and_fused(layer, monkeypatch):
    if fast.kernels("train") is not None:
        fast.kernels("train").wait()
    seen = _spy(monkeypatch)
    rnn = {"lstm": lt.nn.LSTM, "gru": lt.nn.GRU}[layer]
    model = lt.nn.Sequential([rnn(8, input_shape=(5, 3)), lt.nn.Dense(4)])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    _same_run(lt.convert(m), _train_infer_calls((5, 3), 4, [6, 6, 1, 6]))
    assert {"sigmoid_grad_of_product", "tanh_grad_of_product"} <= set(seen)


def test_relu_max_pool_cnn_is_identical_and_fused(monkeypatch):
    """Large enough for the compiled forms (when installed), with ties in the max-pool
    windows (ReLU zeros) and dead ReLUs."""
    if fast.kernels("train") is not None:
        fast.kernels("train").wait()
    seen = _spy(monkeypatch)
    model = lt.nn.Sequential([
        lt.nn.Conv2D(8, 3, padding="same", activation="relu", input_shape=(24, 24, 2)),
        lt.nn.MaxPool2D(2),
        lt.nn.Conv2D(8, 3, activation="relu"),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    _same_run(lt.convert(m), _train_infer_calls((24, 24, 2), 3, [40, 40, 1, 40]))
    # the max-pool gradient's masks are fused with it (tests/runtime/test_pool_grad.py)
    assert "masked_greater" in seen


def test_batch_norm_cnn_is_identical_and_fused(monkeypatch):
    """Batch norm's output and input-gradient chains (with and without a ReLU before the
    batch norm) are fused where compiled (large enough, the [fast] extra installed), and
    the step stays bit-identical."""
    if fast.kernels("train") is None:
        pytest.skip("the [fast] extra (numba) is not installed")
    fast.kernels("train").wait()
    seen = _spy(monkeypatch)
    model = lt.nn.Sequential([
        lt.nn.Conv2D(16, 3, padding="same", activation="relu", input_shape=(16, 16, 3)),
        lt.nn.BatchNormalization(),
        lt.nn.Conv2D(8, 1),
        lt.nn.BatchNormalization(),
        lt.nn.Flatten(),
        lt.nn.Dense(5),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.05))
    _same_run(lt.convert(m), _train_infer_calls((16, 16, 3), 5, [70, 70, 1, 70]))
    # the first batch norm's input gradient goes through the ReLU before it
    assert {"affine", "batch_norm_grad", "batch_norm_grad_masked"} <= set(seen)


def test_chains_read_elsewhere_or_not_float32_are_left_alone():
    from litetrain.runtime.step import Step

    def step(op, inputs, out, settings=None):
        kernel = lookup(op).kernel
        return Step(index=out, op=op, kernel=kernel, stateful=False, inputs=inputs,
                    outputs=(out,), out_dtypes=(np.dtype(np.float32),),
                    settings={} if settings is None else settings, fresh=True)
    f32 = np.zeros((4, 4), np.float32)
    values = [f32, f32, np.array(1.0, np.float32), f32, f32, f32, f32]
    chain = [step("mul", (0, 1), 3), step("sub", (2, 1), 4), step("mul", (3, 4), 5)]
    assert [s.op for s in fused.fuse_gradient_chains(chain, values, set())] == \
        ["mul[sigmoid_grad]"]
    # dy·y also read by another step: nothing fused
    reread = [*chain, step("add", (3, 0), 6)]
    assert [s.op for s in fused.fuse_gradient_chains(reread, values, set())] == \
        ["mul", "sub", "mul", "add"]
    # float64 values: nothing fused (NumPy would promote differently)
    f64 = [v.astype(np.float64) for v in values]
    assert len(fused.fuse_gradient_chains(chain, f64, set())) == 3
    # the inner result is a subgraph output: nothing fused
    assert len(fused.fuse_gradient_chains(chain, values, {4})) == 3
