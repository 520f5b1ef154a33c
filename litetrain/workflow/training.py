"""``fit``: the one-call training loop (a :class:`~.session.TrainingSession` run in the
calling thread), and ``require_signature``.

Kept for scripts written against it; new code uses ``TrainingSession`` directly, which
adds exact resume, step budgets, validation and background runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SignatureError
from .session import SessionReport, TrainingSession

TrainReport = SessionReport


def require_signature(interpreter, key: str, why: str):
    """The runner of signature ``key``, or a ``SignatureError`` saying why it is needed."""
    sigs = interpreter.get_signature_list()
    if key not in sigs:
        raise SignatureError(f"the model has no '{key}' signature ({why}); it has "
                             f"{sorted(sigs) or 'none'}")
    return interpreter.get_signature_runner(key)


def fit(interpreter, data: dict[str, np.ndarray], epochs: int = 1, batch_size: int = 32,
        time_budget: float | None = None, checkpoint: str | Path | None = None,
        signature: str = "train", seed: int = 0, progress: bool = True,
        **session_options) -> SessionReport:
    """Train ``interpreter`` on ``data`` (arrays named like the signature's inputs).

    An existing ``checkpoint`` is restored first (weights only) and written when the run
    ends; see :class:`TrainingSession` for ``session_options``.
    """
    session = TrainingSession(interpreter, data, signature=signature, epochs=epochs,
                              batch_size=batch_size, time_budget=time_budget,
                              checkpoint=checkpoint, seed=seed, progress=progress,
                              **session_options)
    return session.run()
