"""A strided convolution's filter gradient with its tap windows gathered in one step (a
:func:`.simplify.specialise` pass, once per input shapes).

For a convolution whose taps cannot share one padded view (a stride above 1, or a 1×1
filter over a padded input), the gradient rule (``ops/conv.py``: ``_filter_grad``)
emits, per tap ``t`` of the ``kh × kw`` filter,

    w = STRIDED_SLICE(x, …)             the tap's input values (a view of ``x``)
    w = PAD(w, …)                       (zeros where the tap reads the padding; some taps)
    r = RESHAPE(w, [-1, c])             (a copy: the view is not one strided matrix)
    p = BATCH_MATMUL(r, d, adj_x=True)  the tap's [c, o] block of the filter gradient

then ``PACK(p_0 … p_{T-1}, axis=0)``. Every tap's window is copied once or twice
(PAD, then RESHAPE of the strided view) into arrays of its own, and PACK copies the
products again: ~0.5 ms of a batch-32 CNN step. The fused step writes the taps'
windows side by side into one ``[n·oh·ow, T·c]`` scratch (zeros where PAD put them, the
strided views' values copied in) and runs the same ``BATCH_MATMUL`` kernel once on it:
the packed result is that product's rows, tap by tap (one BLAS call of the whole
im2col's size: 0.55x the T calls' time at a batch-32 CNN's 3×3 stride-2 layer). Where
that one product is not proven to give the T products' bits (:func:`one_product`), the
windows go to a ``[T, n·oh·ow, c]`` scratch and each tap's rows to the kernel.

With the ``[fast]`` extra, no window is copied at all where it is proven exact
(:func:`blocked_proven`): ``fast.filter_grad.strided_taps`` reads each tap's values in
place (the padding as multiply-adds by +0.0) and sums every output as OpenBLAS's level-3
driver does for these depths — per K block (:func:`level3_blocks`) one FMA per row in
order from +0.0, the blocks added onto +0.0 in order (0.72x the gathered product's time
at a batch-32 CNN's 3×3 stride-2 layer, 32 to 32 channels).

Invariant: the same bits. The windows hold the same values (copies; PAD's zeros are
+0.0 either way); each product is the op's own kernel on a C-contiguous ``[rows, c]``
operand (as the RESHAPE gave it) and the same ``d``, or the one product checked to
give the same bits for the shape at the BLAS thread count, or the compiled sums checked
to give them (on random operands and on ones full of IEEE specials: NaN of both signs
meet in the sums, and which one a sum keeps is part of the order); PACK copies. Fused
only when
every inner step is read by the chain alone (none a subgraph output), ``x`` is float32,
the slice, pad and shape operands are constants, and the first run's shapes are the
ones assumed; a run whose constants are not the prepared arrays runs the original
steps' kernels one by one (the chain as it was).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import lookup
from ..ops.conv_exact import blas_threads
from ..ops.fast import WithKernels, kernels
from ..ops.slicing import _strided_spec
from .liveness import plan_constant
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)
_ALL = (slice(None),) * 4
_ONE_PRODUCT: dict[tuple[int, int, int, int, int], bool] = {}
_BLOCKED: dict[tuple, bool] = {}
_OUTPUTS = 1 << 14  # outputs compared per shape at least


@dataclass(frozen=True)
class Sub:
    """One original step of the chain: its kernel, settings and operand tensors."""

    kernel: object
    settings: object
    inputs: tuple[int, ...]
    output: int


@dataclass(frozen=True)
class Taps:
    """The fused step's settings: per tap the source view of ``x`` (an index tuple) and
    where it lands in the tap's ``[n, oh, ow, c]`` window (the rest is PAD's zeros),
    the window shape, the BATCH_MATMUL settings, the constant operands as prepared (in
    the fused step's input order after ``x`` and ``d``), and the original steps (the
    fallback)."""

    sources: tuple[tuple, ...]
    places: tuple[tuple, ...]
    window: tuple[int, int, int, int]
    matmul: object
    constants: tuple[np.ndarray, ...]
    inputs: tuple[int, ...]
    subs: tuple[Sub, ...]
    result: int
    x_shape: tuple[int, ...] = ()
    geometry: tuple[np.ndarray, ...] = ()  # per tap: y0, x0, sy, sx, top, left, rows, cols
    kernels: WithKernels | None = None
    blocked: WithKernels | None = None  # fast.filter_grad: the taps read in place


def level3_blocks(k: int, q: int = 448, unroll: int = 16) -> np.ndarray:
    """The edges of OpenBLAS's level-3 K blocks for a depth of ``k``: blocks of ``q``
    while at least two remain, then two halves rounded up to ``unroll`` (its driver's
    ``min_l`` rule; ``q`` is SGEMM_Q of its AVX-512 cores). Each block is summed from
    +0.0 on its own, then added onto the output. A fact about one BLAS build, so only
    ever used after :func:`blocked_proven`."""
    edges, left = [0], k
    while left > 0:
        step = left
        if step >= 2 * q:
            step = q
        elif step > q:
            step = (step // 2 + unroll - 1) // unroll * unroll
        edges.append(edges[-1] + step)
        left -= step
    return _frozen(np.array(edges, np.int64))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def gathered_taps(settings: Taps, x, d, *constants):
    """The fused step's kernel: ``[T, c, o]``, each tap's block ``window(x)ᵀ · d``."""
    if len(constants) != len(settings.constants) or any(
            a is not b for a, b in zip(constants, settings.constants, strict=True)) or (
            x.__class__ is not np.ndarray or x.dtype != _F32):
        return _original(settings, x, d, constants)
    n, oh, ow, c = settings.window
    taps, rows = len(settings.sources), n * oh * ow
    blocked = settings.blocked.ready() if settings.blocked is not None else None
    if (blocked is not None and x.shape == settings.x_shape and x.flags.c_contiguous
            and d.__class__ is np.ndarray and d.dtype == _F32 and d.flags.c_contiguous
            and d.flags.writeable and d.shape[0] == rows
            and blocked_proven(settings, blocked, d.shape[1])):
        return _blocked(settings, blocked, x, d)
    matmul = lookup("batch_matmul").kernel
    if (d.__class__ is np.ndarray and d.dtype == _F32 and d.flags.c_contiguous
            and rows > 1 and one_product(rows, c, d.shape[1], taps)):
        # every tap's window side by side: one [rows, T·c] operand, one BLAS call
        side = np.empty((n, oh, ow, taps * c), _F32)
        module = settings.kernels.ready() if settings.kernels is not None else None
        if module is not None and x.shape == settings.x_shape and x.flags.c_contiguous:
            module.gather_taps(x, *settings.geometry, side)
        else:
            wide = side.reshape(n, oh, ow, taps, c)
            for t, (source, place) in enumerate(zip(settings.sources, settings.places,
                                                    strict=True)):
                _gather(wide[:, :, :, t], x, source, place)
        return matmul(settings.matmul, side.reshape(rows, taps * c), d).reshape(
            taps, c, d.shape[1])
    windows = np.empty((taps, n, oh, ow, c), _F32)
    out = None
    for t, (source, place) in enumerate(zip(settings.sources, settings.places, strict=True)):
        w = windows[t]
        _gather(w, x, source, place)
        p = matmul(settings.matmul, w.reshape(rows, c), d)
        if out is None:
            out = np.empty((taps, *p.shape), p.dtype)
        out[t] = p
    return out


def _blocked(settings: Taps, module, x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The taps' products by ``fast.filter_grad.strided_taps``: windows read in place."""
    n, oh, ow, c = settings.window
    out = np.empty((len(settings.sources), c, d.shape[1]), _F32)
    shape = _frozen(np.array([*settings.x_shape, oh, ow], np.int64))
    module.strided_taps(x.reshape(-1), d.reshape(-1), shape, *settings.geometry,
                        level3_blocks(n * oh * ow), out)
    return out


def blocked_proven(settings: Taps, module, o: int) -> bool:
    """Whether ``module.strided_taps`` (the taps read in place, summed in
    :func:`level3_blocks`' order) gives the chain's bits for the prepared shapes with
    ``o`` output channels at the current BLAS thread count: compared on random operands
    and on operands full of IEEE specials, once per geometry and count (kept for the
    process). Input channels other than a multiple of 8: never (the kernel's tile)."""
    n, oh, ow, c = settings.window
    if c % 8 or not o or not settings.geometry:
        return False
    key = (settings.x_shape, o, tuple(g.tobytes() for g in settings.geometry),
           blas_threads())
    verdict = _BLOCKED.get(key)
    if verdict is None:
        verdict = _BLOCKED[key] = _check_blocked(settings, module, (n * oh * ow, o))
    return verdict


def _check_blocked(settings: Taps, module, d_shape: tuple[int, int]) -> bool:
    rng = np.random.default_rng([*settings.x_shape, *d_shape])
    for kind in PROOF_ROUNDS:
        x = proof_operand(rng, settings.x_shape, kind)
        d = proof_operand(rng, d_shape, kind)
        want = _original(settings, x, d, settings.constants)
        got = _blocked(settings, module, x, d)
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True


_SPECIALS = np.array([0.0, -0.0, -0.0, 0.0, 1e-30, -2.0 ** -149, np.nan, np.inf, -np.inf],
                     np.float32)
PROOF_ROUNDS = ("random", "zeros", "specials")


def proof_operand(rng, shape, kind: str) -> np.ndarray:
    """Random float32 operands of a proof round: ``random`` normal values; ``zeros``: a
    fifth of them ±0 or tiny (products rounding to ±0) and three NaN or infinities;
    ``specials``: a tenth ±0, tiny, NaN or ±inf (NaN of both signs meet in the sums)."""
    v = rng.standard_normal(shape, np.float32)
    flat = v.reshape(-1)
    if kind == "zeros":
        pick = rng.random(flat.size) < 0.2
        flat[pick] = rng.choice(_SPECIALS[:6], int(pick.sum()))
        flat[rng.choice(flat.size, min(3, flat.size), replace=False)] = _SPECIALS[6:][
            :min(3, flat.size)]
    elif kind == "specials":
        pick = rng.random(flat.size) < 0.1
        flat[pick] = rng.choice(_SPECIALS, int(pick.sum()))
    return v


def _gather(w: np.ndarray, x: np.ndarray, source: tuple, place: tuple) -> None:
    """One tap's window: PAD's zeros, the strided view of ``x`` copied in."""
    if place != _ALL:
        w[...] = 0.0
    w[place] = x[source]


def one_product(rows: int, c: int, o: int, taps: int) -> bool:
    """Whether one BLAS product ``[rows, T·c]ᵀ · d`` gives, block by block, the bits of
    the T products ``[rows, c]ᵀ · d`` (C-order float32 operands, BATCH_MATMUL's call)
    at the current BLAS thread count. OpenBLAS sums each output over ``rows`` in an
    order that depends on the call's shapes alone; more rows of the transposed operand
    only add output rows, which it computes the same way — but that is checked, not
    assumed: once per shape, on random operands (as ``ops/conv_exact.py`` checks its
    GEMMs); anything short of equality keeps the T products."""
    key = (rows, c, o, taps, blas_threads())
    verdict = _ONE_PRODUCT.get(key)
    if verdict is None:
        verdict = _ONE_PRODUCT[key] = _check_one_product(rows, c, o, taps)
    return verdict


def _check_one_product(rows: int, c: int, o: int, taps: int) -> bool:
    rng = np.random.default_rng([rows, c, o, taps])
    attrs = {"adj_x": True, "adj_y": False}
    matmul = lookup("batch_matmul").kernel
    for _ in range(max(1, -(-_OUTPUTS // (taps * c * o)))):
        side = rng.standard_normal((rows, taps * c), np.float32)
        d = rng.standard_normal((rows, o), np.float32)
        one = matmul(attrs, side, d).reshape(taps, c, o)
        for t in range(taps):
            block = np.ascontiguousarray(side[:, t * c:(t + 1) * c])
            if not np.array_equal(matmul(attrs, block, d).view(np.uint32),
                                  one[t].view(np.uint32)):
                return False
    return True


def _original(settings: Taps, x, d, constants) -> np.ndarray:
    """The chain's steps run one by one (operands not as prepared)."""
    return run_chain(settings.subs, settings.inputs, (x, d, *constants), settings.result)


def run_chain(subs, inputs: tuple[int, ...], operands: tuple, result: int) -> np.ndarray:
    """A fused chain's original steps ``subs`` run one by one on ``operands`` (the
    values of the tensors ``inputs``): the tensor ``result``."""
    env = dict(zip(inputs, operands, strict=True))
    for sub in subs:
        env[sub.output] = sub.kernel(sub.settings, *(env[i] for i in sub.inputs))
    return env[result]


def fuse_filter_grad_taps(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each gathered-taps filter gradient (see the module docstring)
    replaced by one step at its PACK."""
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        found = _match(steps, pos, values, outputs, producer, readers)
        if found is None or dropped.intersection(found[1]):
            continue
        settings, chain = found
        out[pos] = Step(step.index, "pack[filter_grad_taps]", gathered_taps, False,
                        settings.inputs, step.outputs, step.out_dtypes, settings,
                        fresh=True)
        dropped.update(chain)
    return [s for p, s in enumerate(out) if p not in dropped]


def _is(step: Step, op: str, arity: int) -> bool:
    return (step.op == op and len(step.inputs) == arity and len(step.outputs) == 1
            and step.kernel is lookup(op).kernel and not step.stateful)


def _match(steps, pos, values, outputs, producer, readers):
    """(the fused step's settings, positions of the chain's inner steps) when the PACK
    at ``pos`` ends a gathered-taps filter gradient, else ``None``."""
    pack = steps[pos]
    if (pack.op != "pack" or pack.kernel is not lookup("pack").kernel or pack.stateful
            or len(pack.outputs) != 1 or len(pack.inputs) < 2
            or pack.settings.get("axis", 0) != 0):
        return None
    chain: list[int] = []

    def inner(tensor: int, op: str, arity: int) -> Step | None:
        p = producer.get(tensor)
        if (p is None or readers.get(tensor) != 1 or tensor in outputs
                or not _is(steps[p], op, arity)):
            return None
        chain.append(p)
        return steps[p]

    def constant(tensor: int) -> np.ndarray | None:
        return plan_constant(values, producer, tensor)

    x = d = matmul_settings = window = None
    sources, places, consts, subs = [], [], {}, []
    for p in pack.inputs:
        mm = inner(p, "batch_matmul", 2)
        if mm is None or not mm.settings.get("adj_x", False) or mm.settings.get("adj_y",
                                                                               False):
            return None
        r = inner(mm.inputs[0], "reshape", 2)
        w = None if r is None else producer.get(r.inputs[0])
        pad = inner(r.inputs[0], "pad", 2) if w is not None and steps[w].op == "pad" \
            else None
        sliced = inner(pad.inputs[0] if pad is not None else r.inputs[0], "strided_slice", 4) \
            if r is not None else None
        if sliced is None or (d is not None and (mm.inputs[1] != d or sliced.inputs[0] != x)):
            return None
        x, d = sliced.inputs[0], mm.inputs[1]
        matmul_settings = mm.settings if matmul_settings is None else matmul_settings
        if mm.settings != matmul_settings:
            return None
        tap = _tap(sliced, pad, r, values, constant)
        if tap is None:
            return None
        source, place, shape, operands = tap
        if window is not None and shape != window:
            return None
        window = shape
        sources.append(source)
        places.append(place)
        for i in operands:
            consts[i] = values[i]
        for s in (sliced, pad, r, mm):
            if s is not None:
                subs.append(Sub(s.kernel, s.settings, s.inputs, s.outputs[0]))
    vx, vd, vp = values[x], values[d], values[pack.outputs[0]]
    if not (isinstance(vx, np.ndarray) and vx.dtype == _F32 and vx.ndim == 4
            and isinstance(vd, np.ndarray) and vd.dtype == _F32 and vd.ndim == 2
            and isinstance(vp, np.ndarray) and vp.dtype == _F32
            and vp.shape == (len(sources), window[3], vd.shape[1])
            and vd.shape[0] == window[0] * window[1] * window[2]):
        return None
    subs.append(Sub(pack.kernel, pack.settings, pack.inputs, pack.outputs[0]))
    inputs = (x, d, *consts)
    loader, blocked = kernels("train"), kernels("filter_grad")
    settings = Taps(tuple(sources), tuple(places), window, matmul_settings,
                    tuple(consts.values()), inputs, tuple(subs), pack.outputs[0],
                    vx.shape, _geometry(sources, places, vx.shape, window),
                    None if loader is None else WithKernels({}, loader),
                    None if blocked is None else WithKernels({}, blocked))
    return settings, chain


def _geometry(sources, places, x_shape, window) -> tuple[np.ndarray, ...]:
    """Per tap, for ``fast.train.gather_taps``: the first input row and column its
    view reads, its row and column steps, where the view lands in the window (PAD's
    top and left) and its rows and columns."""
    per_tap = []
    for source, place in zip(sources, places, strict=True):
        (sy0, _, sy), (sx0, _, sx) = (source[a].indices(x_shape[a]) for a in (1, 2))
        rows = len(range(*source[1].indices(x_shape[1])))
        cols = len(range(*source[2].indices(x_shape[2])))
        top = place[1].start or 0
        left = place[2].start or 0
        per_tap.append((sy0, sx0, sy, sx, top, left, rows, cols))
    return tuple(_frozen(np.array(v, np.int64)) for v in zip(*per_tap, strict=True))


def _tap(sliced: Step, pad: Step | None, r: Step, values, constant):
    """(the view's index tuple into ``x``, its place in the window, the window's shape,
    the constant operands read) for one tap, or ``None`` when it is not of that form."""
    operands = [*sliced.inputs[1:], r.inputs[1], *(pad.inputs[1:] if pad else ())]
    got = [constant(i) for i in operands]
    if any(v is None for v in got):
        return None
    begin, end, strides = (np.asarray(v).reshape(-1).tolist() for v in got[:3])
    if len(begin) != 4 or len(end) != 4 or len(strides) != 4:
        return None
    spec = _strided_spec(sliced.settings, begin, end, strides)
    if any(not isinstance(s, slice) for s in spec):  # new axes, shrinks, an ellipsis
        return None
    view = values[sliced.outputs[0]]
    win = values[(pad or sliced).outputs[0]]
    if not (isinstance(view, np.ndarray) and view.ndim == 4 and isinstance(win, np.ndarray)
            and win.ndim == 4 and spec[0] == slice(None, None, 1)
            and spec[3] == slice(None, None, 1)):
        return None
    if pad is None:
        place = (slice(None),) * 4
    else:
        p = np.asarray(got[4]).reshape(-1, 2).tolist()
        if len(p) != 4 or p[0] != [0, 0] or p[3] != [0, 0] or min(min(q) for q in p) < 0:
            return None
        (_, vh, vw, _) = view.shape
        place = (slice(None), slice(p[1][0], p[1][0] + vh), slice(p[2][0], p[2][0] + vw),
                 slice(None))
    n, oh, ow, c = win.shape
    if values[r.outputs[0]].shape != (n * oh * ow, c):
        return None
    return spec, place, (n, oh, ow, c), operands
