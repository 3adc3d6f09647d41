"""The spec schema: what a layer may say, checked against torch's own constructor signatures.

The results (``LayerCheck``, ``SpecReport``), the per-type argument table read from each class's
``__init__``, how JSON values are matched to annotations, and the words every spec message is made of.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from torch import nn

from cnnviz.core.errors import SpecError
from cnnviz.core.models.layertypes import INFERRED as _INFERRED
from cnnviz.core.models.layertypes import PAIR_TYPES as _PAIR_TYPES
from cnnviz.core.models.layertypes import SUPPORTED_TYPES

Shape = tuple[int, ...]

_TOP_LEVEL_KEYS = ("name", "description", "input_shape", "labels", "preprocess", "layers")

_UPSAMPLE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


_ALIGNING_MODES = ("linear", "bilinear", "bicubic", "trilinear")


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
        try:
            text = repr(value)
        except ValueError:  # Python refuses to print integers of more than 4,300 digits
            text = "a value too large to print"
    return text if len(text) <= 40 else text[:37] + "..."


def _layer_name(index: int | None, layer_type: str | None) -> str:
    if not layer_type:
        return f"layer {index}"
    # An unknown type is user text: quote it unless it is a plain name, so messages stay one line.
    return f"layer {index} ({layer_type if layer_type.isidentifier() else _show(layer_type)})"


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, tuple):
        return (value[0], value[1]) if len(value) >= 2 else (value[0], value[0])
    return (value, value)


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
