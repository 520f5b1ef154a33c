"""``litetrain.Interpreter``: a drop-in for ``tf.lite.Interpreter`` that also trains.

One interpreter owns one variable store and runs every signature of the model against
it: ``train`` changes what ``infer``, ``save`` and ``restore`` see. A new interpreter
starts again from the weights stored in the file (its CALL_ONCE init subgraphs run on the
first invoke that needs them).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import LitetrainError, ModelFormatError, SignatureError
from ..ir import Model, Tensor
from ..ops import OpResolverType
from ..tflite.reader import read_model
from .checkpoint_io import CHECKPOINT_IO_KEY, parse_metadata
from .context import RuntimeContext
from .plan import Plan
from .signature_runner import SignatureRunner
from .tensors import InputCheck, tensor_details
from .threads import blas_threads
from .variables import VariableStore


class Interpreter(RuntimeContext):
    """Run a ``.tflite`` model: its signatures, or subgraph 0 through tensor indices.

    Exactly one of ``model_path`` / ``model_content`` is given. ``num_threads`` sets the
    BLAS threads NumPy uses while this interpreter runs (``None``: BLAS's default, one
    per core, which ``benchmarks/`` measures as fastest here at batch 32 and up and the
    same at batch 1).
    ``experimental_op_resolver_type`` (:class:`~litetrain.OpResolverType`, TensorFlow's
    enum, or its name) picks which of TensorFlow Lite's kernel sets quantized ops
    reproduce bit for bit: ``AUTO``/``BUILTIN`` (default) what TensorFlow's default
    interpreter computes (XNNPACK's requantization where XNNPACK takes an int8 op, the
    optimized kernels elsewhere), ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` the optimized
    kernels, ``BUILTIN_REF`` the reference kernels. Float ops are the same under all.
    ``experimental_preserve_all_tensors`` keeps every intermediate tensor readable with
    ``get_tensor`` (otherwise, as in TFLite, only inputs and outputs are guaranteed: unused
    results are not computed, and buffers are reused). The other keyword arguments of
    ``tf.lite.Interpreter`` are accepted for drop-in compatibility and have no effect
    (there are no delegates to configure).

    ``checkpoint_paths`` says which files the model's FlexSave/FlexRestore ops may touch:
    ``"inputs"`` (default) only the paths the caller passes in (and files named after or
    under them); ``"any"`` whatever the model says, as TensorFlow does (see
    :mod:`litetrain.runtime.context`).
    """

    def __init__(self, model_path: str | os.PathLike | None = None,
                 model_content: bytes | None = None, experimental_delegates=None,
                 num_threads: int | None = None,
                 experimental_op_resolver_type: object = OpResolverType.AUTO,
                 experimental_preserve_all_tensors: bool = False, *,
                 model: Model | None = None, checkpoint_paths: str = "inputs",
                 **_tflite_compat_options) -> None:
        given = sum(x is not None for x in (model_path, model_content, model))
        if given != 1:
            raise ValueError("give exactly one of model_path or model_content "
                             f"({given} given)")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be an int >= 1 or None, got {num_threads!r}")
        self.num_threads = num_threads
        self.preserve_all_tensors = bool(experimental_preserve_all_tensors)
        self.op_resolver_type = OpResolverType.of(experimental_op_resolver_type)
        if model is None:
            model = read_model(Path(model_path) if model_path is not None else model_content)
        if not model.subgraphs:
            raise ModelFormatError("the model has no subgraphs (a .tflite model needs at "
                                   "least the main subgraph)")
        self.model = model
        super().__init__(VariableStore(model), checkpoint_paths)
        self._plans: dict[int, Plan] = {}
        self._fed_shapes: dict[int, tuple] = {}  # per subgraph, the input shapes last run
        main = model.subgraphs[0]
        self._input_shapes = {i: main.tensors[i].shape for i in main.inputs}
        self._input_checks = {i: InputCheck(main.tensors[i], f"input {i}") for i in main.inputs}
        self._inputs: dict[int, np.ndarray] = {}
        self._values: list[np.ndarray | None] = []
        # Signatures whose checkpoint file I/O litetrain adds (files exported in builtin
        # format by litetrain.convert): key -> {"kind", "path_input", "tensors"}.
        self.checkpoint_io = parse_metadata(model.metadata.get(CHECKPOINT_IO_KEY), model)

    # -- plans and running ---------------------------------------------------------------
    def plan(self, subgraph_index: int, where: str | None = None) -> Plan:
        """The prepared plan of a subgraph (built, and checked for kernels, on first use)."""
        plan = self._plans.get(subgraph_index)
        if plan is None:
            where = where or f"subgraph {subgraph_index}"
            plan = self._plans[subgraph_index] = Plan(
                self.model, subgraph_index, where, self.variables,
                keep_all_tensors=self.preserve_all_tensors, resolver=self.op_resolver_type)
        return plan

    def threads(self):
        """A context in which NumPy's BLAS uses this interpreter's ``num_threads``."""
        return blas_threads(self.num_threads)

    def run_subgraph(self, subgraph_index: int, feeds: dict[int, np.ndarray],
                     where: str | None = None) -> list[np.ndarray | None]:
        """Run a subgraph from a signature or ``invoke``. Fed with new input shapes, it is
        "prepared again" as in TensorFlow Lite: its random nodes restart from their seeds.
        Floating-point exceptions (overflow to inf, NaN from inf - inf) give IEEE results
        without NumPy's RuntimeWarnings, as TF Lite's kernels do."""
        plan = self.plan(subgraph_index, where)
        shapes = tuple(sorted((i, np.shape(v)) for i, v in feeds.items()))
        if self._fed_shapes.setdefault(subgraph_index, shapes) != shapes:
            self.restart_random_streams(f"{plan.where} node ")
            self._fed_shapes[subgraph_index] = shapes
        with np.errstate(all="ignore"):  # IEEE results (inf, NaN) silently, as TF Lite
            return plan.run(self, feeds)

    def call_subgraph(self, subgraph_index: int, args: tuple) -> list:
        """WHILE/IF bodies: run a subgraph on its inputs, in order; return its outputs."""
        if not 0 <= subgraph_index < len(self.model.subgraphs):
            raise ValueError(f"subgraph {subgraph_index} does not exist (the model has "
                             f"{len(self.model.subgraphs)})")
        sg = self.model.subgraphs[subgraph_index]
        if len(args) != len(sg.inputs):
            raise ValueError(f"subgraph {subgraph_index} '{sg.name}' takes {len(sg.inputs)} "
                             f"inputs, got {len(args)}")
        try:
            values = self.run_subgraph(subgraph_index, dict(zip(sg.inputs, args, strict=True)),
                                       f"subgraph {subgraph_index} '{sg.name}'")
        except LitetrainError as e:  # nested bodies nest their "where": keep it short
            raise type(e)(shorten(str(e))) from e
        return [values[i] for i in sg.outputs]

    def call_once(self, subgraph_index: int) -> None:
        """CALL_ONCE: run an init subgraph the first time any signature asks for it."""
        if subgraph_index in self.variables.initialized:
            return
        self.variables.initialized.add(subgraph_index)
        try:
            self.run_subgraph(subgraph_index, {}, f"init subgraph {subgraph_index}")
        except LitetrainError as e:
            self.variables.initialized.discard(subgraph_index)
            # A chain of CALL_ONCEs nests one "where" per level; keep the message short.
            raise type(e)(shorten(str(e))) from e
        except RecursionError:
            self.variables.initialized.discard(subgraph_index)
            raise ModelFormatError(f"init subgraph {subgraph_index}: CALL_ONCE chain too "
                                   "deep to run") from None
        except BaseException:
            self.variables.initialized.discard(subgraph_index)
            raise

    def reset_all_variables(self) -> None:
        """Forget every variable value; the next invoke starts from the file's weights."""
        self.variables.values.clear()
        self.variables.initialized.clear()

    # -- signatures ------------------------------------------------------------------------
    def get_signature_list(self) -> dict[str, dict[str, list[str]]]:
        """Inputs and outputs per signature, as its runner takes and returns them."""
        out = {}
        for s in self.model.signatures:
            io = self.checkpoint_io.get(s.key)
            inputs, outputs = list(s.inputs), list(s.outputs)
            if io is not None:
                weights = set(io["tensors"])
                if io["kind"] == "restore":
                    inputs = [io["path_input"]]
                else:
                    outputs = [o for o in outputs if o not in weights]
            out[s.key] = {"inputs": inputs, "outputs": outputs}
        return out

    def get_signature_runner(self, signature_key: str | None = None) -> SignatureRunner:
        sigs = self.model.signatures
        if signature_key is None:
            if len(sigs) != 1:
                raise SignatureError(
                    f"signature_key is None but the model has {len(sigs)} signatures "
                    f"({', '.join(s.key for s in sigs) or 'none'}); None is only allowed "
                    "when the model has exactly one")
            return SignatureRunner(self, sigs[0])
        for s in sigs:
            if s.key == signature_key:
                return SignatureRunner(self, s)
        raise SignatureError(f"no signature '{signature_key}' in the model; it has: "
                             f"{', '.join(s.key for s in sigs) or 'none'}")

    # -- the tf.lite tensor-index API (subgraph 0) -----------------------------------------
    def allocate_tensors(self) -> None:
        if self.model.subgraphs:
            self.plan(0, "subgraph 0")

    def _main_tensor(self, index: int) -> Tensor:
        tensors = self.model.subgraphs[0].tensors
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(tensors):
            raise ValueError(f"tensor index {index} out of range (subgraph 0 has "
                             f"{len(tensors)} tensors)")
        return tensors[index]

    def get_input_details(self) -> list[dict]:
        main = self.model.subgraphs[0]
        return [tensor_details(main.tensors[i], i, self._input_shapes[i]) for i in main.inputs]

    def get_output_details(self) -> list[dict]:
        main = self.model.subgraphs[0]
        return [tensor_details(main.tensors[i], i, self._shape_now(i)) for i in main.outputs]

    def get_tensor_details(self) -> list[dict]:
        main = self.model.subgraphs[0]
        return [tensor_details(t, i, self._shape_now(i)) for i, t in enumerate(main.tensors)]

    def _shape_now(self, index: int) -> tuple[int, ...]:
        if index < len(self._values) and self._values[index] is not None:
            return self._values[index].shape
        return self._input_shapes.get(index, self.model.subgraphs[0].tensors[index].shape)

    def resize_tensor_input(self, input_index: int, tensor_size, strict: bool = False) -> None:
        t = self._main_tensor(input_index)
        if input_index not in self._input_shapes:
            raise ValueError(f"tensor {input_index} {t.describe()} is not an input")
        new = tuple(int(d) for d in tensor_size)
        sig = t.signature_shape
        if strict and (len(new) != len(sig) or any(
                s not in (-1, n) for s, n in zip(sig, new, strict=True))):
            raise ValueError(f"cannot resize input {t.describe()} to {list(new)} in strict "
                             "mode: only dims that are -1 in the shape signature may change")
        self._input_shapes[input_index] = new
        self._inputs.pop(input_index, None)

    def set_tensor(self, tensor_index: int, value) -> None:
        t = self._main_tensor(tensor_index)
        if tensor_index not in self._input_shapes:
            raise ValueError(f"tensor {tensor_index} {t.describe()} is not an input of "
                             "subgraph 0; only inputs can be set")
        arr = self._input_checks[tensor_index](value)
        if arr.shape != self._input_shapes[tensor_index]:
            raise SignatureError(f"input {tensor_index} {t.describe()}: got shape "
                                 f"{list(arr.shape)}, but the tensor is sized "
                                 f"{list(self._input_shapes[tensor_index])}; call "
                                 "resize_tensor_input first")
        self._inputs[tensor_index] = arr

    def invoke(self) -> None:
        main = self.model.subgraphs[0]
        missing = [main.tensors[i].describe() for i in main.inputs if i not in self._inputs]
        if missing:
            raise SignatureError(f"invoke: inputs not set with set_tensor: {', '.join(missing)}")
        with self.threads(), self.run_scope(self._inputs.values()), \
                self.variables.transaction():
            self._values = self.run_subgraph(0, dict(self._inputs), "subgraph 0")

    def get_tensor(self, tensor_index: int, subgraph_index: int = 0) -> np.ndarray:
        if subgraph_index != 0:
            raise ValueError("only subgraph 0 tensors are kept between calls; use a "
                             "signature runner for the others")
        t = self._main_tensor(tensor_index)
        if tensor_index < len(self._values) and self._values[tensor_index] is not None:
            return np.array(self._values[tensor_index], copy=True)
        if tensor_index in self._inputs:
            return np.array(self._inputs[tensor_index], copy=True)
        if t.data is not None:
            return np.array(t.data, copy=True)
        if not self._values:
            raise LitetrainError(f"tensor {tensor_index} {t.describe()} has no value yet "
                                 "(call invoke first)")
        raise LitetrainError(f"tensor {tensor_index} {t.describe()} was not kept: only "
                             "inputs and outputs are; create the interpreter with "
                             "experimental_preserve_all_tensors=True to read intermediates")


_MESSAGE_LIMIT = 600


def shorten(message: str, limit: int = _MESSAGE_LIMIT) -> str:
    """``message`` cut in the middle to at most about ``limit`` characters."""
    if len(message) <= limit:
        return message
    half = limit // 2
    return f"{message[:half]} ...[{len(message) - 2 * half:,} characters]... {message[-half:]}"
