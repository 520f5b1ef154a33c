"""Authoring trainable models in Python: modules, signatures, layers, losses, autodiff,
optimizers. Everything traces into the same IR the interpreter runs."""
