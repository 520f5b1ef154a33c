"""NumPy's BLAS called from compiled code (:mod:`litetrain.ops.fast.blas`): the same bits
as ``np.matmul`` on every shape it takes (one row, one column, K past one OpenBLAS K
block, FULLY_CONNECTED's transposed weights), refusal of what NumPy does not send to one
BLAS call, of strided operands, and of a missing library."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import fast

_LOADER = fast.kernels("blas")
pytestmark = pytest.mark.skipif(_LOADER is None or _LOADER.wait() is None,
                                reason="the [fast] extra (numba) is not installed")


def _blas():
    module = _LOADER.wait()
    if module.find() is None:
        pytest.skip("NumPy's BLAS is not one OpenBLAS")
    return module


@pytest.mark.parametrize("m, k, n", [(1, 16, 72), (1, 576, 144), (9, 96, 576), (37, 5, 3),
                                     (6, 1000, 2), (7, 13, 1), (1, 2, 2), (64, 449, 33),
                                     (2, 3000, 17)])
@pytest.mark.parametrize("transposed", [False, True])
def test_same_bits_as_numpy(m, k, n, transposed):
    blas = _blas()
    rng = np.random.default_rng([m, k, n])
    a = rng.standard_normal((m, k), np.float32)
    b = rng.standard_normal((n, k) if transposed else (k, n), np.float32)
    want = a @ (b.T if transposed else b)
    got = blas.product(a, b, transposed=transposed)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    out = np.full((m, n), np.nan, np.float32)
    assert blas.product(a, b, out, transposed=transposed) is out
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


def test_proven_per_shape():
    blas = _blas()
    assert blas.proven(1, 1024, 1000, 1)
    assert blas.proven(4, 64, 10, 1, transposed=True)
    assert not blas.proven(5, 1, 7, 1)  # depth 1: NumPy's own loop, not BLAS
    assert not blas.proven(1, 9, 1, 1)  # [1, 1]: NumPy's dot


def test_refusals():
    blas = _blas()
    a = np.ones((4, 8), np.float32)
    b = np.ones((8, 3), np.float32)
    with pytest.raises(ValueError, match="C-order float32"):
        blas.product(np.ones((4, 16), np.float32)[:, ::2], b)
    with pytest.raises(ValueError, match="C-order float32"):
        blas.product(a, np.asfortranarray(b))
    with pytest.raises(ValueError, match="C-order float32"):
        blas.product(a.astype(np.float64), b)
    with pytest.raises(ValueError, match="C-order float32"):
        blas.product(a, np.ones((7, 3), np.float32))
    with pytest.raises(ValueError, match="not one BLAS call"):
        blas.product(np.ones((4, 1), np.float32), np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="writable C-order"):
        blas.product(a, b, np.empty((3, 4), np.float32))


def test_library_found_by_its_affixes():
    """The addresses are the library's own symbols, named with threadpoolctl's affixes
    (``scipy_cblas_sgemm64_`` here), never a hard-coded build's."""
    import ctypes

    from threadpoolctl import ThreadpoolController

    blas = _blas()
    found = blas.find()
    (lib,) = ThreadpoolController().select(user_api="blas").lib_controllers
    assert found.filepath == lib.filepath
    sgemm = lib._get_symbol("cblas_sgemm")
    assert ctypes.cast(sgemm, ctypes.c_void_p).value == found.sgemm
    assert found.table.tolist() == [found.sgemm, found.sgemv, int(found.ilp64)]


def test_no_openblas_means_none(monkeypatch):
    import threadpoolctl

    blas = _blas()

    class _Nothing:
        def __init__(self, *a, **k):
            pass

        def select(self, **k):
            return self

        lib_controllers = ()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", _Nothing)
    assert blas.find.__wrapped__() is None
