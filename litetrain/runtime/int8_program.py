"""Runs of int8 steps as one compiled call each (once per input shapes, after
:func:`.simplify.specialise`; the ``[fast]`` extra).

At batch 1 an int8 convnet's steps cost more in Python (the invoke loop, the kernel
wrappers, numba unboxing each array) than in arithmetic. :func:`int8_programs` replaces
each run of consecutive steps that :func:`.int8_encode.encode` can express by one step
whose settings are a :class:`Program`: the steps as an int64 instruction table, their
prepared constants in one byte array and their activations in one arena, all made here,
once. Invoke copies the run's operands into the arena, makes one call to
:func:`litetrain.ops.fast.int8_program.run`, and copies out the tensors read after the
run (fresh arrays: they escape).

Arena offsets are planned by liveness: a tensor holds its bytes from the step that makes
it (the run's start for an operand from outside) to its last reader in the run (a RESHAPE
output shares its input's bytes and extends their life); the run's results and the
constant operands of elementwise steps keep theirs. A step's result never overlaps its
operands (blocks free only after their last reader has run).

Invariants:

* the same bits as running the steps one by one: each instruction computes what the
  step's compiled path computes (see :mod:`.int8_encode`), and until the executor is
  loaded (loaded as :mod:`litetrain.ops.fast` says: a program's second run starts it),
  and for operands of other shapes than planned for, the program runs its steps one by
  one;
* a run that starts while another holds the arena (another thread) works in a copy;
* ``experimental_preserve_all_tensors`` plans are never specialised, so never use this.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..ops.fast import WithKernels, kernels
from ..ops.fast.int8_codes import WIDTH
from .int8_encode import ALIGN, Consts, Ref, Template, encode
from .step import Step

# Runs shorter than this keep their steps (one step gains nothing from an arena copy).
MIN_STEPS = 2


def int8_programs(steps: list[Step], values: list, inputs, outputs) -> list[Step]:
    """``steps`` with each run of encodable int8 steps (``values``: every tensor of a
    first run, for shapes, dtypes and constant operands) replaced by one program step."""
    loader = kernels("int8_program")
    if loader is None:
        return steps
    made = {o for s in steps for o in s.outputs}
    constant = {i for s in steps for i in s.inputs
                if i >= 0 and i not in made and i not in set(inputs)}
    out: list[Step] = []
    run: list[tuple[Step, Template]] = []
    consts = Consts()
    for pos, step in enumerate([*steps, None]):
        template = None if step is None else encode(step, values, consts)
        if template is not None and any(i >= 0 and i not in template.reads
                                        and i not in constant for i in step.inputs):
            template = None  # a filter, axis or shape made at run time
        if template is not None:
            run.append((step, template))
            continue
        if len(run) >= MIN_STEPS:
            later = {i for s in steps[pos:] for i in s.inputs} | set(outputs)
            out.append(_program_step(run, consts, values, constant, later, loader))
        else:
            out.extend(s for s, _ in run)
        run, consts = [], Consts()
        if step is not None:
            out.append(step)
    return out


@dataclass
class _Block:
    offset: int
    size: int


class _Allocator:
    """Best-fit over freed blocks, else the top grows; freed neighbours merge."""

    def __init__(self) -> None:
        self.free: list[_Block] = []
        self.top = 0

    def take(self, nbytes: int) -> int:
        size = -(-max(nbytes, 1) // ALIGN) * ALIGN
        fits = [b for b in self.free if b.size >= size]
        if not fits:
            off, self.top = self.top, self.top + size
            return off
        block = min(fits, key=lambda b: b.size)
        off = block.offset
        block.offset += size
        block.size -= size
        if block.size == 0:
            self.free.remove(block)
        return off

    def give(self, offset: int, nbytes: int) -> None:
        size = -(-max(nbytes, 1) // ALIGN) * ALIGN
        self.free.append(_Block(offset, size))
        self.free.sort(key=lambda b: b.offset)
        merged: list[_Block] = []
        for b in self.free:
            if merged and merged[-1].offset + merged[-1].size == b.offset:
                merged[-1].size += b.size
            else:
                merged.append(b)
        self.free = merged


def _program_step(run: list[tuple[Step, Template]], consts: Consts, values: list,
                  constant: set[int], later: set[int], loader) -> Step:
    """The step running ``run`` as one :class:`Program` (module docstring)."""
    made = {w for _, t in run for w in t.writes}
    ext = list(dict.fromkeys(i for _, t in run for i in t.reads
                             if i not in made and i not in constant))
    fixed = list(dict.fromkeys(i for _, t in run for i in t.reads if i in constant))
    results = [w for s, _ in run for w in s.outputs if w in later]
    where, size = plan_arena(run, values, ext, fixed, results)
    rows = [r for _, t in run if t.fields for r in (t.fields, *t.more)]
    code = np.zeros((len(rows), WIDTH), np.int64)
    for k, fields in enumerate(rows):
        code[k, :len(fields)] = [where[f.tensor] if isinstance(f, Ref) else int(f)
                                 for f in fields]
    arena = np.zeros(max(size, 1), np.uint8)
    for i in fixed:
        v = np.ascontiguousarray(values[i])
        arena[where[i]:where[i] + v.nbytes] = v.reshape(-1).view(np.uint8)
    declared = {o: dt for s, _ in run for o, dt in zip(s.outputs, s.out_dtypes, strict=True)}
    program = Program(code, consts.build(), arena,
                      [(where[i], values[i].shape, values[i].dtype) for i in ext],
                      [(where[w], values[w].shape, values[w].dtype) for w in results],
                      [s for s, _ in run], ext, results,
                      {i: values[i] for s, _ in run for i in s.inputs if i in constant},
                      WithKernels({}, loader))
    return Step(run[0][0].index, "int8_program", run_program, False, tuple(ext),
                tuple(results), tuple(declared[w] for w in results), program, fresh=True)


def plan_arena(run: list[tuple[Step, Template]], values: list, ext: list[int],
                fixed: list[int], results: list[int]) -> tuple[dict[int, int], int]:
    """(byte offset of every tensor the run touches, arena size): constant operands
    (``fixed``) and the run's operands from outside (``ext``) first, each result of a
    step from that step on; a tensor's bytes are free again after the last read of it or
    of a RESHAPE of it, never for ``results`` and ``fixed``."""
    root: dict[int, int] = {}  # tensor -> the tensor whose bytes it is
    for _, t in run:
        for w in t.writes:
            root[w] = w if t.alias_of is None else root.get(t.alias_of, t.alias_of)
    last: dict[int, float] = {}
    for pos, (_, t) in enumerate(run):
        for i in t.reads:
            last[root.get(i, i)] = pos
    for w in results:
        last[root[w]] = float("inf")
    alloc = _Allocator()
    where = {i: alloc.take(values[i].nbytes) for i in (*fixed, *ext)}
    live = [(last.get(i, -1), i) for i in ext]
    for pos, (_, t) in enumerate(run):
        for until, r in live:
            if until < pos:
                alloc.give(where[r], values[r].nbytes)
        live = [(until, r) for until, r in live if until >= pos]
        for w in t.writes:
            if root[w] == w:
                where[w] = alloc.take(values[w].nbytes)
                live.append((last.get(w, pos), w))
    for w in root:
        where[w] = where[root[w]]
    return where, alloc.top


class Program:
    """A run of steps as data (module docstring): ``code``, ``consts``, the ``arena``
    (constant operands already in place), where each operand is copied in (``ins``:
    offset, shape, dtype) and each result copied out (``outs``), and the steps
    themselves, which run one by one while the executor loads."""

    def __init__(self, code, consts, arena, ins, outs, steps, ext, results, constants,
                 loading):
        self.code, self.consts, self.arena = code, consts, arena
        self.ins, self.outs, self.steps = ins, outs, steps
        self.ext, self.results, self.constants, self.loading = ext, results, constants, \
            loading
        self.single = len(outs) == 1
        self.lock = threading.Lock()
        self.views = self._views(arena)

    def _views(self, arena: np.ndarray) -> tuple[list, list]:
        def view(off, shape, dtype):
            n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            return arena[off:off + n].view(dtype).reshape(shape)
        return [view(*i) for i in self.ins], [view(*o) for o in self.outs]

    def execute(self, module, args) -> tuple:
        """The results (fresh arrays) of running the table on ``args``."""
        if self.lock.acquire(blocking=False):
            try:
                return self._execute(module, self.arena, self.views, args)
            finally:
                self.lock.release()
        arena = self.arena.copy()
        return self._execute(module, arena, self._views(arena), args)

    def _execute(self, module, arena, views, args) -> tuple:
        ins, outs = views
        for view, x in zip(ins, args, strict=True):
            np.copyto(view, x, casting="no")
        module.run(self.code, self.consts, arena)
        return tuple(v.copy() for v in outs)

    def one_by_one(self, args) -> tuple:
        """The steps' own kernels, in order (the plan's loop, without its bookkeeping)."""
        values = dict(zip(self.ext, args, strict=True))
        values.update(self.constants)
        for step in self.steps:
            operands = [values[i] if i >= 0 else None for i in step.inputs]
            result = step.kernel(step.settings, *operands)
            if isinstance(result, tuple):
                (result,) = result
            values[step.outputs[0]] = np.asarray(result).astype(step.out_dtypes[0],
                                                                copy=False)
        return tuple(values[w] for w in self.results)

    def matches(self, args) -> bool:
        for (_, shape, dtype), x in zip(self.ins, args, strict=True):
            if x.__class__ is not np.ndarray or x.shape != shape or x.dtype != dtype:
                return False
        return True


def run_program(program: Program, *args):
    """The program step's kernel: one compiled call once the executor is loaded."""
    module = program.loading.ready()
    if module is None or not program.matches(args):
        out = program.one_by_one(args)
    else:
        out = program.execute(module, args)
    return out[0] if program.single else out
