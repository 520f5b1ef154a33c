"""Elementwise chains of gradient rules fused into one step (a :func:`.simplify.specialise`
pass, once per input shapes).

Gradient rules spell ReLU's, max-pool's, LOGISTIC's and TANH's gradients in builtin ops,
so that exported files train in stock LiteRT, at the price of two or three passes and
intermediate arrays per gradient:

============================  =========================================  ================
chain (float32)               as the rules emit it                       one step
============================  =========================================  ================
masked gradient               ``MUL(dy, CAST(mask))``                    ``masked``
ReLU gradient                 ``MUL(dy, CAST(GREATER(x, t)))``           ``masked_greater``
LOGISTIC gradient             ``MUL(MUL(dy, y), SUB(s, y))``             ``sigmoid_grad``
TANH gradient                 ``MUL(dy, SUB(s, MUL(y, y)))``             ``tanh_grad``
either, of a product          ``dy`` above is ``MUL(a, b)``              ``…_of_product``
batch norm, output            ``ADD(MUL(x, s), b)``                      ``affine``
batch norm, input gradient    ``ADD(MUL(dy, s), ADD(MUL(xc, k1), k0))``  ``batch_norm_grad``
… through a ReLU              ``MUL(that, CAST(GREATER(x, t)))``          ``…_masked``
============================  =========================================  ================

(``t``, ``s``: one-element values, 0 and 1 in the rules; in the batch-norm chains ``s``,
``b``, ``k1``, ``k0`` are per-channel vectors, broadcast along the last axis, and those
chains are fused only where the compiled form will run: their NumPy form would give up
:mod:`.channels`' long rows. ``batch_norm_grad_masked`` is a convolution → ReLU →
batch norm block's gradient reaching the convolution: one pass instead of two over the
largest maps of a CNN step.) Each inner result must be read by the chain alone. The
fused step runs where the chain's last op ran and reads the chain's operands (values
never change once made, so reading them later is the same).

Invariant: the same bits. Without the ``[fast]`` extra the step runs the chain's ufuncs
in their order (fewer steps, the same arithmetic); with it, the compiled one-pass forms
of :mod:`litetrain.ops.fast.train` (same float32 operations in the same order), loaded
on a background thread from the step's second run on (see :mod:`litetrain.ops.fast`).
Chains are fused only when every value in them is float32 (masks: bool) and every array
operand has the result's shape, so neither form broadcasts or promotes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)
# Below this many elements a compiled call's dispatch costs more than the passes it saves
# (an LSTM step's [32, 64] gates); such chains run their NumPy form, still one step.
_COMPILED_FROM = 1 << 14


@dataclass(frozen=True)
class Chain:
    """One fused form: its NumPy form ``numpy(*operands, out=None)`` (the chain's ufuncs
    in order), the compiled kernel's name, and which operands are ``"array"`` of the
    result's shape (the rest: a bool ``"mask"`` of that shape, a one-element
    ``"scalar"``, a per-channel ``"vector"``)."""

    name: str
    numpy: Callable
    kinds: tuple[str, ...]


# NumPy forms: the chain's ufuncs in its order, with as few temporaries as that allows
# (``out`` may be any full-size operand: what is still needed from it is read first).

def _masked(dy, mask, out=None):
    # the ufunc casts the mask to float32 in its buffers: exactly 1.0 or 0.0
    return np.multiply(dy, mask, out=out, dtype=_F32)


def _masked_greater(dy, x, t, out=None):
    return np.multiply(dy, np.greater(x, t), out=out, dtype=_F32)


def _sigmoid_grad(dy, y, s, out=None):
    rest = np.subtract(s, y)
    first = np.multiply(dy, y, out=out)
    return np.multiply(first, rest, out=first)


def _tanh_grad(dy, y, s, out=None):
    rest = np.multiply(y, y)
    np.subtract(s, rest, out=rest)
    return np.multiply(dy, rest, out=out)


def _sigmoid_grad_of_product(a, b, y, s, out=None):
    rest = np.subtract(s, y)
    first = np.multiply(a, b)
    np.multiply(first, y, out=first)
    return np.multiply(first, rest, out=first if out is None else out)


def _tanh_grad_of_product(a, b, y, s, out=None):
    rest = np.multiply(y, y)
    np.subtract(s, rest, out=rest)
    first = np.multiply(a, b, out=out)
    return np.multiply(first, rest, out=first)


def _affine(x, s, b, out=None):
    scaled = np.multiply(x, s, out=out)
    return np.add(scaled, b, out=scaled)


def _batch_norm_grad(dy, s, xc, k1, k0, out=None):
    shifted = np.multiply(xc, k1)
    np.add(shifted, k0, out=shifted)
    scaled = np.multiply(dy, s, out=out)
    return np.add(scaled, shifted, out=scaled)


def _batch_norm_grad_masked(dy, s, xc, k1, k0, x, t, out=None):
    mask = np.greater(x, t)  # first: ``out`` may be ``x``
    grad = _batch_norm_grad(dy, s, xc, k1, k0, out=out)
    return np.multiply(grad, mask, out=grad, dtype=_F32)


MASKED = Chain("masked", _masked, ("array", "mask"))
MASKED_GREATER = Chain("masked_greater", _masked_greater, ("array", "array", "scalar"))
SIGMOID_GRAD = Chain("sigmoid_grad", _sigmoid_grad, ("array", "array", "scalar"))
TANH_GRAD = Chain("tanh_grad", _tanh_grad, ("array", "array", "scalar"))
SIGMOID_GRAD_OF_PRODUCT = Chain("sigmoid_grad_of_product", _sigmoid_grad_of_product,
                                ("array", "array", "array", "scalar"))
TANH_GRAD_OF_PRODUCT = Chain("tanh_grad_of_product", _tanh_grad_of_product,
                             ("array", "array", "array", "scalar"))
AFFINE = Chain("affine", _affine, ("array", "vector", "vector"))
BATCH_NORM_GRAD = Chain("batch_norm_grad", _batch_norm_grad,
                        ("array", "vector", "array", "vector", "vector"))
BATCH_NORM_GRAD_MASKED = Chain("batch_norm_grad_masked", _batch_norm_grad_masked,
                               ("array", "vector", "array", "vector", "vector", "array",
                                "scalar"))


def run(chain: Chain, settings, *operands, out=None):
    """The fused step's kernel for large arrays: compiled when loaded and the operands
    are as prepared (C-contiguous, the prepared types), else the NumPy form."""
    module = settings.ready()
    if module is not None:
        result = _compiled(chain, module, operands, out)
        if result is not None:
            return result
    return chain.numpy(*operands, out=out)


def run_numpy(chain: Chain, settings, *operands, out=None):
    """The fused step's kernel for small arrays (or without the ``[fast]`` extra)."""
    return chain.numpy(*operands, out=out)


def _compiled(chain: Chain, module, operands, out):
    shape = operands[0].shape
    flat = (-1, shape[-1]) if "vector" in chain.kinds else (-1,)  # per channel: 2-D
    args = []
    for v, kind in zip(operands, chain.kinds, strict=True):
        if v.__class__ is not np.ndarray:
            return None
        if kind == "scalar":
            if v.dtype != _F32 or v.size != 1:
                return None
            args.append(v.reshape(-1)[0])
        elif kind == "vector":
            if v.dtype != _F32 or v.size != shape[-1] or not v.flags.c_contiguous:
                return None
            args.append(v.reshape(-1))
        elif (v.shape != shape or not v.flags.c_contiguous
                or v.dtype != (np.bool_ if kind == "mask" else _F32)):
            return None
        else:
            args.append(v.reshape(flat))
    if out is None:
        out = np.empty(shape, _F32)
    getattr(module, chain.name)(*args, out.reshape(flat))
    return out


def _in_place(chain: Chain, kernel: Callable, operand: int) -> Callable | None:
    if chain.kinds[operand] != "array":
        return None
    return lambda settings, *ops: kernel(settings, *ops, out=ops[operand])


# --- finding the chains -------------------------------------------------------------------

def fuse_gradient_chains(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each chain of the table above replaced by one step."""
    producer, readers = producers_and_readers(steps)
    loader = kernels("train")
    out, dropped, taken = list(steps), set(), set()
    for pos in range(len(steps) - 1, -1, -1):  # from the end: the longest chain wins
        step = steps[pos]
        if pos in taken or not (_plain(step, "mul") or _plain(step, "add")):
            continue
        compiled = loader is not None and values[step.outputs[0]].size >= _COMPILED_FROM
        found = _match(steps, pos, outputs, producer, readers, compiled)
        if found is None or taken.intersection(found[2]) or \
                not _all_typed(found[0], found[1], values, values[step.outputs[0]]):
            continue
        chain, inputs, inner = found
        settings = step.settings
        if "vector" in chain.kinds and not compiled:
            continue
        if compiled:
            settings = WithKernels(settings, loader)
        kernel = functools.partial(run if settings.__class__ is WithKernels else run_numpy,
                                   chain)
        out[pos] = replace(step, op=f"{step.op}[{chain.name}]", kernel=kernel, inputs=inputs,
                           settings=settings, fresh=True,
                           in_place=functools.partial(_in_place, chain, kernel),
                           into=kernel, into_for=kernel)
        dropped.update(inner)
        taken.update((pos, *inner))
    return [s for p, s in enumerate(out) if p not in dropped]


def _plain(step: Step, op: str, arity: int = 2) -> bool:
    """A float step of ``op`` as declared (its own kernel, no fused activation)."""
    return (step.op == op and len(step.inputs) == arity and len(step.outputs) == 1
            and step.kernel is lookup(op).kernel
            and not step.settings.get("fused_activation_function", 0))


def _match(steps, pos, outputs, producer, readers, vectors: bool = True):
    """(chain, fused step's inputs, positions of the chain's inner steps) or ``None``;
    ``vectors``: the per-channel chains may be taken in (they will run compiled)."""
    a, b = steps[pos].inputs

    def inner(tensor: int, op: str) -> int | None:
        """The step making ``tensor`` when it is an ``op`` read only by the chain (once)."""
        p = producer.get(tensor)
        if p is None or readers.get(tensor) != 1 or tensor in outputs:
            return None
        step = steps[p]
        if op == "cast":  # its settings are the target type, checked with the values
            return p if step.op == "cast" and step.kernel is lookup("cast").kernel \
                and step.settings == _F32 and len(step.inputs) == 1 else None
        return p if _plain(step, op) else None

    if steps[pos].op == "add":
        scaled = inner(a, "mul")
        if scaled is None:
            return None
        shifted = inner(b, "add")
        other = None if shifted is None else inner(steps[shifted].inputs[0], "mul")
        if other is not None:
            return BATCH_NORM_GRAD, (*steps[scaled].inputs, *steps[other].inputs,
                                     steps[shifted].inputs[1]), (scaled, shifted, other)
        return AFFINE, (*steps[scaled].inputs, b), (scaled,)
    cast = inner(b, "cast")
    if cast is not None:
        (mask,) = steps[cast].inputs
        greater = inner(mask, "greater")
        if greater is not None:
            norm = inner(a, "add") if vectors else None
            found = None if norm is None else _match(steps, norm, outputs, producer, readers)
            if found is not None and found[0] is BATCH_NORM_GRAD:
                return BATCH_NORM_GRAD_MASKED, (*found[1], *steps[greater].inputs), (
                    cast, greater, norm, *found[2])
            return MASKED_GREATER, (a, *steps[greater].inputs), (cast, greater)
        return MASKED, (a, mask), (cast,)
    sub = inner(b, "sub")
    if sub is None:
        return None
    s, y = steps[sub].inputs
    first = inner(a, "mul")
    if first is not None and steps[first].inputs[1] == y:
        dy = steps[first].inputs[0]
        product = inner(dy, "mul")
        if product is not None:
            return SIGMOID_GRAD_OF_PRODUCT, (*steps[product].inputs, y, s), (
                product, first, sub)
        return SIGMOID_GRAD, (dy, y, s), (first, sub)
    square = inner(y, "mul")
    if square is not None and steps[square].inputs[0] == steps[square].inputs[1]:
        y = steps[square].inputs[0]
        product = inner(a, "mul")
        if product is not None:
            return TANH_GRAD_OF_PRODUCT, (*steps[product].inputs, y, s), (
                product, sub, square)
        return TANH_GRAD, (a, y, s), (sub, square)
    return None


def _all_typed(chain: Chain, inputs: tuple[int, ...], values: list, result) -> bool:
    """Every operand float32 (a mask bool) with the result's shape (a scalar: one
    element; a vector: the result's last dimension; neither adding dimensions), and the
    result float32."""
    if not isinstance(result, np.ndarray) or result.dtype != _F32:
        return False
    for i, kind in zip(inputs, chain.kinds, strict=True):
        v = values[i] if i >= 0 else None
        if not isinstance(v, np.ndarray):
            return False
        if kind == "scalar":
            if v.dtype != _F32 or v.size != 1 or v.ndim > result.ndim:
                return False
        elif kind == "vector":
            c = result.shape[-1] if result.ndim else 0
            if v.dtype != _F32 or v.ndim > result.ndim or v.size != c or v.shape[-1] != c:
                return False
        elif v.shape != result.shape or v.dtype != (np.bool_ if kind == "mask" else _F32):
            return False
    return True
