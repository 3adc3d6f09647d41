"""One converter per ONNX operator: real torch layers (``nn.Conv2d``, ``nn.BatchNorm2d``, ``nn.MaxPool2d``,
``nn.Linear`` ...) where torch has one, torch functions for arithmetic and plumbing.

Each converter reads every attribute it understands and refuses values it cannot reproduce exactly (a
``storage_order``, a ``cubic`` resize, ...); :meth:`Node.check_attributes` then refuses any attribute left
unread. Padding that is the same on both sides becomes the layer's own ``padding``; anything else becomes an
explicit padding layer in front of it, so the layer geometry the receptive-field analysis reads stays true.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.core.models.onnx.builder import Builder, Node, ints

Converter = Callable[[Builder, Node], list[Any]]
CONVERTERS: dict[str, Converter] = {}

_CONV: dict[int, Any] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_MAXPOOL: dict[int, Any] = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL: dict[int, Any] = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_BATCHNORM: dict[int, Any] = {
    2: nn.BatchNorm1d,
    3: nn.BatchNorm1d,
    4: nn.BatchNorm2d,
    5: nn.BatchNorm3d,
}
_ZEROPAD: dict[int, Any] = {1: nn.ZeroPad1d, 2: nn.ZeroPad2d, 3: nn.ZeroPad3d}
_CONSTPAD: dict[int, Any] = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}


def converter(*ops: str) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for op in ops:
            CONVERTERS[op] = fn
        return fn

    return register


def _torch_pad(begins: tuple[int, ...], ends: tuple[int, ...]) -> tuple[int, ...]:
    """ONNX (begin..., end...) per axis, first axis first -> torch's (last axis begin, end, ...)."""
    out: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends), strict=True):
        out += [b, e]
    return tuple(out)


def _window_pads(
    b: Builder, n: Node, k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(begins, ends) of a convolution or pooling window, with auto_pad resolved on the input size."""
    rank = len(k)
    auto = n.attr("auto_pad", "NOTSET")
    pads = n.attr("pads")
    if auto in ("NOTSET", ""):
        p = ints(pads, 2 * rank, 0)
        return p[:rank], p[rank:]
    if auto == "VALID":
        return (0,) * rank, (0,) * rank
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise n.refuse(f"has auto_pad {auto}")
    spatial = b.input_shape(n)[2:]
    begins, ends = [], []
    for size, ki, si, di in zip(spatial, k, s, d, strict=True):
        out = -(-size // si)
        total = max((out - 1) * si + (ki - 1) * di + 1 - size, 0)
        small = total // 2
        begins.append(small if auto == "SAME_UPPER" else total - small)
        ends.append(total - small if auto == "SAME_UPPER" else small)
    return tuple(begins), tuple(ends)


def _pad_in_front(
    b: Builder, n: Node, x: Any, begins: tuple[int, ...], ends: tuple[int, ...], value: float = 0.0
) -> Any:
    """An explicit padding layer (named after the node) for pads a layer cannot take itself."""
    rank = len(begins)
    pad = _torch_pad(begins, ends)
    module = _ZEROPAD[rank](pad) if value == 0.0 else _CONSTPAD[rank](pad, value)
    return b.module(n, module, x, suffix="pad")


@converter("Conv")
def _conv(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    w = b.const(n, 1, "weights")
    bias = b.const(n, 2, "bias")
    assert w is not None
    rank = w.dim() - 2
    if rank not in _CONV:
        raise n.refuse(f"convolves over {rank} axes")
    k = tuple(int(v) for v in w.shape[2:])
    if n.attr("kernel_shape") is not None and tuple(n.attr("kernel_shape")) != k:
        raise n.refuse("declares a kernel_shape that differs from its weights")
    s = ints(n.attr("strides"), rank, 1)
    d = ints(n.attr("dilations"), rank, 1)
    groups = int(n.attr("group", 1))
    begins, ends = _window_pads(b, n, k, s, d)
    if begins != ends:
        x = _pad_in_front(b, n, x, begins, ends)
        begins = (0,) * rank
    conv = _CONV[rank](
        int(w.shape[1]) * groups, int(w.shape[0]), k, stride=s, padding=begins, dilation=d,
        groups=groups, bias=bias is not None,
    )  # fmt: skip
    conv.weight = b.parameter(n, 1, w)
    if bias is not None:
        conv.bias = b.parameter(n, 2, bias)
    return [b.module(n, conv, x)]


@converter("BatchNormalization")
def _batchnorm(b: Builder, n: Node) -> list[Any]:
    if int(n.attr("training_mode", 0)) != 0 or len(n.outputs) > 1:
        raise n.refuse("is in training mode")
    n.attr("momentum")  # running statistics are not updated at inference
    if b.opset < 9 and int(n.attr("spatial", 1)) != 1:
        raise n.refuse("normalises per position (spatial=0)")
    n.attr("is_test")
    x = b.tensor_input(n, 0)
    scale, bias, mean, var = (b.const(n, i, "statistics") for i in range(1, 5))
    assert scale is not None and bias is not None and mean is not None and var is not None
    rank = len(b.input_shape(n))
    if rank not in _BATCHNORM:
        raise n.refuse(f"normalises a {rank}-D tensor")
    bn = _BATCHNORM[rank](int(scale.numel()), eps=float(n.attr("epsilon", 1e-5)))
    bn.weight = b.parameter(n, 1, scale)
    bn.bias = b.parameter(n, 2, bias)
    assert bn.running_mean is not None and bn.running_var is not None
    bn.running_mean.copy_(mean.to(torch.float32))
    bn.running_var.copy_(var.to(torch.float32))
    return [b.module(n, bn.eval(), x)]


def _pool_geometry(
    b: Builder, n: Node
) -> tuple[
    int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]
]:
    k = tuple(int(v) for v in n.attr("kernel_shape"))
    rank = len(k)
    s = ints(n.attr("strides"), rank, 1)
    d = ints(n.attr("dilations"), rank, 1)
    begins, ends = _window_pads(b, n, k, s, d)
    return rank, k, s, d, begins, ends


@converter("MaxPool")
def _maxpool(b: Builder, n: Node) -> list[Any]:
    if len([o for o in n.outputs if o]) > 1:
        raise n.refuse("returns the indices of the maxima")
    if int(n.attr("storage_order", 0)) != 0:
        raise n.refuse("uses column-major storage_order")
    x = b.tensor_input(n, 0)
    rank, k, s, d, begins, ends = _pool_geometry(b, n)
    if rank not in _MAXPOOL:
        raise n.refuse(f"pools over {rank} axes")
    ceil = bool(n.attr("ceil_mode", 0))
    # torch takes symmetric padding of at most half the (dilated) window
    fits = all(p * 2 <= (ki - 1) * di + 1 for p, ki, di in zip(begins, k, d, strict=True))
    if begins != ends or not fits:
        if ceil and ends != begins:
            raise n.refuse("combines ceil_mode with uneven padding")
        x = _pad_in_front(b, n, x, begins, ends, float("-inf"))
        begins = (0,) * rank
    pool = _MAXPOOL[rank](k, stride=s, padding=begins, dilation=d, ceil_mode=ceil)
    return [b.module(n, pool, x)]


@converter("AveragePool")
def _avgpool(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    rank, k, s, d, begins, ends = _pool_geometry(b, n)
    if rank not in _AVGPOOL:
        raise n.refuse(f"pools over {rank} axes")
    if any(v != 1 for v in d):
        raise n.refuse("dilates an average pooling")
    ceil = bool(n.attr("ceil_mode", 0))
    include = bool(n.attr("count_include_pad", 0))
    fits = all(p * 2 <= ki for p, ki in zip(begins, k, strict=True))
    if begins != ends or not fits:
        if not include or ceil:
            raise n.refuse("pads unevenly without counting the padding")
        x = _pad_in_front(b, n, x, begins, ends)
        begins = (0,) * rank
    pool = _AVGPOOL[rank](k, stride=s, padding=begins, ceil_mode=ceil, count_include_pad=include)
    return [b.module(n, pool, x)]


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    rank = len(b.input_shape(n)) - 2
    table: dict[str, dict[int, Any]] = {
        "GlobalAveragePool": {
            1: nn.AdaptiveAvgPool1d,
            2: nn.AdaptiveAvgPool2d,
            3: nn.AdaptiveAvgPool3d,
        },
        "GlobalMaxPool": {
            1: nn.AdaptiveMaxPool1d,
            2: nn.AdaptiveMaxPool2d,
            3: nn.AdaptiveMaxPool3d,
        },
    }
    classes = table[n.op]
    if rank not in classes:
        raise n.refuse(f"pools over {rank} axes")
    return [b.module(n, classes[rank](1), x)]


_SIMPLE: dict[str, Callable[[], nn.Module]] = {
    "Relu": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "HardSwish": nn.Hardswish,
    "Identity": nn.Identity, "Softplus": nn.Softplus, "Softsign": nn.Softsign, "Mish": nn.Mish,
}  # fmt: skip


@converter(*_SIMPLE)
def _simple(b: Builder, n: Node) -> list[Any]:
    if n.op == "Identity" and isinstance(b.value(n, 0), torch.Tensor):
        # exporters share one initialiser between layers through Identity nodes: still one parameter
        b.aliases[n.outputs[0]] = b.aliases.get(n.inputs[0], n.inputs[0])
    return [b.module(n, _SIMPLE[n.op](), b.tensor_input(n, 0))]


@converter("Dropout")
def _dropout(b: Builder, n: Node) -> list[Any]:
    n.attr("ratio")
    n.attr("seed")
    if b.opset < 7:
        n.attr("is_test")
    if len([o for o in n.outputs if o]) > 1:
        raise n.refuse("returns its mask")
    if b.opset >= 12 and b.value(n, 2) is not None:
        mode = b.const(n, 2, "training mode")
        if mode is not None and bool(mode.item()):
            raise n.refuse("is in training mode")
    return [b.module(n, nn.Identity(), b.tensor_input(n, 0))]  # inference: passes its input


@converter("LeakyRelu")
def _leaky(b: Builder, n: Node) -> list[Any]:
    return [b.module(n, nn.LeakyReLU(float(n.attr("alpha", 0.01))), b.tensor_input(n, 0))]


@converter("Elu")
def _elu(b: Builder, n: Node) -> list[Any]:
    return [b.module(n, nn.ELU(float(n.attr("alpha", 1.0))), b.tensor_input(n, 0))]


@converter("HardSigmoid")
def _hardsigmoid(b: Builder, n: Node) -> list[Any]:
    alpha, beta = float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5))
    x = b.tensor_input(n, 0)
    if abs(alpha - 1 / 6) < 1e-6 and beta == 0.5:
        return [b.module(n, nn.Hardsigmoid(), x)]
    return [b.call(torch.clamp, b.call(torch.add, b.call(torch.mul, x, alpha), beta), 0.0, 1.0)]


@converter("Clip")
def _clip(b: Builder, n: Node) -> list[Any]:
    if b.opset < 11:
        low, high = n.attr("min", -math.inf), n.attr("max", math.inf)
    else:
        lo, hi = b.const(n, 1, "limits"), b.const(n, 2, "limits")
        low = float(lo.item()) if lo is not None else -math.inf
        high = float(hi.item()) if hi is not None else math.inf
    x = b.tensor_input(n, 0)
    if low == 0.0 and high == 6.0:
        return [b.module(n, nn.ReLU6(), x)]
    if low == 0.0 and high == math.inf:
        return [b.module(n, nn.ReLU(), x)]
    if math.isfinite(low) and math.isfinite(high):
        return [b.module(n, nn.Hardtanh(low, high), x)]
    return [
        b.call(
            torch.clamp, x, None if low == -math.inf else low, None if high == math.inf else high
        )
    ]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


@converter("Softmax", "LogSoftmax")
def _softmax(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    shape = b.input_shape(n)
    rank = len(shape)
    axis = _axis(int(n.attr("axis", -1 if b.opset >= 13 else 1)), rank)
    cls = nn.Softmax if n.op == "Softmax" else nn.LogSoftmax
    if b.opset >= 13 or axis == rank - 1:
        return [b.module(n, cls(dim=axis), x)]
    # before opset 13 the input is flattened to 2-D at the axis
    flat = b.call(torch.reshape, x, (math.prod(shape[:axis]), math.prod(shape[axis:])))
    return [b.call(torch.reshape, b.module(n, cls(dim=1), flat), shape)]


_BINARY: dict[str, Callable[..., Any]] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": torch.div,
    "Pow": torch.pow,
}


@converter(*_BINARY)
def _binary(b: Builder, n: Node) -> list[Any]:
    if b.opset < 7 and n.attr("broadcast") is not None:
        n.attr("axis")
    a, c = b.tensor_input(n, 0), b.tensor_input(n, 1)
    if n.op == "Div" and all(
        isinstance(v, torch.Tensor) and not v.is_floating_point() for v in (a, c)
    ):
        return [b.call(torch.div, a, c, rounding_mode="trunc")]
    return [b.call(_BINARY[n.op], a, c)]


_UNARY: dict[str, Callable[..., Any]] = {"Sqrt": torch.sqrt, "Exp": torch.exp, "Neg": torch.neg, "Abs": torch.abs, "Erf": torch.erf,
          "Log": torch.log, "Reciprocal": torch.reciprocal, "Floor": torch.floor, "Ceil": torch.ceil}  # fmt: skip


@converter(*_UNARY)
def _unary(b: Builder, n: Node) -> list[Any]:
    return [b.call(_UNARY[n.op], b.tensor_input(n, 0))]


@converter("Concat")
def _concat(b: Builder, n: Node) -> list[Any]:
    values = [b.tensor_input(n, i) for i in range(len(n.inputs)) if n.inputs[i]]
    rank = len(b.input_shape(n))
    return [b.call(torch.cat, values, _axis(int(n.attr("axis")), rank))]


@converter("Flatten")
def _flatten(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    shape = b.input_shape(n)
    axis = _axis(int(n.attr("axis", 1)), len(shape))
    if axis == 1:
        return [b.module(n, nn.Flatten(1), x)]
    return [b.call(torch.reshape, x, (math.prod(shape[:axis]), math.prod(shape[axis:])))]


@converter("Reshape")
def _reshape(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    target = b.const(n, 1, "target shape")
    if b.opset < 5:
        target = torch.tensor(n.attr("shape"))
    assert target is not None
    allow_zero = bool(n.attr("allowzero", 0))
    dims = [int(v) for v in target.tolist()]
    if not allow_zero and 0 in dims:
        shape = b.input_shape(n)
        dims = [shape[i] if v == 0 else v for i, v in enumerate(dims)]
    return [b.call(torch.reshape, x, tuple(dims))]


@converter("Transpose")
def _transpose(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    perm = n.attr("perm")
    if perm is None:
        perm = list(reversed(range(len(b.input_shape(n)))))
    return [b.call(torch.permute, x, tuple(int(p) for p in perm))]


def _axes(b: Builder, n: Node, since: int) -> list[int] | None:
    if b.opset >= since:
        t = b.const(n, 1, "axes")
        return None if t is None else [int(v) for v in t.tolist()]
    axes = n.attr("axes")
    return None if axes is None else [int(v) for v in axes]


@converter("Squeeze")
def _squeeze(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    shape = b.input_shape(n)
    axes = _axes(b, n, 13)
    if axes is None:
        axes = [i for i, s in enumerate(shape) if s == 1]
    keep = [s for i, s in enumerate(shape) if i not in {_axis(a, len(shape)) for a in axes}]
    return [b.call(torch.reshape, x, tuple(keep))]


@converter("Unsqueeze")
def _unsqueeze(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    axes = _axes(b, n, 13)
    if axes is None:
        raise n.refuse("gives no axes")
    shape = list(b.input_shape(n))
    rank = len(shape) + len(axes)
    for a in sorted(_axis(a, rank) for a in axes):
        shape.insert(a, 1)
    return [b.call(torch.reshape, x, tuple(shape))]


@converter("Shape")
def _shape(b: Builder, n: Node) -> list[Any]:
    shape = b.input_shape(n)
    start, end = n.attr("start", 0), n.attr("end")
    return [torch.tensor(shape[start:end], dtype=torch.int64)]


@converter("Constant")
def _constant(b: Builder, n: Node) -> list[Any]:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = n.attr(key)
        if value is not None:
            return [value if isinstance(value, torch.Tensor) else torch.tensor(value)]
    raise n.refuse("holds no numeric value")


_DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
           9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}  # fmt: skip


@converter("Cast")
def _cast(b: Builder, n: Node) -> list[Any]:
    to = int(n.attr("to"))
    n.attr("saturate")
    if to not in _DTYPES:
        raise n.refuse(f"casts to the ONNX type {to}")
    return [b.method("to", b.tensor_input(n, 0), _DTYPES[to])]


@converter("Gather")
def _gather(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    index = b.const(n, 1, "indices")
    assert index is not None
    shape = b.input_shape(n)
    axis = _axis(int(n.attr("axis", 0)), len(shape))
    index = torch.where(index < 0, index + shape[axis], index)
    if index.dim() == 0:
        return [b.call(torch.select, x, axis, int(index))]
    flat = b.call(torch.index_select, x, axis, index.reshape(-1))
    out_shape = (*shape[:axis], *index.shape, *shape[axis + 1 :])
    return [b.call(torch.reshape, flat, out_shape)]


@converter("Slice")
def _slice(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    shape = b.input_shape(n)
    if b.opset < 10:
        starts, ends, axes, steps = n.attr("starts"), n.attr("ends"), n.attr("axes"), None
    else:
        starts, ends, axes, steps = (
            None if (t := b.const(n, i, "bounds")) is None else t.tolist() for i in range(1, 5)
        )
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index: list[Any] = [slice(None)] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step < 1 and not isinstance(x, torch.Tensor):
            raise n.refuse("slices backwards")
        index[_axis(int(axis), len(shape))] = slice(int(start), int(end), int(step))
    if isinstance(x, torch.Tensor) and any(s.step is not None and s.step < 0 for s in index):
        return [torch.from_numpy(x.numpy()[tuple(index)].copy())]
    return [b.call(operator.getitem, x, tuple(index))]


@converter("ReduceMean")
def _reduce_mean(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    rank = len(b.input_shape(n))
    axes = _axes(b, n, 18)
    if axes is None:
        if b.opset >= 18 and int(n.attr("noop_with_empty_axes", 0)):
            return [x]
        axes = list(range(rank))
    keep = bool(n.attr("keepdims", 1))
    return [b.call(torch.mean, x, tuple(_axis(a, rank) for a in axes), keepdim=keep)]


@converter("Gemm")
def _gemm(b: Builder, n: Node) -> list[Any]:
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    trans_a, trans_b = int(n.attr("transA", 0)), int(n.attr("transB", 0))
    if b.opset < 7:
        n.attr("broadcast")
    x = b.tensor_input(n, 0)
    w = b.const(n, 1, "weights")
    c = b.const(n, 2, "bias")
    assert w is not None
    if trans_a:
        x = b.call(torch.permute, x, (1, 0))
    out_features = int(w.shape[0] if trans_b else w.shape[1])
    if (
        c is not None
        and c.numel() not in (1, out_features)
        or (c is not None and c.dim() > 1 and c.shape[0] != 1)
    ):
        raise n.refuse("adds a bias that differs per sample")
    weight = w if trans_b else w.t()
    linear = nn.Linear(int(weight.shape[1]), out_features, bias=c is not None)
    linear.weight = b.parameter(n, 1, weight * alpha if alpha != 1.0 else weight)
    if c is not None:
        bias = c.reshape(-1).expand(out_features)
        linear.bias = b.parameter(n, 2, bias * beta if beta != 1.0 else bias.contiguous())
    return [b.module(n, linear, x)]


@converter("MatMul")
def _matmul(b: Builder, n: Node) -> list[Any]:
    a, w = b.tensor_input(n, 0), b.tensor_input(n, 1)
    if isinstance(w, torch.Tensor) and w.dim() == 2 and not isinstance(a, torch.Tensor):
        linear = nn.Linear(int(w.shape[0]), int(w.shape[1]), bias=False)
        linear.weight = b.parameter(n, 1, w.t())
        return [b.module(n, linear, a)]
    return [b.call(torch.matmul, a, w)]


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@converter("Pad")
def _pad(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    mode = n.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise n.refuse(f"pads in {mode} mode")
    rank = len(b.input_shape(n))
    if b.opset < 11:
        pads = [int(v) for v in n.attr("pads")]
        value = float(n.attr("value", 0.0))
        axes = list(range(rank))
    else:
        p = b.const(n, 1, "pads")
        v = b.const(n, 2, "padding value")
        a = b.const(n, 3, "axes")
        assert p is not None
        pads = [int(t) for t in p.tolist()]
        value = float(v.item()) if v is not None and v.numel() else 0.0
        axes = list(range(rank)) if a is None else [_axis(int(t), rank) for t in a.tolist()]
    full_b, full_e = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        full_b[axis], full_e[axis] = pads[i], pads[i + len(axes)]
    spatial = [i for i in range(rank) if full_b[i] or full_e[i]]
    torch_pad: Any = _torch_pad(
        tuple(full_b[min(spatial, default=rank) :]), tuple(full_e[min(spatial, default=rank) :])
    )
    if not spatial:
        return [b.module(n, nn.Identity(), x)]
    if rank == 4 and min(spatial) >= 2 and min(pads) >= 0:
        classes = {"constant": None, "reflect": nn.ReflectionPad2d, "edge": nn.ReplicationPad2d}
        if mode == "constant":
            module: nn.Module = (
                nn.ZeroPad2d(torch_pad) if value == 0.0 else nn.ConstantPad2d(torch_pad, value)
            )
            return [b.module(n, module, x)]
        cls = classes.get(mode)
        if cls is not None:
            return [b.module(n, cls(torch_pad), x)]
    if mode == "constant":
        return [b.call(F.pad, x, torch_pad, "constant", value)]
    return [b.call(F.pad, x, torch_pad, _PAD_MODES[mode])]


def _resize_target(
    b: Builder, n: Node, scales: torch.Tensor | None, sizes: torch.Tensor | None
) -> tuple[tuple[int, ...] | None, tuple[float, ...] | None]:
    shape = b.input_shape(n)
    if sizes is not None and sizes.numel():
        size = tuple(int(v) for v in sizes.tolist())
        if tuple(size[:2]) != tuple(shape[:2]):
            raise n.refuse("resizes the batch or channel axis")
        return size[2:], None
    if scales is None or not scales.numel():
        raise n.refuse("gives neither scales nor sizes")
    factors = tuple(float(v) for v in scales.tolist())
    if factors[:2] != (1.0, 1.0):
        raise n.refuse("resizes the batch or channel axis")
    return None, factors[2:]


@converter("Resize", "Upsample")
def _resize(b: Builder, n: Node) -> list[Any]:
    x = b.tensor_input(n, 0)
    mode = n.attr("mode", "nearest")
    if n.op == "Upsample":
        transform, nearest = "asymmetric", "floor"
        scales = torch.tensor(n.attr("scales")) if b.opset < 9 else b.const(n, 1, "scales")
        sizes = None
        if mode == "linear":
            raise n.refuse("upsamples linearly with asymmetric coordinates")
    else:
        transform = n.attr("coordinate_transformation_mode", "half_pixel")
        nearest = n.attr("nearest_mode", "round_prefer_floor")
        n.attr("cubic_coeff_a")
        if int(n.attr("exclude_outside", 0)) or int(n.attr("antialias", 0)):
            raise n.refuse("resizes with exclude_outside or antialias")
        if n.attr("axes") is not None or n.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise n.refuse("resizes some axes only or keeps the aspect ratio")
        n.attr("extrapolation_value")
        first = 1 if b.opset < 11 else 2
        scales = b.const(n, first, "scales")
        sizes = b.const(n, first + 1, "sizes") if b.opset >= 11 else None
    size, factors = _resize_target(b, n, scales, sizes)
    if len(b.input_shape(n)) != 4:
        raise n.refuse("resizes a tensor that is not 4-D")
    if mode == "nearest" and transform == "asymmetric" and nearest == "floor":
        module = nn.Upsample(size=size, scale_factor=factors, mode="nearest")
    elif (
        mode == "nearest"
        and transform in ("half_pixel", "pytorch_half_pixel")
        and nearest == "round_prefer_ceil"
    ):
        module = nn.Upsample(size=size, scale_factor=factors, mode="nearest-exact")
    elif mode == "linear" and transform == "align_corners":
        module = nn.Upsample(size=size, scale_factor=factors, mode="bilinear", align_corners=True)
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel"):
        out = size or tuple(
            int(math.floor(s * f)) for s, f in zip(b.input_shape(n)[2:], factors or (), strict=True)
        )
        if transform == "half_pixel" and min(out) == 1:
            raise n.refuse("resizes to a single row or column with half_pixel coordinates")
        module = nn.Upsample(size=size, scale_factor=factors, mode="bilinear", align_corners=False)
    else:
        raise n.refuse(
            f"resizes in {mode} mode with {transform} coordinates and {nearest} rounding"
        )
    return [b.module(n, module, x)]
