"""The op codes and row width of :mod:`.float_program`'s instruction tables (no numba
here: the runtime encodes tables without loading the compiled executor)."""

OP_POINTWISE, OP_MATMUL, OP_EPILOGUE, OP_DEPTHWISE, OP_MEAN, OP_SCALE_IMAGES, OP_ADD, \
    OP_BIAS, OP_CONV = range(1, 10)
# dynamic-range plans' steps (:mod:`litetrain.runtime.float_encode_hybrid`)
OP_HYBRID_POINTWISE, OP_HYBRID_DEPTHWISE, OP_XNN_MEAN, OP_MUL_SCALAR, OP_XNN_CONV, \
    OP_XNN_DEPTHWISE = range(10, 16)
# OP_EPILOGUE's kinds: fast.conv's bias_activation, then HARD_SWISH, then a MUL by a scalar
PLAIN, HARD_SWISH, SCALE = 0, 1, 2
# OP_DEPTHWISE's kernels: fast.conv's ring kernel, fast.depthwise's tiles; each also with
# HARD_SWISH as stored
RING, RING_HARD_SWISH, TILES, TILES_HARD_SWISH = range(4)
WIDTH = 20  # fields per instruction row (the longest op has 17)
