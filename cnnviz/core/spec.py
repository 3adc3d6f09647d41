"""Architecture specs: a JSON description of a sequence of layers <-> ``torch.nn.Sequential``.

The format
==========

A spec is a JSON object::

    {
      "name": "tiny digits CNN",
      "input_shape": [1, 28, 28],
      "labels": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
      "layers": [
        {"type": "Conv2d", "out_channels": 16, "kernel_size": 3, "stride": 1, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 10}
      ]
    }

Top-level keys:

- ``input_shape`` (required): ``[C, H, W]``, three positive integers, without the batch dimension.
- ``layers`` (required): a list of layer objects, applied in order. Layer ``i`` becomes the module named
  ``"i"`` of the ``nn.Sequential``, so its parameters are ``"i.weight"``, ``"i.bias"`` in the state dict.
- ``labels`` (optional): class names, one per output of the last layer (which must then be flat, ``[N]``).
- ``name``, ``description`` (optional): strings for display.
- ``preprocess`` (optional): an object describing how pictures become inputs; it is carried along
  unchanged and read by :mod:`cnnviz.core.images`, not here.

Any other top-level key is an error (a typo such as ``"label"`` would otherwise be silently ignored).

Each layer object has a ``"type"``, the name of a ``torch.nn`` class from :data:`SUPPORTED_TYPES`,
and any of that class's constructor arguments (see ``help(torch.nn.Conv2d)``). Values are JSON
scalars, ``null`` for ``None``, or lists for tuples (``"kernel_size": [3, 5]`` means ``(3, 5)``, height
first). An argument the class does not take is an error, as is a value of the wrong type.
``device`` and ``dtype`` are not accepted.

These arguments are inferred from the shape that reaches the layer and may be left out; if given they
must agree with it:

- ``in_channels`` of ``Conv2d`` and ``ConvTranspose2d``: the number of input channels;
- ``in_features`` of ``Linear``: the length of the flat input;
- ``num_features`` of ``BatchNorm2d`` and ``BatchNorm1d``: the number of input channels/features.

Dimension arguments (``Flatten``'s ``start_dim``/``end_dim``, ``Softmax``'s ``dim``) count the batch
dimension as torch does: for an input of shape ``[C, H, W]`` the module sees ``[N, C, H, W]``.

Where cnnviz is stricter than torch
-----------------------------------

Shapes are always those torch computes. A few things torch accepts are refused because in a
sequence of layers over ``[C, H, W]`` inputs they are almost certainly mistakes:

- 2-D layers (convolutions, pooling, ``BatchNorm2d``, ``ZeroPad2d``) need a ``[C, H, W]`` input
  (torch would read a ``[N, L]`` input as an unbatched image and mix up samples);
- ``Linear`` needs a flat ``[N]`` input (torch would apply it to the last axis of an image);
- ``Flatten`` must not fold, and ``Softmax`` must not normalise over, the batch dimension;
- a layer whose output would be empty (a zero-sized axis) is an error;
- ``return_indices`` must stay false (the next layer cannot take a ``(values, indices)`` pair).

Validation
==========

:func:`validate_spec` checks a spec layer by layer and never raises for a bad spec; it returns a
:class:`SpecReport` with one :class:`LayerCheck` per layer (shapes in and out, the constructor
arguments with inferred values filled in, the parameter count, or the reason the layer is invalid).
Shapes are found without computing anything: each layer is built on the ``meta`` device and run on a
meta tensor. Layers whose output shape is certain once their checks pass skip the meta run: those that
keep their input's shape (activations, dropout, batch norm) and ``Linear`` (``[out_features]``), whose
meta kernels are slow (up to a millisecond a call, a second on first use) for a result already known. Results
are cached per (layer, input shape), so the live editor's re-validation on each keystroke only pays for
layers whose input changed.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import json
import math
import os
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import torch
from torch import nn

from cnnviz.core.errors import SpecBudgetError, SpecError
from cnnviz.core.fileio import atomic_writer
from cnnviz.core.jsonio import structure_problem

__all__ = [
    "SUPPORTED_TYPES",
    "LayerCheck",
    "SpecReport",
    "accepted_arguments",
    "build_model",
    "infer_output_shape",
    "load_spec",
    "save_spec",
    "spec_from_sequential",
    "validate_spec",
    "warm_up",
]

ACTIVATION_TYPES: tuple[str, ...] = (
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Hardswish", "Sigmoid", "Tanh",
)  # fmt: skip
"""Element-wise activations (Softmax, which mixes channels, is not one of them)."""
DROPOUT_TYPES: tuple[str, ...] = ("Dropout", "Dropout2d")

SUPPORTED_TYPES: tuple[str, ...] = (
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "BatchNorm2d", "BatchNorm1d", *ACTIVATION_TYPES, "Softmax", *DROPOUT_TYPES, "Flatten", "Linear", "Identity",
    "Upsample", "ZeroPad2d",
)  # fmt: skip
"""Layer types a spec may use: an explicit allow-list, user JSON never names arbitrary classes."""

_TOP_LEVEL_KEYS = ("name", "description", "input_shape", "labels", "preprocess", "layers")

# Arguments filled in from the incoming shape.
_INFERRED = {
    "Conv2d": "in_channels",
    "ConvTranspose2d": "in_channels",
    "Linear": "in_features",
    "BatchNorm2d": "num_features",
    "BatchNorm1d": "num_features",
}

# Layers whose output has their input's shape; their meta run is skipped (see module docstring).
_SHAPE_KEEPING = frozenset(
    {*ACTIVATION_TYPES, "Softmax", *DROPOUT_TYPES, "Identity", "BatchNorm2d", "BatchNorm1d"}
)

# Their tuple[int, ...] arguments take exactly two values (height, width).
_PAIR_TYPES = frozenset({"MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"})

_UPSAMPLE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_ALIGNING_MODES = ("linear", "bilinear", "bicubic", "trilinear")

_NOT_CHECKED = "not checked: an earlier layer is invalid"

Shape = tuple[int, ...]


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class LayerCheck:
    """The verdict on one layer of a spec (or, with ``index`` None, on the spec as a whole).

    ``module_kwargs`` are the constructor arguments, tuples for lists, with inferred ``in_channels``
    / ``in_features`` / ``num_features`` filled in. ``params`` counts the layer's parameters.
    ``checked`` is False for layers after the first invalid one; they are neither ok nor known bad.
    """

    index: int | None
    type: str | None
    ok: bool
    reason: str | None = None
    input_shape: Shape | None = None
    output_shape: Shape | None = None
    module_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    params: int | None = None
    checked: bool = True

    @property
    def message(self) -> str | None:
        """One line naming the layer and the reason, e.g. ``layer 3 (Conv2d): stride must ...``."""
        if self.reason is None:
            return None
        if self.index is None:
            return self.reason
        return f"{_layer_name(self.index, self.type)}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (tuples become lists)."""
        return {
            "index": self.index,
            "type": self.type,
            "ok": self.ok,
            "checked": self.checked,
            "reason": self.reason,
            "input_shape": _to_json(self.input_shape),
            "output_shape": _to_json(self.output_shape),
            "params": self.params,
            "module_kwargs": _to_json(self.module_kwargs),
        }


@dataclass(frozen=True)
class SpecReport:
    """The result of :func:`validate_spec`.

    ``layers`` has one entry per layer of the spec (empty when ``layers`` is not a list).
    ``first_error`` is the first problem found: a whole-spec one (``index`` None) or a layer's.
    ``output_shape`` is the last layer's output shape when every layer is valid.
    """

    ok: bool
    layers: list[LayerCheck] = field(hash=False)
    first_error: LayerCheck | None = None
    input_shape: Shape | None = None
    output_shape: Shape | None = None
    labels: list[str] | None = field(default=None, hash=False)
    name: str | None = None

    @property
    def message(self) -> str | None:
        """The first error as one line, or None when the spec is valid."""
        return None if self.first_error is None else self.first_error.message

    @property
    def params(self) -> int | None:
        """Total parameter count when the spec is valid."""
        if not self.ok:
            return None
        return sum(check.params or 0 for check in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for ``--format json`` and the editor."""
        return {
            "ok": self.ok,
            "error": self.message,
            "error_index": None if self.first_error is None else self.first_error.index,
            "name": self.name,
            "input_shape": _to_json(self.input_shape),
            "output_shape": _to_json(self.output_shape),
            "params": self.params,
            "labels": self.labels,
            "layers": [check.to_dict() for check in self.layers],
        }


# --------------------------------------------------------------------------------------------
# Per-type knowledge


@dataclass(frozen=True)
class _Param:
    name: str
    annotation: Any
    default: Any
    required: bool


@dataclass(frozen=True)
class _TypeInfo:
    name: str
    cls: type[nn.Module]
    params: dict[str, _Param]
    takes_device: bool

    @property
    def required(self) -> list[str]:
        inferred = _INFERRED.get(self.name)
        return [p.name for p in self.params.values() if p.required and p.name != inferred]


def _pairify(annotation: Any) -> Any:
    """``tuple[X, ...]`` -> ``tuple[X, X]``: 2-D pooling sizes take exactly height and width."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple[args[0], args[0]]  # type: ignore[valid-type]
    if origin in (Union, types.UnionType):
        return Union[tuple(_pairify(a) for a in args)]  # noqa: UP007
    return annotation


@functools.cache
def _type_info(name: str) -> _TypeInfo:
    cls = getattr(nn, name)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable hints: fall back to the raw annotations
        hints = {}
    params: dict[str, _Param] = {}
    takes_device = False
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in ("device", "dtype"):
            takes_device = takes_device or p.name == "device"
            continue
        annotation = hints.get(p.name, p.annotation)
        if isinstance(annotation, str):
            annotation = inspect.Parameter.empty
        if name in _PAIR_TYPES:
            annotation = _pairify(annotation)
        params[p.name] = _Param(p.name, annotation, p.default, p.default is inspect.Parameter.empty)
    return _TypeInfo(name, cls, params, takes_device)


def accepted_arguments(layer_type: str) -> list[str]:
    """The spec keys (besides ``type``) a layer type accepts, in constructor order."""
    if layer_type not in SUPPORTED_TYPES:
        raise SpecError(_unknown_type_reason(layer_type), None, layer_type)
    return list(_type_info(layer_type).params)


# --------------------------------------------------------------------------------------------
# Value types


def _freeze(value: Any) -> Any:
    """JSON lists -> tuples (recursively), so values are hashable and match torch's tuples."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _is_plain(value: Any) -> bool:
    """JSON scalars and lists of them: what constructor arguments can be (and hashable)."""
    if isinstance(value, tuple):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


def _matches(value: Any, ann: Any) -> bool:
    if ann is Any or ann is inspect.Parameter.empty:
        return _is_plain(value)
    if ann is type(None) or ann is None:
        return value is None
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return len(value) >= 1 and all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _matches(v, a) for v, a in zip(value, args, strict=True)
        )
    return _is_plain(value)  # an annotation we do not model: torch decides


def _describe(ann: Any) -> str:
    if ann is type(None) or ann is None:
        return "null"
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if ann in simple:
        return simple[ann]
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin in (Union, types.UnionType):
        parts: list[str] = []
        for a in args:
            text = _describe(a)
            if text not in parts:
                parts.append(text)
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        if len(set(args)) == 1:
            if len(args) == 2:
                return f"a pair [h, w] of {_plural(args[0])}"
            return f"a list of {len(args)} {_plural(args[0])}"
        return "a list [" + ", ".join(_describe(a) for a in args) + "]"
    return "a valid value"


def _plural(ann: Any) -> str:
    names = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
    if ann in names:
        return names[ann]
    return f"values that are each {_describe(ann)}"


def _show(value: Any) -> str:
    try:
        text = json.dumps(_to_json(value), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------------------
# Wording helpers


def _layer_name(index: int | None, layer_type: str | None) -> str:
    if not layer_type:
        return f"layer {index}"
    # An unknown type is user text: quote it unless it is a plain name, so messages stay one line.
    return f"layer {index} ({layer_type if layer_type.isidentifier() else _show(layer_type)})"


def _fmt_shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, tuple):
        return (value[0], value[1]) if len(value) >= 2 else (value[0], value[0])
    return (value, value)


def _fmt_pair(pair: tuple[Any, Any]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _closest_first(word: str, choices: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Close matches (difflib, case-insensitive) and all choices with those first."""
    lowered = {c.lower(): c for c in choices}
    close = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=3)]
    return close, close + [c for c in choices if c not in close]


def _unknown_type_reason(layer_type: str) -> str:
    close, ordered = _closest_first(layer_type, SUPPORTED_TYPES)
    hint = f'; did you mean "{close[0]}"?' if close else ";"
    what = "is not supported" if hasattr(nn, layer_type) else "is unknown"
    return f"layer type {_show(layer_type)} {what}{hint} supported types: {', '.join(ordered)}"


def _shape_needed(layer_type: str, needs: str, shape: Shape) -> str:
    reason = f"{layer_type} needs an input of shape {needs} but receives {_fmt_shape(shape)}"
    if len(shape) == 1:
        reason += "; move it before the Flatten"
    return reason


# --------------------------------------------------------------------------------------------
# Shape-dependent rules: each fills in inferred arguments and returns a reason in words, or None.


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
    what = f"kernel {effective[0]}x{effective[1]}"
    if dilation != (1, 1):
        what = (
            f"dilated kernel {effective[0]}x{effective[1]} "
            f"(kernel {kernel[0]}x{kernel[1]}, dilation {_fmt_pair(dilation)})"
        )
    return f"{what} is larger than its {_fmt_shape(size)} input plus padding {_fmt_pair(pad)}"


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
            given = _fmt_pair(_pair(kw.get("stride", 1)))
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
                    f"output_padding {_fmt_pair(out_pad)} must be smaller than stride "
                    f"{_fmt_pair(stride)} or dilation {_fmt_pair(dilation)}"
                )
        out = tuple(
            (size[a] - 1) * stride[a] - 2 * pad[a] + dilation[a] * (kernel[a] - 1) + out_pad[a] + 1
            for a in (0, 1)
        )
        if min(out) < 1:
            return (
                f"padding {_fmt_pair(pad)} is too large: the output would be {_fmt_shape(out)} for its "
                f"{_fmt_shape(size)} input; reduce padding"
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
            f"reflect padding {_fmt_pair(pad)} must be smaller than its {_fmt_shape(size)} input; "
            'reduce padding or use padding_mode "zeros"'
        )
    if mode == "circular" and any(pad[a] > size[a] for a in (0, 1)):
        return (
            f"circular padding {_fmt_pair(pad)} wraps more than once around its {_fmt_shape(size)} "
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
        limit = _fmt_pair((kernel[0] // 2, kernel[1] // 2))
        return (
            f"padding {_fmt_pair(pad)} is more than half the kernel size {_fmt_pair(kernel)}: "
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
            f"BatchNorm1d needs an input of shape [N] or [C, L] but receives {_fmt_shape(shape)}; "
            "use BatchNorm2d, or put it after a Flatten"
        )
    return _infer_arg(kw, "num_features", shape[0], "features" if len(shape) == 1 else "channels")


def _rule_linear(kw: dict[str, Any], shape: Shape) -> str | None:
    if len(shape) != 1:
        return f"Linear needs a flat input of shape [N]; add a Flatten before it (input is {_fmt_shape(shape)})"
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
        return (
            f"set dim for a {_fmt_shape(shape)} input: without it torch normalises over the batch"
        )
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
        return f'mode "{mode}" needs an input of shape {wanted} but receives {_fmt_shape(shape)}'
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
                    f"scale_factor {_show(scale)} shrinks its {_fmt_shape(spatial)} input to nothing "
                    f"({_fmt_shape(out)}); use a larger factor"
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
            f"padding {_show(padding)} crops its {_fmt_shape(shape[1:])} input to nothing "
            f"({_fmt_shape(out)}); negative padding must leave at least one row and column"
        )
    return None


_RULES: dict[str, Callable[[dict[str, Any], Shape], str | None]] = {
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


# --------------------------------------------------------------------------------------------
# Checking one layer


@dataclass(frozen=True)
class _Outcome:
    reason: str | None
    output_shape: Shape | None
    kwargs: tuple[tuple[str, Any], ...]
    params: int | None


def _static_check(layer: Any) -> tuple[str | None, str | None, dict[str, Any]]:
    """Checks that need no shape: (type, reason, frozen kwargs)."""
    if not isinstance(layer, dict):
        return (
            None,
            f'a layer must be an object like {{"type": "ReLU"}}, not {_show(layer)}',
            {},
        )
    layer_type = layer.get("type")
    if layer_type is None:
        return None, 'the layer has no "type"; add one, e.g. "type": "Conv2d"', {}
    if not isinstance(layer_type, str):
        return (
            None,
            f'"type" must be a layer type name such as "Conv2d", not {_show(layer_type)}',
            {},
        )
    if layer_type not in SUPPORTED_TYPES:
        return layer_type, _unknown_type_reason(layer_type), {}
    info = _type_info(layer_type)
    kwargs: dict[str, Any] = {}
    for key, raw in layer.items():
        if key == "type":
            continue
        param = info.params.get(key)
        if param is None:
            close, ordered = _closest_first(str(key), list(info.params))
            hint = f'; did you mean "{close[0]}"?' if close else ";"
            accepted = ", ".join(ordered) if ordered else "none"
            return (
                layer_type,
                f"unknown argument {_show(key)} for {layer_type}{hint} accepted arguments: {accepted}",
                {},
            )
        value = _freeze(raw)
        if not _matches(value, param.annotation):
            return layer_type, f"{key} must be {_describe(param.annotation)}, not {_show(raw)}", {}
        kwargs[key] = value
    missing = [name for name in info.required if name not in kwargs]
    if missing:
        needs = ", ".join(info.required)
        return (
            layer_type,
            f'missing required argument "{missing[0]}"; {layer_type} needs {needs}',
            {},
        )
    return layer_type, None, kwargs


@functools.lru_cache(maxsize=8192)
def _shape_check(layer_type: str, kwargs: tuple[tuple[str, Any], ...], shape: Shape) -> _Outcome:
    """Shape-dependent checks and the meta run; pure, hence cached."""
    kw = dict(kwargs)
    rule = _RULES.get(layer_type)
    reason = rule(kw, shape) if rule else None
    info = _type_info(layer_type)
    frozen = tuple((name, kw[name]) for name in info.params if name in kw)  # constructor order
    if reason:
        return _Outcome(reason, None, frozen, None)
    # Called inside _quiet(): warnings silenced, no autograd.
    try:
        extra = {"device": "meta"} if info.takes_device else {}
        module = info.cls(**kw, **extra)
        params = sum(p.numel() for p in module.parameters())
        if layer_type in _SHAPE_KEEPING:
            out: Shape = shape
        elif layer_type == "Linear":
            # Its rule has checked the flat input; the first meta matmul costs about a second.
            out = (kw["out_features"],)
        else:
            module.eval()
            result = module(torch.empty((1, *shape), device="meta"))
            if not isinstance(result, torch.Tensor):
                return _Outcome("the layer returns more than one tensor", None, frozen, None)
            if result.dim() == 0 or result.shape[0] != 1:
                return _Outcome(
                    "the layer changes the batch dimension; a layer must keep it first",
                    None,
                    frozen,
                    None,
                )
            out = tuple(result.shape[1:])
    except Exception as exc:  # torch's own refusal, for the cases not worded above
        text = _one_line(str(exc)) or type(exc).__name__
        return _Outcome(text, None, frozen, None)
    if len(out) == 0 or min(out) < 1:
        return _Outcome(
            f"its output would be empty ({_fmt_shape(out) or 'a scalar'}) for its "
            f"{_fmt_shape(shape)} input",
            None,
            frozen,
            None,
        )
    return _Outcome(None, out, frozen, params)


# --------------------------------------------------------------------------------------------
# Whole specs


def _spec_problem(reason: str) -> LayerCheck:
    return LayerCheck(index=None, type=None, ok=False, reason=reason)


def _check_input_shape(value: Any) -> str | None:
    if value is None:
        return 'the spec has no "input_shape"; add "input_shape": [C, H, W], e.g. [1, 28, 28]'
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return f'"input_shape" must be [C, H, W], three positive integers such as [1, 28, 28], not {_show(value)}'
    return None


def validate_spec(spec: Any) -> SpecReport:
    """Check a spec layer by layer; never raises for a bad spec.

    Every layer up to and including the first invalid one gets a :class:`LayerCheck` with its
    shapes or its reason; later layers are marked not checked. Whole-spec problems (not an object,
    bad ``input_shape``, ``layers`` not a list, unknown keys, bad ``labels``) have ``index`` None.
    """
    too_deep = structure_problem(dict(spec) if isinstance(spec, Mapping) else spec)
    if too_deep:
        reason = "the spec " + too_deep.removeprefix("it ")
        return SpecReport(ok=False, layers=[], first_error=_spec_problem(reason))
    if not isinstance(spec, Mapping):
        reason = f'a spec must be a JSON object with "input_shape" and "layers", not {_show(spec)}'
        return SpecReport(ok=False, layers=[], first_error=_spec_problem(reason))
    problems: list[str] = []
    unknown = [k for k in spec if k not in _TOP_LEVEL_KEYS]
    if unknown:
        close, _ = _closest_first(str(unknown[0]), _TOP_LEVEL_KEYS)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        problems.append(
            f"unknown spec key {_show(unknown[0])}{hint}; a spec has only {', '.join(_TOP_LEVEL_KEYS)}"
        )
    shape_reason = _check_input_shape(spec.get("input_shape"))
    if shape_reason:
        problems.append(shape_reason)
    layers = spec.get("layers")
    if layers is None:
        problems.append('the spec has no "layers"; add "layers": [...], a list of layer objects')
    elif not isinstance(layers, list | tuple):
        problems.append(f'"layers" must be a list of layer objects, not {_show(layers)}')
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(f'"name" must be a string, not {_show(name)}')
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f'"description" must be a string, not {_show(description)}')
    labels = spec.get("labels")
    if labels is not None and (
        not isinstance(labels, list | tuple) or not all(isinstance(v, str) for v in labels)
    ):
        problems.append(
            f'"labels" must be a list of strings such as ["cat", "dog"], not {_show(labels)}'
        )
        labels = None
    preprocess = spec.get("preprocess")
    if preprocess is not None and not isinstance(preprocess, dict):
        problems.append(f'"preprocess" must be an object, not {_show(preprocess)}')

    layer_list = list(layers) if isinstance(layers, list | tuple) else []
    input_shape = None if shape_reason else tuple(spec["input_shape"])
    label_list = list(labels) if labels is not None else None
    name_text = name if isinstance(name, str) else None
    if input_shape is None:
        checks = [
            _unchecked(i, layer, "not checked: the spec's input_shape is invalid")
            for i, layer in enumerate(layer_list)
        ]
        return SpecReport(
            ok=False,
            layers=checks,
            first_error=_spec_problem(problems[0]),
            labels=label_list,
            name=name_text,
        )

    checks, shape = _check_layers(layer_list, input_shape)
    layer_error = next((c for c in checks if not c.ok), None)
    if layer_error is None and label_list is not None and shape is not None:
        if len(shape) != 1:
            problems.append(
                f"the spec has {len(label_list)} labels but the last layer gives a "
                f"{_fmt_shape(shape)} output, not a flat one; end with Flatten and Linear"
            )
        elif shape[0] != len(label_list):
            problems.append(
                f"the spec has {len(label_list)} labels but the last layer gives {shape[0]} outputs; "
                f"give {shape[0]} labels or change the last layer to {len(label_list)} outputs"
            )
    first_error = _spec_problem(problems[0]) if problems else layer_error
    ok = first_error is None
    return SpecReport(
        ok=ok,
        layers=checks,
        first_error=first_error,
        input_shape=input_shape,
        output_shape=shape if layer_error is None else None,
        labels=label_list,
        name=name_text,
    )


def _unchecked(index: int, layer: Any, reason: str) -> LayerCheck:
    layer_type = layer.get("type") if isinstance(layer, dict) else None
    return LayerCheck(
        index=index,
        type=layer_type if isinstance(layer_type, str) else None,
        ok=False,
        reason=reason,
        checked=False,
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Building and meta-running layers: torch's deprecation warnings are noise here."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        yield


def _check_layers(layers: list[Any], input_shape: Shape) -> tuple[list[LayerCheck], Shape | None]:
    with _quiet():
        return _check_layers_quietly(layers, input_shape)


class _BudgetReason(str):
    """A layer's reason that is the memory budget: :func:`build_model` raises SpecBudgetError for it."""


# Layers whose output is their input (or a view of it): no new memory.
_ALIASING = frozenset({"Flatten", "Identity"})


def _budget_check(
    layer_type: str, outcome: _Outcome, held: int, limit: int | None
) -> tuple[_BudgetReason | None, int]:
    """Whether a model holding ``held`` bytes can add this layer's parameters and output; the new total.

    Counted as a capture holds them: float32 parameters, the input and every layer's output at batch 1
    (see :mod:`cnnviz.core.budget`). Computed from the hyperparameters and the meta shapes, so a layer that
    cannot fit is refused before torch allocates its weight.
    """
    from cnnviz.core import budget

    assert outcome.output_shape is not None
    param_bytes = (outcome.params or 0) * budget.FLOAT_BYTES
    out_bytes = 0 if layer_type in _ALIASING else budget.tensor_bytes((1, *outcome.output_shape))
    total = held + param_bytes + out_bytes
    if limit is None or total <= limit:
        return None, total
    over = f"over the {budget.format_bytes(limit)} memory budget"
    if param_bytes >= out_bytes:
        what = f"its {outcome.params:,} parameters would take {budget.format_bytes(param_bytes)}"
        advice = "use fewer channels or features"
    else:
        dims = budget.shape_text((1, *outcome.output_shape))
        what = f"its {dims} output would take {budget.format_bytes(out_bytes)}"
        advice = "use a smaller input_shape, fewer channels or a smaller scale"
    if max(param_bytes, out_bytes) <= limit:
        what += f", bringing the model to {budget.format_bytes(total)}"
    return _BudgetReason(f"{what}, {over}; {advice}, or {budget.ADVICE}"), total


def _check_layers_quietly(
    layers: list[Any], input_shape: Shape
) -> tuple[list[LayerCheck], Shape | None]:
    from cnnviz.core import budget

    checks: list[LayerCheck] = []
    shape: Shape | None = input_shape
    limit = budget.memory_budget()
    held = budget.tensor_bytes((1, *input_shape))
    for index, layer in enumerate(layers):
        if shape is None:
            checks.append(_unchecked(index, layer, _NOT_CHECKED))
            continue
        layer_type, reason, kwargs = _static_check(layer)
        if reason is None:
            assert layer_type is not None
            outcome = _shape_check(layer_type, tuple(kwargs.items()), shape)
            reason, kwargs = outcome.reason, dict(outcome.kwargs)
            if reason is None:
                reason, held = _budget_check(layer_type, outcome, held, limit)
            if reason is None:
                checks.append(
                    LayerCheck(
                        index=index,
                        type=layer_type,
                        ok=True,
                        input_shape=shape,
                        output_shape=outcome.output_shape,
                        module_kwargs=kwargs,
                        params=outcome.params,
                    )
                )
                shape = outcome.output_shape
                continue
        checks.append(
            LayerCheck(
                index=index,
                type=layer_type,
                ok=False,
                reason=reason,
                input_shape=shape,
                module_kwargs=kwargs,
            )
        )
        shape = None
    return checks, shape


_WARM_UP_SPEC = {
    "input_shape": [2, 9, 9],
    "layers": [
        {"type": "ZeroPad2d", "padding": 1},
        {"type": "Conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "ConvTranspose2d", "out_channels": 2, "kernel_size": 2},
        {"type": "Upsample", "scale_factor": 2},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "AvgPool2d", "kernel_size": 2},
        {"type": "AdaptiveMaxPool2d", "output_size": 2},
        {"type": "AdaptiveAvgPool2d", "output_size": 1},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 2},
    ],
}


def warm_up() -> None:
    """Pay now torch's one-time cost of the first meta runs (a second or two: it imports sympy).

    An editor that validates on every keystroke can call this in a background thread at start-up.
    """
    validate_spec(_WARM_UP_SPEC)


def _raise_for(report: SpecReport) -> None:
    error = report.first_error
    if error is not None:
        cls = SpecBudgetError if isinstance(error.reason, _BudgetReason) else SpecError
        raise cls(error.message or "the spec is invalid", error.index, error.type)


def build_model(spec: Any) -> nn.Sequential:
    """Validate ``spec`` and build it on the CPU as ``nn.Sequential`` (layers named "0", "1", ...).

    Raises :class:`SpecError` (one line, with ``index`` and ``layer_type``) for the first problem.
    The model is in training mode with torch's default initialisation.
    """
    report = validate_spec(spec)
    _raise_for(report)
    modules: list[nn.Module] = []
    for check in report.layers:
        assert check.type is not None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                modules.append(_type_info(check.type).cls(**check.module_kwargs))
        except Exception as exc:
            raise SpecError(
                f"{_layer_name(check.index, check.type)}: {_one_line(str(exc))}",
                check.index,
                check.type,
            ) from None
    return nn.Sequential(*modules)


def infer_output_shape(spec: Any) -> Shape:
    """The output shape (without batch) of a valid spec; raises :class:`SpecError` otherwise."""
    report = validate_spec(spec)
    _raise_for(report)
    assert report.output_shape is not None
    return report.output_shape


# --------------------------------------------------------------------------------------------
# Files


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a spec JSON file. Only the file and JSON syntax are checked; see :func:`validate_spec`.

    Raises :class:`SpecError` for a missing or unreadable file (or a FIFO, device, folder), one larger
    than 16 MiB, bytes that are not UTF-8, bad JSON (with line and column), NaN or infinite numbers,
    absurdly long integers, deep nesting or a key given twice (see :mod:`cnnviz.core.jsonio`).
    """
    from cnnviz.core.jsonio import read_json

    p = Path(path)
    data = read_json(
        p,
        f"spec file {p}",
        error=SpecError,
        hint='a spec is a UTF-8 JSON object with "input_shape" and "layers"',
    )
    if not isinstance(data, dict):
        raise SpecError(
            f'{p.name} must hold a JSON object with "input_shape" and "layers", not {_show(data)}'
        )
    return data


def _dumps(spec: Mapping[str, Any]) -> str:
    """Pretty JSON with one layer per line (diff-friendly and readable)."""
    order = [k for k in _TOP_LEVEL_KEYS if k in spec] + [
        k for k in spec if k not in _TOP_LEVEL_KEYS
    ]
    parts = []
    for key in order:
        value = _to_json(spec[key])
        head = f"  {json.dumps(key)}: "
        if key == "layers" and isinstance(value, list) and value:
            body = ",\n".join(
                "    " + json.dumps(layer, ensure_ascii=False, allow_nan=False) for layer in value
            )
            parts.append(head + "[\n" + body + "\n  ]")
            continue
        flat = json.dumps(value, ensure_ascii=False, allow_nan=False)
        if len(head) + len(flat) > 100:
            flat = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2).replace(
                "\n", "\n  "
            )
        parts.append(head + flat)
    return "{\n" + ",\n".join(parts) + "\n}\n"


def save_spec(spec: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``spec`` as pretty JSON, atomically (temp file in the same folder, fsync, replace).

    The spec is not validated, so work in progress can be saved; raises :class:`SpecError` when it
    holds something JSON cannot store or the file cannot be written.
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f"a spec to save must be an object (dict), not {type(spec).__name__}")
    try:
        text = _dumps(spec)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"the spec cannot be saved as JSON: {_one_line(str(exc))}") from None
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise SpecError(f"cannot save spec to {p}: the folder {folder} does not exist")
    try:
        with atomic_writer(p, text=True) as handle:
            handle.write(text)
    except OSError as exc:
        raise SpecError(f"cannot save spec to {p}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------
# From modules back to specs


def _spec_value(value: Any) -> Any:
    """Module attribute -> spec value: tuples to lists, equal pairs/quads to one number."""
    if isinstance(value, torch.Size):
        value = tuple(value)
    if isinstance(value, tuple | list):
        items = [_spec_value(v) for v in value]
        if len(items) > 1 and all(v == items[0] and type(v) is type(items[0]) for v in items):
            return items[0]
        return items
    return value


def spec_from_sequential(
    model: nn.Sequential,
    input_shape: Shape | list[int],
    *,
    labels: list[str] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The spec of an ``nn.Sequential`` of supported layers (e.g. VGG's ``features``, a trained model).

    Constructor arguments are read back from module attributes; only those that differ from the
    defaults are written, and inferred ones (``in_channels`` ...) are left out but checked against
    the modules. Layers are renamed by position ("0", "1", ...). Raises :class:`SpecError` naming the
    first unsupported module, or the first layer that does not fit ``input_shape``.
    """
    if not isinstance(model, nn.Sequential):
        raise SpecError(f"only nn.Sequential models can become specs, not {type(model).__name__}")
    layers: list[dict[str, Any]] = []
    modules = list(model)
    for index, module in enumerate(modules):
        layer_type = type(module).__name__
        if layer_type not in SUPPORTED_TYPES or type(module) is not getattr(nn, layer_type):
            close, ordered = _closest_first(layer_type, SUPPORTED_TYPES)
            raise SpecError(
                f"{_layer_name(index, layer_type)}: this module type is not supported in specs; "
                f"supported types: {', '.join(ordered)}",
                index,
                layer_type,
            )
        info = _type_info(layer_type)
        layer: dict[str, Any] = {"type": layer_type}
        for param in info.params.values():
            if param.name == _INFERRED.get(layer_type):
                continue
            if param.name == "bias":
                if getattr(module, "affine", True) is False:
                    continue
                value: Any = module.bias is not None
            elif param.name == "stride" and layer_type in ("MaxPool2d", "AvgPool2d"):
                value = _spec_value(module.stride)
                if value == _spec_value(module.kernel_size):
                    continue  # torch stores the default (None) as the kernel size
            elif hasattr(module, param.name):
                value = _spec_value(getattr(module, param.name))
            else:
                raise SpecError(
                    f"{_layer_name(index, layer_type)}: cannot read its {param.name} argument back",
                    index,
                    layer_type,
                )
            if (
                not param.required
                and _spec_value(param.default) == value
                and type(value) is type(_spec_value(param.default))
            ):
                continue
            layer[param.name] = value
        layers.append(layer)
    spec: dict[str, Any] = {}
    if name is not None:
        spec["name"] = name
    spec["input_shape"] = list(input_shape)
    if labels is not None:
        spec["labels"] = list(labels)
    spec["layers"] = layers
    report = validate_spec(spec)
    _raise_for(report)
    for index, (module, check) in enumerate(zip(modules, report.layers, strict=True)):
        key = _INFERRED.get(check.type or "")
        if key is not None and getattr(module, key) != check.module_kwargs[key]:
            raise SpecError(
                f"{_layer_name(index, check.type)}: the module has {key} {getattr(module, key)} but "
                f"receives {check.module_kwargs[key]} from input_shape {_fmt_shape(tuple(input_shape))}",
                index,
                check.type,
            )
    return spec
