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
from cnnviz.core.moduletree import all_modules

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


def _conv_macs(weight: torch.Tensor, out: torch.Tensor, transposed_inp: Any = None) -> int:
    # every output pixel (every input pixel for a transposed convolution) meets the whole kernel once per group
    grid = transposed_inp if isinstance(transposed_inp, torch.Tensor) else out
    if grid.dim() == weight.dim():
        return weight.numel() * int(grid.shape[0]) * _numel(grid.shape[2:])
    return weight.numel() * _numel(grid.shape[1:])  # an unbatched call


def _rows(t: torch.Tensor) -> int:
    """Positions a linear map is applied at: every axis but the last."""
    return _numel(t.shape[:-1])


def _attention_products(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """Q·Kᵀ (L×S over E) and weights·V (L×Ev over S), batched over the leading axes of ``q``."""
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        return 0
    batch = _numel(q.shape[:-2])
    length, source = int(q.shape[-2]), int(k.shape[-2])
    return batch * length * source * (int(q.shape[-1]) + int(v.shape[-1]))


def _mha_macs(module: nn.MultiheadAttention, args: list[Any]) -> int:
    query = args[0] if args else None
    if not isinstance(query, torch.Tensor) or query.dim() not in (2, 3):
        return 0
    key = args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else query
    embed = int(module.embed_dim)
    # (L, N, E), or (N, L, E) when batch_first; an unbatched (L, E) is one sequence
    if query.dim() == 3:
        batch = int(query.shape[0] if module.batch_first else query.shape[1])
        length = int(query.shape[1] if module.batch_first else query.shape[0])
        source = int(key.shape[1] if module.batch_first else key.shape[0])
    else:
        batch, length, source = 1, int(query.shape[0]), int(key.shape[0])
    projections = length * embed * embed + source * (int(module.kdim) + int(module.vdim)) * embed
    out_proj = length * embed * embed
    # the heads split E, so the two products cost as much as one head of width E
    return batch * (projections + out_proj + 2 * length * source * embed)


def module_macs(module: nn.Module, inp: Any, out: Any, args: list[Any] | None = None) -> int:
    """Multiply-accumulates of one call of ``module``; element-wise layers count none.

    The count covers the whole call (cnnviz's tables run a batch of one, so it is the per-sample count).
    ``args`` are all the call's positional inputs (``inp`` is the first): multi-head attention reads its key
    and value there. Tuple outputs count through their first tensor.
    """
    args = list(args) if args is not None else [inp]
    if isinstance(out, (tuple, list)):
        out = next((o for o in out if isinstance(o, torch.Tensor)), None)
    if isinstance(module, nn.MultiheadAttention):
        return _mha_macs(module, args)
    weight = getattr(module, "weight", None)
    if isinstance(module, CONV_MODULES) and isinstance(out, torch.Tensor):
        assert isinstance(weight, torch.Tensor)
        return _conv_macs(weight, out)
    if isinstance(module, CONVT_MODULES) and isinstance(inp, torch.Tensor):
        assert isinstance(weight, torch.Tensor)
        return _conv_macs(weight, inp, inp)
    if isinstance(module, nn.Linear) and isinstance(out, torch.Tensor):
        return module.in_features * module.out_features * _rows(out)
    if isinstance(module, nn.Bilinear) and isinstance(out, torch.Tensor):
        assert isinstance(weight, torch.Tensor)
        return weight.numel() * _rows(out)
    return 0


def _einsum_macs(args: list[Any]) -> int:
    """The product of every distinct index size: each output element sums over the contracted ones."""
    if not args or not isinstance(args[0], str):
        return 0
    operands = args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    tensors = [t for t in operands if isinstance(t, torch.Tensor)]
    if len(tensors) < 2:
        return 0  # a transpose, trace or sum: no products
    inputs = args[0].replace(" ", "").split("->")[0].split(",")
    if len(inputs) != len(tensors) or any("." in term for term in inputs):
        return 0
    sizes: dict[str, int] = {}
    for term, t in zip(inputs, tensors, strict=True):
        if len(term) != t.dim():
            return 0
        for letter, size in zip(term, t.shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), int(size))
    # (n-1) products of n operands per summed element; the second and later add one multiply each
    return _numel(sizes.values()) * (len(tensors) - 1)


def _matmul_macs(a: Any, b: Any, out: torch.Tensor) -> int:
    if not isinstance(a, torch.Tensor) or a.dim() == 0:
        return 0
    inner = int(a.shape[-1])
    return max(out.numel(), 1) * inner


def _swin_window_attention_macs(args: list[Any]) -> int:
    """torchvision's ``shifted_window_attention``: q/k/v and output projections plus windowed attention."""
    x, qkv_weight, proj_weight = (args + [None] * 5)[:3]
    window = args[4] if len(args) > 4 else None
    if not (
        isinstance(x, torch.Tensor)
        and x.dim() == 4
        and isinstance(qkv_weight, torch.Tensor)
        and isinstance(proj_weight, torch.Tensor)
        and isinstance(window, (list, tuple))
        and len(window) == 2
    ):
        return 0
    wh, ww = int(window[0]), int(window[1])
    batch, height, width, channels = (int(s) for s in x.shape)
    padded_h, padded_w = -(-height // wh) * wh, -(-width // ww) * ww
    positions = batch * padded_h * padded_w
    projections = positions * (qkv_weight.numel() + proj_weight.numel())
    # every position attends to the wh·ww positions of its window, once for the weights and once for V
    return projections + 2 * positions * wh * ww * channels


def function_macs(
    op: str, args: list[Any], out: Any, kwargs: Mapping[str, Any] | None = None
) -> int:
    """Multiply-accumulates of a traced function call ``op`` (``F.conv2d``, ``torch.matmul``, ``einsum`` ...).

    ``args`` are the call's positional arguments (tensors as their values, constants as they are), ``kwargs``
    its keyword arguments. Like :func:`module_macs` it counts the whole call.
    """
    name = op.split(".")[-1]
    kwargs = kwargs or {}
    if isinstance(out, (tuple, list)):
        out = next((o for o in out if isinstance(o, torch.Tensor)), None)
    if not isinstance(out, torch.Tensor):
        return 0
    second = args[1] if len(args) > 1 else kwargs.get("weight", kwargs.get("other"))
    if name in ("conv1d", "conv2d", "conv3d") and isinstance(second, torch.Tensor):
        return _conv_macs(second, out)
    if name in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        if isinstance(second, torch.Tensor) and isinstance(args[0], torch.Tensor):
            return _conv_macs(second, out, args[0])
        return 0
    if name == "linear" and isinstance(second, torch.Tensor):
        return second.numel() * _rows(out)
    if name in ("matmul", "mm", "bmm", "matmul_", "matmul__", "__matmul__"):
        return _matmul_macs(args[0] if args else None, second, out)
    if name in ("addmm", "baddbmm", "addbmm") and len(args) >= 2:
        return _matmul_macs(args[1], args[2] if len(args) > 2 else None, out)
    if name == "einsum":
        return _einsum_macs(args)
    if name == "scaled_dot_product_attention":
        q, k, v = (list(args) + [kwargs.get(n) for n in ("query", "key", "value")])[:3]
        if all(isinstance(t, torch.Tensor) for t in (q, k, v)):
            return _attention_products(q, k, v)
        return 0
    if name == "shifted_window_attention":
        return _swin_window_attention_macs(args)
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


def param_counts(model: nn.Module) -> dict[int, tuple[int, int]]:
    """:func:`module_params` of ``model`` and each submodule (by ``id``), counted in one walk up the tree.

    A parameter or module shared between branches is counted once per subtree only by walking that subtree, so
    a model sharing any falls back to one :func:`module_params` per module.
    """
    order = all_modules(model)  # parents before their children
    slots = sum(1 for m in order for p in m._parameters.values() if p is not None)
    distinct = {id(p) for m in order for p in m._parameters.values() if p is not None}
    shared_modules = (
        sum(1 for m in order for c in m._modules.values() if c is not None) != len(order) - 1
    )
    if shared_modules or len(distinct) != slots:
        return {id(m): module_params(m) for m in order}
    counts: dict[int, tuple[int, int]] = {}
    for m in reversed(order):  # children before their parents
        total = trainable = 0
        for p in m._parameters.values():
            if p is not None:
                total += p.numel()
                if p.requires_grad:
                    trainable += p.numel()
        for c in m._modules.values():
            if c is not None:
                ct, cr = counts[id(c)]
                total += ct
                trainable += cr
        counts[id(m)] = (total, trainable)
    return counts


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
