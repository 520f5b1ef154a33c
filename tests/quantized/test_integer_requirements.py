"""TF Lite's fixed-point kernels need fixed output quantizations; a file with other ones
is refused at prepare with an error naming the node's integer width, op and the need."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.errors import UnsupportedOpError
from litetrain.ops.evaluate import node_info
from litetrain.ops.quantized.params import QParams
from litetrain.ops.registry import lookup


def _q(scale: float, zero_point: int, dtype) -> QParams:
    return QParams(np.array([scale], np.float32), np.array([zero_point], np.int64), 0,
                   np.dtype(dtype))


@pytest.mark.parametrize("op, dtype, out, message", [
    ("l2_normalization", np.int8, _q(0.5, 0, np.int8),
     "int8 L2_NORMALIZATION needs an int8 output with scale 1/128"),
    ("log_softmax", np.int8, _q(0.5, 0, np.int8),
     "int8 LOG_SOFTMAX needs an int8 output with scale 16/256 and zero point 127"),
    ("logistic", np.int16, _q(0.5, 0, np.int16), "int16 LOGISTIC needs an output scale"),
    ("softmax", np.int16, _q(2 ** -15, 3, np.int16), "int16 SOFTMAX needs zero points of 0"),
])
def test_a_kernel_refuses_quantizations_it_cannot_run(op, dtype, out, message):
    x = np.zeros((1, 4), dtype)
    info = node_info(op, [x], {}, [dtype], [_q(0.1, 0, dtype)], [out])
    with pytest.raises(UnsupportedOpError, match=message):
        lookup(op).integer.prepare(info)
