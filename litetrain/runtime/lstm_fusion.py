"""LSTM steps as one step each (part of :mod:`.rnn_fusion`'s pass): the cell's forward
(:func:`lstm_cell`) and its gradient (:func:`lstm_cell_grad`, compiled by
:mod:`litetrain.ops.fast.rnn` when loaded). See :mod:`.rnn_fusion` for the patterns and
the invariant (the same bits)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from .fused import SIGMOID_GRAD_OF_PRODUCT, TANH_GRAD_OF_PRODUCT
from .rnn_graph import F32 as _F32
from .rnn_graph import Graph, fused_chain, made_before, plain
from .step import Step

# --- LSTM cell, forward ------------------------------------------------------------------

@dataclass(frozen=True)
class LstmCell:
    """``forget``: the forget gate is used (a previous cell state exists)."""

    forget: bool


def lstm_cell(settings: LstmCell, z, c_prev=None):
    """(i, [f,] ĉ, o, c, tanh(c), h) of one LSTM step from the gate pre-activations
    ``z`` (blocks i, f, ĉ, o along the last axis); the ufuncs of LOGISTIC, TANH, MUL and
    ADD in their order. i, f and o are views of one buffer (:func:`gates_of`)."""
    u = z.shape[-1] // 4
    g = np.negative(z)
    np.exp(g, out=g)
    np.add(g, 1, out=g)
    np.divide(1, g, out=g)
    i, o = g[..., :u], g[..., 3 * u:]
    candidate = np.tanh(z[..., 2 * u:3 * u])
    c = np.multiply(i, candidate)
    if settings.forget:
        f = g[..., u:2 * u]
        kept = np.multiply(f, c_prev)
        np.add(c, kept, out=c)
        squashed = np.tanh(c)
        return i, f, candidate, o, c, squashed, np.multiply(o, squashed)
    squashed = np.tanh(c)
    return i, candidate, o, c, squashed, np.multiply(o, squashed)


def fuse_lstm_cells(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each LSTM cell described in the module docstring run as one step."""
    graph = Graph(steps, outputs)
    out, dropped = list(steps), set()
    for pos in range(len(steps)):
        found = _lstm_cell_at(graph, pos, values)
        if found is None or dropped.intersection(found[1]):
            continue
        fused_step, members = found
        out[pos] = fused_step
        dropped.update(m for m in members if m != pos)
    return [s for p, s in enumerate(out) if p not in dropped]


def _lstm_cell_at(graph: Graph, pos: int, values: list) -> tuple[Step, list[int]] | None:
    split = graph.steps[pos]
    if (split.op != "split" or split.stateful or len(split.outputs) != 4
            or split.kernel is not lookup("split").kernel):
        return None
    z = values[split.inputs[1]]
    axis = values[split.inputs[0]]
    if (not isinstance(z, np.ndarray) or z.dtype != _F32 or not z.ndim
            or not isinstance(axis, np.ndarray) or axis.size != 1
            or int(axis.reshape(-1)[0]) % z.ndim != z.ndim - 1):
        return None
    a_i, a_f, a_c, a_o = split.outputs
    gates = [graph.sole(a_i, "logistic"), graph.sole(a_c, "tanh"), graph.sole(a_o, "logistic")]
    if None in gates:
        return None
    forget = not graph.unread(a_f)
    if forget:
        gates.append(graph.sole(a_f, "logistic"))
        if gates[-1] is None:
            return None
    i, candidate, o = (graph.steps[p].outputs[0] for p in gates[:3])
    first = graph.reader("mul", i, candidate)
    if first is None:
        return None
    members = [pos, *gates, first]
    c = graph.steps[first].outputs[0]
    extra: tuple[int, ...] = ()
    f = None
    if forget:
        f = graph.steps[gates[3]].outputs[0]
        add = graph.sole(c, "add", 2)
        if add is None:
            return None
        kept = [k for k in graph.steps[add].inputs if k != c]
        kept_pos = graph.producer.get(kept[0]) if len(kept) == 1 else None
        if kept_pos is None or graph.sole(kept[0], "add", 2) != add:
            return None
        kept_step = graph.steps[kept_pos]
        if not plain(kept_step, "mul", 2) or f not in kept_step.inputs:
            return None
        c_prev = kept_step.inputs[1] if kept_step.inputs[0] == f else kept_step.inputs[0]
        if c_prev == f or not made_before(graph, c_prev, pos):
            return None
        members += [kept_pos, add]
        extra = (c_prev,)
        c = graph.steps[add].outputs[0]
    squash = [p for p in graph.readers.get(c, []) if plain(graph.steps[p], "tanh", 1)]
    if len(squash) != 1:
        return None
    squashed = graph.steps[squash[0]].outputs[0]
    last = graph.reader("mul", o, squashed)
    if last is None:
        return None
    members += [squash[0], last]
    if len(set(members)) != len(members) or min(members) != pos:
        return None
    made = (i, *(() if f is None else (f,)), candidate, o, c, squashed,
            graph.steps[last].outputs[0])
    shape = (*z.shape[:-1], z.shape[-1] // 4)
    for t in (*made, *extra):
        v = values[t]
        if not isinstance(v, np.ndarray) or v.dtype != _F32 or v.shape != shape:
            return None
    step = replace(split, op="lstm_cell", kernel=lstm_cell,
                   settings=LstmCell(forget), inputs=(split.inputs[1], *extra),
                   outputs=made, out_dtypes=tuple(values[t].dtype for t in made),
                   fresh=True, in_place=None, into=None, into_for=None)
    return step, members


# --- LSTM cell, gradient -----------------------------------------------------------------

def lstm_cell_grad(settings, *args):
    """(dz, [carry]) from ``args`` ``xp, xq, xy, [carry,] ao, ay, bo, by, co, cy, dp, dq,
    dy, [mo,] s``: the fused chains' NumPy forms in the steps' order, each writing into
    its block; compiled (:mod:`litetrain.ops.fast.rnn`) when loaded, when prepare found
    the operands to be one :func:`lstm_cell` step's (``settings["roles"]``: the argument
    positions of dh, i, f, ĉ, o, tanh(c), c_prev) and the arrays are laid out as that
    step makes them."""
    has_carry, has_carry_out = settings["has_carry"], settings["has_carry_out"]
    roles = settings["roles"]
    ready = getattr(settings, "ready", None)
    module = None if ready is None or roles is None else ready()
    if module is not None:
        dz = _compiled_cell_grad(module, roles, has_carry, has_carry_out, args)
        if dz is not None:
            return dz
    xp, xq, xy, *rest = args
    carry = rest.pop(0) if has_carry else None
    ao, ay, bo, by, co, cy, dp, dq, dy, *rest = rest
    mo = rest.pop(0) if has_carry_out else None
    (s,) = rest
    here = TANH_GRAD_OF_PRODUCT.numpy(xp, xq, xy, s)
    dc = here if carry is None else np.add(carry, here, out=here)
    u = xp.shape[-1]
    dz = np.empty((*xp.shape[:-1], 4 * u), _F32)
    SIGMOID_GRAD_OF_PRODUCT.numpy(dc, ao, ay, s, out=dz[..., :u])
    SIGMOID_GRAD_OF_PRODUCT.numpy(dc, bo, by, s, out=dz[..., u:2 * u])
    TANH_GRAD_OF_PRODUCT.numpy(dc, co, cy, s, out=dz[..., 2 * u:3 * u])
    SIGMOID_GRAD_OF_PRODUCT.numpy(dp, dq, dy, s, out=dz[..., 3 * u:])
    return (dz, np.multiply(dc, mo)) if has_carry_out else dz


def _compiled_cell_grad(module, roles, has_carry, has_carry_out, args):
    dh, i, f, candidate, o, squashed, c_prev = (args[k] for k in roles)
    g = i.base
    if (g.__class__ is not np.ndarray or f.base is not g or o.base is not g
            or dh.ndim != 2 or g.shape != (dh.shape[0], 4 * dh.shape[1])
            or not g.flags.c_contiguous or g.dtype != _F32):
        return None
    carry = args[3] if has_carry else dh
    s = args[-1]
    for a in (dh, candidate, squashed, c_prev, carry):
        if a.shape != dh.shape or a.dtype != _F32 or not a.flags.c_contiguous:
            return None
    if s.dtype != _F32:
        return None
    dz = np.empty(g.shape, _F32)
    carry_out = np.empty(dh.shape, _F32) if has_carry_out else dz
    module.lstm_cell_grad(g, dh, candidate, squashed, c_prev, carry, s.reshape(-1)[0],
                          has_carry, has_carry_out, dz, carry_out)
    return (dz, carry_out) if has_carry_out else dz


def _cell_roles(graph: Graph, inputs: tuple[int, ...], has_carry: bool) -> tuple | None:
    """The positions in ``inputs`` of dh, i, f, ĉ, o, tanh(c), c_prev when the gradient's
    operands are those of one :func:`lstm_cell` step with a forget gate, in the roles
    the compiled form computes with; else ``None``."""
    xp, xq, xy, *rest = inputs
    if has_carry:
        rest.pop(0)
    ao, ay, bo, by, co, cy, dp, dq, dy = rest[:9]
    p = graph.producer.get(ay)
    cell = None if p is None else graph.steps[p]
    if cell is None or cell.op != "lstm_cell" or not cell.settings.forget:
        return None
    i, f, candidate, o, _, squashed, _ = cell.outputs
    c_prev = cell.inputs[1]
    dh = xq if xp == o else xp
    ok = ({xp, xq} == {dh, o} and xy == squashed and (ao, ay) == (candidate, i)
          and (bo, by) == (c_prev, f) and (co, cy) == (i, candidate)
          and {dp, dq} == {dh, squashed} and dy == o and dh not in cell.outputs)
    if not ok:
        return None
    if len(rest) == 10 and rest[9] != f:  # the carried cotangent's factor
        return None
    return tuple(inputs.index(t) for t in (dh, i, f, candidate, o, squashed, c_prev))


def fuse_lstm_cell_grads(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each LSTM step's gradient (the gate cotangents' CONCATENATION, the
    fused chains making them, the cell state's cotangent and its carry to the step
    before) run as one step."""
    graph = Graph(steps, outputs)
    loader = kernels("rnn")
    out, dropped, taken = list(steps), set(), set()
    for pos in range(len(steps)):
        found = _lstm_cell_grad_at(graph, pos, values)
        if found is None or taken.intersection(found[1]):
            continue
        step, members = found
        if loader is not None:
            step = replace(step, settings=WithKernels(step.settings, loader))
        first = min(members)
        out[first] = step
        dropped.update(m for m in members if m != first)
        taken.update(members)
    return [s for p, s in enumerate(out) if p not in dropped]


def _lstm_cell_grad_at(graph: Graph, pos: int, values: list):
    concat = graph.steps[pos]
    if (concat.op != "concatenation" or concat.stateful or len(concat.inputs) != 4
            or concat.kernel is not lookup("concatenation").kernel
            or concat.settings.get("fused_activation_function", 0)):
        return None
    result = values[concat.outputs[0]]
    if not isinstance(result, np.ndarray) or result.dtype != _F32 or not result.ndim \
            or concat.settings.get("axis", 0) % result.ndim != result.ndim - 1:
        return None
    chains = []
    for x, want in zip(concat.inputs, (SIGMOID_GRAD_OF_PRODUCT, SIGMOID_GRAD_OF_PRODUCT,
                                       TANH_GRAD_OF_PRODUCT, SIGMOID_GRAD_OF_PRODUCT),
                       strict=True):
        p = graph.producer.get(x)
        if p is None or len(graph.readers.get(x, [])) != 1 or x in graph.outputs \
                or fused_chain(graph.steps[p]) is not want:
            return None
        chains.append(p)
    a, b, c, d = (graph.steps[p].inputs for p in chains)
    s = a[3]
    common = set(a[:2]) & set(b[:2]) & set(c[:2])
    if len(common) != 1 or any(ins[3] != s for ins in (b, c, d)):
        return None
    (dc,) = common
    if dc in graph.outputs or a[0] == a[1] or b[0] == b[1] or c[0] == c[1]:
        return None
    other = [ins[1] if ins[0] == dc else ins[0] for ins in (a, b, c)]
    made = graph.producer.get(dc)
    if made is None:
        return None
    carry = None
    here = graph.steps[made]
    members = [pos, *chains, made]
    if plain(here, "add", 2):
        x0, x1 = here.inputs
        for first, second in ((x0, x1), (x1, x0)):
            p = graph.producer.get(first)
            if (p is not None and fused_chain(graph.steps[p]) is TANH_GRAD_OF_PRODUCT
                    and graph.readers.get(first) == [made] and first not in graph.outputs
                    and first != second):
                carry, here = second, graph.steps[p]
                members.append(p)
                break
        else:
            return None
    elif fused_chain(here) is not TANH_GRAD_OF_PRODUCT:
        return None
    if here.inputs[3] != s:
        return None
    kept, rest = None, [r for r in graph.readers.get(dc, []) if r not in members]
    if rest:
        if len(rest) != 1 or not plain(graph.steps[rest[0]], "mul", 2):
            return None
        mul = graph.steps[rest[0]]
        if mul.inputs.count(dc) != 1:
            return None
        kept = mul.inputs[1] if mul.inputs[0] == dc else mul.inputs[0]
        members.append(rest[0])
    inputs = (*here.inputs[:3], *(() if carry is None else (carry,)), other[0], a[2],
              other[1], b[2], other[2], c[2], *d[:3], *(() if kept is None else (kept,)), s)
    shape = values[concat.inputs[0]].shape
    for t in inputs[:-1]:
        v = values[t]
        if not isinstance(v, np.ndarray) or v.dtype != _F32 or v.shape != shape:
            return None
    scalar = values[s]
    if not isinstance(scalar, np.ndarray) or scalar.dtype != _F32 or scalar.size != 1 \
            or scalar.ndim > len(shape):
        return None
    first = min(members)
    if len(set(members)) != len(members) or not all(made_before(graph, t, first)
                                                    for t in inputs):
        return None
    made_out = concat.outputs + (() if kept is None else graph.steps[rest[0]].outputs)
    roles = _cell_roles(graph, inputs, carry is not None)
    step = replace(concat, op="lstm_cell_grad", kernel=lstm_cell_grad,
                   settings={"has_carry": carry is not None, "has_carry_out": kept is not None,
                             "roles": roles},
                   inputs=inputs, outputs=made_out,
                   out_dtypes=tuple(values[t].dtype for t in made_out), fresh=True,
                   in_place=None, into=None, into_for=None)
    return step, members
