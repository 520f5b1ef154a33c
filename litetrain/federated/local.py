"""What one node does with its own data: local epochs through ``train``, evaluation
through ``infer``. No Flower here; ``flower.py`` wraps it in a ClientApp.

A node's data is a dict of arrays named like the ``train`` signature's inputs (``x``,
``y``), plus optionally ``labels`` (class indices) for accuracy. Each ``fit`` starts the
interpreter over from the file (fresh optimizer state, as a new device would) and then
loads the global weights, so one :class:`LocalModel` serves any number of simulated nodes
one after the other. Data is checked against the signature before any step runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.interpreter import Interpreter
from .errors import FederatedError
from .weights import ModelWeights


@dataclass
class FitResult:
    weights: dict[str, np.ndarray]
    num_examples: int
    loss: float  # mean train loss over the local steps
    steps: int


@dataclass
class EvalResult:
    num_examples: int
    loss: float  # mean cross-entropy of the softmax of the logits
    accuracy: float


def _labels(data: dict[str, np.ndarray], where: str) -> np.ndarray:
    if "labels" in data:
        return np.asarray(data["labels"]).reshape(-1).astype(np.int64)
    y = data.get("y")
    if y is not None and np.asarray(y).ndim == 2:
        return np.argmax(y, axis=-1)
    if y is not None and np.asarray(y).ndim == 1 and np.asarray(y).dtype.kind in "iu":
        return np.asarray(y).astype(np.int64)
    raise FederatedError(f"{where}: evaluation needs 'labels' (class indices) or one-hot 'y' "
                         f"in the data; it has {sorted(data)}")


class LocalModel:
    """A model file run on one node (or on many simulated nodes in turn)."""

    def __init__(self, model_content: bytes, where: str = "model"):
        self.where = where
        self.interpreter = Interpreter(model_content=model_content)
        sigs = self.interpreter.get_signature_list()
        if "train" not in sigs:
            raise FederatedError(f"{where}: federated training needs a 'train' signature; the "
                                 f"model has {sorted(sigs) or 'none'}")
        self.train = self.interpreter.get_signature_runner("train")
        self.weights = ModelWeights(self.interpreter, where)
        self._specs = {n: (tuple(d["shape_signature"]), np.dtype(d["dtype"]))
                       for n, d in self.train.get_input_details().items()}

    def initial_weights(self) -> dict[str, np.ndarray]:
        """The weights stored in the file."""
        self.interpreter.reset_all_variables()
        return self.weights.get()

    def check_data(self, data: dict[str, np.ndarray], where: str) -> int:
        """Number of examples; ``FederatedError`` if the arrays do not fit ``train``."""
        n = None
        for name, (shape, dtype) in self._specs.items():
            if name not in data:
                raise FederatedError(f"{where}: 'train' takes {sorted(self._specs)}; the data "
                                     f"has no '{name}' (it has {sorted(data)})")
            a = np.asarray(data[name])
            fits = a.ndim == len(shape) and all(s in (-1, d) for s, d in
                                                zip(shape[1:], a.shape[1:], strict=True))
            if not fits or a.dtype != dtype:
                want = ", ".join("n" if s == -1 else str(int(s)) for s in shape)
                raise FederatedError(f"{where}: '{name}' must be {dtype}[{want}], got "
                                     f"{a.dtype}{list(a.shape)}")
            if n is not None and len(a) != n:
                raise FederatedError(f"{where}: the arrays disagree on the number of examples "
                                     f"({name}: {len(a)}, before: {n})")
            n = len(a)
        if not n:
            raise FederatedError(f"{where}: the node has no training examples")
        return n

    def fit(self, weights: dict[str, np.ndarray], data: dict[str, np.ndarray],
            epochs: int = 1, batch_size: int = 32, seed: int = 0, where: str = "node",
            proximal_mu: float = 0.0, proximal_lr: float | None = None) -> FitResult:
        """``epochs`` passes of shuffled mini-batches from ``weights``; the new weights.

        ``proximal_mu > 0`` (FedProx) adds the gradient of ``mu/2 ‖w − weights‖²`` to every
        step as a separate SGD step of rate ``proximal_lr``: after the file's step turns
        ``w`` into ``w'``, the weights become ``w' − lr·mu·(w − weights)``. With a plain
        SGD optimizer of that rate in the file, this is exactly SGD on the proximal loss.
        """
        if epochs < 1 or batch_size < 1:
            raise FederatedError(f"{where}: epochs and batch size must be >= 1, got {epochs}, "
                                 f"{batch_size}")
        if proximal_mu < 0 or (proximal_mu > 0 and not (proximal_lr or 0) > 0):
            raise FederatedError(f"{where}: FedProx needs proximal_mu >= 0 and, when mu > 0, "
                                 f"the model's SGD rate (proximal_lr > 0); got mu "
                                 f"{proximal_mu}, rate {proximal_lr}")
        n = self.check_data(data, where)
        self.interpreter.reset_all_variables()
        self.weights.set(weights)
        rng = np.random.default_rng(seed)
        names = list(self._specs)
        losses = []
        pull = float(proximal_lr or 0.0) * float(proximal_mu)
        before = weights
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                out = self.train(**{k: data[k][idx] for k in names})
                losses.append(float(np.mean(out["loss"])) if "loss" in out else np.nan)
                if pull:
                    after = self.weights.get()
                    before = {k: (v - np.asarray(pull, v.dtype) * (before[k] - weights[k])
                                  ).astype(v.dtype) for k, v in after.items()}
                    self.weights.set(before)
        return FitResult(self.weights.get(), n, float(np.mean(losses)), len(losses))

    def evaluate(self, weights: dict[str, np.ndarray], data: dict[str, np.ndarray],
                 batch_size: int = 500, where: str = "node") -> EvalResult:
        """Loss and accuracy of ``weights`` on ``data`` through ``infer``."""
        sigs = self.interpreter.get_signature_list()
        if "infer" not in sigs:
            raise FederatedError(f"{where}: evaluation needs an 'infer' signature; the model "
                                 f"has {sorted(sigs)}")
        infer = self.interpreter.get_signature_runner("infer")
        inputs = list(infer.get_input_details())
        missing = [k for k in inputs if k not in data]
        if missing:
            raise FederatedError(f"{where}: 'infer' takes {inputs}; the data has no "
                                 f"{missing} (it has {sorted(data)})")
        labels = _labels(data, where)
        self.interpreter.reset_all_variables()
        self.weights.set(weights)
        hits, total_loss = 0, 0.0
        for start in range(0, len(labels), batch_size):
            out = infer(**{k: data[k][start:start + batch_size] for k in inputs})
            logits = out["logits"] if "logits" in out else next(iter(out.values()))
            logits = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)
            yb = labels[start:start + batch_size]
            shifted = logits - logits.max(axis=-1, keepdims=True)
            logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            total_loss -= float(logp[np.arange(len(yb)), yb].sum())
            hits += int(np.sum(np.argmax(logits, -1) == yb))
        n = len(labels)
        return EvalResult(n, total_loss / n, hits / n)
