"""Federated learning with Flower on the same ``.tflite`` file a phone runs.

Without Flower (always importable): :class:`~.local.LocalModel` (local epochs through the
file's ``train``, evaluation through ``infer``), :class:`~.weights.ModelWeights` (weights
in and out of any model file), :mod:`~.partition` (IID / Dirichlet splits) and
:func:`~.android.android_layout` (adds Flower's Android ``parameters``/``restore``
signatures to a file). With the ``[federated]`` extra (``flwr``): :mod:`~.flower` (the
ClientApp, strategies by name, the server loop), :mod:`~.grid` (an in-process Grid),
:mod:`~.simulation` (one-command simulation) and :mod:`~.app` (the ClientApp/ServerApp a
SuperLink deployment loads).
"""

import os

# Wherever litetrain drives Flower: no telemetry, and no dependency installs at run time.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")

from .errors import FederatedError
from .local import EvalResult, FitResult, LocalModel
from .weights import ModelWeights

__all__ = ["EvalResult", "FederatedError", "FitResult", "LocalModel", "ModelWeights"]
