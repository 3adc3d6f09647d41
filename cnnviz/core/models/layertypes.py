"""What cnnviz knows about layer types, in one table.

``SPEC_TYPES`` holds one :class:`LayerType` per type an architecture spec may name; the type lists that the
spec checker, the editor and the analysis use are derived from it. Adding a spec type means one entry here
(plus a shape rule in ``models.spec.rules`` only if it has shape constraints).

The second half is module-class knowledge that applies to *any* torch model: which classes are convolutions
and poolings, their geometry and padding, multiply-accumulates, parameter counts and formulas, and how each
class behaves for receptive fields (pointwise, spatially global, a gate, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnviz.core import text

Pair = tuple[int, int]


@dataclass(frozen=True)
class LayerType:
    """One layer type a spec may use.

    ``family`` groups types that behave alike ("conv", "pool", "adaptive", "norm", "activation", "softmax",
    "dropout", "flatten", "linear", "identity", "upsample", "pad"). ``inferred`` is the argument that follows
    from the incoming shape (left out of specs and editable layers). ``keeps_shape``: the output has the
    input's shape. ``pair_args``: its ``tuple[int, ...]`` arguments take exactly (height, width).
    ``insertable``: the editor offers it.
    """

    name: str
    module: type[nn.Module]
    family: str
    inferred: str | None = None
    keeps_shape: bool = False
    pair_args: bool = False
    insertable: bool = False


_ACTIVATIONS = ("ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Hardswish", "Sigmoid", "Tanh")


def _types() -> dict[str, LayerType]:
    def entry(name: str, family: str, **kw: Any) -> tuple[str, LayerType]:
        return name, LayerType(name, getattr(nn, name), family, **kw)

    entries = [
        entry("Conv2d", "conv", inferred="in_channels", insertable=True),
        entry("ConvTranspose2d", "conv", inferred="in_channels"),
        entry("MaxPool2d", "pool", pair_args=True, insertable=True),
        entry("AvgPool2d", "pool", pair_args=True, insertable=True),
        entry("AdaptiveAvgPool2d", "adaptive", pair_args=True, insertable=True),
        entry("AdaptiveMaxPool2d", "adaptive", pair_args=True),
        entry("BatchNorm2d", "norm", inferred="num_features", keeps_shape=True, insertable=True),
        entry("BatchNorm1d", "norm", inferred="num_features", keeps_shape=True),
        *(entry(n, "activation", keeps_shape=True, insertable=True) for n in _ACTIVATIONS),
        entry("Softmax", "softmax", keeps_shape=True),
        entry("Dropout", "dropout", keeps_shape=True, insertable=True),
        entry("Dropout2d", "dropout", keeps_shape=True, insertable=True),
        entry("Flatten", "flatten", insertable=True),
        entry("Linear", "linear", inferred="in_features", insertable=True),
        entry("Identity", "identity", keeps_shape=True),
        entry("Upsample", "upsample"),
        entry("ZeroPad2d", "pad"),
    ]
    return dict(entries)


SPEC_TYPES: Mapping[str, LayerType] = _types()
"""Layer types a spec may use: an explicit allow-list, user JSON never names arbitrary classes."""


def _family(*families: str) -> tuple[str, ...]:
    return tuple(t.name for t in SPEC_TYPES.values() if t.family in families)


SUPPORTED_TYPES: tuple[str, ...] = tuple(SPEC_TYPES)
ACTIVATION_TYPES: tuple[str, ...] = _family("activation")
"""Element-wise activations (Softmax, which mixes channels, is not one of them)."""
DROPOUT_TYPES: tuple[str, ...] = _family("dropout")
POOLING_TYPES: tuple[str, ...] = _family("pool")
ADAPTIVE_TYPES: tuple[str, ...] = _family("adaptive")
INFERRED: dict[str, str] = {t.name: t.inferred for t in SPEC_TYPES.values() if t.inferred}
"""The argument of each type that follows from its input (left out of editable layers)."""
SHAPE_KEEPING: frozenset[str] = frozenset(t.name for t in SPEC_TYPES.values() if t.keeps_shape)
PAIR_TYPES: frozenset[str] = frozenset(t.name for t in SPEC_TYPES.values() if t.pair_args)

POINTWISE_CONV = "Conv2d 1×1"
"""An editor entry that is not a type of its own: a Conv2d with a 1×1 kernel."""
INSERTABLE: tuple[str, ...] = tuple(
    name
    for t in SPEC_TYPES.values()
    if t.insertable
    for name in ((t.name, POINTWISE_CONV) if t.name == "Conv2d" else (t.name,))
)
"""What the editor offers to insert (``"Conv2d 1×1"`` is a pointwise convolution)."""


# ---------------------------------------------------------------------------------------------------------------
# Module classes of any torch model

CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONVT_MODULES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d, nn.AvgPool1d, nn.LPPool2d)

# How receptive fields pass through each class. Windows and the classes after them are dispatched on by the
# analysis; pointwise and spatially global ones map every position to itself or to the whole map.
WINDOW_MODULES = (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)
ADAPTIVE_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
UPSAMPLE_MODULES = (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
PAD_MODULES = (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
MIXING_MODULES = (nn.Flatten, nn.Linear, nn.Bilinear, nn.LayerNorm, nn.Softmax, nn.LogSoftmax)
POINTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.Threshold, nn.LogSigmoid, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.Identity, nn.LocalResponseNorm, nn.ChannelShuffle, nn.Softmax2d,
)  # fmt: skip
SPATIAL_GLOBAL_MODULES = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm)
POINTWISE_FUNCTIONS = frozenset({
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "hardswish", "hardsigmoid",
    "hardtanh", "sigmoid", "tanh", "softplus", "dropout", "dropout1d", "dropout2d", "alpha_dropout",
    "batch_norm", "add", "sub", "mul", "truediv", "div", "neg", "pow", "exp", "log", "sqrt", "rsqrt", "abs",
    "clamp", "clip", "contiguous", "clone", "float", "half", "double", "to", "type", "type_as", "detach",
    "stochastic_depth", "where", "maximum", "minimum", "floordiv", "mul_", "add_", "sign", "square",
    "channel_shuffle", "local_response_norm", "addcmul", "lerp", "masked_fill", "expand_as", "sigmoid_",
})  # fmt: skip
DIM_REDUCTIONS = frozenset(
    {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "prod", "norm"}
)
DIM_MIXERS = frozenset({"softmax", "log_softmax", "cumsum", "cumprod", "normalize", "layer_norm"})
GATES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
         nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Dropout2d)  # fmt: skip
"""Nonlinearities that let a unit's gradient through only where they are open (measured boxes)."""

_RECEPTIVE_KINDS: tuple[tuple[str, tuple[type[nn.Module], ...]], ...] = (
    ("window", WINDOW_MODULES),
    ("adaptive", ADAPTIVE_MODULES),
    ("upsample", UPSAMPLE_MODULES),
    ("pad", PAD_MODULES),
    ("mixing", MIXING_MODULES),
    ("spatial_global", SPATIAL_GLOBAL_MODULES),
    ("pointwise", POINTWISE_MODULES),
)


def receptive_kind(cls: type[nn.Module]) -> str | None:
    """How the receptive-field analysis treats a module class, in the order it dispatches; None if unknown."""
    for kind, classes in _RECEPTIVE_KINDS:
        if issubclass(cls, classes):
            return kind
    return None


def as_pair(value: Any) -> Pair | None:
    """``3`` -> ``(3, 3)``; a sequence gives its last two axes (one value is repeated); else None."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return (int(value[0]), int(value[0]))
        if len(value) >= 2:
            return (int(value[-2]), int(value[-1]))
    return None


def _pair(value: Any) -> Pair:
    pair = as_pair(value)
    assert pair is not None  # geometry attributes of torch's layers are always ints or int tuples
    return pair


def conv_padding(module: nn.Module) -> Pair | None:
    """Leading (top, left) padding of a convolution, resolving ``'same'`` and ``'valid'`` as torch does."""
    padding = getattr(module, "padding", None)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        kernel = _pair(module.kernel_size)
        dilation = _pair(module.dilation)
        # torch pads 'same' with total d*(k-1), the smaller half first
        return (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    return as_pair(padding)


def window_geometry(module: nn.Module) -> tuple[Pair, Pair, Pair, Pair, bool] | None:
    """(kernel, stride, padding, dilation, transposed) of a 2-D convolution or pooling layer, else None."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        padding = conv_padding(module)
        assert padding is not None
        return (
            _pair(module.kernel_size),
            _pair(module.stride),
            padding,
            _pair(module.dilation),
            isinstance(module, nn.ConvTranspose2d),
        )
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        return (
            kernel,
            stride,
            _pair(getattr(module, "padding", 0)),
            _pair(getattr(module, "dilation", 1)),
            False,
        )
    return None


def _numel(shape: Iterable[Any]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def param_formula(module: nn.Module) -> str | None:
    """The parameter count of a convolution or linear layer spelled out with its numbers, else None."""
    if isinstance(module, CONV_MODULES + CONVT_MODULES):
        weight = module.weight
        assert isinstance(weight, torch.Tensor)  # a convolution's weight is a Parameter
        return text.conv_param_formula(
            list(weight.shape[2:]),
            int(module.in_channels),
            int(module.out_channels),
            groups=int(module.groups),
            bias=module.bias is not None,
            transposed=isinstance(module, CONVT_MODULES),
        )
    if isinstance(module, nn.Linear):
        return text.dense_param_formula(
            module.in_features, module.out_features, bias=module.bias is not None
        )
    return None


def geometry(module: nn.Module) -> dict[str, Any]:
    """The layer-table geometry fields that ``module`` defines (kernel, stride, channels, formula ...)."""
    if isinstance(module, CONV_MODULES + CONVT_MODULES):
        return {
            "kernel_size": as_pair(module.kernel_size),
            "stride": as_pair(module.stride),
            "padding": conv_padding(module),
            "dilation": as_pair(module.dilation),
            "groups": int(module.groups),
            "in_channels": int(module.in_channels),
            "out_channels": int(module.out_channels),
            "param_formula": param_formula(module),
        }
    if isinstance(module, POOL_MODULES):
        return {
            "kernel_size": as_pair(module.kernel_size),
            "stride": as_pair(module.stride if module.stride is not None else module.kernel_size),
            "padding": as_pair(getattr(module, "padding", 0)),
            "dilation": as_pair(getattr(module, "dilation", 1)),
        }
    if isinstance(module, nn.Linear):
        return {
            "in_channels": int(module.in_features),
            "out_channels": int(module.out_features),
            "param_formula": param_formula(module),
        }
    return {}


def module_macs(module: nn.Module, inp: Any, out: Any) -> int:
    """Multiply-accumulates of one call of ``module`` for a batch of one; element-wise layers count none."""
    if isinstance(module, CONV_MODULES) and isinstance(out, torch.Tensor):
        return module.weight.numel() * _numel(out.shape[2:])
    if isinstance(module, CONVT_MODULES) and isinstance(inp, torch.Tensor):
        # every input pixel is multiplied by the whole kernel
        return module.weight.numel() * _numel(inp.shape[2:])
    if isinstance(module, nn.Linear) and isinstance(out, torch.Tensor):
        positions = _numel(out.shape[1:-1]) if out.dim() > 2 else 1
        return module.in_features * module.out_features * positions
    return 0


def function_macs(op: str, args: list[Any], out: Any) -> int:
    """Multiply-accumulates of a traced function call ``op`` (``torch.nn.functional.conv2d``, ``matmul`` ...)."""
    name = op.split(".")[-1]
    if not isinstance(out, torch.Tensor):
        return 0
    if (
        name in ("conv1d", "conv2d", "conv3d")
        and len(args) >= 2
        and isinstance(args[1], torch.Tensor)
    ):
        return args[1].numel() * _numel(out.shape[2:])
    if name == "linear" and len(args) >= 2 and isinstance(args[1], torch.Tensor):
        return args[1].numel() * (_numel(out.shape[1:-1]) if out.dim() > 2 else 1)
    if name in ("matmul", "mm", "bmm", "matmul_") and len(args) >= 2:
        a = args[0]
        if isinstance(a, torch.Tensor) and a.dim() >= 1:
            batch_one = out.shape[1:] if out.dim() > 2 else out.shape
            return _numel(batch_one) * int(a.shape[-1])
    return 0


def module_params(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameters of ``module`` and its children, shared ones counted once."""
    total = trainable = 0
    seen: set[int] = set()
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


# ---------------------------------------------------------------------------------------------------------------
# Settings in words


def _square(value: Any) -> str:
    if isinstance(value, tuple | list):
        return text.pair(value)
    return f"{value}×{value}"


def settings_text(layer_type: str, kw: Mapping[str, Any]) -> str:
    """Compact hyperparameters of a spec layer for a table: ``3×3 s1 p1``, ``→ 1×1``, ``p 0.5``."""
    parts: list[str] = []
    family = SPEC_TYPES[layer_type].family if layer_type in SPEC_TYPES else None
    if family == "conv":
        parts.append(_square(kw.get("kernel_size", "?")))
        parts.append(f"s{text.pair(kw.get('stride', 1))}")
        padding = kw.get("padding", 0)
        parts.append(f"p{padding}" if isinstance(padding, str) else f"p{text.pair(padding)}")
        if text.pair(kw.get("dilation", 1)) != "1":
            parts.append(f"d{text.pair(kw.get('dilation', 1))}")
        if kw.get("groups", 1) != 1:
            parts.append(f"g{kw['groups']}")
        if kw.get("bias", True) is False:
            parts.append("no bias")
    elif family == "pool":
        kernel = kw.get("kernel_size", "?")
        parts.append(_square(kernel))
        stride = kw.get("stride")
        parts.append(f"s{text.pair(stride if stride is not None else kernel)}")
        if text.pair(kw.get("padding", 0)) != "0":
            parts.append(f"p{text.pair(kw.get('padding', 0))}")
    elif family == "adaptive":
        size = kw.get("output_size")
        parts.append(f"→ {_square(size)}" if size is not None else "→ input size")
    elif family == "linear":
        parts.append(f"{kw.get('in_features', '?')} → {kw.get('out_features', '?')}")
    elif family == "dropout":
        parts.append(f"p {kw.get('p', 0.5)}")
    elif layer_type == "LeakyReLU":
        parts.append(f"slope {kw.get('negative_slope', 0.01)}")
    elif layer_type == "ELU":
        parts.append(f"α {kw.get('alpha', 1.0)}")
    return " ".join(parts)
