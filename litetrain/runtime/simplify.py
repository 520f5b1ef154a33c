"""Prepare-time simplification of a plan's steps; every rewrite leaves outputs identical.

Passes, in the order a plan applies them:

* :func:`drop_unused` (once per subgraph): a pure step none of whose outputs is read by a
  later step or returned by the subgraph is skipped. Reverse-mode graphs are full of
  these: a matmul's gradient rule yields both operands' gradients, and the one for the
  model's input is never used.
* :func:`specialise` (once per input shapes, with the shapes and dtypes of a first run):
  identity RESHAPEs are dropped, ``MUL(NEG(x), s)`` with a scalar ``s`` becomes
  ``MUL(x, -s)`` (one pass over ``x`` instead of two, same bits: negation is exact), a
  matmul's bias ADD and fused activation run in place on the matmul's result, the
  tiled max-pool gradient (see :mod:`.pool_grad`) and the masked, LOGISTIC and TANH
  gradient chains of gradient rules run as one step each (see :mod:`.fused`), a
  strided convolution's filter gradient gathers its tap windows in one step (see
  :mod:`.filter_grad`) and a stride-1 one's per-tap products of shifted rows run as one
  compiled step (see :mod:`.row_filter_grad`), a deep ``aᵀ · b`` product runs compiled in
  BLAS's order where proven (see :mod:`.transposed_product`), a sum or mean over batch
  and space of a product runs without the product array (see :mod:`.product_sum`), a
  depthwise filter's taps without the padded input (see :mod:`.depthwise_grad`), an
  average pool's gradient through a ReLU in one pass (see :mod:`.avg_pool_grad`), a RELU
  or RELU6 after a convolution runs as its fused activation (see
  :mod:`.conv_activation`), a
  HARD_SWISH (or a MUL by one value) runs inside the convolution or ADD making its input
  (see :mod:`.epilogue`), an input's rescaling (MUL and ADD by constants) is applied
  while the convolution reading it gathers its patches (see :mod:`.prologue`), a
  squeeze-and-excitation MUL by a per-image channel vector runs compiled (see
  :mod:`.se_scale`), a per-channel vector broadcast over a large array runs over long
  tiled rows (see :mod:`.channels`), LSTM/GRU time steps and their gradients run as
  one step each (see :mod:`.rnn_fusion`), consecutive variable updates (READ_VARIABLE,
  ADD/SUB/MUL, ASSIGN_VARIABLE) run as one step (see :mod:`.variable_updates`), and
  elementwise steps write into an operand that dies there (see :mod:`.inplace`). The
  plan then writes large results into buffers kept from run to run (:mod:`.arena`).

Stateful steps are never removed or reordered: their order is the only thing that orders
variable reads and writes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

import numpy as np

from ..ops.matmul import matmul_bias
from .avg_pool_grad import fuse_upsampled_masks
from .bn_fusion import fuse_batch_norms
from .channels import tile_channel_vectors
from .conv_activation import fuse_conv_activations
from .depthwise_grad import fuse_padded_windows
from .epilogue import fuse_epilogues
from .filter_grad import fuse_filter_grad_taps
from .fused import fuse_gradient_chains
from .inplace import in_place_steps
from .int8_fusion import fuse_int8_tables
from .pool_grad import fuse_max_pool_grads
from .product_sum import fuse_product_sums
from .prologue import fuse_input_rescaling
from .rnn_fusion import fuse_recurrent_steps
from .row_filter_grad import fuse_row_filter_grads
from .se_scale import scale_per_image_channels
from .step import Step
from .transposed_product import block_transposed_products
from .variable_updates import fuse_variable_updates

T = TypeVar("T")


def drop_unused(steps: list[T], kept_tensors: Iterable[int],
                keeps: Callable[[T], bool] = lambda step: step.stateful) -> list[T]:
    """The steps (or IR nodes) that ``keeps`` says must run, and the pure ones computing
    a tensor someone needs, in their order."""
    needed = set(kept_tensors)
    live: list[T] = []
    for step in reversed(steps):
        if keeps(step) or needed.intersection(step.outputs):
            live.append(step)
            needed.update(step.inputs)
    live.reverse()
    return live


def consumers(steps: list[Step]) -> dict[int, list[int]]:
    """tensor -> positions (in ``steps``) of the steps that read it."""
    out: dict[int, list[int]] = {}
    for pos, step in enumerate(steps):
        for i in step.inputs:
            out.setdefault(i, []).append(pos)
    return out


def specialise(steps: list[Step], values: list, outputs: Iterable[int]) -> list[Step]:
    """Rewrite ``steps`` for the shapes seen in ``values`` (every tensor of a first run).

    Tensors of dropped steps get no value in later runs; the subgraph's outputs always do.
    """
    outputs = set(outputs)
    steps = _drop_identities(steps, values, outputs)
    steps = _fold_neg_into_mul(steps, values, outputs)
    steps = _fuse_bias_into_matmul(steps, values, outputs)
    steps = fuse_max_pool_grads(steps, values, outputs)
    steps = fuse_gradient_chains(steps, values, outputs)
    steps = fuse_recurrent_steps(steps, values, outputs)
    steps = fuse_filter_grad_taps(steps, values, outputs)
    steps = fuse_row_filter_grads(steps, values, outputs)
    steps = block_transposed_products(steps, values)
    steps = fuse_product_sums(steps, values, outputs)
    steps = fuse_batch_norms(steps, values, outputs)
    steps = fuse_padded_windows(steps, values, outputs)
    steps = fuse_upsampled_masks(steps, values, outputs)
    steps = fuse_conv_activations(steps, values, outputs)
    steps = fuse_epilogues(steps, values, outputs)
    steps = fuse_input_rescaling(steps, values, outputs)
    steps = fuse_int8_tables(steps, values, outputs)
    steps = scale_per_image_channels(steps, values)
    steps = tile_channel_vectors(steps, values)
    steps = fuse_variable_updates(steps, values, outputs)
    return in_place_steps(steps, values, outputs)


def _sole_consumer(uses: dict[int, list[int]], tensor: int, outputs: set[int]) -> int | None:
    pos = uses.get(tensor, [])
    return pos[0] if len(pos) == 1 and tensor not in outputs else None


def _drop_identities(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """RESHAPE to the shape its input already has is a no-op: consumers read the input."""
    renames: dict[int, int] = {}
    kept: list[Step] = []
    for step in steps:
        step = _renamed(step, renames)
        out = step.outputs[0] if len(step.outputs) == 1 else None
        src = step.inputs[0] if step.inputs else None
        if (step.op == "reshape" and out is not None and out not in outputs
                and _same_array_type(values[src], values[out])):
            renames[out] = src
            continue
        kept.append(step)
    return kept


def _same_array_type(a, b) -> bool:
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.dtype == b.dtype)


def _renamed(step: Step, renames: dict[int, int]) -> Step:
    if not renames or not renames.keys() & set(step.inputs):
        return step
    return replace(step, inputs=tuple(renames.get(i, i) for i in step.inputs))


def _is_float(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind == "f"


def _fuse_pairs(steps: list[Step], values: list, outputs: set[int], first_op: str,
                second_op: str, build) -> list[Step]:
    """Fuse each float ``first_op`` step whose result is read only by a two-operand
    ``second_op`` step: ``build(first, second, other_operand)`` returns the step replacing
    the second one (the first is dropped), or ``None`` to leave the pair alone."""
    uses = consumers(steps)
    out = list(steps)
    dropped: set[int] = set()
    fused_at: set[int] = set()
    for pos, first in enumerate(steps):
        if first.op != first_op or not _is_float(values[first.outputs[0]]):
            continue
        second_pos = _sole_consumer(uses, first.outputs[0], outputs)
        if second_pos is None or second_pos in fused_at:
            continue  # e.g. ADD(MATMUL, MATMUL): only one of the two can fuse
        second = steps[second_pos]
        if second.op != second_op or len(second.inputs) != 2:
            continue
        result = first.outputs[0]
        other = second.inputs[1] if second.inputs[0] == result else second.inputs[0]
        if other == result:
            continue
        fused_step = build(first, second, other)
        if fused_step is not None:
            out[second_pos] = fused_step
            fused_at.add(second_pos)
            dropped.add(pos)
    return [s for p, s in enumerate(out) if p not in dropped]


def _fold_neg_into_mul(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``MUL(NEG(x), s)`` → ``MUL(x, -s)`` when ``s`` is a single number and the NEG
    result is used only there (TensorFlow's SGD update is ``w + (-g) * lr``)."""
    def build(neg: Step, mul: Step, other: int) -> Step | None:
        scalar, x = values[other], values[neg.inputs[0]]
        if (mul.settings.get("fused_activation_function", 0) or not _is_float(scalar)
                or scalar.size != 1 or scalar.ndim > x.ndim
                or values[mul.outputs[0]].shape != x.shape):
            return None
        return replace(mul, op="mul(neg)", kernel=_mul_by_negated,
                       inputs=(neg.inputs[0], other), fresh=True,
                       in_place=_mul_by_negated_into, into=_mul_by_negated_out,
                       into_for=_mul_by_negated)
    return _fuse_pairs(steps, values, outputs, "neg", "mul", build)


def _mul_by_negated(attrs, x, s):
    return np.multiply(x, np.negative(s))


def _mul_by_negated_out(attrs, x, s, out):
    return np.multiply(x, np.negative(s), out=out)


def _mul_by_negated_into(operand: int):
    if operand != 0:
        return None
    return lambda attrs, x, s: np.multiply(x, np.negative(s), out=x)


def _fuse_bias_into_matmul(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """BATCH_MATMUL → ADD(bias) [+ fused activation]: the add and the activation run in
    place on the matmul's fresh result, as one step."""
    def build(matmul_step: Step, add: Step, bias_index: int) -> Step | None:
        product, bias = values[matmul_step.outputs[0]], values[bias_index]
        if (not _is_float(bias) or bias.dtype != product.dtype
                or values[add.outputs[0]].shape != product.shape):
            return None
        activation = add.settings.get("fused_activation_function", 0)
        return replace(matmul_step, op="batch_matmul+add",
                       kernel=functools.partial(matmul_bias, activation),
                       inputs=(*matmul_step.inputs, bias_index), outputs=add.outputs,
                       index=add.index, fresh=True, in_place=None)
    return _fuse_pairs(steps, values, outputs, "batch_matmul", "add", build)
