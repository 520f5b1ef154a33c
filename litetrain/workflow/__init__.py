"""The workflow around a model: input data for signatures, the training loop (time budget,
resume, Ctrl-C), benchmarks, the demo and its plots. The CLI is a thin shell over these."""
