"""``num_threads`` sets NumPy's BLAS thread count during invokes and restores it after."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import litetrain as lt
from litetrain.runtime import plan as plan_module
from litetrain.runtime.threads import blas_threads, current_blas_threads

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tutorial" / "model.tflite"

pytestmark = pytest.mark.skipif(current_blas_threads() is None,
                                reason="NumPy's BLAS is not visible to threadpoolctl")


@pytest.fixture
def seen(monkeypatch):
    """The BLAS thread count observed inside every plan run."""
    counts: list[int | None] = []
    run = plan_module.Plan.run

    def spy(self, ctx, feeds):
        counts.append(current_blas_threads())
        return run(self, ctx, feeds)
    monkeypatch.setattr(plan_module.Plan, "run", spy)
    return counts


def test_signature_runs_use_num_threads_and_restore(seen):
    before = current_blas_threads()
    with blas_threads(2):
        outer = current_blas_threads()
        it = lt.Interpreter(model_path=MODEL, num_threads=1)
        x = np.zeros((4, 28, 28), np.float32)
        it.get_signature_runner("train")(x=x, y=np.zeros((4, 10), np.float32))
        it.get_signature_runner("infer")(x=x)
        assert seen and set(seen) == {1}
        assert current_blas_threads() == outer
    assert current_blas_threads() == before


def test_default_leaves_blas_alone(seen):
    with blas_threads(2):
        lt.Interpreter(model_path=MODEL).get_signature_runner("infer")(
            x=np.zeros((1, 28, 28), np.float32))
    assert set(seen) == {2}


def test_invoke_uses_num_threads(seen):
    it = lt.Interpreter(model_path=Path(MODEL).parents[1] / "inference" / "float.tflite",
                        num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()
    assert set(seen) == {1}


def test_threads_restored_when_invoke_fails():
    before = current_blas_threads()
    it = lt.Interpreter(model_path=MODEL, num_threads=1)
    with pytest.raises(lt.SignatureError):
        it.get_signature_runner("infer")(x=np.zeros((1, 5), np.float32))
    assert current_blas_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_num_threads_is_refused(bad):
    with pytest.raises(ValueError, match="num_threads"):
        lt.Interpreter(model_path=MODEL, num_threads=bad)


def test_overlapping_runs_in_threads_restore_the_process_count(monkeypatch):
    """A enters, B enters, A leaves, B leaves: B must not change the pool under A (nor A
    under B), and the count before A must come back (a naive save/restore per run leaves
    A's count behind)."""
    import threading

    from litetrain.runtime import threads as threads_module

    before = current_blas_threads()
    calls = []
    for lib in threads_module._blas_libraries():
        real = lib.set_num_threads

        def spy(n, real=real):
            calls.append((threading.current_thread().name, n))
            return real(n)
        monkeypatch.setattr(lib, "set_num_threads", spy)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def run_a():
        with blas_threads(1):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def run_b():
        a_in.wait(10)
        with blas_threads(before + 1):
            b_in.set()
            a_out.wait(10)

    threads = [threading.Thread(target=run_a, name="A"), threading.Thread(target=run_b, name="B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [c for c in calls if c[1] != before] == [("A", 1)]  # only the first run sets it
    assert current_blas_threads() == before


def test_concurrent_interpreters_in_threads_give_the_same_results():
    import threading

    x = np.random.default_rng(0).standard_normal((32, 28, 28)).astype(np.float32)
    want = lt.Interpreter(model_path=MODEL).get_signature_runner("infer")(x=x)["logits"]
    got, errors = [], []

    def work(n):
        try:
            it = lt.Interpreter(model_path=MODEL, num_threads=n)
            for _ in range(5):
                got.append(it.get_signature_runner("infer")(x=x)["logits"])
        except Exception as e:  # reported below; a thread's exception is otherwise lost
            errors.append(e)

    before = current_blas_threads()
    threads = [threading.Thread(target=work, args=(n,)) for n in (1, 2, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(got) == 20
    for g in got:
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)
    assert current_blas_threads() == before
