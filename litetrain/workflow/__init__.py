"""The workflow around a model: training sessions (exact resume, budgets, validation,
background runs), input data for signatures, benchmarks, quantizing a file, the demo and
its plots. The CLI is a thin shell over these."""

from . import training
from .session import SessionReport, TrainingError, TrainingSession
from .training import fit

__all__ = ["SessionReport", "TrainingError", "TrainingSession", "fit", "training"]
