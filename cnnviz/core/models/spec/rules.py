"""Shape-dependent rules of the spec types: each fills in inferred arguments and says in words what is wrong.

A rule gets a layer's arguments and its input shape (without batch) and returns a reason, or None. Types
without constraints beyond torch's own have no rule; ``RULES`` names only types of the layer-type table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from cnnviz.core import text
from cnnviz.core.models.spec.schema import (
    _ALIGNING_MODES,
    _UPSAMPLE_MODES,
    Shape,
    _pair,
    _show,
)


def _shape_needed(layer_type: str, needs: str, shape: Shape) -> str:
    reason = f"{layer_type} needs an input of shape {needs} but receives {text.dims(shape)}"
    if len(shape) == 1:
        reason += "; move it before the Flatten"
    return reason


def _at_least(
    kw: dict[str, Any], name: str, minimum: int, *, allow_none: bool = False
) -> str | None:
    value = kw.get(name)
    if value is None:
        return None
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is None and allow_none:
            continue
        if isinstance(v, int | float) and v < minimum:
            return f"{name} must be at least {minimum} (got {_show(value)})"
    return None


def _infer_arg(kw: dict[str, Any], name: str, actual: int, what: str) -> str | None:
    given = kw.get(name)
    if given is not None and given != actual:
        return f"{name} is {given} but the input has {actual} {what}; remove {name} or set it to {actual}"
    kw[name] = actual
    return None


def _too_large(
    kernel: tuple[int, int], dilation: tuple[int, int], size: tuple[int, int], pad: tuple[int, int]
) -> str:
    effective = tuple(dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1))
    what = f"kernel {effective[0]}×{effective[1]}"
    if dilation != (1, 1):
        what = (
            f"dilated kernel {effective[0]}×{effective[1]} "
            f"(kernel {kernel[0]}×{kernel[1]}, dilation {text.pair(dilation)})"
        )
    return f"{what} is larger than its {text.dims(size)} input plus padding {text.pair(pad)}"


def _rule_conv(kw: dict[str, Any], shape: Shape, transposed: bool) -> str | None:
    kind = "ConvTranspose2d" if transposed else "Conv2d"
    if len(shape) != 3:
        return _shape_needed(kind, "[C, H, W]", shape)
    reason = _infer_arg(kw, "in_channels", shape[0], "channels")
    if reason:
        return reason
    for name in ("out_channels", "kernel_size", "stride", "dilation", "groups"):
        reason = _at_least(kw, name, 1)
        if reason:
            return reason
    padding = kw.get("padding", 0)
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            return (
                f'padding must be a number, a pair [h, w], "valid" or "same" (got {_show(padding)})'
            )
        if padding == "same" and _pair(kw.get("stride", 1)) != (1, 1):
            given = text.pair(_pair(kw.get("stride", 1)))
            return f'padding "same" needs stride 1 (stride is {given}); give padding as a number instead'
    else:
        reason = _at_least(kw, "padding", 0)
        if reason:
            return reason
    groups = kw.get("groups", 1)
    for name in ("in_channels", "out_channels"):
        if kw[name] % groups:
            return f"{name} {kw[name]} is not divisible by groups {groups}"
    kernel = _pair(kw["kernel_size"])
    stride = _pair(kw.get("stride", 1))
    dilation = _pair(kw.get("dilation", 1))
    size = (shape[1], shape[2])
    if transposed:
        if kw.get("padding_mode", "zeros") != "zeros":
            return f'ConvTranspose2d supports only padding_mode "zeros" (got {_show(kw["padding_mode"])})'
        reason = _at_least(kw, "output_padding", 0)
        if reason:
            return reason
        out_pad = _pair(kw.get("output_padding", 0))
        pad = _pair(padding)
        for axis in (0, 1):
            if out_pad[axis] >= stride[axis] and out_pad[axis] >= dilation[axis]:
                return (
                    f"output_padding {text.pair(out_pad)} must be smaller than stride "
                    f"{text.pair(stride)} or dilation {text.pair(dilation)}"
                )
        out = tuple(
            (size[a] - 1) * stride[a] - 2 * pad[a] + dilation[a] * (kernel[a] - 1) + out_pad[a] + 1
            for a in (0, 1)
        )
        if min(out) < 1:
            return (
                f"padding {text.pair(pad)} is too large: the output would be {text.dims(out)} for its "
                f"{text.dims(size)} input; reduce padding"
            )
        return None
    if isinstance(padding, str):
        return None  # "same" keeps the size, "valid" is checked by torch's message below
    pad = _pair(padding)
    effective = tuple(dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1))
    if any(effective[a] > size[a] + 2 * pad[a] for a in (0, 1)):
        return _too_large(kernel, dilation, size, pad)
    mode = kw.get("padding_mode", "zeros")
    if mode == "reflect" and any(pad[a] >= size[a] for a in (0, 1)):
        return (
            f"reflect padding {text.pair(pad)} must be smaller than its {text.dims(size)} input; "
            'reduce padding or use padding_mode "zeros"'
        )
    if mode == "circular" and any(pad[a] > size[a] for a in (0, 1)):
        return (
            f"circular padding {text.pair(pad)} wraps more than once around its {text.dims(size)} "
            "input; reduce padding"
        )
    return None


def _rule_pool(kw: dict[str, Any], shape: Shape, layer_type: str) -> str | None:
    if len(shape) != 3:
        return _shape_needed(layer_type, "[C, H, W]", shape)
    if kw.get("return_indices"):
        return (
            "return_indices must be false: the next layer takes one tensor, not (values, indices)"
        )
    for name in ("kernel_size", "stride", "dilation"):
        reason = _at_least(kw, name, 1)
        if reason:
            return reason
    reason = _at_least(kw, "padding", 0)
    if reason:
        return reason
    kernel = _pair(kw["kernel_size"])
    stride = _pair(kw["stride"]) if kw.get("stride") is not None else kernel
    pad = _pair(kw.get("padding", 0))
    dilation = _pair(kw.get("dilation", 1))
    if any(pad[a] > kernel[a] // 2 for a in (0, 1)):
        limit = text.pair((kernel[0] // 2, kernel[1] // 2))
        return (
            f"padding {text.pair(pad)} is more than half the kernel size {text.pair(kernel)}: "
            f"torch refuses pooling padding above {limit}"
        )
    if kw.get("divisor_override") == 0:
        return "divisor_override must not be 0; use null to divide by the window size"
    size = (shape[1], shape[2])
    ceil = bool(kw.get("ceil_mode", False))
    for a in (0, 1):
        span = size[a] + 2 * pad[a] - dilation[a] * (kernel[a] - 1) - 1
        out = (span + (stride[a] - 1 if ceil else 0)) // stride[a] + 1
        if ceil and (out - 1) * stride[a] >= size[a] + pad[a]:
            out -= 1
        if out < 1:
            return _too_large(kernel, dilation, size, pad)
    return None


def _rule_adaptive(kw: dict[str, Any], shape: Shape, layer_type: str) -> str | None:
    if len(shape) != 3:
        return _shape_needed(layer_type, "[C, H, W]", shape)
    if kw.get("return_indices"):
        return (
            "return_indices must be false: the next layer takes one tensor, not (values, indices)"
        )
    if _at_least(kw, "output_size", 1, allow_none=True):
        return f"output_size must be at least 1, or null to keep the input size (got {_show(kw['output_size'])})"
    return None


def _rule_batchnorm(kw: dict[str, Any], shape: Shape, layer_type: str) -> str | None:
    if layer_type == "BatchNorm2d":
        if len(shape) != 3:
            return _shape_needed(layer_type, "[C, H, W]", shape)
        return _infer_arg(kw, "num_features", shape[0], "channels")
    if len(shape) not in (1, 2):
        return (
            f"BatchNorm1d needs an input of shape [N] or [C, L] but receives {text.dims(shape)}; "
            "use BatchNorm2d, or put it after a Flatten"
        )
    return _infer_arg(kw, "num_features", shape[0], "features" if len(shape) == 1 else "channels")


def _rule_linear(kw: dict[str, Any], shape: Shape) -> str | None:
    if len(shape) != 1:
        return f"Linear needs a flat input of shape [N]; add a Flatten before it (input is {text.dims(shape)})"
    given = kw.get("in_features")
    if given is not None and given != shape[0]:
        return (
            f"Linear expects {given} inputs but receives {shape[0]}; "
            f"remove in_features or set it to {shape[0]}"
        )
    kw["in_features"] = shape[0]
    return _at_least(kw, "out_features", 1)


def _dim_reason(name: str, dim: int, ndim: int) -> str | None:
    if not -ndim <= dim < ndim:
        return (
            f"{name} {dim} is out of range for an input with {ndim} dimensions, batch included "
            f"(use {-ndim} to {ndim - 1})"
        )
    if dim % ndim == 0:
        return f"{name} {dim} is the batch dimension; count from 1 (the first non-batch dimension)"
    return None


def _rule_flatten(kw: dict[str, Any], shape: Shape) -> str | None:
    ndim = len(shape) + 1
    start = kw.get("start_dim", 1)
    end = kw.get("end_dim", -1)
    reason = _dim_reason("start_dim", start, ndim)
    if reason:
        return reason
    if not -ndim <= end < ndim:
        return _dim_reason("end_dim", end, ndim)
    if start % ndim > end % ndim:
        return f"start_dim {start} comes after end_dim {end}"
    return None


def _rule_softmax(kw: dict[str, Any], shape: Shape) -> str | None:
    dim = kw.get("dim")
    if dim is None and len(shape) == 2:
        # torch's implicit choice for 3-D tensors is dim 0, the batch.
        return f"set dim for a {text.dims(shape)} input: without it torch normalises over the batch"
    return None if dim is None else _dim_reason("dim", dim, len(shape) + 1)


def _rule_dropout(kw: dict[str, Any], shape: Shape) -> str | None:
    p = kw.get("p", 0.5)
    if not 0 <= p <= 1:
        return f"p must be between 0 and 1 (got {_show(p)})"
    return None


def _rule_gelu(kw: dict[str, Any], shape: Shape) -> str | None:
    if kw.get("approximate", "none") not in ("none", "tanh"):
        return f'approximate must be "none" or "tanh" (got {_show(kw["approximate"])})'
    return None


def _rule_upsample(kw: dict[str, Any], shape: Shape) -> str | None:
    size, scale = kw.get("size"), kw.get("scale_factor")
    if (size is None) == (scale is None):
        return "give exactly one of size and scale_factor" + (
            "" if size is None else " (both are set)"
        )
    mode = kw.get("mode", "nearest")
    if mode not in _UPSAMPLE_MODES:
        return f"mode must be one of {', '.join(json.dumps(m) for m in _UPSAMPLE_MODES)} (got {_show(mode)})"
    if kw.get("align_corners") is not None and mode not in _ALIGNING_MODES:
        return f'align_corners needs an interpolating mode ({", ".join(_ALIGNING_MODES)}), not "{mode}"; remove it'
    if len(shape) not in (2, 3):
        return _shape_needed("Upsample", "[C, H, W] or [C, L]", shape)
    needs = {"linear": 2, "bilinear": 3, "bicubic": 3, "trilinear": 4}.get(mode)
    if needs is not None and needs != len(shape):
        wanted = {2: "[C, L]", 3: "[C, H, W]", 4: "[C, D, H, W]"}[needs]
        return f'mode "{mode}" needs an input of shape {wanted} but receives {text.dims(shape)}'
    spatial = shape[1:]
    if size is not None:
        reason = _at_least(kw, "size", 1)
        if reason:
            return reason
    else:
        scale = kw["scale_factor"]  # not None: exactly one of size and scale_factor is set
        factors: tuple[float, ...] = (
            scale if isinstance(scale, tuple) else (float(scale),) * len(spatial)
        )
        if any(f <= 0 for f in factors):
            return f"scale_factor must be greater than 0 (got {_show(scale)})"
        if len(factors) == len(spatial):
            out = tuple(math.floor(s * f) for s, f in zip(spatial, factors, strict=True))
            if min(out) < 1:
                return (
                    f"scale_factor {_show(scale)} shrinks its {text.dims(spatial)} input to nothing "
                    f"({text.dims(out)}); use a larger factor"
                )
    return None


def _rule_zeropad(kw: dict[str, Any], shape: Shape) -> str | None:
    if len(shape) != 3:
        return _shape_needed("ZeroPad2d", "[C, H, W]", shape)
    padding = kw["padding"]
    left, right, top, bottom = padding if isinstance(padding, tuple) else (padding,) * 4
    out = (shape[1] + top + bottom, shape[2] + left + right)
    if min(out) < 1:
        return (
            f"padding {_show(padding)} crops its {text.dims(shape[1:])} input to nothing "
            f"({text.dims(out)}); negative padding must leave at least one row and column"
        )
    return None


RULES: dict[str, Callable[[dict[str, Any], Shape], str | None]] = {
    "Conv2d": lambda kw, s: _rule_conv(kw, s, transposed=False),
    "ConvTranspose2d": lambda kw, s: _rule_conv(kw, s, transposed=True),
    "MaxPool2d": lambda kw, s: _rule_pool(kw, s, "MaxPool2d"),
    "AvgPool2d": lambda kw, s: _rule_pool(kw, s, "AvgPool2d"),
    "AdaptiveAvgPool2d": lambda kw, s: _rule_adaptive(kw, s, "AdaptiveAvgPool2d"),
    "AdaptiveMaxPool2d": lambda kw, s: _rule_adaptive(kw, s, "AdaptiveMaxPool2d"),
    "BatchNorm2d": lambda kw, s: _rule_batchnorm(kw, s, "BatchNorm2d"),
    "BatchNorm1d": lambda kw, s: _rule_batchnorm(kw, s, "BatchNorm1d"),
    "Linear": _rule_linear,
    "Flatten": _rule_flatten,
    "Softmax": _rule_softmax,
    "Dropout": _rule_dropout,
    "Dropout2d": _rule_dropout,
    "GELU": _rule_gelu,
    "Upsample": _rule_upsample,
    "ZeroPad2d": _rule_zeropad,
}
