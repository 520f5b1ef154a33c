"""Recurrent layers' steps run as fewer, larger steps (a :func:`.simplify.specialise`
pass, once per input shapes).

A recurrent train step unrolled over time is hundreds of tiny nodes (``[batch, units]``
gates): what it costs is the per-node dispatch, allocation and ufunc call, not the
arithmetic. Three rewrites, each leaving every remaining tensor's bits unchanged:

* **LSTM cell, forward** (:func:`fuse_lstm_cells`): ``SPLIT`` of the gate
  pre-activations into four along the last axis, ``LOGISTIC`` of gates i, f, o, ``TANH``
  of the candidate, ``c = i·ĉ [+ f·c_prev]``, ``h = o·TANH(c)`` — Keras' LSTM as
  :class:`litetrain.author.sequence_layers.LSTM` emits it — run as one step. The
  logistic of the three gates is computed in one pass over all four blocks (the same
  ``1 / (1 + exp(-x))`` ufuncs on a contiguous array, as the LOGISTIC kernel computes
  it; the candidate block's result is not used), the gates are views of that buffer.
* **Concatenation of results made for it** (:func:`concatenate_in_place`): a
  CONCATENATION whose operand is made by an elementwise step (a plain ADD/SUB/MUL, or a
  fused gradient chain of :mod:`.fused`) that nothing else reads has that step write
  straight into its block of the result (its ``into`` form, the same ufuncs): no
  temporary per operand and no copy. Backpropagation through time concatenates the
  gate cotangents of every step so (LSTM: four, GRU: three per step, twice).
* **Products by a transposed variable** (:func:`transpose_once`): ``BATCH_MATMUL(x, w,
  adj_y)`` run as ``x @ wᵀ`` with ``wᵀ`` made contiguous once per run and shared by
  every such product of ``w`` (the gradient's recurrent products: OpenBLAS multiplies a
  transposed operand about twice as slowly at these shapes). Adopted per shape only
  after a bit check on the first run's values: both forms must give the same bits.

Invariant: the same bits as the steps replaced (``experimental_preserve_all_tensors``
disables every specialisation). Fused steps run where their first member ran; every
operand from outside the group is made before that.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from ..ops.matmul import batch_matmul, matmul_bias
from .fused import SIGMOID_GRAD_OF_PRODUCT, TANH_GRAD_OF_PRODUCT, run, run_numpy
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)
# Elementwise ops whose ``into`` form is the ufunc itself: it writes into any view.
_UFUNC_OPS = ("add", "sub", "mul")


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


def _plain(step: Step, op: str, arity: int) -> bool:
    """A step of ``op`` with its own float kernel and no fused activation."""
    return (step.op == op and len(step.inputs) == arity and len(step.outputs) == 1
            and not step.stateful and step.kernel is lookup(op).kernel
            and not step.settings.get("fused_activation_function", 0))


class _Graph:
    """Who makes and who reads each tensor of ``steps``."""

    def __init__(self, steps: list[Step], outputs: set[int]):
        self.steps, self.outputs = steps, outputs
        self.producer, _ = producers_and_readers(steps)
        self.readers: dict[int, list[int]] = {}
        for pos, s in enumerate(steps):
            for i in s.inputs:
                self.readers.setdefault(i, []).append(pos)

    def sole(self, tensor: int, op: str, arity: int = 1) -> int | None:
        """The one step reading ``tensor`` (once, not a subgraph output) if it is a
        plain ``op``."""
        pos = self.readers.get(tensor, [])
        if len(pos) != 1 or tensor in self.outputs or not _plain(self.steps[pos[0]], op, arity):
            return None
        return pos[0]

    def reader(self, op: str, *operands: int) -> int | None:
        """A plain binary ``op`` step reading exactly ``operands`` (either order)."""
        for pos in self.readers.get(operands[0], []):
            s = self.steps[pos]
            if _plain(s, op, 2) and sorted(s.inputs) == sorted(operands):
                return pos
        return None

    def unread(self, tensor: int) -> bool:
        return not self.readers.get(tensor) and tensor not in self.outputs


def fuse_lstm_cells(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each LSTM cell described in the module docstring run as one step."""
    graph = _Graph(steps, outputs)
    out, dropped = list(steps), set()
    for pos in range(len(steps)):
        found = _lstm_cell_at(graph, pos, values)
        if found is None or dropped.intersection(found[1]):
            continue
        fused_step, members = found
        out[pos] = fused_step
        dropped.update(m for m in members if m != pos)
    return [s for p, s in enumerate(out) if p not in dropped]


def _lstm_cell_at(graph: _Graph, pos: int, values: list) -> tuple[Step, list[int]] | None:
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
        if not _plain(kept_step, "mul", 2) or f not in kept_step.inputs:
            return None
        c_prev = kept_step.inputs[1] if kept_step.inputs[0] == f else kept_step.inputs[0]
        if c_prev == f or not _made_before(graph, c_prev, pos):
            return None
        members += [kept_pos, add]
        extra = (c_prev,)
        c = graph.steps[add].outputs[0]
    squash = [p for p in graph.readers.get(c, []) if _plain(graph.steps[p], "tanh", 1)]
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


def _made_before(graph: _Graph, tensor: int, pos: int) -> bool:
    p = graph.producer.get(tensor)
    return p is None or p < pos


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


def _cell_roles(graph: _Graph, inputs: tuple[int, ...], has_carry: bool) -> tuple | None:
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


def _fused_chain(step: Step):
    """The chain of :mod:`.fused` a step runs, or ``None``."""
    kernel = step.kernel
    if (isinstance(kernel, functools.partial) and kernel.func in (run, run_numpy)
            and len(step.outputs) == 1 and not step.stateful and kernel.args):
        return kernel.args[0]
    return None


def fuse_lstm_cell_grads(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each LSTM step's gradient (the gate cotangents' CONCATENATION, the
    fused chains making them, the cell state's cotangent and its carry to the step
    before) run as one step."""
    graph = _Graph(steps, outputs)
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


def _lstm_cell_grad_at(graph: _Graph, pos: int, values: list):
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
                or _fused_chain(graph.steps[p]) is not want:
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
    if _plain(here, "add", 2):
        x0, x1 = here.inputs
        for first, second in ((x0, x1), (x1, x0)):
            p = graph.producer.get(first)
            if (p is not None and _fused_chain(graph.steps[p]) is TANH_GRAD_OF_PRODUCT
                    and graph.readers.get(first) == [made] and first not in graph.outputs
                    and first != second):
                carry, here = second, graph.steps[p]
                members.append(p)
                break
        else:
            return None
    elif _fused_chain(here) is not TANH_GRAD_OF_PRODUCT:
        return None
    if here.inputs[3] != s:
        return None
    kept, rest = None, [r for r in graph.readers.get(dc, []) if r not in members]
    if rest:
        if len(rest) != 1 or not _plain(graph.steps[rest[0]], "mul", 2):
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
    if len(set(members)) != len(members) or not all(_made_before(graph, t, first)
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


# --- concatenations written in place -----------------------------------------------------

@dataclass(frozen=True)
class InPlaceConcat:
    """Per operand, ``parts`` holds ``(kernel, into, settings)`` of the step computing
    it into its block (``into(settings, *its args, out=block)``) or ``None`` (the operand
    is an argument, copied in), and ``blocks`` its ``(index, slice along the axis, first
    argument, argument count)``; ``shapes``: every argument's shape as planned (other
    shapes run the parts' kernels and a plain concatenation); ``shape``: the result's."""

    parts: tuple
    blocks: tuple
    shapes: tuple
    shape: tuple


def concatenated(settings: InPlaceConcat, *args, out=None):
    """CONCATENATION with some operands computed straight into their blocks."""
    for a, shape in zip(args, settings.shapes, strict=True):
        if a.shape != shape:
            return _concatenated_plainly(settings, args)
    if out is None:
        out = np.empty(settings.shape, _F32)
    for part, (index, k, count) in zip(settings.parts, settings.blocks, strict=True):
        block = out[index]
        if part is None:
            block[...] = args[k]
        else:
            result = part[1](part[2], *args[k:k + count], out=block)
            if result is not block:
                block[...] = result
    return out


def _concatenated_plainly(settings: InPlaceConcat, args: tuple) -> np.ndarray:
    pieces = [args[k] if part is None else part[0](part[2], *args[k:k + count])
              for part, (_, k, count) in zip(settings.parts, settings.blocks, strict=True)]
    axis = len(settings.blocks[0][0]) - 1
    return np.concatenate(pieces, axis=axis)


def concatenate_in_place(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each float32 CONCATENATION's operands made for it written into
    its result (see the module docstring)."""
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        if (step.op != "concatenation" or step.stateful or len(step.outputs) != 1
                or step.kernel is not lookup("concatenation").kernel
                or step.settings.get("fused_activation_function", 0)):
            continue
        result = values[step.outputs[0]]
        if not isinstance(result, np.ndarray) or result.dtype != _F32 or not result.ndim:
            continue
        axis = step.settings.get("axis", 0) % result.ndim
        contiguous = all(d == 1 for d in result.shape[:axis])
        parts, blocks, inputs, absorbed, start = [], [], [], [], 0
        for x in step.inputs:
            v = values[x]
            if not isinstance(v, np.ndarray) or v.dtype != _F32 or v.ndim != result.ndim:
                break
            index = (*(slice(None),) * axis, slice(start, start + v.shape[axis]))
            start += v.shape[axis]
            p = producer.get(x)
            maker = None if p is None or p in dropped else steps[p]
            if (maker is not None and readers.get(x) == 1 and x not in outputs
                    and step.inputs.count(x) == 1 and _writes_any_view(maker, contiguous)
                    and maker.out_dtypes[0] == _F32):
                parts.append((maker.kernel, maker.out_form(), maker.settings))
                blocks.append((index, len(inputs), len(maker.inputs)))
                inputs.extend(maker.inputs)
                absorbed.append(p)
            else:
                parts.append(None)
                blocks.append((index, len(inputs), 1))
                inputs.append(x)
        else:
            shapes = tuple(getattr(values[i], "shape", None) for i in inputs)
            if not absorbed or None in shapes:
                continue
            settings = InPlaceConcat(tuple(parts), tuple(blocks), shapes, result.shape)
            out[pos] = replace(step, op="concatenation[in_place]", kernel=concatenated,
                               settings=settings, inputs=tuple(inputs), fresh=True,
                               in_place=None, into=concatenated, into_for=concatenated)
            dropped.update(absorbed)
    return [s for p, s in enumerate(out) if p not in dropped]


def _writes_any_view(step: Step, contiguous: bool) -> bool:
    """Whether the step's ``into`` form computes its result into a given array of any
    layout (``contiguous``: the block is one contiguous run, as a fresh array is)."""
    if step.stateful or len(step.outputs) != 1 or step.out_form() is None \
            or step.writes_into is not None:
        return False
    if any(_plain(step, op, 2) for op in _UFUNC_OPS):
        return True
    kernel = step.kernel
    # a fused gradient chain's NumPy form (the compiled one wants contiguous arrays)
    return isinstance(kernel, functools.partial) and (
        kernel.func is run_numpy or (contiguous and not isinstance(step.settings, WithKernels)))


# --- products by a transposed variable ---------------------------------------------------

class Transposed:
    """``wᵀ`` made contiguous, once per ``w`` (values never change once made; the pair
    is replaced in one assignment, so concurrent runs of the plan see a matching one,
    and the ``w`` kept with it cannot have its identity reused)."""

    __slots__ = ("pair",)

    def __init__(self) -> None:
        self.pair: tuple = (None, None)

    def of(self, w: np.ndarray) -> np.ndarray:
        source, transposed = self.pair
        if w is not source:
            transposed = np.ascontiguousarray(np.swapaxes(w, -1, -2))
            self.pair = (w, transposed)
        return transposed


def matmul_transposed(cache: Transposed, attrs, x, w):
    return np.matmul(x, cache.of(w))


def _transposable(step: Step) -> bool:
    """A BATCH_MATMUL with ``adj_y`` alone, its kernel the op's own or with its bias ADD
    (:func:`litetrain.ops.matmul.matmul_bias`)."""
    if step.op not in ("batch_matmul", "batch_matmul+add") or step.stateful \
            or not step.settings.get("adj_y", False) or step.settings.get("adj_x", False):
        return False
    if step.op == "batch_matmul":
        return len(step.inputs) == 2 and step.kernel is lookup("batch_matmul").kernel
    kernel = step.kernel
    return (step.op == "batch_matmul+add" and len(step.inputs) == 3
            and isinstance(kernel, functools.partial) and kernel.func is matmul_bias
            and len(kernel.args) == 1 and not kernel.keywords)


def transpose_once(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each 2-D float32 ``BATCH_MATMUL(x, w, adj_y)`` (with or without its
    bias ADD) whose ``w`` is a variable's value (READ_VARIABLE) multiplying by one
    contiguous ``wᵀ`` shared by the products of that ``w``, where a bit check says so."""
    producer, _ = producers_and_readers(steps)
    caches: dict[int, Transposed] = {}
    out = list(steps)
    for pos, step in enumerate(steps):
        if not _transposable(step):
            continue
        x, w = (values[i] for i in step.inputs[:2])
        p = producer.get(step.inputs[1])
        if p is None or steps[p].op != "read_variable":
            continue  # a variable's array: nothing writes into it (no slot, no in place)
        if not all(isinstance(v, np.ndarray) and v.dtype == _F32 and v.ndim == 2
                   for v in (x, w)) or x.shape[1] != w.shape[1] or min(*x.shape, w.shape[0]) < 2:
            continue  # (a product with one row or column: BLAS's GEMV, whose two forms
            # add in different orders)
        if not _same_bits(step.settings, x, w):
            continue
        cache = caches.setdefault(step.inputs[1], Transposed())
        if step.op == "batch_matmul":
            kernel = functools.partial(matmul_transposed, cache)
        else:
            kernel = functools.partial(matmul_bias, *step.kernel.args, transposed=cache.of)
        out[pos] = replace(step, op=f"{step.op}[transposed_once]", kernel=kernel,
                           fresh=True, in_place=None, into=None, into_for=None)
    return out


def _same_bits(attrs, x: np.ndarray, w: np.ndarray) -> bool:
    """Whether the product by a contiguous ``wᵀ`` gives the plain kernel's bits on these
    values and on three operands of mixed magnitudes (BLAS's forms of one GEMM shape
    either add in one order or, almost surely, show it on these)."""
    wt = np.ascontiguousarray(w.T)
    rng = np.random.default_rng(0)
    probes = [(rng.standard_normal(x.shape) * np.exp2(rng.integers(-8, 8, x.shape))
               ).astype(_F32) for _ in range(3)]
    for a in (x, *probes):
        if not np.array_equal(batch_matmul(attrs, a, w).view(np.int32),
                              np.matmul(a, wt).view(np.int32)):
            return False
    return True


def fuse_recurrent_steps(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """The rewrites of the module docstring, in its order."""
    steps = fuse_lstm_cells(steps, values, outputs)
    steps = fuse_lstm_cell_grads(steps, values, outputs)
    steps = concatenate_in_place(steps, values, outputs)
    return transpose_once(steps, values, outputs)
