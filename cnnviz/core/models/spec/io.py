"""Spec files and conversions: reading and writing spec JSON, specs of ``nn.Sequential`` models, and the
preprocessing a spec implies."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.core import text
from cnnviz.core.errors import SpecError, one_line
from cnnviz.core.fileio import atomic_writer
from cnnviz.core.images import Preprocess
from cnnviz.core.models.layertypes import INFERRED as _INFERRED
from cnnviz.core.models.layertypes import SUPPORTED_TYPES
from cnnviz.core.models.spec.build import _raise_for
from cnnviz.core.models.spec.check import validate_spec
from cnnviz.core.models.spec.schema import (
    _TOP_LEVEL_KEYS,
    Shape,
    _closest_first,
    _layer_name,
    _show,
    _to_json,
    _type_info,
)


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
        raise SpecError(f"the spec cannot be saved as JSON: {one_line(exc)}") from None
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise SpecError(f"cannot save spec to {p}: the folder {folder} does not exist")
    try:
        with atomic_writer(p, text=True) as handle:
            handle.write(text)
    except OSError as exc:
        raise SpecError(f"cannot save spec to {p}: {exc.strerror or exc}") from None


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


def layer_object(module: nn.Module, index: int | None = None) -> dict[str, Any]:
    """The spec layer object of one supported module: its type and the constructor arguments read back.

    Only arguments that differ from the defaults are written, and the inferred one (``in_channels`` ...) is
    left out. Raises :class:`SpecError` for a module type specs do not support (``index`` names its place).
    """
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
    return layer


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
    modules = list(model)
    layers = [layer_object(module, index) for index, module in enumerate(modules)]
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
                f"receives {check.module_kwargs[key]} from input_shape {text.dims(tuple(input_shape))}",
                index,
                check.type,
            )
    return spec


def spec_preprocess(spec: Mapping[str, Any]) -> Preprocess:
    """How pictures become inputs of ``spec``: its ``preprocess`` object, else a resize to its input shape."""
    pre = spec.get("preprocess")
    if isinstance(pre, dict):
        return Preprocess.from_dict(pre)
    c, h, w = (int(v) for v in spec["input_shape"])
    return Preprocess(c, (h, w), "resize", None, (0.5,) * c, (0.5,) * c)
