"""Compiled (numba) form of an LSTM step's gradient (the ``lstm_cell_grad`` step of
:mod:`litetrain.runtime.rnn_fusion`, whose NumPy form it replaces), in one pass:

* :func:`lstm_cell_grad`: from the hidden state's cotangent ``dh`` (and the cell state's
  carried one), the four gate cotangents written into their blocks of ``dz`` and the
  cell state's cotangent carried to the step before.

C-contiguous ``[rows, units]`` float32 arrays (the gates and ``dz``: ``[rows, 4 *
units]``; the forward step's gates are views of one such buffer), a float32 scalar ``s``
(1 in the rules). Each value is the NumPy form's float32 operations in its order (the
fused gradient chains of :mod:`litetrain.runtime.fused`), no fast-math, no contraction
into fused multiply-adds: the same bits, NaN, infinities and signed zeros included. No
transcendental function is computed here.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_A = types.Array(_F32, 2, "C", readonly=True)  # writable arrays fit too
_OUT = types.Array(_F32, 2, "C")


@numba.njit([(_A, _A, _A, _A, _A, _A, _F32, types.boolean, types.boolean, _OUT, _OUT)],
            **_JIT)
def lstm_cell_grad(g, dh, candidate, squashed, c_prev, carry, s, has_carry, has_carry_out,
                   dz, carry_out):
    """From the gates ``g`` (``[rows, 4 * units]``: i, f, -, o), the candidate ĉ, tanh(c)
    and the previous cell state: ``dc = carry + (dh·o)·(s - tanh(c)²)`` (without a carry
    the product alone); the blocks of ``dz``: ``((dc·ĉ)·i)·(s - i)``,
    ``((dc·c_prev)·f)·(s - f)``, ``(dc·i)·(s - ĉ²)``, ``((dh·tanh(c))·o)·(s - o)``;
    ``carry_out = dc·f``. Row by row, one short loop per result (each vectorises)."""
    rows, u = dh.shape
    dc = np.empty(u, np.float32)
    for r in range(rows):
        for k in range(u):
            y = squashed[r, k]
            dc[k] = (dh[r, k] * g[r, 3 * u + k]) * (s - y * y)
        if has_carry:
            for k in range(u):
                dc[k] = carry[r, k] + dc[k]
        for k in range(u):
            y = g[r, k]
            dz[r, k] = ((dc[k] * candidate[r, k]) * y) * (s - y)
        for k in range(u):
            y = g[r, u + k]
            dz[r, u + k] = ((dc[k] * c_prev[r, k]) * y) * (s - y)
        for k in range(u):
            y = candidate[r, k]
            dz[r, 2 * u + k] = (dc[k] * g[r, k]) * (s - y * y)
        for k in range(u):
            y = g[r, 3 * u + k]
            dz[r, 3 * u + k] = ((dh[r, k] * squashed[r, k]) * y) * (s - y)
        if has_carry_out:
            for k in range(u):
                carry_out[r, k] = dc[k] * g[r, u + k]


@numba.njit([(_A, _A, _A, _A, _A, _F32, _OUT, _OUT, _OUT)], **_JIT)
def gru_cell_grad(dh, g, rec, h_hat, keep, s, to_state, d_x, d_rec):
    """A GRU step's gradient from its gates ``g`` (``[rows, 2 * units]``: z, r), the
    recurrent product ``rec`` (``[rows, 3 * units]``: r_h is its last block), ĥ and
    ``keep = state - ĥ``: ``to_state = dh·z``, ``da = (dh - to_state)·(s - ĥ²)``,
    ``dz = ((dh·keep)·z)·(s - z)``, ``dr = ((da·r_h)·r)·(s - r)``; ``d_x = [dz, dr, da]``,
    ``d_rec = [dz, dr, da·r]``. Row by row, one short loop per result."""
    rows, u = dh.shape
    da = np.empty(u, np.float32)
    for r in range(rows):
        for k in range(u):
            t = dh[r, k] * g[r, k]
            to_state[r, k] = t
            y = h_hat[r, k]
            da[k] = (dh[r, k] - t) * (s - y * y)
            d_x[r, 2 * u + k] = da[k]
        for k in range(u):
            y = g[r, k]
            v = ((dh[r, k] * keep[r, k]) * y) * (s - y)
            d_x[r, k] = v
            d_rec[r, k] = v
        for k in range(u):
            y = g[r, u + k]
            v = ((da[k] * rec[r, 2 * u + k]) * y) * (s - y)
            d_x[r, u + k] = v
            d_rec[r, u + k] = v
        for k in range(u):
            d_rec[r, 2 * u + k] = da[k] * g[r, u + k]
