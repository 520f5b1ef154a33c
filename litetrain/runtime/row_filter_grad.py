"""A stride-1 convolution's filter gradient from shifted rows as one compiled step (a
:func:`.simplify.specialise` pass, once per input shapes).

For an undilated stride-1 convolution with a filter larger than 1×1, the gradient rule
(``ops/conv.py``: ``_filter_grad``) emits

    xp = PAD(x, …)                      the input zero-padded (and extra rows below)
    rows = RESHAPE(xp, [-1, hx·wx, c])  each image's pixels in one run
    dp = PAD(dy, …)                     the output gradient on the same grid (optional)
    d = RESHAPE(dp, [-1, K, o])
    per tap t: v = SLICE(rows, [0, s_t, 0], [-1, K, -1])   (a view)
               p = BATCH_MATMUL(v, d, adj_x=True)          ([n, c, o]: per image BLAS)
    PACK(p_0 … p_{T-1}, axis=0)

then a SUM over the images. Both PADs copy (~0.25 ms at a batch-32 CNN's first layer) and
each per-image product of a 3-channel input is OpenBLAS's small-matrix kernel, 3×16
outputs at a time (~0.8 ms for the nine taps). The fused step replaces the chain up to
PACK by ``fast.filter_grad.row_taps``: the padded values read in place, the 27 sums of
a 3×3 filter over three channels in registers at once, each output summed exactly as
that BLAS kernel does (one FMA per ``k`` in order from +0.0; see ``fast.filter_grad``);
when the SUM over the images alone reads the PACK, it runs inside too
(``fast.filter_grad.image_sums``: NumPy's reduction order, from +0.0, image by image).

Invariant: the same bits. The compiled form is used for a shape only after
:func:`proven` found it equal, bit for bit, to the chain's own kernels at the current
BLAS thread count, on random, zero-heavy (whole zero channels) and NaN-heavy operands;
otherwise, until it has loaded, and for operands not as prepared (other shapes, strides,
constants that are not the prepared arrays) the chain's steps run one by one. Without
the ``[fast]`` extra nothing is fused. Fused only when every inner value is read by the
chain alone (none a subgraph output), ``x`` and ``dy`` are float32, and the pad, shape
and slice operands are constants.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ops import lookup
from ..ops.conv_exact import blas_threads
from ..ops.fast import WithKernels, kernels
from .filter_grad import PROOF_ROUNDS, Sub, proof_operand, run_chain
from .liveness import is_stand_in, plan_constant
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)
RUNS, RUN = 3, 9  # fast.filter_grad's register tile (three runs of nine values)
_PROVEN: dict[tuple, bool] = {}


@dataclass(frozen=True)
class RowTaps:
    """The fused step's settings: the kernel's geometry, tiles and output shape, the
    operand shapes prepared for, the constant operands (in the step's input order after
    ``x`` and ``dy``), and the original steps (the fallback)."""

    geo: np.ndarray
    bases: np.ndarray
    dest: np.ndarray
    out_shape: tuple[int, int, int, int]
    x_shape: tuple[int, ...]
    dy_shape: tuple[int, ...]
    constants: tuple[np.ndarray, ...]
    inputs: tuple[int, ...]
    subs: tuple[Sub, ...]
    result: int
    kernels: WithKernels
    summed: tuple[int, int, int] | None = None  # the SUM over the images runs inside


def row_taps(settings: RowTaps, x, dy, *constants):
    """The fused step's kernel: PACK's ``[T, n, c, o]``, each tap's per-image products."""
    module = settings.kernels.ready()
    if (module is not None and _as_prepared(settings, x, dy, constants)
            and proven(settings, module)):
        return _compiled(settings, module, x, dy)
    return run_chain(settings.subs, settings.inputs, (x, dy, *constants), settings.result)


def _compiled(settings: RowTaps, module, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    parts = np.empty(settings.out_shape, _F32)
    module.row_taps(x, dy.reshape(-1), settings.geo, settings.bases, settings.dest, parts)
    if settings.summed is None:
        return parts
    parts.flags.writeable = False
    out = np.empty(settings.summed, _F32)
    module.image_sums(parts, out)
    return out


def _as_prepared(settings: RowTaps, x, dy, constants) -> bool:
    return (x.__class__ is np.ndarray and dy.__class__ is np.ndarray and x.dtype == _F32
            and dy.dtype == _F32 and x.shape == settings.x_shape
            and dy.shape == settings.dy_shape and x.flags.c_contiguous
            and dy.flags.c_contiguous and dy.flags.writeable
            and len(constants) == len(settings.constants)
            and all(a is b for a, b in zip(constants, settings.constants, strict=True)))


def proven(settings: RowTaps, module) -> bool:
    """Whether ``module.row_taps`` gives the chain's bits for the prepared shapes at the
    current BLAS thread count: OpenBLAS picks its kernel (and so its order) by shape and
    thread count, so it is compared, not assumed — once per geometry and count, on random
    operands and on operands full of specials (kept for the process)."""
    key = (settings.x_shape, settings.dy_shape, settings.geo.tobytes(),
           settings.bases.tobytes(), settings.dest.tobytes(), blas_threads())
    verdict = _PROVEN.get(key)
    if verdict is None:
        verdict = _PROVEN[key] = _check(settings, module)
    return verdict


def _check(settings: RowTaps, module) -> bool:
    rng = np.random.default_rng(list(settings.x_shape) + list(settings.dy_shape))
    for kind in PROOF_ROUNDS:
        x = proof_operand(rng, settings.x_shape, kind)
        dy = proof_operand(rng, settings.dy_shape, kind)
        if kind == "zeros":  # a whole channel of zeros: outputs that are sums of zeros only
            dy[..., 0] = np.where(rng.random(dy.shape[:-1]) < 0.5, -0.0, 0.0)
        want = run_chain(settings.subs, settings.inputs, (x, dy, *settings.constants),
                         settings.result)
        got = _compiled(settings, module, x, dy)
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True


def fuse_row_filter_grads(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each shifted-rows filter gradient (see the module docstring)
    replaced by one step at its PACK (only with the compiled kernels: without them the
    chain's own steps are what would run)."""
    if kernels("filter_grad") is None:
        return steps
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        found = _match(steps, pos, values, outputs, producer, readers)
        if found is None or dropped.intersection(found[1]):
            continue
        settings, chain = found
        at = _image_sum(steps, pos, values, outputs, producer, readers, settings)
        if at is not None:  # the SUM over the images runs inside, PACK goes too
            settings = _summed(settings, steps[at], values)
            chain, pos, step = [*chain, pos], at, steps[at]
        out[pos] = Step(step.index, f"{step.op}[row_filter_grad]", row_taps, False,
                        settings.inputs, step.outputs, step.out_dtypes, settings, fresh=True)
        dropped.update(chain)
    return [s for p, s in enumerate(out) if p not in dropped]


def _image_sum(steps, pos, values, outputs, producer, readers,
               settings: RowTaps) -> int | None:
    """The position of the SUM over the images (axis 1) that alone reads the PACK at
    ``pos``, giving ``[T, c, o]``; else ``None``."""
    packed = steps[pos].outputs[0]
    if readers.get(packed) != 1 or packed in outputs:
        return None
    at = next(q for q in range(pos + 1, len(steps)) if packed in steps[q].inputs)
    step = steps[at]
    axis = values[step.inputs[1]] if len(step.inputs) == 2 else None
    taps, _, c, o = settings.out_shape
    if (not _is(step, "sum", 2) or step.inputs[0] != packed or step.settings.get(
            "keep_dims", False) or axis.__class__ is not np.ndarray
            or is_stand_in(axis) or producer.get(step.inputs[1]) is not None
            or _ints(axis) not in ([1], [-3])
            or not isinstance(values[step.outputs[0]], np.ndarray)
            or values[step.outputs[0]].shape != (taps, c, o)):
        return None
    return at


def _summed(settings: RowTaps, step: Step, values) -> RowTaps:
    """``settings`` with the SUM ``step`` run inside (its axis operand a constant)."""
    taps, _, c, o = settings.out_shape
    axis = step.inputs[1]
    return replace(settings, constants=(*settings.constants, values[axis]),
                   inputs=(*settings.inputs, axis),
                   subs=(*settings.subs, Sub(step.kernel, step.settings, step.inputs,
                                             step.outputs[0])),
                   result=step.outputs[0], summed=(taps, c, o))


def _is(step: Step, op: str, arity: int) -> bool:
    return (step.op == op and len(step.inputs) == arity and len(step.outputs) == 1
            and step.kernel is lookup(op).kernel and not step.stateful)


def _ints(v) -> list[int] | None:
    return None if v is None else [int(i) for i in np.asarray(v).reshape(-1)]


def _match(steps, pos, values, outputs, producer, readers):
    """(the fused step's settings, positions of the chain's inner steps) when the PACK
    at ``pos`` ends a shifted-rows filter gradient, else ``None``."""
    pack = steps[pos]
    if (pack.op != "pack" or pack.kernel is not lookup("pack").kernel or pack.stateful
            or len(pack.outputs) != 1 or len(pack.inputs) < 2
            or pack.settings.get("axis", 0) != 0):
        return None
    taps = len(pack.inputs)
    chain: list[int] = []

    def inner(tensor: int, op: str, arity: int, reads: int = 1) -> Step | None:
        p = producer.get(tensor)
        if (p is None or readers.get(tensor) != reads or tensor in outputs
                or not _is(steps[p], op, arity)):
            return None
        if p not in chain:
            chain.append(p)
        return steps[p]

    def constant(tensor: int) -> np.ndarray | None:
        return plan_constant(values, producer, tensor)

    mms = [inner(p, "batch_matmul", 2) for p in pack.inputs]
    if any(m is None or not m.settings.get("adj_x", False) or m.settings.get("adj_y", False)
           for m in mms):
        return None
    slices = [inner(m.inputs[0], "slice", 3) for m in mms]
    if any(s is None for s in slices) or len({s.inputs[0] for s in slices}) != 1 or len(
            {m.inputs[1] for m in mms}) != 1:
        return None
    rows = inner(slices[0].inputs[0], "reshape", 2, taps)
    d = inner(mms[0].inputs[1], "reshape", 2, taps)
    pad_x = None if rows is None else inner(rows.inputs[0], "pad", 2)
    if d is None or pad_x is None:
        return None
    pad_d = None
    if producer.get(d.inputs[0]) is not None and steps[producer[d.inputs[0]]].op == "pad":
        pad_d = inner(d.inputs[0], "pad", 2)
        if pad_d is None:
            return None
    x, dy = pad_x.inputs[0], (pad_d or d).inputs[0]
    vx, vdy = values[x], values[dy]
    if not (isinstance(vx, np.ndarray) and isinstance(vdy, np.ndarray) and vx.dtype == _F32
            and vdy.dtype == _F32 and vx.ndim == 4 and vdy.ndim == 4
            and vx.shape[0] == vdy.shape[0] and 0 not in vx.shape and 0 not in vdy.shape):
        return None
    consts = {}
    for s in (pad_x, rows, pad_d, d, *slices):
        if s is None:
            continue
        for i in s.inputs[1:]:
            if constant(i) is None:
                return None
            consts[i] = values[i]
    (n, h, w, c), (_, oh, ow, o) = vx.shape, vdy.shape
    px = _padding(_ints(values[pad_x.inputs[1]]))
    pd = _padding(_ints(values[pad_d.inputs[1]])) if pad_d else (0, 0, 0, 0)
    if px is None or pd is None:
        return None
    hx, wx = h + px[0] + px[1], w + px[2] + px[3]
    hd, wd = oh + pd[0] + pd[1], ow + pd[2] + pd[3]
    k = hd * wd
    if (values[rows.outputs[0]].shape != (n, hx * wx, c)
            or values[d.outputs[0]].shape != (n, k, o)):
        return None
    starts = []
    for s, m in zip(slices, mms, strict=True):
        begin, size = _ints(values[s.inputs[1]]), _ints(values[s.inputs[2]])
        if (len(begin) != 3 or len(size) != 3 or begin[0] != 0 or begin[2] != 0
                or size[0] not in (-1, n) or size[2] not in (-1, c)
                or not 0 <= begin[1] <= hx * wx - k
                or size[1] not in ((k, -1) if begin[1] == hx * wx - k else (k,))
                or values[s.outputs[0]].shape != (n, k, c)
                or values[m.outputs[0]].shape != (n, c, o)):
            return None
        starts.append(begin[1])
    vp = values[pack.outputs[0]]
    if not (isinstance(vp, np.ndarray) and vp.dtype == _F32 and vp.shape == (taps, n, c, o)):
        return None
    bases, dest = _tiles(starts, c)
    length = max(hx * wx * c, (k - 1) * c + int(bases.max()) + RUN) + 16
    geo = _frozen(np.array([px[0], px[2], hx, wx, pd[0], pd[2], hd, wd, oh, ow, length],
                           np.int64))
    subs = [Sub(s.kernel, s.settings, s.inputs, s.outputs[0])
            for s in (pad_x, rows, pad_d, d) if s is not None]
    for s, m in zip(slices, mms, strict=True):
        subs += [Sub(q.kernel, q.settings, q.inputs, q.outputs[0]) for q in (s, m)]
    subs.append(Sub(pack.kernel, pack.settings, pack.inputs, pack.outputs[0]))
    settings = RowTaps(geo, bases, dest, (taps, n, c, o), vx.shape, vdy.shape,
                       tuple(consts.values()), (x, dy, *consts), tuple(subs),
                       pack.outputs[0], WithKernels({}, kernels("filter_grad")))
    return settings, chain


def _padding(p: list[int] | None) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of a PAD of height and width only, else ``None``."""
    if p is None or len(p) != 8 or p[:2] != [0, 0] or p[6:] != [0, 0] or min(p) < 0:
        return None
    return p[2], p[3], p[4], p[5]


def _tiles(starts: list[int], c: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's register tiles: runs of consecutive input values (``(s_t + k)·c +
    ci`` at ``k = 0``, in tap and channel order), nine at most, three per tile;
    ``dest`` maps each tile's sums to ``t·c + ci`` (-1: none)."""
    runs: list[list[tuple[int, int]]] = [[]]
    for t, s in enumerate(starts):
        for ci in range(c):
            run, at = runs[-1], s * c + ci
            if run and (at != run[-1][0] + 1 or len(run) == RUN):
                runs.append(run := [])
            run.append((at, t * c + ci))
    runs += [[]] * (-len(runs) % RUNS)
    bases, dest = [], []
    for i in range(0, len(runs), RUNS):
        group = runs[i:i + RUNS]
        bases.append([r[0][0] if r else 0 for r in group])
        dest.append([to for r in group for to in [v for _, v in r] + [-1] * (RUN - len(r))])
    return _frozen(np.array(bases, np.int64)), _frozen(np.array(dest, np.int64))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a
