"""LOGISTIC and HARD_SWISH computed in one buffer (and in place, when the plan lets
them overwrite a dying operand) give the bits of the plain NumPy expressions."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops.registry import lookup

# The inputs include IEEE specials on purpose: NumPy's overflow/invalid warnings are
# expected here (a model run computes them silently, as TF Lite does).
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

PLAIN = {"logistic": lambda x: 1 / (1 + np.exp(-x)),
         "hard_swish": lambda x: x * np.clip(x + 3, 0, 6) / 6}


@pytest.mark.parametrize("op", sorted(PLAIN))
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_one_buffer_forms_give_the_plain_bits(op, dtype, rng):
    x = (rng.standard_normal((3, 7, 5)) * 6).astype(dtype)
    x.reshape(-1)[:8] = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, -3.0, 3.0, 100.0], dtype)
    opdef = lookup(op)
    want = PLAIN[op](x)
    for got in (opdef.kernel({}, x), opdef.in_place(0)({}, x.copy())):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{got.itemsize}"))
    scalar = x.reshape(-1)[8:9].reshape(())
    np.testing.assert_array_equal(opdef.kernel({}, scalar), PLAIN[op](scalar))


def test_in_place_forms_write_into_their_operand(rng):
    for op in PLAIN:
        x = rng.standard_normal(10).astype(np.float32)
        assert lookup(op).in_place(0)({}, x) is x


def test_compiled_hard_swish_gives_the_plain_bits(rng):
    from litetrain.ops import fast
    from litetrain.ops.evaluate import node_info

    loader = fast.kernels("activations")
    if loader is None or loader.wait() is None:
        pytest.skip("the [fast] extra (numba) is not installed")
    opdef = lookup("hard_swish")
    x = (rng.standard_normal((4, 9, 3)) * 6).astype(np.float32)
    x.reshape(-1)[:9] = [0.0, -0.0, np.nan, np.inf, -np.inf, -3.0, 3.0, 100.0, -100.0]
    settings = opdef.settings(node_info("hard_swish", [x]))
    assert isinstance(settings, fast.WithKernels)
    want = PLAIN["hard_swish"](x).view(np.uint32)
    got = opdef.kernel(settings, x)
    np.testing.assert_array_equal(got.view(np.uint32), want)
    np.testing.assert_array_equal(opdef.in_place(0)(settings, x.copy()).view(np.uint32), want)
    x.flags.writeable = False
    np.testing.assert_array_equal(opdef.kernel(settings, x).view(np.uint32), want)
