"""Seeded, reproducible weight initialisers (Keras names and formulas).

Without an explicit seed, the seed is derived from the variable's name, so the same model
definition gives the same initial weights in every run and on every machine.
"""

from __future__ import annotations

import zlib

import numpy as np


def _rng(seed: int | None, name: str) -> np.random.Generator:
    return np.random.default_rng(seed if seed is not None else zlib.crc32(name.encode()))


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        return (shape[0] if shape else 1,) * 2
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class GlorotUniform:
    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape, name: str, dtype=np.float32) -> np.ndarray:
        fan_in, fan_out = _fans(tuple(shape))
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return _rng(self.seed, name).uniform(-limit, limit, shape).astype(dtype)


class HeNormal:
    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape, name: str, dtype=np.float32) -> np.ndarray:
        fan_in, _ = _fans(tuple(shape))
        return (_rng(self.seed, name).normal(0, np.sqrt(2.0 / fan_in), shape)).astype(dtype)


class Zeros:
    def __call__(self, shape, name: str, dtype=np.float32) -> np.ndarray:
        return np.zeros(shape, dtype)


class Ones:
    def __call__(self, shape, name: str, dtype=np.float32) -> np.ndarray:
        return np.ones(shape, dtype)


class RandomUniform:
    """Keras' ``uniform`` (Embedding's default): U(-0.05, 0.05)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, name: str, dtype=np.float32) -> np.ndarray:
        return _rng(self.seed, name).uniform(self.minval, self.maxval, shape).astype(dtype)


class Orthogonal:
    """Keras' ``orthogonal`` (recurrent kernels): Q of a Gaussian matrix's QR, sign-fixed."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, name: str, dtype=np.float32) -> np.ndarray:
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = _rng(self.seed, name).normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        q = q.T if rows < cols else q
        return (self.gain * q[:rows, :cols]).reshape(shape).astype(dtype)


_BY_NAME = {"glorot_uniform": GlorotUniform, "he_normal": HeNormal, "zeros": Zeros,
            "ones": Ones, "uniform": RandomUniform, "orthogonal": Orthogonal}


def get(spec) -> object:
    if isinstance(spec, str):
        try:
            return _BY_NAME[spec]()
        except KeyError:
            raise ValueError(f"unknown initializer '{spec}'; known: {sorted(_BY_NAME)}") from None
    if not callable(spec):
        raise ValueError(f"an initializer must be a name or a callable, got {spec!r}")
    return spec
