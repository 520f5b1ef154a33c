"""SLICE, STRIDED_SLICE, SPLIT, SPLIT_V and UNPACK return views of their input; the
in-place pass must then never overwrite a base that a live view still reads: outputs are
bit-identical with and without prepare-time rewriting, and callers get copies."""

from __future__ import annotations

import numpy as np

import litetrain as lt
from tests.conftest import run_kernel

R = np.random.default_rng(8)


def test_slicing_kernels_return_views():
    x = R.normal(size=(4, 6, 3)).astype(np.float32)
    i32 = np.int32
    views = [run_kernel("slice", x, np.array([1, 0, 1], i32), np.array([2, -1, 2], i32)),
             run_kernel("strided_slice", x, np.array([0, 1, 0], i32),
                        np.array([4, 6, 3], i32), np.array([2, 2, 1], i32)),
             *run_kernel("split", np.array(1, i32), x, num_splits=3),
             *run_kernel("split_v", x, np.array([1, -1], i32), np.array(-1, i32),
                         num_splits=2),
             *run_kernel("unpack", x, axis=1, num=6)]
    for v in views:
        assert np.shares_memory(v, x)
    np.testing.assert_array_equal(views[0], x[1:3, :, 1:3])
    np.testing.assert_array_equal(views[1], x[0:4:2, 1:6:2])
    # all-integer indices (shrink_axis_mask) still give an array, not a NumPy scalar
    one = run_kernel("strided_slice", np.arange(5, dtype=np.float32), np.array([2], i32),
                     np.array([3], i32), np.array([1], i32), shrink_axis_mask=1)
    assert isinstance(one, np.ndarray) and one.shape == () and one == 2


def test_views_survive_in_place_steps():
    class M(lt.Module):
        @lt.signature(lt.TensorSpec([None, 8]))
        def run(self, x):
            g = x.graph
            y = g.op("exp", x)  # fresh: an in-place candidate
            head, tail = g.op("split", g.const(np.int32(1)), y, num_splits=2)
            part = g.op("slice", y, g.const(np.array([0, 2], np.int32)),
                        g.const(np.array([-1, 4], np.int32)))
            doubled = y * 2.0  # y's last reader but one: may not overwrite y
            return {"a": head + tail + part, "b": doubled, "c": part * 3.0}

    content = lt.convert(M())
    x = R.normal(size=(5, 8)).astype(np.float32)
    fast = lt.Interpreter(model_content=content).get_signature_runner("run")
    plain = lt.Interpreter(model_content=content,
                           experimental_preserve_all_tensors=True).get_signature_runner("run")
    for _ in range(2):  # the second call runs the rewritten (specialised) steps
        a, b = fast(x=x), plain(x=x)
        for k in b:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    y = np.exp(x)
    np.testing.assert_allclose(a["a"], y[:, :4] + y[:, 4:] + y[:, 2:6], rtol=1e-6)
    np.testing.assert_allclose(a["c"], y[:, 2:6] * 3, rtol=1e-6)
