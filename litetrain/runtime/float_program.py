"""Runs of float steps as one compiled call each (once per input shapes, after
:func:`.simplify.specialise` and :mod:`.int8_program`; the ``[fast]`` extra).

The float counterpart of :mod:`.int8_program`: at batch 1 a float MobileNet's steps cost
about as much in Python as in arithmetic. :func:`float_programs` replaces each run of
consecutive steps :func:`.float_encode.candidate` accepts by one step whose settings are
a :class:`FloatProgram`. Unlike an int8 step, what a float step computes depends on
kernels that load later (which CONV_2D form :mod:`litetrain.ops.conv_exact` adopts, the
depthwise kernel :mod:`litetrain.ops.compiled` picks), so the instructions are written
when the executor has loaded (:func:`.float_encode.encode`, asking the steps' own
kernels), not at the first run: until then, and for good if a step then turns out not
encodable, the program runs its steps one by one.

Once encoded, invoke copies the run's operands into the arena, makes one call to
:func:`litetrain.ops.fast.float_program.run`, and copies out the tensors read after the
run (fresh arrays: they escape). The arena is planned by liveness as
:mod:`.int8_program` plans its own (the same planner).

Invariants:

* the same bits as running the steps one by one: each instruction calls the kernel the
  step's compiled path calls, or the BLAS call NumPy makes (:mod:`litetrain.ops.fast.
  blas`, proven per shape), or one float32 operation per element where NumPy does that;
  the BLAS thread count is that of the encoding (else the steps run one by one);
* a run that starts while another holds the arena (another thread) works in a copy;
* a hybrid instruction refusing its input (NaN, ±inf) makes that run one by one, whose
  kernels say what is wrong (naming the step inside the program);
* ``experimental_preserve_all_tensors`` plans are never specialised, so never use this;
  without numba, with ``LITETRAIN_JIT=0``, or without NumPy's OpenBLAS to call, programs
  holding products never encode and their steps run as before.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import InvokeError, LitetrainError
from ..ops import conv_exact
from ..ops.fast import WithKernels, kernels
from ..ops.fast.float_codes import WIDTH
from . import float_encode
from .int8_encode import Consts, Ref, Template
from .int8_program import plan_arena
from .step import Step

MIN_STEPS = 2  # shorter runs keep their steps (one step gains nothing from the copies)
# Steps reading or making more bytes than this keep running on their own: their
# arithmetic outweighs the Python around them, and a program would copy such activations
# into its arena (at batch 32, programs with them measured 0.8-1.0x the steps' speed).
# A plan making any activation this large (a large batch) gets no programs at all: its
# small late layers gained 0.98-1.03x at batch 32, and their programs' arena and copied
# constants raised MobileNetV2's peak RSS from 1.45x to 1.58x its bound.
MAX_BYTES = 1 << 20
# The same for dynamic-range plans (hybrid or XNNPACK-order steps): at batch 32 their
# programs measured 0.92-0.94x the steps' speed with 1 MiB, 0.91-1.0x with this.
MAX_BYTES_HYBRID = 1 << 18


def float_programs(steps: list[Step], values: list, inputs, outputs) -> list[Step]:
    """``steps`` with each run of candidate float steps (``values``: every tensor of a
    first run, for shapes, dtypes and constant operands) replaced by one program step."""
    loader = kernels("float_program")
    if loader is None or any(getattr(values[o], "nbytes", 0) > MAX_BYTES
                             for s in steps for o in s.outputs):
        return steps  # a large batch: see MAX_BYTES
    made = {o for s in steps for o in s.outputs}
    entry = set(inputs)
    constant = {i for s in steps for i in s.inputs
                if i >= 0 and i not in made and i not in entry}
    out: list[Step] = []
    run: list[tuple[Step, Template]] = []
    limit = MAX_BYTES_HYBRID if any(float_encode.hybrid.dynamic_range(s) for s in steps) \
        else MAX_BYTES
    for pos, step in enumerate([*steps, None]):
        t = None if step is None else float_encode.candidate(step, values)
        if t is not None and any(values[i].nbytes > limit for i in (*t.reads, *t.writes)):
            t = None
        if t is not None and any(i >= 0 and i not in t.reads and i not in constant
                                 for i in step.inputs):
            t = None  # a filter, axis or shape made at run time
        if t is not None:
            run.append((step, t))
            continue
        if len(run) >= MIN_STEPS:
            later = {i for s in steps[pos:] for i in s.inputs} | set(outputs)
            out.append(_program_step(run, values, constant, later, loader))
        else:
            out.extend(s for s, _ in run)
        run = []
        if step is not None:
            out.append(step)
    return out


def _program_step(run: list[tuple[Step, Template]], values: list, constant: set[int],
                  later: set[int], loader) -> Step:
    made = {w for _, t in run for w in t.writes}
    ext = list(dict.fromkeys(i for _, t in run for i in t.reads if i not in made))
    results = [w for s, _ in run for w in s.outputs if w in later]
    touched = {i for s, t in run for i in (*s.inputs, *s.outputs) if i >= 0}
    snapshot = {i: values[i] if i in constant else float_encode.Like(values[i])
                for i in touched}
    program = FloatProgram([s for s, _ in run], ext, results, snapshot,
                           WithKernels({}, loader))
    declared = {o: dt for s, _ in run for o, dt in zip(s.outputs, s.out_dtypes, strict=True)}
    return Step(run[0][0].index, "float_program", run_program, False, tuple(ext),
                tuple(results), tuple(declared[w] for w in results), program, fresh=True)


class FloatProgram:
    """A run of float steps (module docstring): the steps, the tensors read from outside
    (``ext``) and read after the run (``results``), the planned shapes and constants
    (``snapshot``), and, once :meth:`encode` succeeded, the table, constants, arena and
    the BLAS functions' table."""

    def __init__(self, steps: list[Step], ext: list[int], results: list[int], snapshot,
                 loading: WithKernels):
        self.steps, self.ext, self.results = steps, ext, results
        self.snapshot, self.loading = snapshot, loading
        self.single = len(results) == 1
        self.state = "waiting"  # -> "ready" | "steps" (not encodable: one by one)
        self.lock = threading.Lock()
        self.code = self.consts = self.arena = self.blas = None
        self.ins: list = []
        self.outs: list = []
        self.views: tuple[list, list] = ([], [])
        self.threads = -1

    def encode(self, module) -> None:
        """Write the instructions (:func:`.float_encode.encode`); any step refused makes
        the whole run one by one for good."""
        conv = kernels("conv")
        gemm = kernels("gemm")
        conv_module = None if conv is None else conv.wait()
        if gemm is not None:
            gemm.wait()
        k = None if conv_module is None else float_encode.kernels_now(conv_module)
        consts = Consts()
        run = []
        for step in self.steps:
            t = None if k is None else float_encode.encode(step, self.snapshot, consts, k)
            if t is None:
                self.state = "steps"
                return
            run.append((step, t))
        where, size = plan_arena(run, self.snapshot, self.ext, [], self.results)
        rows = [r for _, t in run if t.fields for r in (t.fields, *t.more)]
        code = np.zeros((len(rows), WIDTH), np.int64)
        for i, fields in enumerate(rows):
            code[i, :len(fields)] = [where[f.tensor] if isinstance(f, Ref) else int(f)
                                     for f in fields]
        self.code, self.consts = code, consts.build()
        self.arena = np.zeros(max(size, 1), np.uint8)
        self.blas = k.blas.table if k.blas is not None else np.zeros(3, np.int64)
        snap = self.snapshot
        self.ins = [(where[i], snap[i].shape, snap[i].dtype) for i in self.ext]
        self.outs = [(where[w], snap[w].shape, snap[w].dtype) for w in self.results]
        self.views = self._views(self.arena)
        self.threads = k.threads
        self.module = module
        self.state = "ready"

    def _views(self, arena: np.ndarray) -> tuple[list, list]:
        def view(off, shape, dtype):
            n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            return arena[off:off + n].view(dtype).reshape(shape)
        return [view(*i) for i in self.ins], [view(*o) for o in self.outs]

    def matches(self, args) -> bool:
        for (_, shape, dtype), x in zip(self.ins, args, strict=True):
            if x.__class__ is not np.ndarray or x.shape != shape or x.dtype != dtype:
                return False
        return True

    def execute(self, args) -> tuple | None:
        """The results (fresh arrays) of running the table on ``args``; ``None`` when an
        instruction refused its input (then the steps run one by one)."""
        if self.lock.acquire(blocking=False):
            try:
                return self._execute(self.arena, self.views, args)
            finally:
                self.lock.release()
        arena = self.arena.copy()
        return self._execute(arena, self._views(arena), args)

    def _execute(self, arena, views, args) -> tuple:
        ins, outs = views
        for view, x in zip(ins, args, strict=True):
            np.copyto(view, x, casting="no")
        if not self.module.run(self.code, self.consts, arena, self.blas):
            return None  # a hybrid kernel refused its input (NaN or ±inf)
        return tuple(v.copy() for v in outs)

    def one_by_one(self, args) -> tuple:
        """The steps' own kernels, in order (the plan's loop, without its bookkeeping)."""
        values = dict(zip(self.ext, args, strict=True))
        for i, v in self.snapshot.items():
            if v.__class__ is np.ndarray:
                values[i] = v
        for step in self.steps:
            operands = [values[i] if i >= 0 else None for i in step.inputs]
            try:
                result = step.kernel(step.settings, *operands)
            except LitetrainError as e:  # keep the error's kind, say which step of the run
                raise type(e)(f"node {step.index} ({step.op}): {e}") from e
            except Exception as e:  # a kernel rejected its inputs (NaN for a hybrid one)
                raise InvokeError(f"node {step.index} ({step.op}): "
                                  f"{str(e) or type(e).__name__}") from e
            if isinstance(result, tuple):
                (result,) = result
            values[step.outputs[0]] = np.asarray(result).astype(step.out_dtypes[0],
                                                                copy=False)
        return tuple(values[w] for w in self.results)


def run_program(program: FloatProgram, *args):
    """The program step's kernel: one compiled call once encoded (module docstring)."""
    if program.state == "waiting":
        module = program.loading.ready()
        if module is not None:
            with program.lock:
                if program.state == "waiting":
                    program.encode(module)
    if (program.state == "ready" and program.matches(args)
            and conv_exact.blas_threads() == program.threads):
        out = program.execute(args)
        if out is None:
            out = program.one_by_one(args)
    else:
        out = program.one_by_one(args)
    return out[0] if program.single else out
