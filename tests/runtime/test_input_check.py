"""InputCheck (the per-tensor input check of signature runners and set_tensor) accepts,
passes through and rejects exactly what convert_input does, with the same messages."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain import dtypes
from litetrain.errors import SignatureError
from litetrain.ir import Tensor
from litetrain.runtime.tensors import InputCheck, convert_input

SIGNATURES = [(), (3,), (-1,), (-1, 2), (2, -1), (-1, -1), (1, 2, 3), (-1, 2, 3)]
SHAPES = [(), (3,), (1,), (5,), (1, 2), (4, 2), (2, 7), (1, 2, 3), (7, 2, 3), (2, 3)]


def _outcome(check, value):
    try:
        out = check(value)
    except SignatureError as e:
        return "error", str(e)
    return "ok", out is value, out.shape, out.dtype, out.tolist()


@pytest.mark.parametrize("sig", SIGNATURES)
def test_same_outcome_as_convert_input(sig):
    t = Tensor("x", dtypes.FLOAT32, tuple(abs(d) for d in sig), sig)
    check = InputCheck(t, "signature 's' input 'x'")
    for shape in SHAPES:
        for value in (np.zeros(shape, np.float32), np.zeros(shape, np.float64),
                      np.zeros(shape, np.int32), np.zeros(shape, np.float32).tolist()):
            assert _outcome(check, value) == _outcome(
                lambda v: convert_input(v, t, "signature 's' input 'x'"), value)


def test_matching_array_passes_through_and_strings_still_convert():
    t = Tensor("x", dtypes.FLOAT32, (1, 2), (-1, 2))
    x = np.ones((4, 2), np.float32)
    assert InputCheck(t, "w")(x) is x
    s = Tensor("path", dtypes.STRING, (), ())
    out = InputCheck(s, "w")("ckpt")
    assert out.dtype == object and out.shape == () and out[()] == b"ckpt"
