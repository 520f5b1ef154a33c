"""Execution plans: a subgraph compiled once into a flat list of steps.

Prepare resolves every node's kernel (an op without one is reported here, naming node,
op and signature, never halfway through a run), merges each node's attrs with what the
runtime knows (output dtypes, quantization), lays out the constants and drops pure nodes
whose results nobody reads. Invoke is then a short loop over steps in the file's order,
which is the only order that is correct for variable reads and writes (they have no data
edges). The first run for new input shapes also folds shape arithmetic and specialises
the steps for those shapes (:mod:`.simplify`); later runs with the same shapes reuse that.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .. import dtypes
from ..errors import InvokeError, LitetrainError, ModelFormatError, UnsupportedOpError
from ..ir import OMITTED, Model, Node, Subgraph
from ..ops import NodeInfo, OpDef, OpResolverType, TensorInfo, lookup, quantized
from ..ops.variables import variable_key
from .arena import reuse_buffers
from .float_program import float_programs
from .fold import foldable_nodes, shape_key
from .int8_program import int8_programs
from .liveness import is_stand_in, release_points, stand_in
from .program import Instruction, compile_steps
from .simplify import drop_unused, specialise
from .step import Step
from .variables import VariableStore

_FOLDED_SHAPES_KEPT = 8  # input-shape keys whose folded plans are cached per subgraph


class Plan:
    """One subgraph, ready to run. ``where`` names it in errors (e.g. "signature 'train'").

    VAR_HANDLE nodes are folded into constants here: resource ids are fixed when the
    interpreter loads the model, so they cost nothing per invoke. ``keep_all_tensors``
    turns every simplification off, so that each tensor of the subgraph gets its value
    (``experimental_preserve_all_tensors``). ``resolver`` picks the TensorFlow Lite kernel
    set integer and hybrid kernels reproduce (every node's ``NodeInfo.resolver``).
    """

    def __init__(self, model: Model, subgraph_index: int, where: str,
                 variables: VariableStore | None = None, keep_all_tensors: bool = False,
                 resolver: OpResolverType = OpResolverType.AUTO):
        self.subgraph: Subgraph = model.subgraphs[subgraph_index]
        self.where = where
        self.resolver = resolver
        sg = self.subgraph
        self.hybrid = _has_hybrid_nodes(sg)
        self.constants: list[np.ndarray | None] = [t.data for t in sg.tensors]
        aliasing = set(sg.inputs)  # tensors that may share memory with a caller's array
        steps, missing = [], []
        for k, node in enumerate(sg.nodes):
            try:
                opdef = lookup(node.op)
            except UnsupportedOpError:
                missing.append(f"node {k} ({node.op})")
                continue
            node_where = f"{where} node {k} ({node.op})"
            _check_arity(opdef, node, node_where)
            if node.op == "var_handle" and variables is not None:
                rid = variables.resource_id(*variable_key(node.attrs))
                self.constants[node.outputs[0]] = np.array(rid, np.int32)
                continue
            info = self._node_info(node, f"{where} node {k}", aliasing)
            if not opdef.fresh_output and aliasing.intersection(node.inputs):
                aliasing.update(node.outputs)  # may be a view of a caller's array
            steps.append(_prepared(k, node, opdef, info, node_where))
        if missing:
            raise UnsupportedOpError(
                f"{where} (subgraph {subgraph_index} '{sg.name}') uses ops litetrain has no "
                f"kernel for: {', '.join(missing)}")
        self.keep_all_tensors = keep_all_tensors
        self.steps = steps if keep_all_tensors else drop_unused(steps, sg.outputs)
        self.foldable = foldable_nodes(sg)
        # Per input shapes: the specialised steps, the constants folded for them, per
        # step the values that can be dropped after it (see .liveness), and the steps
        # compiled for the loop (see .program): with large results in kept buffers (see
        # .arena), and without, for a run that starts while another one of this plan
        # is under way (another thread; the buffers are the running one's).
        self._per_shapes: OrderedDict[tuple, tuple[list[Step], list, list, list, list]] = \
            OrderedDict()
        self._whole: list[Instruction] | None = None  # self.steps compiled, no drops
        self._buffers_free = threading.Lock()

    def _node_info(self, node: Node, where: str, aliasing: set[int]) -> NodeInfo:
        """What prepare may know about a node: types, static shapes (-1 where dynamic),
        quantization, constant values (resource ids included), caller aliasing."""
        tensors = self.subgraph.tensors

        def info(i: int) -> TensorInfo | None:
            if i == OMITTED:
                return None
            t = tensors[i]
            dtype = dtypes.storage(t.dtype)
            return TensorInfo(dtype, t.signature_shape, self.constants[i], None,
                              quantized.qparams(t, dtype), i in aliasing)

        return NodeInfo(node.op, node.attrs, tuple(info(i) for i in node.inputs),
                        tuple(info(i) for i in node.outputs), where, self.resolver,
                        self.hybrid)

    def run(self, ctx, feeds: dict[int, np.ndarray]) -> list[np.ndarray | None]:
        """Run the subgraph; return the value of every tensor (``None`` where never set).

        The first run for a set of input shapes executes every step and records the
        outputs of foldable nodes; later runs with the same shapes start from those
        values, skip the nodes, and run the steps specialised for those shapes.
        """
        key = shape_key(feeds)
        cached = self._per_shapes.get(key)
        if cached is not None:
            self._per_shapes.move_to_end(key)
            if not self._buffers_free.acquire(blocking=False):
                return self._execute(cached[4], cached[1], ctx, feeds)
            try:
                return self._execute(cached[3], cached[1], ctx, feeds)
            finally:
                self._buffers_free.release()
        if self.keep_all_tensors:
            if self._whole is None:
                self._whole = compile_steps(self.steps, None)
            return self._execute(self._whole, self.constants, ctx, feeds)
        # First run for these shapes: values are let go after their last use here too,
        # leaving shape-only stand-ins for specialise (foldable results are kept whole).
        kept = {*self.subgraph.inputs, *self.subgraph.outputs}
        folded = {i for s in self.steps if s.index in self.foldable for i in s.outputs}
        first = compile_steps(self.steps, release_points(self.steps, kept | folded))
        values = self._execute(first, self.constants, ctx, feeds, stand_ins=True)
        constants = list(self.constants)
        for i in folded:
            constants[i] = values[i]
        remaining = [s for s in self.steps if s.index not in self.foldable]
        steps = specialise(remaining, values, self.subgraph.outputs)
        steps = int8_programs(steps, values, self.subgraph.inputs, self.subgraph.outputs)
        steps = float_programs(steps, values, self.subgraph.inputs, self.subgraph.outputs)
        drops = release_points(steps, kept)
        kept_buffers = reuse_buffers(steps, values, self.subgraph.outputs)
        self._per_shapes[key] = (kept_buffers, constants, drops,
                                 compile_steps(kept_buffers, drops), compile_steps(steps, drops))
        if len(self._per_shapes) > _FOLDED_SHAPES_KEPT:
            self._per_shapes.popitem(last=False)
        return [None if is_stand_in(v) else v for v in values]

    def _execute(self, program: list[Instruction], constants: list, ctx,
                 feeds: dict[int, np.ndarray], stand_ins: bool = False
                 ) -> list[np.ndarray | None]:
        # One extra trailing slot holds None: an omitted input (index -1) reads it.
        values = [*constants, None]
        for i, v in feeds.items():
            values[i] = v
        ndarray = np.ndarray
        for step, kernel, settings, stateful, gather, first, out, dtype, drop in program:
            args = (values[first],) if gather is None else gather(values)
            try:
                result = kernel(ctx, settings, *args) if stateful else kernel(settings, *args)
                # Results take the types the file declares (a failing cast is the node's).
                if out is not None:
                    if result.__class__ is not ndarray or (
                            result.dtype is not dtype and result.dtype != dtype):
                        result = _one_output(result, dtype)
                    values[out] = result
                elif step.outputs:
                    for i, v, dt in zip(step.outputs, result, step.out_dtypes, strict=True):
                        values[i] = v if v.__class__ is ndarray and v.dtype == dt else \
                            np.asarray(v).astype(dt, copy=False)
            except LitetrainError as e:  # keep the error's kind, add where it happened
                raise type(e)(f"{self.where}: node {step.index} ({step.op}): {e}") from e
            except Exception as e:  # a kernel rejected its inputs: say where and with what
                raise InvokeError(self._failure(step, args, e)) from e
            if drop:
                args = result = None  # the step's operands, so that dropped values can go
                for i in drop:
                    values[i] = stand_in(values[i]) if stand_ins else None
        values.pop()  # the None slot for omitted inputs
        return values

    def _failure(self, step: Step, args, e: Exception) -> str:
        shapes = ", ".join("-" if a is None else f"{a.dtype}{list(np.shape(a))}" for a in args)
        msg = str(e) or type(e).__name__
        return f"{self.where}: node {step.index} ({step.op}) failed on inputs ({shapes}): {msg}"


def _one_output(out, dtype: np.dtype) -> np.ndarray:
    """A single-output step's result as an array of the declared type."""
    if out.__class__ is tuple:  # a variadic op (UNPACK, SPLIT), one output
        (out,) = out
    if out.__class__ is not np.ndarray or out.dtype != dtype:
        out = np.asarray(out).astype(dtype, copy=False)
    return out


def _check_arity(opdef: OpDef, node: Node, where: str) -> None:
    """A node must give its op the inputs and outputs the op's kernel takes."""
    fewest, most = opdef.num_inputs
    n = len(node.inputs)
    if n < fewest or (most is not None and n > most):
        want = f"{fewest}" if fewest == most else f"{fewest} to {most or 'any'}"
        raise ModelFormatError(f"{where}: has {n} inputs, the op takes {want}")
    if opdef.num_outputs is not None and len(node.outputs) != opdef.num_outputs:
        raise ModelFormatError(f"{where}: has {len(node.outputs)} outputs, the op makes "
                               f"{opdef.num_outputs}")


def _has_hybrid_nodes(sg: Subgraph) -> bool:
    """Whether a node meets float32 activations with constant quantized int8 weights (a
    dynamic-range model: ``NodeInfo.hybrid_graph``)."""
    tensors = sg.tensors
    for node in sg.nodes:
        ins = [tensors[i] for i in node.inputs if i != OMITTED]
        if not ins or dtypes.storage(ins[0].dtype) != np.float32:
            continue
        for t in ins[1:]:
            dtype = dtypes.storage(t.dtype)
            if dtype == np.int8 and t.data is not None and quantized.qparams(t, dtype) is not None:
                return True
    return False


def _prepared(k: int, node: Node, opdef: OpDef, info: NodeInfo, where: str) -> Step:
    """The node's step: its kernel variant (float, integer, hybrid) and that variant's
    settings. A node prepare cannot make sense of is a ModelFormatError naming it."""
    try:
        variant = None if opdef.stateful else quantized.select(opdef, info)
        if variant is None:
            kernel, settings = opdef.kernel, opdef.settings(info)
            fresh, in_place, into = opdef.fresh_output, opdef.in_place, opdef.into
        else:
            kernel, settings, fresh, in_place, into = (variant.kernel, variant.prepare(info),
                                                       False, None, None)
    except LitetrainError:
        raise
    except Exception as e:
        raise ModelFormatError(f"{where}: cannot be prepared: {e or type(e).__name__}") from None
    return Step(k, node.op, kernel, opdef.stateful, node.inputs, node.outputs,
                tuple(t.dtype for t in info.outputs), settings, fresh, in_place,
                into=into, into_for=kernel if into is not None else None)
