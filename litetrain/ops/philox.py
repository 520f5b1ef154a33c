"""TensorFlow's Philox-4×32-10 counter-based generator and its float conversions, so a
seeded random op gives TensorFlow Lite's exact bits.

``PhiloxRandom(seed, seed2)``: the key is ``seed``'s two 32-bit halves, the counter's upper
64 bits are ``seed2``; each draw of a block returns 4 uint32 and advances the 128-bit
counter by one. A uniform float is ``1.xxx - 1`` built from 23 random mantissa bits; a
normal pair is Box–Muller on two uniforms (``sin``, ``cos``), in float32.
"""

from __future__ import annotations

import numpy as np

_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_W_A, _W_B = 0x9E3779B9, 0xBB67AE85  # key schedule (golden ratio, sqrt(3) - 1)
_M_A, _M_B = 0xD2511F53, 0xCD9E8D57  # round multipliers


class Philox:
    """One stream: a key and a 128-bit counter (a Python int)."""

    def __init__(self, seed: int, seed2: int):
        seed, seed2 = seed & _MASK64, seed2 & _MASK64
        self.key = (seed & _MASK32, seed >> 32)
        self.counter = seed2 << 64

    @classmethod
    def at(cls, key: tuple[int, int], counter: int) -> Philox:
        """A stream from an explicit key (two 32-bit words) and 128-bit counter."""
        rng = cls(0, 0)
        rng.key, rng.counter = (key[0] & _MASK32, key[1] & _MASK32), counter % (1 << 128)
        return rng

    def blocks(self, n: int) -> np.ndarray:
        """The next ``n`` blocks, ``[n, 4]`` uint32 (as uint64 values)."""
        low, high = self.counter & _MASK64, self.counter >> 64
        lows = np.uint64(low) + np.arange(n, dtype=np.uint64)
        highs = np.uint64(high) + (lows < np.uint64(low)).astype(np.uint64)  # carry
        self.counter = (self.counter + n) & ((1 << 128) - 1)
        m32 = np.uint64(_MASK32)
        c = [lows & m32, lows >> np.uint64(32), highs & m32, highs >> np.uint64(32)]
        k0, k1 = np.uint64(self.key[0]), np.uint64(self.key[1])
        for r in range(10):
            p0 = np.uint64(_M_A) * c[0]
            p1 = np.uint64(_M_B) * c[2]
            c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & m32,
                 (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & m32]
            if r < 9:
                k0, k1 = (k0 + np.uint64(_W_A)) & m32, (k1 + np.uint64(_W_B)) & m32
        return np.stack(c, axis=1)

    def state(self) -> dict:
        return {"key": list(self.key), "counter": str(self.counter)}

    def set_state(self, state: dict) -> None:
        self.key = (int(state["key"][0]) & _MASK32, int(state["key"][1]) & _MASK32)
        self.counter = int(state["counter"]) & ((1 << 128) - 1)


def uint32_to_float(x: np.ndarray) -> np.ndarray:
    """Uniform in [0, 1): 23 random mantissa bits under exponent 0, minus one."""
    bits = ((x.astype(np.uint64) & np.uint64(0x7FFFFF)) | np.uint64(0x3F800000)).astype(np.uint32)
    return bits.view(np.float32) - np.float32(1.0)


def uniform(rng: Philox, count: int) -> np.ndarray:
    """``count`` float32 uniforms; the last block's unused values are skipped."""
    return uint32_to_float(rng.blocks(-(-count // 4)).reshape(-1)[:count])


def normal(rng: Philox, count: int) -> np.ndarray:
    """``count`` float32 standard normals, Box–Muller on each pair of a block."""
    raw = rng.blocks(-(-count // 4)).reshape(-1, 2)
    u1 = np.maximum(uint32_to_float(raw[:, 0]), np.float32(1.0e-7))
    v1 = np.float32(2.0 * np.pi) * uint32_to_float(raw[:, 1])
    u2 = np.sqrt(np.float32(-2.0) * np.log(u1))
    pairs = np.stack([np.sin(v1) * u2, np.cos(v1) * u2], axis=1)
    return pairs.reshape(-1)[:count].astype(np.float32)


def scrambled_key_counter(seed0: int, seed1: int) -> tuple[tuple[int, int], int]:
    """TensorFlow's stateless-op seed scrambling (``GenerateKey``): one Philox block of
    the seeds under a fixed key gives the key (words 0, 1) and the counter's upper half
    (words 2, 3)."""
    seed0, seed1 = seed0 & _MASK64, seed1 & _MASK64
    mixer = Philox.at((0x3EC8F720, 0x02461E29), seed0 | (seed1 << 64))
    mix = [int(v) for v in mixer.blocks(1)[0]]
    return (mix[0], mix[1]), (mix[2] << 64) | (mix[3] << 96)
