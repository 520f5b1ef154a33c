"""Keras layer configs → litetrain layers. One builder per Keras class; each takes only
options it implements and refuses any other value, naming the layer, its class and the
option (never a silent approximation)."""

from __future__ import annotations

from collections.abc import Callable

from ..author import nn
from ..errors import ModelFormatError

_IGNORED = {"name", "trainable", "dtype", "autocast", "build_config", "compile_config",
            "input_shape", "batch_input_shape", "batch_shape", "kernel_initializer",
            "bias_initializer", "recurrent_initializer", "embeddings_initializer",
            "depthwise_initializer", "beta_initializer", "gamma_initializer",
            "moving_mean_initializer", "moving_variance_initializer", "seed",
            "noise_shape", "quantization_config", "data_format", "synchronized",
            "implementation",  # tf_keras' recurrent kernels: the same math, another loop
            "renorm_momentum"}  # meaningful only with renorm, which is refused
_NONE_OK = {"kernel_regularizer", "bias_regularizer", "activity_regularizer",
            "kernel_constraint", "bias_constraint", "recurrent_regularizer",
            "recurrent_constraint", "embeddings_regularizer", "embeddings_constraint",
            "depthwise_regularizer", "depthwise_constraint", "beta_regularizer",
            "gamma_regularizer", "beta_constraint", "gamma_constraint", "lora_rank",
            "lora_alpha", "renorm_clipping"}


def _check(cls: str, cfg: dict, handled: set[str], expected: dict) -> None:
    """Every option is handled, ignorable, ``None`` where only ``None`` is supported, or
    has the one value litetrain implements."""
    for key, value in cfg.items():
        if key in handled or key in _IGNORED:
            continue
        if key in _NONE_OK and value is None:
            continue
        if key in expected and value == expected[key]:
            continue
        if key in expected or key in _NONE_OK:
            raise ModelFormatError(f"layer '{cfg.get('name')}' ({cls}): option {key}={value!r} "
                                   f"is not supported (litetrain implements "
                                   f"{expected.get(key)!r})")
        raise ModelFormatError(f"layer '{cfg.get('name')}' ({cls}): option '{key}' is not "
                               "supported")


def _data_format(cls: str, cfg: dict) -> None:
    if cfg.get("data_format") not in (None, "channels_last"):
        raise ModelFormatError(f"layer '{cfg.get('name')}' ({cls}): only channels_last data "
                               "is supported")


def _activation(cls: str, cfg: dict) -> str | None:
    act = cfg.get("activation", "linear")
    if isinstance(act, dict):
        act = act.get("config", {}).get("name", act.get("class_name"))
    if act not in nn.ACTIVATIONS:
        raise ModelFormatError(f"layer '{cfg.get('name')}' ({cls}): activation {act!r} is "
                               f"not supported (known: {sorted(nn.ACTIVATIONS)})")
    return act


def _dense(cfg):
    _check("Dense", cfg, {"units", "activation", "use_bias"}, {})
    return nn.Dense(cfg["units"], activation=_activation("Dense", cfg),
                    use_bias=cfg.get("use_bias", True), name=cfg["name"])


_CONV_SAME = {"dilation_rate": [1, 1], "groups": 1}


def _conv2d(cfg):
    _data_format("Conv2D", cfg)
    _check("Conv2D", cfg, {"filters", "kernel_size", "strides", "padding", "activation",
                           "use_bias"}, _CONV_SAME)
    return nn.Conv2D(cfg["filters"], cfg["kernel_size"], cfg.get("strides", 1),
                     cfg.get("padding", "valid"), activation=_activation("Conv2D", cfg),
                     use_bias=cfg.get("use_bias", True), name=cfg["name"])


def _conv1d(cfg):
    _data_format("Conv1D", cfg)
    _check("Conv1D", cfg, {"filters", "kernel_size", "strides", "padding", "activation",
                           "use_bias"}, {"dilation_rate": [1], "groups": 1})
    (k,), (s,) = cfg["kernel_size"], cfg.get("strides", [1])
    return nn.Conv1D(cfg["filters"], k, s, cfg.get("padding", "valid"),
                     activation=_activation("Conv1D", cfg), use_bias=cfg.get("use_bias", True),
                     name=cfg["name"])


def _depthwise(cfg):
    _data_format("DepthwiseConv2D", cfg)
    _check("DepthwiseConv2D", cfg, {"kernel_size", "strides", "padding", "activation",
                                    "use_bias", "depth_multiplier"},
           {"dilation_rate": [1, 1], "groups": 1})
    return nn.DepthwiseConv2D(cfg["kernel_size"], cfg.get("strides", 1),
                              cfg.get("padding", "valid"), cfg.get("depth_multiplier", 1),
                              activation=_activation("DepthwiseConv2D", cfg),
                              use_bias=cfg.get("use_bias", True), name=cfg["name"])


def _last_axis(layer: nn.Layer, cls: str, axis) -> nn.Layer:
    """tf_keras writes the normalized axis as ``[rank - 1]``; litetrain normalizes over the
    last axis, so the layer checks, when it is built, that the file's axis is the last."""
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis == -1:
        return layer
    if not isinstance(axis, int) or axis < 1:
        raise ModelFormatError(f"layer '{layer.name}' ({cls}): option axis={axis!r} is not "
                               "supported (litetrain implements the last axis)")
    build = layer.build

    def checked(input_shape):
        if axis != len(input_shape) - 1:
            raise ModelFormatError(f"layer '{layer.name}' ({cls}): option axis={axis} is "
                                   f"not the last axis of its {len(input_shape)}-D input "
                                   "(litetrain implements the last axis)")
        return build(input_shape)
    layer.build = checked
    return layer


def _batch_norm(cfg):
    _check("BatchNormalization", cfg, {"epsilon", "momentum", "axis"},
           {"center": True, "scale": True, "renorm": False})
    return _last_axis(nn.BatchNormalization(cfg.get("epsilon", 1e-3),
                                            cfg.get("momentum", 0.99), name=cfg["name"]),
                      "BatchNormalization", cfg.get("axis", -1))


def _pool(kind):
    def build(cfg):
        _data_format(kind.__name__, cfg)
        _check(kind.__name__, cfg, {"pool_size", "strides", "padding"}, {})
        return kind(cfg.get("pool_size", 2), cfg.get("strides"), cfg.get("padding", "valid"),
                    name=cfg["name"])
    return build


def _global_average(kind):
    def build(cfg):
        _data_format(kind.__name__, cfg)
        _check(kind.__name__, cfg, set(), {"keepdims": False})
        return kind(name=cfg["name"])
    return build


def _dropout(cfg):
    _check("Dropout", cfg, {"rate"}, {})
    return nn.Dropout(cfg["rate"], seed=cfg.get("seed"), name=cfg["name"])


def _recurrent(kind, extra: dict):
    def build(cfg):
        _check(kind.__name__, cfg, {"units", "return_sequences", "activation",
                                    "recurrent_activation", "use_bias"},
               {"return_state": False, "go_backwards": False, "stateful": False,
                "unroll": False, "zero_output_for_mask": False, "dropout": 0.0,
                "recurrent_dropout": 0.0, "unit_forget_bias": True, "use_cudnn": "auto",
                "time_major": False, **extra})
        if not cfg.get("use_bias", True):
            raise ModelFormatError(f"layer '{cfg['name']}' ({kind.__name__}): use_bias=False "
                                   "is not supported")
        kwargs = {"activation": _activation(kind.__name__, cfg)}
        if "recurrent_activation" in cfg:
            kwargs["recurrent_activation"] = _activation(
                kind.__name__, {"name": cfg["name"], "activation": cfg["recurrent_activation"]})
        return kind(cfg["units"], return_sequences=cfg.get("return_sequences", False),
                    name=cfg["name"], **kwargs)
    return build


def _embedding(cfg):
    _check("Embedding", cfg, {"input_dim", "output_dim"}, {"mask_zero": False,
                                                           "input_length": None,
                                                           "sparse": False})
    return nn.Embedding(cfg["input_dim"], cfg["output_dim"], name=cfg["name"])


def _layer_norm(cfg):
    _check("LayerNormalization", cfg, {"epsilon", "axis"}, {"center": True, "scale": True,
                                                             "rms_scaling": False})
    return _last_axis(nn.LayerNormalization(cfg.get("epsilon", 1e-3), name=cfg["name"]),
                      "LayerNormalization", cfg.get("axis", -1))


def _simple(kind, options: set[str]):
    def build(cfg):
        _check(kind.__name__, cfg, options, {})
        return kind(**{k: cfg[k] for k in options if k in cfg}, name=cfg["name"])
    return build


def _rescaling(cfg):
    _check("Rescaling", cfg, {"scale", "offset"}, {})
    return nn.Rescaling(cfg["scale"], cfg.get("offset", 0.0), name=cfg["name"])


def _flatten(cfg):
    _data_format("Flatten", cfg)
    _check("Flatten", cfg, set(), {})
    return nn.Flatten(name=cfg["name"])


def _activation_layer(cfg):
    _check("Activation", cfg, {"activation"}, {})
    return nn.Activation(_activation("Activation", cfg), name=cfg["name"])


def _upsampling(cfg):
    _data_format("UpSampling2D", cfg)
    _check("UpSampling2D", cfg, {"size"}, {"interpolation": "nearest"})
    return nn.UpSampling2D(cfg.get("size", 2), name=cfg["name"])


def _conv2d_transpose(cfg):
    _data_format("Conv2DTranspose", cfg)
    _check("Conv2DTranspose", cfg, {"filters", "kernel_size", "strides", "padding",
                                    "activation", "use_bias"},
           {"dilation_rate": [1, 1], "output_padding": None})
    return nn.Conv2DTranspose(cfg["filters"], cfg["kernel_size"], cfg.get("strides", 1),
                              cfg.get("padding", "valid"),
                              activation=_activation("Conv2DTranspose", cfg),
                              use_bias=cfg.get("use_bias", True), name=cfg["name"])


def _separable(cfg):
    _data_format("SeparableConv2D", cfg)
    _check("SeparableConv2D", cfg, {"filters", "kernel_size", "strides", "padding",
                                    "activation", "use_bias", "depth_multiplier",
                                    "pointwise_initializer", "pointwise_regularizer",
                                    "pointwise_constraint"}, {"dilation_rate": [1, 1]})
    return nn.SeparableConv2D(cfg["filters"], cfg["kernel_size"], cfg.get("strides", 1),
                              cfg.get("padding", "valid"), cfg.get("depth_multiplier", 1),
                              activation=_activation("SeparableConv2D", cfg),
                              use_bias=cfg.get("use_bias", True), name=cfg["name"])


def _zero_padding(cfg):
    _data_format("ZeroPadding2D", cfg)
    _check("ZeroPadding2D", cfg, {"padding"}, {})
    return nn.ZeroPadding2D(cfg.get("padding", 1), name=cfg["name"])


def _relu(cfg):
    _check("ReLU", cfg, {"max_value"}, {"negative_slope": 0.0, "threshold": 0.0})
    top = cfg.get("max_value")
    if top not in (None, 6, 6.0):
        raise ModelFormatError(f"layer '{cfg['name']}' (ReLU): option max_value={top!r} is "
                               "not supported (litetrain implements None and 6)")
    return nn.Activation("relu" if top is None else "relu6", name=cfg["name"])


def _attention(cfg):
    _check("MultiHeadAttention", cfg, {"num_heads", "key_dim", "value_dim", "use_bias",
                                       "output_shape", "query_shape", "key_shape",
                                       "value_shape", "attention_axes"},
           {"dropout": 0.0, "use_gate": False, "sliding_window": None,
            "flash_attention": None})
    axes = cfg.get("attention_axes")
    if axes not in (None, [1], (1,)):
        raise ModelFormatError(f"layer '{cfg['name']}' (MultiHeadAttention): option "
                               f"attention_axes={axes!r} is not supported (litetrain attends "
                               "over the time axis, [1])")
    out = cfg.get("output_shape")
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise ModelFormatError(f"layer '{cfg['name']}' (MultiHeadAttention): option "
                                   f"output_shape={out!r} is not supported (one dimension)")
        out = out[0]
    return nn.MultiHeadAttention(cfg["num_heads"], cfg["key_dim"], cfg.get("value_dim"),
                                 out, use_bias=cfg.get("use_bias", True), name=cfg["name"])


def _merge(kind):
    def build(cfg):
        _check(kind.__name__, cfg, {"axis"} if kind is nn.Concatenate else set(), {})
        return kind(cfg.get("axis", -1), name=cfg["name"]) if kind is nn.Concatenate else \
            kind(name=cfg["name"])
    return build


BUILDERS: dict[str, Callable[[dict], nn.Layer]] = {
    "Add": _merge(nn.Add), "Concatenate": _merge(nn.Concatenate),
    "Multiply": _merge(nn.Multiply),
    "Dense": _dense, "Conv2D": _conv2d, "Conv1D": _conv1d, "DepthwiseConv2D": _depthwise,
    "BatchNormalization": _batch_norm, "MaxPooling2D": _pool(nn.MaxPool2D),
    "AveragePooling2D": _pool(nn.AveragePooling2D),
    "GlobalAveragePooling2D": _global_average(nn.GlobalAveragePooling2D),
    "GlobalAveragePooling1D": _global_average(nn.GlobalAveragePooling1D), "Dropout": _dropout,
    "Flatten": _flatten, "Reshape": _simple(nn.Reshape, {"target_shape"}),
    "Activation": _activation_layer, "Rescaling": _rescaling, "Embedding": _embedding,
    "LSTM": _recurrent(nn.LSTM, {}), "GRU": _recurrent(nn.GRU, {"reset_after": True}),
    "SimpleRNN": _recurrent(nn.SimpleRNN, {}), "LayerNormalization": _layer_norm,
    "UpSampling2D": _upsampling, "Conv2DTranspose": _conv2d_transpose,
    "SeparableConv2D": _separable, "ZeroPadding2D": _zero_padding, "ReLU": _relu,
    "MultiHeadAttention": _attention,
}
