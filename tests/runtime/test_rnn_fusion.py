"""Recurrent layers' steps run as fewer steps (runtime/rnn_fusion.py): each rewrite gives
the bits of the steps it replaces (IEEE specials included), and whole LSTM/GRU train
steps, authored and TensorFlow-made, stay bit-identical with
``experimental_preserve_all_tensors`` while the rewrites apply."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup
from litetrain.runtime import gru_fusion, lstm_fusion, rnn_fusion
from tests.bits import same_bits, with_specials
from tests.conftest import FIXTURES

from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _op(name, *args):
    return lookup(name).kernel({}, *args)


def _lstm_reference(z, c_prev):
    i, f, c_hat, o = lookup("split").kernel({"num_splits": 4}, np.int32(-1), z)
    i, f, o = (_op("logistic", v) for v in (i, f, o))
    candidate = _op("tanh", c_hat)
    c = _op("mul", i, candidate)
    if c_prev is not None:
        c = _op("add", c, _op("mul", f, c_prev))
    squashed = _op("tanh", c)
    made = (i, f, candidate, o, c, squashed, _op("mul", o, squashed))
    return made if c_prev is not None else made[:1] + made[2:]


@pytest.mark.parametrize("shape", [(32, 4 * 64), (3, 4 * 5), (7, 4 * 9), (2, 3, 4 * 6)])
@pytest.mark.parametrize("forget", [True, False])
def test_lstm_cell_gives_the_ops_bits(shape, forget):
    rng = np.random.default_rng(len(shape) + shape[-1])
    z = with_specials(rng, shape) * 3
    c_prev = with_specials(rng, (*shape[:-1], shape[-1] // 4)) if forget else None
    got = lstm_fusion.lstm_cell(lstm_fusion.LstmCell(forget), z, *(() if c_prev is None
                                                                   else (c_prev,)))
    want = _lstm_reference(z, c_prev)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        same_bits(np.ascontiguousarray(a), b)


def _cell_grad_args(rng, rows, u, carry):
    """The gradient's operands as an LSTM step makes them (the gates views of one
    buffer), in ``lstm_cell_grad``'s argument order, and the roles' positions."""
    g = with_specials(rng, (rows, 4 * u))
    i, f, o = g[:, :u], g[:, u:2 * u], g[:, 3 * u:]
    dh, candidate, squashed, c_prev, kept = (with_specials(rng, (rows, u)) for _ in range(5))
    s = np.array(1.0, np.float32)
    args = (dh, o, squashed, *((kept,) if carry else ()), candidate, i, c_prev, f,
            i, candidate, dh, squashed, o, f, s)
    roles = tuple(next(k for k, a in enumerate(args) if a is t)
                  for t in (dh, i, f, candidate, o, squashed, c_prev))
    return args, roles


@pytest.mark.parametrize("carry", [True, False])
@pytest.mark.parametrize("rows, units", [(32, 64), (3, 5)])
def test_lstm_cell_grad_compiled_gives_the_chains_bits(carry, rows, units):
    loader = fast.kernels("rnn")
    if loader is None or loader.wait() is None:
        pytest.skip("the [fast] extra (numba) is not installed or is turned off")
    rng = np.random.default_rng(rows + units)
    args, roles = _cell_grad_args(rng, rows, units, carry)
    plain = {"has_carry": carry, "has_carry_out": True, "roles": roles}
    compiled = fast.WithKernels(plain, loader)
    want = lstm_fusion.lstm_cell_grad(plain, *args)
    got = lstm_fusion.lstm_cell_grad(compiled, *args)
    assert lstm_fusion._compiled_cell_grad(loader.module, roles, carry, True, args) is not None
    for a, b in zip(got, want, strict=True):
        same_bits(a, b)
    # the NumPy form is the chains of runtime/fused.py one by one
    dh, o, squashed = args[:3]
    rest = args[4:] if carry else args[3:]
    candidate, i, c_prev, f = rest[:4]
    s = args[-1]
    here = _op("mul", _op("mul", dh, o), _op("sub", s, _op("mul", squashed, squashed)))
    dc = _op("add", args[3], here) if carry else here

    def sigmoid_grad(a, b, y):
        return _op("mul", _op("mul", _op("mul", a, b), y), _op("sub", s, y))
    dz = np.concatenate([
        sigmoid_grad(dc, candidate, i), sigmoid_grad(c_prev, dc, f),
        _op("mul", _op("mul", dc, i), _op("sub", s, _op("mul", candidate, candidate))),
        sigmoid_grad(dh, squashed, o)], axis=-1)
    same_bits(want[0], dz)
    same_bits(want[1], _op("mul", dc, f))


def _gru_reference(x, rec, last):
    x_z, x_r, x_h = lookup("split").kernel({"num_splits": 3}, np.int32(-1), x)
    r_z, r_r, r_h = lookup("split").kernel({"num_splits": 3}, np.int32(-1), rec)
    z = _op("logistic", _op("add", x_z, r_z))
    r = _op("logistic", _op("add", x_r, r_r))
    h_hat = _op("tanh", _op("add", x_h, _op("mul", r, r_h)))
    if last.size == 1:
        keep = _op("sub", last, z)
        return z, r, r_h, h_hat, keep, _op("mul", keep, h_hat)
    keep = _op("sub", last, h_hat)
    return z, r, r_h, h_hat, keep, _op("add", h_hat, _op("mul", z, keep))


@pytest.mark.parametrize("rows, units", [(32, 64), (3, 5)])
@pytest.mark.parametrize("state", [True, False])
def test_gru_cell_and_its_gradient_give_the_ops_bits(rows, units, state):
    rng = np.random.default_rng(rows * units)
    x, rec = (with_specials(rng, (rows, 3 * units)) * 3 for _ in range(2))
    last = with_specials(rng, (rows, units)) if state else np.array(1.0, np.float32)
    made = gru_fusion.gru_cell(gru_fusion.GruCell(state), x, rec, last)
    for a, b in zip(made, _gru_reference(x, rec, last), strict=True):
        same_bits(np.ascontiguousarray(a), b)
    if not state:
        return
    z, r, r_h, h_hat, keep, _ = made
    dh = with_specials(rng, (rows, units))
    s = np.array(1.0, np.float32)
    want = gru_fusion.gru_cell_grad({}, dh, z, r, r_h, h_hat, keep, s)
    to_state = _op("mul", dh, z)
    d_a = _op("mul", _op("sub", dh, to_state), _op("sub", s, _op("mul", h_hat, h_hat)))

    def sigmoid_grad(a, b, y):
        return _op("mul", _op("mul", _op("mul", a, b), y), _op("sub", s, y))
    d_z, d_r = sigmoid_grad(dh, keep, z), sigmoid_grad(d_a, r_h, r)
    for a, b in zip(want, (to_state, np.concatenate([d_z, d_r, d_a], axis=-1),
                           np.concatenate([d_z, d_r, _op("mul", d_a, r)], axis=-1)),
                    strict=True):
        same_bits(a, b)
    loader = fast.kernels("rnn")
    if loader is None or loader.wait() is None:
        return
    args = (dh, z, r, r_h, h_hat, keep, s)
    assert gru_fusion._compiled_cell_grad(loader.module, *args) is not None
    got = gru_fusion.gru_cell_grad(fast.WithKernels({}, loader), *args)
    for a, b in zip(got, want, strict=True):
        same_bits(a, b)


def test_concatenation_falls_back_on_other_shapes():
    mul = lookup("mul")
    parts = ((mul.kernel, mul.into, {}), None)
    index = (slice(None), slice(0, 2)), (slice(None), slice(2, 5))
    settings = rnn_fusion.InPlaceConcat(parts, ((index[0], 0, 2), (index[1], 2, 1)),
                                        ((3, 2), (3, 2), (3, 3)), (3, 5))
    rng = np.random.default_rng(0)
    a, b, c = (with_specials(rng, s) for s in ((3, 2), (3, 2), (3, 3)))
    same_bits(rnn_fusion.concatenated(settings, a, b, c), np.concatenate([a * b, c], axis=1))
    a, b, c = (with_specials(rng, s) for s in ((4, 2), (4, 2), (4, 3)))  # not as planned
    same_bits(rnn_fusion.concatenated(settings, a, b, c), np.concatenate([a * b, c], axis=1))


def test_transposed_product_is_cached_per_value():
    rng = np.random.default_rng(1)
    cache = rnn_fusion.Transposed()
    x, w = rng.standard_normal((5, 6), np.float32), rng.standard_normal((4, 6), np.float32)
    same_bits(rnn_fusion.matmul_transposed(cache, {}, x, w), x @ w.T)
    first = cache.pair[1]
    rnn_fusion.matmul_transposed(cache, {}, x, w)
    assert cache.pair[1] is first
    w2 = w + 1
    same_bits(rnn_fusion.matmul_transposed(cache, {}, x, w2), x @ w2.T)
    assert cache.pair[0] is w2


def _ops_of(interpreter: lt.Interpreter) -> Counter:
    seen: Counter = Counter()
    for plan in interpreter._plans.values():
        for cached in plan._per_shapes.values():
            seen.update(s.op for s in cached[0])
    return seen


def _exported(layer: str, units: int, steps: int, features: int) -> bytes:
    rnn = {"lstm": lt.nn.LSTM, "gru": lt.nn.GRU}[layer]
    model = lt.nn.Sequential([rnn(units, input_shape=(steps, features)), lt.nn.Dense(4)])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


@pytest.mark.parametrize("layer", ["lstm", "gru"])
@pytest.mark.parametrize("units, steps, batches", [(8, 5, [6, 6, 1, 6]),
                                                  (64, 16, [32, 32, 3, 32])])
def test_exported_recurrent_train_steps_are_identical(layer, units, steps, batches):
    content = _exported(layer, units, steps, 3)
    _same_run(content, _train_infer_calls((steps, 3), 4, batches))
    it = lt.Interpreter(model_content=content)
    train = it.get_signature_runner("train")
    x = np.ones((6, steps, 3), np.float32)
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
    train(x=x, y=y)
    seen = _ops_of(it)
    assert (seen["batch_matmul[transposed_once]"]
            + seen["batch_matmul+add[transposed_once]"]) >= steps - 1
    if layer == "lstm":
        assert seen["lstm_cell"] == steps
        assert seen["lstm_cell_grad"] == steps - 1  # the first step's has no forget gate
    else:
        assert seen["gru_cell"] == steps
        assert seen["gru_cell_grad"] == steps - 1  # the first step's has no state


@pytest.mark.parametrize("kind", ["lstm_flex", "gru_flex", "lstm_unrolled", "gru_unrolled"])
def test_tensorflow_recurrent_training_fixtures_are_identical(kind):
    folder = FIXTURES / "tf_training" / kind
    data = np.load(folder / "expected.npz")
    calls = [("train", {"x": data[f"train_x_{k}"], "y": data[f"train_y_{k}"]})
             for k in range(5)]
    calls.insert(2, ("infer", {"x": data["infer_x"]}))
    _same_run(folder / "model.tflite", calls)
