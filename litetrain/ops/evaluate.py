"""Run one op outside a plan: constant folding, tests, tools.

``evaluate`` builds the :class:`NodeInfo` a plan would (schema-default attrs overridden
by the given ones; input types and shapes from the arrays; output types when given;
quantization parameters when given), runs the op's prepare and then its float, integer
or hybrid kernel. Stateful ops need a plan (they touch interpreter state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .. import options
from .registry import NodeInfo, TensorInfo, lookup


def node_info(name: str, inputs: Sequence[np.ndarray | None], attrs: Mapping | None = None,
              out_dtypes: Sequence = (), qin: Sequence = (), qout: Sequence = ()) -> NodeInfo:
    opdef = lookup(name)
    full = options.defaults(opdef.options) if opdef.options else {}
    full.update(attrs or {})
    qin, qout = list(qin) + [None] * len(inputs), list(qout) + [None] * len(out_dtypes)
    ins = tuple(None if x is None else TensorInfo(np.asarray(x).dtype, np.shape(x), x, None,
                                                  q) for x, q in zip(inputs, qin, strict=False))
    outs = tuple(TensorInfo(np.dtype(d), None, None, None, q) for d, q in
                 zip(out_dtypes, qout, strict=False))
    return NodeInfo(name, full, ins, outs, f"op '{name}'")


def evaluate(name: str, *inputs, attrs: Mapping | None = None, out_dtypes: Sequence = (),
             variant: str | None = None, qin: Sequence = (), qout: Sequence = ()):
    """``name``'s outputs for ``inputs``. ``variant`` picks ``"integer"`` or ``"hybrid"``
    (with ``qin``/``qout``: each tensor's QParams or ``None``)."""
    opdef = lookup(name)
    if opdef.stateful:
        raise ValueError(f"op '{name}' is stateful: run it in a plan")
    info = node_info(name, inputs, attrs, out_dtypes or [np.asarray(x).dtype for x in
                                                         inputs[:1] if x is not None],
                     qin, qout)
    if variant is None:
        return opdef.kernel(opdef.settings(info), *inputs)
    chosen = getattr(opdef, variant)
    if chosen is None:
        raise ValueError(f"op '{name}' has no {variant} kernel")
    return chosen.kernel(chosen.prepare(info), *inputs)
