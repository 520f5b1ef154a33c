"""The op codes and row width of :mod:`.int8_program`'s instruction tables (no numba here:
the runtime encodes tables without loading the compiled executor)."""

OP_QUANTIZE, OP_CONV, OP_DEPTHWISE, OP_GEMM, OP_MEAN, OP_LOOKUP1, OP_LOOKUP, OP_MUL, \
    OP_ADD, OP_SOFTMAX, OP_DEQUANTIZE, OP_VNNI = range(1, 13)
WIDTH = 40  # fields per instruction row (the longest op has 33)
