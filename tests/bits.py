"""Bit-level comparison helpers for the tests that hold a fast path to its reference's
exact bits (signed zeros and NaN payloads included)."""

from __future__ import annotations

import numpy as np


def same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """``a`` and ``b`` have one dtype and shape and the same float32 bit patterns."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def with_specials(rng: np.random.Generator, shape) -> np.ndarray:
    """Random float32 values with exact zeros of both signs, NaN and large values mixed in."""
    x = rng.standard_normal(shape).astype(np.float32) * 4
    flat = x.reshape(-1)
    pick = rng.choice(flat.size, size=max(4, flat.size // 10), replace=False)
    flat[pick] = rng.choice(np.array([0.0, -0.0, np.nan, 7.0, -7.0], np.float32), pick.size)
    return x
