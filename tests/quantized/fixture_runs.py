"""Running the TensorFlow-made quantized fixtures (``tests/fixtures/tf_quantized``) under a
chosen op resolver type: one helper for every test module that compares with them."""

from __future__ import annotations

import numpy as np

import litetrain as lt


def fed(path, x: np.ndarray, resolver, preserve: bool = False) -> lt.Interpreter:
    """An interpreter of ``path`` under ``resolver``, its first input resized to ``x``'s
    shape and set to ``x`` (not yet invoked); ``preserve`` keeps every tensor."""
    it = lt.Interpreter(model_path=str(path), experimental_op_resolver_type=resolver,
                        experimental_preserve_all_tensors=preserve)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    return it


def invoked(path, x: np.ndarray, resolver, preserve: bool = False) -> lt.Interpreter:
    """:func:`fed`, invoked once."""
    it = fed(path, x, resolver, preserve)
    it.invoke()
    return it
