"""Fused recurrent ops for inference: UNIDIRECTIONAL_SEQUENCE_RNN,
UNIDIRECTIONAL_SEQUENCE_LSTM and BIDIRECTIONAL_SEQUENCE_LSTM (float), as TensorFlow Lite's
reference kernels compute them.

Their recurrent state lives in *variable tensors* (``is_variable`` in the file): zero at
first, updated by every invoke and carried to the next one, as in TensorFlow Lite (whose
``reset_all_variables`` zeroes them again). Here each state is a resource variable of the
interpreter under the container ``tflite/variable_tensor``, so transactions, resets and
session snapshots cover it.

LSTM, per time step, with ``act`` the fused activation (tanh for Keras) and σ the logistic:
``i = σ(Wᵢx + Rᵢh + pᵢ⊙c + bᵢ)`` (``1 - f`` without input gate weights: CIFG),
``f = σ(W_f x + R_f h + p_f⊙c + b_f)``, ``g = act(W_c x + R_c h + b_c)``,
``c = f⊙c + i⊙g`` (clipped to ±``cell_clip`` when set), ``o = σ(W_o x + R_o h + p_o⊙c +
b_o)``, ``h = o⊙act(c)``, then the projection ``h = W_p h + b_p`` (clipped to ±``proj_clip``)
when present. Layer-normalised LSTMs are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import fused
from .registry import NodeInfo, OpDef, Shaped
from .shapes import shape_of

STATE_CONTAINER = "tflite/variable_tensor"


@dataclass(frozen=True)
class Recurrent:
    """Settings of a fused recurrent node: its attrs and where its states live."""

    attrs: object
    states: tuple[tuple[str, tuple[int, ...]], ...]  # (key, shape) per state input


def _prepare(state_inputs: tuple[int, ...], layer_norm_inputs: range = range(0)):
    def prepare(info: NodeInfo) -> Recurrent:
        if any(k < len(info.inputs) and info.inputs[k] is not None for k in layer_norm_inputs):
            raise ValueError("layer-normalised LSTMs are not supported")
        return Recurrent(info.attrs, tuple((f"{info.where} input {k}", info.inputs[k].shape)
                                           for k in state_inputs))
    return prepare


def _state(ctx, state: tuple[str, tuple[int, ...]], dtype) -> tuple[int, np.ndarray]:
    """A state's resource id and current value (zeros before the first invoke)."""
    key, shape = state
    store = ctx.variables
    rid = store.resource_id(STATE_CONTAINER, key)
    value = store.values.get(rid)
    if value is None or value.shape != shape:
        value = np.zeros(shape, dtype)
    return rid, value


def _time_major(x, attrs):
    return x if attrs.get("time_major", False) else np.swapaxes(x, 0, 1)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _lstm(xs, w, h, c, attrs, reverse: bool = False):
    """Run one LSTM over ``xs`` ([time, batch, input]); ``w`` holds the 17 weight inputs
    (index 0 = input_to_input_weights ... 16 = projection_bias, as in the op)."""
    act = attrs.get("fused_activation_function", 4)
    cell_clip, proj_clip = attrs.get("cell_clip", 0.0), attrs.get("proj_clip", 0.0)
    i2, r2, bias = w[0:4], w[4:8], w[11:15]
    peep = {0: w[8], 1: w[9], 3: w[10]}  # cell-to-gate weights of the i, f, o gates
    cifg = i2[0] is None
    out = np.empty((xs.shape[0], xs.shape[1], h.shape[-1]), xs.dtype)
    steps = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
    for t in steps:
        pre = [None if i2[k] is None else xs[t] @ i2[k].T + h @ r2[k].T + bias[k]
               for k in range(4)]
        for k in (0, 1):
            if pre[k] is not None and peep[k] is not None:
                pre[k] = pre[k] + c * peep[k]
        f = _sigmoid(pre[1])
        i = 1 - f if cifg else _sigmoid(pre[0])
        c = f * c + i * fused(pre[2], act)
        if cell_clip > 0:
            c = np.clip(c, -cell_clip, cell_clip)
        if peep[3] is not None:
            pre[3] = pre[3] + c * peep[3]
        h = _sigmoid(pre[3]) * fused(c.copy(), act)
        if w[15] is not None:
            h = h @ w[15].T + (w[16] if w[16] is not None else 0)
            if proj_clip > 0:
                h = np.clip(h, -proj_clip, proj_clip)
        out[t] = h
    return out, h, c


def unidirectional_sequence_lstm(ctx, s: Recurrent, x, *rest):
    rest = list(rest) + [None] * (23 - len(rest))
    xs = _time_major(x, s.attrs)
    (h_rid, h0), (c_rid, c0) = (_state(ctx, state, x.dtype) for state in s.states)
    out, h, c = _lstm(xs, rest[0:17], h0, c0, s.attrs)
    ctx.variables.assign(h_rid, h.astype(x.dtype), copy=False)
    ctx.variables.assign(c_rid, c.astype(x.dtype), copy=False)
    return _time_major(out, s.attrs).astype(x.dtype)


def bidirectional_sequence_lstm(ctx, s: Recurrent, x, *rest):
    rest = list(rest) + [None] * (47 - len(rest))
    if any(v is not None for v in rest[38:47]):
        raise ValueError("BIDIRECTIONAL_SEQUENCE_LSTM with an auxiliary input is not supported")
    xs = _time_major(x, s.attrs)
    outs = []
    for direction, weights in enumerate((rest[0:17], rest[17:34])):
        (h_rid, h0), (c_rid, c0) = (_state(ctx, s.states[2 * direction + k], x.dtype)
                                    for k in range(2))
        out, h, c = _lstm(xs, weights, h0, c0, s.attrs, reverse=direction == 1)
        ctx.variables.assign(h_rid, h.astype(x.dtype), copy=False)
        ctx.variables.assign(c_rid, c.astype(x.dtype), copy=False)
        outs.append(_time_major(out, s.attrs).astype(x.dtype))
    if s.attrs.get("merge_outputs", False):
        return np.concatenate(outs, axis=-1)
    return tuple(outs)


def unidirectional_sequence_rnn(ctx, s: Recurrent, x, w, r, b, hidden):
    act = s.attrs.get("fused_activation_function", 4)
    xs = _time_major(x, s.attrs)
    rid, h = _state(ctx, s.states[0], x.dtype)
    out = np.empty((xs.shape[0], xs.shape[1], w.shape[0]), x.dtype)
    for t in range(xs.shape[0]):
        h = fused(xs[t] @ w.T + h @ r.T + b, act)
        out[t] = h
    ctx.variables.assign(rid, h.astype(x.dtype), copy=False)
    return _time_major(out, s.attrs)


def _sequence_shape(units_input: int, merge: bool = False):
    def rule(info: NodeInfo):
        x = shape_of(info, 0)
        units = shape_of(info, units_input)[0]
        if merge and info.attrs.get("merge_outputs", False):
            return (Shaped((*x[:-1], units + shape_of(info, units_input + 17)[0])),)
        if merge:
            return (Shaped((*x[:-1], units)),
                    Shaped((*x[:-1], shape_of(info, units_input + 17)[0])))
        return (Shaped((*x[:-1], units)),)
    return rule


OPS = [
    OpDef("unidirectional_sequence_lstm", unidirectional_sequence_lstm,
          "UnidirectionalSequenceLSTMOptions", prepare=_prepare((18, 19), range(20, 24)),
          shape=_sequence_shape(8), stateful=True),
    OpDef("bidirectional_sequence_lstm", bidirectional_sequence_lstm,
          "BidirectionalSequenceLSTMOptions", prepare=_prepare((35, 36, 37, 38)),
          shape=_sequence_shape(8, merge=True), stateful=True, num_outputs=None),
    OpDef("unidirectional_sequence_rnn", unidirectional_sequence_rnn, "SequenceRNNOptions",
          prepare=_prepare((4,)), shape=_sequence_shape(2), stateful=True),
]
