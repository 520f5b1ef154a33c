"""Floating-point exceptions in kernels give IEEE results without NumPy's RuntimeWarnings,
as TensorFlow Lite computes them (a diverging model's inf/NaN show in its outputs)."""

from __future__ import annotations

import warnings

import numpy as np

import litetrain as lt


class _Softmax(lt.Module):
    @lt.signature(lt.TensorSpec([None, 3]))
    def run(self, x):
        return {"y": lt.nn.softmax(x * 1e30)}


def test_inf_and_nan_come_back_without_warnings():
    interp = lt.Interpreter(model_content=lt.convert(_Softmax()))
    x = np.array([[1e10, 0.0, -1.0], [np.inf, 0.0, 1.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        y = interp.get_signature_runner("run")(x=x)["y"]
        main = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(main, x.shape)
        interp.allocate_tensors()
        interp.set_tensor(main, x)
        interp.invoke()
    with np.errstate(all="ignore"):  # NumPy's own answer, for the same arithmetic
        z = x * np.float32(1e30)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        want = e / e.sum(axis=-1, keepdims=True)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_allclose(y[0], want[0])
    assert np.isnan(y[1]).any()
    assert np.seterr()["invalid"] == "warn"  # the caller's settings are left alone
