"""Quantization parameters of one tensor, as kernels use them, and their validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ModelFormatError
from ...ir import Quantization, Tensor

QUANTIZED_TYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))
_INT8 = QUANTIZED_TYPES[0]


@dataclass(frozen=True)
class QParams(Quantization):
    """A tensor's :class:`~litetrain.ir.Quantization` as kernels use it: ``scale`` float32
    and ``zero_point`` int64, both 1-D, and the integer type the values are stored in."""

    dtype: np.dtype = _INT8

    @property
    def s(self) -> float:
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        return int(self.zero_point[0])

    def along(self, values: np.ndarray, ndim: int) -> np.ndarray:
        """``values`` (one per channel) shaped to broadcast along this tensor's axis."""
        if values.size == 1:
            return values.reshape(())
        shape = [1] * ndim
        shape[self.axis] = values.size
        return values.reshape(shape)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Float32 values, ``scale * (q - zero_point)`` computed as TFLite does."""
        zp = self.along(self.zero_point, q.ndim)
        scale = self.along(self.scale, q.ndim)
        return (scale * (q.astype(np.int64) - zp).astype(np.float32)).astype(np.float32)


def qparams(t: Tensor, numpy_dtype: np.dtype) -> QParams | None:
    """The parameters of a quantized tensor, or ``None`` for a float/plain integer one."""
    q = t.quantization
    if q is None or q.scale.size == 0:
        return None
    return QParams(np.asarray(q.scale, np.float32).reshape(-1),
                   np.asarray(q.zero_point, np.int64).reshape(-1), int(q.axis),
                   np.dtype(numpy_dtype))


def validate(t: Tensor, numpy_dtype: np.dtype, where: str) -> None:
    """Reject parameters no kernel could use (``ModelFormatError`` naming the tensor)."""
    q = t.quantization
    if q is None or q.scale.size == 0:
        return
    scale = np.asarray(q.scale, np.float64).reshape(-1)
    zp = np.asarray(q.zero_point, np.int64).reshape(-1)
    what = f"{where}: tensor '{t.name}' ({numpy_dtype}{list(t.shape)})"
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelFormatError(f"{what}: quantization scales must be finite and > 0, got "
                               f"{scale[:4].tolist()}{' …' if scale.size > 4 else ''}")
    if zp.size not in (0, 1, scale.size):
        raise ModelFormatError(f"{what}: {zp.size} zero points for {scale.size} scales")
    if numpy_dtype in QUANTIZED_TYPES and zp.size:
        info = np.iinfo(numpy_dtype)
        bad = zp[(zp < info.min) | (zp > info.max)]
        if bad.size:
            raise ModelFormatError(f"{what}: zero point {int(bad[0])} is outside "
                                   f"{numpy_dtype}'s range [{info.min}, {info.max}]")
    if scale.size > 1:
        rank = len(t.shape)
        if not 0 <= q.axis < max(rank, 1):
            raise ModelFormatError(f"{what}: per-channel quantized_dimension {q.axis} does not "
                                   f"exist (rank {rank})")
        if rank and t.shape[q.axis] != scale.size:
            raise ModelFormatError(f"{what}: {scale.size} per-channel scales for dimension "
                                   f"{q.axis} of size {t.shape[q.axis]}")
