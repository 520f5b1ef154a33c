"""Mutation fuzzing of model files and checkpoints, and kill -9 during saves.

The property everywhere: only ``LitetrainError`` subclasses escape, outputs are real
arrays (never ``None`` objects), and a restore that fails changes no variable. The suite
runs a small, seeded sample (``test_fuzz.py``); a release campaign is one command::

    python -m tests.fuzz --cases 20000 --checkpoints 10000 --kills 200

Every failure is printed with its seed: ``python -m tests.fuzz --replay model:SEED``
(or ``checkpoint:SEED``) reproduces it. Cases that escape in code owned elsewhere are
listed in ``KNOWN.md``.
"""
