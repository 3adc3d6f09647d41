"""Shape rules for the table's meta pass: what torch's meta kernels would return, at a fraction of the cost.

On meta tensors torch still runs its full dispatch, and for many operations a Python decomposition: 0.1-4 ms a
call (a convolution ~0.1 ms, ``linear`` ~0.9 ms, ``hardswish`` ~3.6 ms, an adaptive pool or a ``mean`` ~0.5 ms),
which on small networks costs more than the real forward pass. Each rule here computes the output's shape,
dtype and layout by torch's own formula, after the checks torch makes, for the plain case (contiguous float
inputs of one dtype, batched, zero padding); anything else -- odd layouts, type promotion, unbatched inputs, a
size torch would refuse -- is handed to torch itself, so a refusal is always torch's own. Every rule is checked
against torch's meta kernels on random configurations in ``tests/core/analysis/test_meta_shape_rules.py``.

Functional rules take the call's arguments; module rules take ``(module, args, kwargs)`` and return
:data:`ASK_TORCH` where torch must decide.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from cnnviz.core.moduletree import all_modules

ASK_TORCH: Any = object()
"""A module rule's answer when the call is not the plain case: run the module on meta tensors instead."""


def _contiguous_strides(shape: tuple[int, ...] | torch.Size) -> tuple[int, ...]:
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def is_plain(t: Any) -> bool:
    """A meta tensor with the strides ``torch.empty`` gives its shape."""
    return type(t) is torch.Tensor and t.is_meta and t.stride() == _contiguous_strides(t.shape)


def fresh_layout(t: Any) -> bool:
    """A meta tensor whose fresh output (a convolution's, a pool's, a concatenation's) torch lays out as
    ``torch.empty`` would: a plain tensor, or a channel slice of a single picture (``x.chunk(2, dim=1)`` in
    ShuffleNet), which differs from one only in the stride of its batch dimension of one."""
    if type(t) is not torch.Tensor or not t.is_meta:
        return False
    shape, strides = t.shape, t.stride()
    plain = _contiguous_strides(shape)
    return strides == plain or (
        len(shape) > 1 and shape[0] == 1 and strides[1:] == plain[1:] and strides[0] > 0
    )


def like(x: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(x, device="meta")`` (a parameter or constant the graph reads, or an output of the
    input's shape); for a contiguous tensor via ``torch.empty`` (~15x cheaper)."""
    if x.stride() == _contiguous_strides(x.shape):
        return torch.empty(x.shape, dtype=x.dtype, device="meta")
    return torch.empty_like(x, device="meta")


def _norm_output(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A normalisation layer on meta tensors: torch's own input checks, then the input's shape.

    On meta tensors torch runs batch and layer norm through Python decompositions (about 3 ms each); their output
    always has the input's shape, so only the checks torch would make are worth running.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        module._check_input_dim(x)
        if x.shape[1] != module.num_features:
            raise RuntimeError(
                f"running_mean should contain {x.shape[1]} elements not {module.num_features}"
            )
    elif isinstance(module, nn.LayerNorm):
        tail = tuple(x.shape[x.dim() - len(module.normalized_shape) :])
        if tail != tuple(module.normalized_shape):
            raise RuntimeError(
                f"Given normalized_shape={list(module.normalized_shape)}, expected input with shape "
                f"[*, {', '.join(str(v) for v in module.normalized_shape)}], but got input of size "
                f"{list(x.shape)}"
            )
    return like(x)


def _elementwise_output(
    module: nn.Module, x: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """An elementwise activation on meta tensors: a float input's shape, dtype and layout, else
    :data:`ASK_TORCH`.

    torch runs these through Python reference implementations on meta tensors (0.3-3 ms each, more than the
    real kernel on a small map). In place, torch hands back the input itself, so that is what this returns.
    """
    if type(x) is torch.Tensor and x.is_meta and x.is_floating_point() and not args and not kwargs:
        return x if getattr(module, "inplace", False) is True else like(x)
    return ASK_TORCH


def _checked_norm_forward(module: nn.Module) -> Any:
    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return _norm_output(module, x)

    return forward


def _elementwise_forward(module: nn.Module) -> Any:
    original = type(module).forward

    def forward(x: Any, *args: Any, **kwargs: Any) -> Any:
        out = _elementwise_output(module, x, args, kwargs)
        return original(module, x, *args, **kwargs) if out is ASK_TORCH else out

    return forward


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)
_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.LogSigmoid,
)  # fmt: skip


@contextmanager
def fast_meta_norms(model: nn.Module) -> Iterator[None]:
    """Swap in shape-only forwards for normalisations and elementwise activations while on meta tensors."""
    patched = []
    for m in all_modules(model):
        kind = type(m)
        if "forward" in m.__dict__:
            continue
        if kind in _NORMS:
            m.forward = _checked_norm_forward(m)  # type: ignore[method-assign]
        elif kind in _ELEMENTWISE_MODULES:
            m.forward = _elementwise_forward(m)  # type: ignore[method-assign]
        else:
            continue
        patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _is_float_meta(v: Any) -> bool:
    return type(v) is torch.Tensor and v.is_meta and v.is_floating_point()


def _unary(op: Callable[..., Any], extras: int) -> Callable[..., Any]:
    """``op`` on meta tensors by its shape rule: a float input's shape, dtype and layout (the input, in place).

    ``extras`` positional arguments after the input are not ``inplace`` (``leaky_relu``'s slope ...).
    """

    def shape_rule(x: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_float_meta(x) and len(args) <= extras and set(kwargs) <= {"inplace"}:
            return x if kwargs.get("inplace") is True else like(x)
        return op(x, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


def _binary(op: Callable[..., Any]) -> Callable[..., Any]:
    """An arithmetic operator on meta tensors by the broadcasting rule, where its result's layout is plain.

    Two float tensors of one dtype whose result has the shape of a contiguous one (or of two alike), or a float
    tensor and a Python number; anything else (type promotion, odd layouts) goes to torch's own rule.
    """

    def shape_rule(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            a_t, b_t = _is_float_meta(a), _is_float_meta(b)
            if a_t and b_t and a.dtype == b.dtype:
                if a.shape == b.shape:
                    if a.stride() == b.stride():
                        return like(a)
                else:
                    shape = torch.broadcast_shapes(a.shape, b.shape)
                    for t in (a, b):
                        if t.shape == shape and t.is_contiguous():
                            return like(t)
            elif a_t and type(b) in (int, float):
                return like(a)
            elif b_t and type(a) in (int, float):
                return like(b)
        return op(a, b, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


def _batch_norm(op: Callable[..., Any]) -> Callable[..., Any]:
    """``F.batch_norm`` at inference on meta tensors (timm's BatchNormAct calls it): the input's shape, dtype
    and layout, after the checks torch makes; training, other dtypes or shapes go to torch (its Python
    decomposition costs ~3 ms per call on meta tensors)."""

    def per_channel(t: Any, c: int, dtype: torch.dtype, optional: bool) -> bool:
        if t is None:
            return optional
        return _is_float_meta(t) and t.dtype == dtype and tuple(t.shape) == (c,)

    names = ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")

    def shape_rule(x: Any, *args: Any, **kwargs: Any) -> Any:
        # fx records the call with the optional arguments by keyword
        bound = dict(zip(names, args, strict=False))
        if (
            _is_float_meta(x)
            and x.dim() >= 2
            and len(args) <= len(names)
            and set(kwargs) <= set(names[len(args) :])
        ):
            bound.update(kwargs)
            c = int(x.shape[1])
            if (
                bound.get("training", False) is False
                and per_channel(bound.get("running_mean"), c, x.dtype, False)
                and per_channel(bound.get("running_var"), c, x.dtype, False)
                and per_channel(bound.get("weight"), c, x.dtype, True)
                and per_channel(bound.get("bias"), c, x.dtype, True)
            ):
                return like(x)
        return op(x, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


_F = nn.functional
SHAPE_RULES: dict[Any, Callable[..., Any]] = {
    **{
        f: _unary(f, 0) for f in (_F.relu, _F.relu6, _F.silu, _F.hardswish, _F.hardsigmoid, _F.mish)
    },
    **{
        f: _unary(f, 0)
        for f in (torch.relu, torch.sigmoid, torch.tanh, _F.gelu, _F.sigmoid, _F.tanh)
    },
    **{f: _unary(f, 1) for f in (_F.leaky_relu, _F.elu, _F.celu)},
    _F.hardtanh: _unary(_F.hardtanh, 2),
    _F.batch_norm: _batch_norm(_F.batch_norm),
    **{f: _binary(f) for f in (operator.add, operator.sub, operator.mul, operator.truediv)},
    **{f: _binary(f) for f in (torch.add, torch.sub, torch.mul, torch.div)},
}
METHOD_RULES: dict[str, Callable[..., Any]] = {
    **{m: _unary(getattr(torch.Tensor, m), 0) for m in ("relu", "sigmoid", "tanh")},
    **{m: _binary(getattr(torch.Tensor, m)) for m in ("add", "sub", "mul", "div")},
}


def _ints(value: Any, n: int) -> tuple[int, ...] | None:
    """``value`` as ``n`` Python ints (an int repeated, or a sequence of ``n``), else None."""
    if type(value) is int:
        return (value,) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(type(v) is int for v in value):
        return tuple(value)
    return None


def _float_input(x: Any, dims: int) -> bool:
    """A float meta tensor of ``dims`` dimensions with no empty dimension (a batched map), laid out so that
    its output is a fresh contiguous tensor (:func:`fresh_layout`)."""
    return (
        fresh_layout(x)
        and x.is_floating_point()
        and x.dim() == dims
        and all(int(s) > 0 for s in x.shape)
    )


def _same_dtype(t: Any, dtype: torch.dtype, shape: tuple[int, ...] | None = None) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and t.dtype == dtype
        and t.stride() == _contiguous_strides(t.shape)
        and (shape is None or tuple(t.shape) == shape)
    )


def conv_output(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any
) -> Any:
    """``F.conv{1,2,3}d``'s meta result for a batched contiguous input and zero padding, else :data:`ASK_TORCH`."""
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (3, 4, 5):
        return ASK_TORCH
    n = weight.dim() - 2
    if not _float_input(x, n + 2) or not _same_dtype(weight, x.dtype) or type(groups) is not int:
        return ASK_TORCH
    out_channels, per_group = int(weight.shape[0]), int(weight.shape[1])
    if groups < 1 or out_channels % groups or int(x.shape[1]) != per_group * groups:
        return ASK_TORCH
    if bias is not None and not _same_dtype(bias, x.dtype, (out_channels,)):
        return ASK_TORCH
    strides, dilations = _ints(stride, n), _ints(dilation, n)
    if strides is None or dilations is None or min(strides) < 1 or min(dilations) < 1:
        return ASK_TORCH
    sizes = [int(s) for s in x.shape[2:]]
    kernel = [int(k) for k in weight.shape[2:]]
    if padding == "same":
        if any(s != 1 for s in strides):
            return ASK_TORCH
        out = sizes
    else:
        pads = (0,) * n if padding == "valid" else _ints(padding, n)
        if pads is None or min(pads) < 0:
            return ASK_TORCH
        out = [
            (s + 2 * p - d * (k - 1) - 1) // st + 1
            for s, p, d, k, st in zip(sizes, pads, dilations, kernel, strides, strict=True)
        ]
        if min(out) < 1:
            return ASK_TORCH
    return torch.empty((int(x.shape[0]), out_channels, *out), dtype=x.dtype, device="meta")


def _conv_module(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) != 1 or kwargs or m.padding_mode != "zeros":
        return ASK_TORCH
    return conv_output(args[0], m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)


def _conv_function(op: Callable[..., Any]) -> Callable[..., Any]:
    names = ("bias", "stride", "padding", "dilation", "groups")

    def shape_rule(x: Any, weight: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) <= len(names) and set(kwargs) <= set(names[len(args) :]):
            bound = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
            bound.update(zip(names, args, strict=False))
            bound.update(kwargs)
            out = conv_output(x, weight, **bound)
            if out is not ASK_TORCH:
                return out
        return op(x, weight, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


def linear_output(x: Any, weight: Any, bias: Any) -> Any:
    """``F.linear``'s meta result for a contiguous float input, else :data:`ASK_TORCH`."""
    if not (is_plain(x) and x.is_floating_point() and x.dim() >= 1):
        return ASK_TORCH
    if not _same_dtype(weight, x.dtype) or weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        return ASK_TORCH
    out = int(weight.shape[0])
    if bias is not None and not _same_dtype(bias, x.dtype, (out,)):
        return ASK_TORCH
    return torch.empty((*x.shape[:-1], out), dtype=x.dtype, device="meta")


def _linear_module(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) != 1 or kwargs:
        return ASK_TORCH
    return linear_output(args[0], m.weight, m.bias)


def _linear_function(x: Any, weight: Any, bias: Any = None, **kwargs: Any) -> Any:
    out = ASK_TORCH if kwargs else linear_output(x, weight, bias)
    return nn.functional.linear(x, weight, bias, **kwargs) if out is ASK_TORCH else out


def _pool_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    # torch's pooling_output_shape (aten/src/ATen/native/Pool.h)
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_module(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Max and average pooling modules: torch's output-size formula after its checks."""
    n = _POOL_DIMS[type(m)]
    if len(args) != 1 or kwargs or getattr(m, "return_indices", False):
        return ASK_TORCH
    x = args[0]
    if not _float_input(x, n + 2) or type(m.ceil_mode) is not bool:
        return ASK_TORCH
    kernel = _ints(m.kernel_size, n)
    stride = kernel if m.stride is None or m.stride == [] else _ints(m.stride, n)
    pads, dilation = _ints(m.padding, n), _ints(getattr(m, "dilation", 1), n)
    if kernel is None or stride is None or pads is None or dilation is None:
        return ASK_TORCH
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(pads) < 0:
        return ASK_TORCH
    if any(p > k // 2 for p, k in zip(pads, kernel, strict=True)):
        return ASK_TORCH
    out = [
        _pool_size(int(s), k, st, p, d, m.ceil_mode)
        for s, k, st, p, d in zip(x.shape[2:], kernel, stride, pads, dilation, strict=True)
    ]
    if min(out) < 1:
        return ASK_TORCH
    return torch.empty((*x.shape[:2], *out), dtype=x.dtype, device="meta")


def _adaptive_output(x: Any, output_size: Any, n: int) -> Any:
    if not _float_input(x, n + 2):
        return ASK_TORCH
    sizes = (output_size,) * n if type(output_size) is int or output_size is None else output_size
    # a 1-d pool takes no None ("keep this size"): torch refuses it
    if not isinstance(sizes, (tuple, list)) or len(sizes) != n or (n == 1 and None in sizes):
        return ASK_TORCH
    out = [int(s) if o is None else o for s, o in zip(x.shape[2:], sizes, strict=True)]
    if any(type(o) is not int or o < 1 for o in out):
        return ASK_TORCH
    return torch.empty((*x.shape[:2], *out), dtype=x.dtype, device="meta")


def _adaptive_module(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) != 1 or kwargs or getattr(m, "return_indices", False):
        return ASK_TORCH
    return _adaptive_output(args[0], m.output_size, _ADAPTIVE_DIMS[type(m)])


def _adaptive_function(op: Callable[..., Any], n: int) -> Callable[..., Any]:
    def shape_rule(x: Any, output_size: Any, *args: Any, **kwargs: Any) -> Any:
        out = ASK_TORCH if args or kwargs else _adaptive_output(x, output_size, n)
        return op(x, output_size, *args, **kwargs) if out is ASK_TORCH else out

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


def _reduction(op: Callable[..., Any]) -> Callable[..., Any]:
    """``mean``/``sum``/``amax``/``amin`` over explicit dimensions of a contiguous float tensor."""

    def shape_rule(x: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) <= 2 and set(kwargs) <= {"dim", "keepdim"}:
            bound = dict(zip(("dim", "keepdim"), args, strict=False))
            if not set(kwargs) & set(bound):
                bound.update(kwargs)
                out = _reduced(x, bound.get("dim"), bound.get("keepdim", False))
                if out is not ASK_TORCH:
                    return out
        return op(x, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


def _reduced(x: Any, dim: Any, keepdim: Any) -> Any:
    if not (is_plain(x) and x.is_floating_point() and x.dim() > 0) or type(keepdim) is not bool:
        return ASK_TORCH
    dims = [dim] if type(dim) is int else dim
    if not isinstance(dims, (tuple, list)) or not dims or any(type(d) is not int for d in dims):
        return ASK_TORCH
    rank = x.dim()
    if any(not -rank <= d < rank for d in dims):
        return ASK_TORCH
    axes = {d % rank for d in dims}
    if len(axes) != len(dims):
        return ASK_TORCH
    shape = [1 if i in axes else int(s) for i, s in enumerate(x.shape)]
    if not keepdim:
        shape = [s for i, s in enumerate(shape) if i not in axes]
    return torch.empty(shape, dtype=x.dtype, device="meta")


def _cat(tensors: Any, *args: Any, **kwargs: Any) -> Any:
    """``torch.cat`` of contiguous float tensors of one dtype and rank, equal but along ``dim``."""
    bound = dict(zip(("dim",), args, strict=False))
    if len(args) <= 1 and set(kwargs) <= {"dim"} and not set(kwargs) & set(bound):
        bound.update(kwargs)
        dim = bound.get("dim", 0)
        if (
            isinstance(tensors, (list, tuple))
            and tensors
            and type(dim) is int
            and all(fresh_layout(t) and t.is_floating_point() for t in tensors)
        ):
            first = tensors[0]
            rank = first.dim()
            if rank > 0 and -rank <= dim < rank:
                axis = dim % rank
                rest = [s for i, s in enumerate(first.shape) if i != axis]
                if all(
                    t.dtype == first.dtype
                    and t.dim() == rank
                    and [s for i, s in enumerate(t.shape) if i != axis] == rest
                    for t in tensors
                ):
                    shape = list(first.shape)
                    shape[axis] = sum(int(t.shape[axis]) for t in tensors)
                    return torch.empty(shape, dtype=first.dtype, device="meta")
    return torch.cat(tensors, *args, **kwargs)


def _contiguous(x: Any, *args: Any, **kwargs: Any) -> Any:
    """``Tensor.contiguous()``: the tensor itself when it already is, else a copy with ``torch.empty``'s strides
    (ShuffleNet's channel shuffle calls it on a transposed view in every block)."""
    if not args and not kwargs and type(x) is torch.Tensor and x.is_meta:
        return x if x.is_contiguous() else torch.empty(x.shape, dtype=x.dtype, device="meta")
    return x.contiguous(*args, **kwargs)


def _norm_module(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _norm_output(m, args[0]) if len(args) == 1 and not kwargs else ASK_TORCH


def _elementwise_module(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _elementwise_output(m, args[0], args[1:], kwargs) if args else ASK_TORCH


# 3-d pools check more than the formula (an input smaller than the kernel): torch decides those
_POOL_DIMS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.AvgPool1d: 1, nn.AvgPool2d: 2}
_ADAPTIVE_DIMS = {
    nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
    nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3,
}  # fmt: skip
MODULE_RULES: dict[type, Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]] = {
    nn.Conv1d: _conv_module,
    nn.Conv2d: _conv_module,
    nn.Conv3d: _conv_module,
    nn.Linear: _linear_module,
    **dict.fromkeys(_POOL_DIMS, _pool_module),
    **dict.fromkeys(_ADAPTIVE_DIMS, _adaptive_module),
    **dict.fromkeys(_NORMS, _norm_module),
    **dict.fromkeys(_ELEMENTWISE_MODULES, _elementwise_module),
}
"""Rules for standard torch layers, by exact type (a subclass may override ``forward``)."""

SHAPE_RULES.update(
    {
        **{f: _conv_function(f) for f in (_F.conv1d, _F.conv2d, _F.conv3d)},
        _F.linear: _linear_function,
        torch.cat: _cat,
        torch.concat: _cat,
        _F.adaptive_avg_pool1d: _adaptive_function(_F.adaptive_avg_pool1d, 1),
        _F.adaptive_avg_pool2d: _adaptive_function(_F.adaptive_avg_pool2d, 2),
        _F.adaptive_avg_pool3d: _adaptive_function(_F.adaptive_avg_pool3d, 3),
        **{f: _reduction(f) for f in (torch.mean, torch.sum, torch.amax, torch.amin)},
    }
)
METHOD_RULES.update(
    {m: _reduction(getattr(torch.Tensor, m)) for m in ("mean", "sum", "amax", "amin")}
)
METHOD_RULES["contiguous"] = _contiguous
