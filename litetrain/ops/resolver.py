"""Which of TensorFlow Lite's kernel sets integer and hybrid kernels reproduce.

TensorFlow Lite computes quantized ops three ways that disagree in the last bit:

* ``BUILTIN_REF`` — the reference kernels (``kernels/internal/reference/``), whose
  requantization is the double-rounding ``MultiplyByQuantizedMultiplier`` of a default
  TensorFlow build (a rounding doubling high multiply, then a rounding right shift);
* ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` — the optimized builtin kernels
  (``kernels/internal/optimized/``): on x86 their NEON code runs through NEON_2_SSE, so
  convolutions and fully connected layers round the multiplier the NEON way (``vqrdmulh``
  then ``vrshl``, halves up); 4-D MEAN has its own kernel; the other ops share the
  reference arithmetic;
* ``AUTO`` / ``BUILTIN`` — the default interpreter: XNNPACK takes the int8 ops it supports
  (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MUL, 4-D MEAN: float32 requantization,
  ``acc * scale`` rounded to nearest even; ADD/SUB: its 21-bit integer multipliers); the
  optimized builtin kernels run the rest.

:class:`OpResolverType` carries TensorFlow's names and values; a plan stores it in each
node's :class:`~litetrain.ops.registry.NodeInfo`, so integer prepares pick the arithmetic
once.
"""

from __future__ import annotations

import enum


class OpResolverType(enum.IntEnum):
    """``tf.lite.experimental.OpResolverType``: same names, same values."""

    AUTO = 0
    BUILTIN = 1
    BUILTIN_REF = 2
    BUILTIN_WITHOUT_DEFAULT_DELEGATES = 3

    @classmethod
    def of(cls, value: object) -> OpResolverType:
        """``value`` as an :class:`OpResolverType`: this enum, TensorFlow's or LiteRT's
        (matched by name), a name string (any case) or TensorFlow's integer value."""
        if value is None:
            return cls.AUTO
        if isinstance(value, cls):
            return value
        name = getattr(value, "name", value)
        if isinstance(name, str) and name.upper() in cls.__members__:
            return cls[name.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and value in iter(cls):
            return cls(value)
        raise ValueError(f"experimental_op_resolver_type must be one of "
                         f"{', '.join(cls.__members__)} (litetrain.OpResolverType, TensorFlow's "
                         f"enum, its name or its value 0-3), got {value!r}")

    @property
    def reference(self) -> bool:
        """The reference kernels (double-rounding requantization everywhere)."""
        return self is OpResolverType.BUILTIN_REF

    @property
    def xnnpack(self) -> bool:
        """XNNPACK takes the int8 ops it supports (the default interpreter)."""
        return self in (OpResolverType.AUTO, OpResolverType.BUILTIN)
