"""GRU steps as one step each (part of :mod:`.rnn_fusion`'s pass): the cell's forward
(:func:`gru_cell`) and, with a previous state, its gradient (:func:`gru_cell_grad`,
compiled by :mod:`litetrain.ops.fast.rnn` when loaded). See :mod:`.rnn_fusion` for the
patterns and the invariant (the same bits)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from .fused import SIGMOID_GRAD_OF_PRODUCT, TANH_GRAD
from .rnn_graph import F32 as _F32
from .rnn_graph import Graph, fused_chain, plain
from .step import Step


@dataclass(frozen=True)
class GruCell:
    """``state``: a previous hidden state exists (else ``h = (1 - z)·ĥ`` from the
    constant ``one``)."""

    state: bool


def gru_cell(settings: GruCell, x, rec, last):
    """(z, r, r_h, ĥ, keep, h) of one GRU step from the input projection ``x`` and the
    recurrent product ``rec`` (blocks z, r, h along the last axis; bias included), and
    ``last``: the previous hidden state (or the constant 1): the ufuncs of ADD, LOGISTIC,
    MUL, TANH, SUB in their order. z and r are views of one buffer."""
    u = x.shape[-1] // 3
    g = np.add(x[..., :2 * u], rec[..., :2 * u])
    np.negative(g, out=g)
    np.exp(g, out=g)
    np.add(g, 1, out=g)
    np.divide(1, g, out=g)
    z, r = g[..., :u], g[..., u:]
    r_h = rec[..., 2 * u:]
    a = np.multiply(r, r_h)
    np.add(x[..., 2 * u:], a, out=a)
    h_hat = np.tanh(a)
    if settings.state:
        keep = np.subtract(last, h_hat)
        h = np.multiply(z, keep)
        np.add(h_hat, h, out=h)
    else:
        keep = np.subtract(last, z)
        h = np.multiply(keep, h_hat)
    return z, r, r_h, h_hat, keep, h


def fuse_gru_cells(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each GRU cell described in the module docstring run as one step."""
    graph = Graph(steps, outputs)
    out, dropped, taken = list(steps), set(), set()
    for pos in range(len(steps)):
        found = _gru_cell_at(graph, pos, values)
        if found is None or taken.intersection(found[1]):
            continue
        step, members, at = found
        out[at] = step
        dropped.update(m for m in members if m != at)
        taken.update(members)
    return [s for p, s in enumerate(out) if p not in dropped]


def _split3(graph: Graph, pos: int, values: list) -> bool:
    """A SPLIT into three along the last axis of a float32 array."""
    split = graph.steps[pos]
    if (split.op != "split" or split.stateful or len(split.outputs) != 3
            or split.kernel is not lookup("split").kernel):
        return False
    x, axis = values[split.inputs[1]], values[split.inputs[0]]
    return (isinstance(x, np.ndarray) and x.dtype == _F32 and x.ndim > 0
            and isinstance(axis, np.ndarray) and axis.size == 1
            and int(axis.reshape(-1)[0]) % x.ndim == x.ndim - 1)


def _gru_cell_at(graph: Graph, pos: int, values: list):
    if not _split3(graph, pos, values):
        return None
    steps = graph.steps
    r_z, r_r, r_h = steps[pos].outputs
    adds, xs = [], []
    for t in (r_z, r_r):
        p = graph.sole(t, "add", 2)
        if p is None:
            return None
        other = [k for k in steps[p].inputs if k != t]
        if len(other) != 1:
            return None
        adds.append(p)
        xs.append(other[0])
    px = graph.producer.get(xs[0])
    if px is None or px == pos or not _split3(graph, px, values) \
            or steps[px].outputs[:2] != tuple(xs):
        return None
    x_h = steps[px].outputs[2]
    if graph.sole(xs[0], "add", 2) != adds[0] or graph.sole(xs[1], "add", 2) != adds[1]:
        return None
    gates = [graph.sole(steps[p].outputs[0], "logistic") for p in adds]
    if None in gates:
        return None
    z, r = (steps[p].outputs[0] for p in gates)
    m = graph.reader("mul", r, r_h)
    if m is None:
        return None
    a = graph.sole(steps[m].outputs[0], "add", 2)
    if a is None or sorted(steps[a].inputs) != sorted((x_h, steps[m].outputs[0])) \
            or graph.sole(x_h, "add", 2) != a:
        return None
    t = graph.sole(steps[a].outputs[0], "tanh")
    if t is None:
        return None
    h_hat = steps[t].outputs[0]
    members = [px, pos, *adds, *gates, m, a, t]
    state = None
    for p in graph.readers.get(h_hat, []):
        s = steps[p]
        if plain(s, "sub", 2) and s.inputs[1] == h_hat and s.inputs[0] != h_hat:
            state = p
    if state is not None:
        last, keep = steps[state].inputs[0], steps[state].outputs[0]
        product = graph.reader("mul", z, keep)
        if product is None or z == keep:
            return None
        done = graph.sole(steps[product].outputs[0], "add", 2)
        if done is None or sorted(steps[done].inputs) != sorted(
                (h_hat, steps[product].outputs[0])):
            return None
        members += [state, product, done]
        h = steps[done].outputs[0]
    else:
        subs = [p for p in graph.readers.get(z, []) if plain(steps[p], "sub", 2)
                and steps[p].inputs[1] == z and steps[p].inputs[0] != z]
        if len(subs) != 1:
            return None
        last, keep = steps[subs[0]].inputs[0], steps[subs[0]].outputs[0]
        one = values[last]
        if (graph.producer.get(last) is not None or not isinstance(one, np.ndarray)
                or one.dtype != _F32 or one.size != 1):
            return None
        product = graph.reader("mul", keep, h_hat)
        if product is None:
            return None
        members += [subs[0], product]
        h = steps[product].outputs[0]
    if len(set(members)) != len(members):
        return None
    x, rec = steps[px].inputs[1], steps[pos].inputs[1]
    inputs = (x, rec, last)
    made = (z, r, r_h, h_hat, keep, h)
    shape = values[x].shape
    unit = (*shape[:-1], shape[-1] // 3)
    if values[rec].shape != shape or not all(
            isinstance(values[k], np.ndarray) and values[k].dtype == _F32
            and values[k].shape == unit for k in made):
        return None
    if state is not None and values[last].shape != unit:
        return None
    ready = max((graph.producer.get(k, -1) for k in inputs), default=-1)
    at = min((p for p in members if p > ready), default=None)
    member_set = set(members)
    if at is None or any(r <= at for k in made for r in graph.readers.get(k, [])
                         if r not in member_set):
        return None
    step = replace(steps[at], op="gru_cell", kernel=gru_cell,
                   settings=GruCell(state is not None), inputs=inputs, outputs=made,
                   out_dtypes=(_F32,) * len(made), fresh=True, in_place=None,
                   into=None, into_for=None, stateful=False)
    return step, members, at


# --- GRU cell, gradient ------------------------------------------------------------------

def gru_cell_grad(settings, dh, z, r, r_h, h_hat, keep, s):
    """(dh·z, [dz, dr, da], [dz, dr, da·r]) of a GRU step with a previous state, from
    the hidden state's cotangent ``dh``: the fused chains' and ops' NumPy forms in the
    steps' order, each writing into its block; compiled (:mod:`litetrain.ops.fast.rnn`)
    when loaded and the arrays are laid out as :func:`gru_cell` makes them."""
    ready = getattr(settings, "ready", None)
    module = None if ready is None else ready()
    if module is not None:
        made = _compiled_cell_grad(module, dh, z, r, r_h, h_hat, keep, s)
        if made is not None:
            return made
    u = dh.shape[-1]
    to_state = np.multiply(dh, z)
    d_hat = np.subtract(dh, to_state)
    d_x = np.empty((*dh.shape[:-1], 3 * u), _F32)
    d_a = TANH_GRAD.numpy(d_hat, h_hat, s, out=d_x[..., 2 * u:])
    SIGMOID_GRAD_OF_PRODUCT.numpy(dh, keep, z, s, out=d_x[..., :u])
    SIGMOID_GRAD_OF_PRODUCT.numpy(d_a, r_h, r, s, out=d_x[..., u:2 * u])
    d_rec = np.empty_like(d_x)
    d_rec[..., :2 * u] = d_x[..., :2 * u]
    np.multiply(d_a, r, out=d_rec[..., 2 * u:])
    return to_state, d_x, d_rec


def _compiled_cell_grad(module, dh, z, r, r_h, h_hat, keep, s):
    g, rec = z.base, r_h.base
    if (g.__class__ is not np.ndarray or rec.__class__ is not np.ndarray or r.base is not g
            or dh.ndim != 2 or g.shape != (dh.shape[0], 2 * dh.shape[1])
            or rec.shape != (dh.shape[0], 3 * dh.shape[1]) or not g.flags.c_contiguous
            or not rec.flags.c_contiguous or g.dtype != _F32 or rec.dtype != _F32
            or s.dtype != _F32):
        return None
    for a in (dh, h_hat, keep):
        if a.shape != dh.shape or a.dtype != _F32 or not a.flags.c_contiguous:
            return None
    rows, u = dh.shape
    to_state = np.empty((rows, u), _F32)
    d_x = np.empty((rows, 3 * u), _F32)
    d_rec = np.empty((rows, 3 * u), _F32)
    module.gru_cell_grad(dh, g, rec, h_hat, keep, s.reshape(-1)[0], to_state, d_x, d_rec)
    return to_state, d_x, d_rec


def fuse_gru_cell_grads(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each GRU step's gradient (with a previous state: the cotangent to
    the state, the fused chains, the two gate concatenations) run as one step."""
    graph = Graph(steps, outputs)
    loader = kernels("rnn")
    out, dropped, taken = list(steps), set(), set()
    for pos in range(len(steps)):
        found = _gru_cell_grad_at(graph, pos, values)
        if found is None or taken.intersection(found[1]):
            continue
        step, members, at = found
        if loader is not None:
            step = replace(step, settings=WithKernels(step.settings, loader))
        out[at] = step
        dropped.update(m for m in members if m != at)
        taken.update(members)
    return [s for p, s in enumerate(out) if p not in dropped]


def _concat3(graph: Graph, pos: int, values: list) -> bool:
    step = graph.steps[pos]
    if (step.op != "concatenation" or step.stateful or len(step.inputs) != 3
            or step.kernel is not lookup("concatenation").kernel
            or step.settings.get("fused_activation_function", 0)):
        return False
    v = values[step.outputs[0]]
    return (isinstance(v, np.ndarray) and v.dtype == _F32 and v.ndim > 0
            and step.settings.get("axis", 0) % v.ndim == v.ndim - 1)


def _only_read_by(graph: Graph, tensor: int, readers: set[int]) -> bool:
    return tensor not in graph.outputs and set(graph.readers.get(tensor, [])) == readers \
        and len(graph.readers.get(tensor, [])) == len(readers)


def _gru_cell_grad_at(graph: Graph, pos: int, values: list):
    if not _concat3(graph, pos, values):
        return None
    steps = graph.steps
    d_z, d_r, d_a = steps[pos].inputs
    made = [graph.producer.get(t) for t in (d_z, d_r, d_a)]
    if None in made or [fused_chain(steps[p]) for p in made] != [
            SIGMOID_GRAD_OF_PRODUCT, SIGMOID_GRAD_OF_PRODUCT, TANH_GRAD]:
        return None
    p1, p2, p3 = made
    d_hat, y, s = steps[p3].inputs
    cell_pos = graph.producer.get(y)
    cell = None if cell_pos is None else steps[cell_pos]
    if cell is None or cell.op != "gru_cell" or not cell.settings.state:
        return None
    z, r, r_h, h_hat, keep, _ = cell.outputs
    if y != h_hat or steps[p1].inputs[2:] != (z, s) or steps[p2].inputs[2:] != (r, s):
        return None
    pair = set(steps[p1].inputs[:2])
    if keep not in pair or len(pair) != 2 or set(steps[p2].inputs[:2]) != {d_a, r_h}:
        return None
    (dh,) = pair - {keep}
    sub = graph.producer.get(d_hat)
    if sub is None or not plain(steps[sub], "sub", 2) or steps[sub].inputs[0] != dh \
            or not _only_read_by(graph, d_hat, {p3}):
        return None
    to_state = steps[sub].inputs[1]
    mul = graph.producer.get(to_state)
    if mul is None or not plain(steps[mul], "mul", 2) or \
            sorted(steps[mul].inputs) != sorted((dh, z)) or dh == z:
        return None
    second = [p for p in graph.readers.get(d_z, []) if p != pos]
    if len(second) != 1 or not _concat3(graph, second[0], values):
        return None
    c2 = second[0]
    if steps[c2].inputs[:2] != (d_z, d_r):
        return None
    m = graph.producer.get(steps[c2].inputs[2])
    if m is None or not plain(steps[m], "mul", 2) or \
            sorted(steps[m].inputs) != sorted((d_a, r)) or d_a == r:
        return None
    if not (_only_read_by(graph, d_z, {pos, c2}) and _only_read_by(graph, d_r, {pos, c2})
            and _only_read_by(graph, d_a, {pos, m, p2})
            and _only_read_by(graph, steps[m].outputs[0], {c2})):
        return None
    members = [pos, c2, p1, p2, p3, sub, mul, m]
    inputs = (dh, z, r, r_h, h_hat, keep, s)
    shape = values[h_hat].shape
    scalar = values[s]
    if values[dh].shape != shape or not isinstance(scalar, np.ndarray) \
            or scalar.dtype != _F32 or scalar.size != 1 or scalar.ndim > len(shape):
        return None
    made_out = (to_state, steps[pos].outputs[0], steps[c2].outputs[0])
    ready = max((graph.producer.get(k, -1) for k in inputs), default=-1)
    at = min((p for p in members if p > ready), default=None)
    member_set = set(members)
    if at is None or len(member_set) != len(members) or any(
            q <= at for k in made_out for q in graph.readers.get(k, [])
            if q not in member_set):
        return None
    step = replace(steps[pos], op="gru_cell_grad", kernel=gru_cell_grad, settings={},
                   inputs=inputs, outputs=made_out, out_dtypes=(_F32,) * 3, fresh=True,
                   in_place=None, into=None, into_for=None, stateful=False)
    return step, members, at
