"""Live layer editing: an edit session over a sequence of layers, its live table, and Apply.

What can be edited
==================

Models that are one plain sequence of layers: spec JSON models, ``cnnviz train`` checkpoints (both carry a
spec), any ``nn.Sequential`` of spec-supported layers, and the ``features`` part of torchvision's VGG and AlexNet.
For VGG/AlexNet the rest of the network (``avgpool``, the flatten, ``classifier``) is kept as *locked* layers:
shown in the table and checked (an edit that no longer fits the classifier is an error in words), never edited.
Other models are read-only, and :func:`editable_architecture` says why.

Snapshots
=========

An :class:`Architecture` is an immutable snapshot: the input shape and a tuple of :class:`EditLayer`, each a
spec layer object with a *uid*. Every edit returns a new snapshot, so undo is a matter of keeping the old one.
The uid is what ties a layer to its past: the layers of the loaded model get uids 0..n-1 (their positions in
it) and inserted layers get fresh ones, so a layer that was moved, or has an insertion before it, is still
recognised by Apply (its weights are kept) and by the deltas against the original.

Inferred arguments (``in_channels``, ``in_features``, ``num_features``) are left out of editable layers, so they
follow the layer before: change a convolution's ``out_channels`` and the next convolution, batch norm or linear
layer adapts. Where a spec states one that disagrees with its input it is kept, and the row says so.

The live table
==============

:func:`live_table` computes, without running anything, what :func:`cnnviz.core.summary.summarize` computes for
the built model: shapes, parameters with their formula, MACs and receptive fields. Shapes come from
:func:`cnnviz.core.spec.validate_spec` (torch's own shape rules on meta tensors, cached per layer and input
shape); parameters, MACs and formulas from the summary's own per-module functions applied to meta modules
(cached per configuration); receptive fields from :func:`cnnviz.core.receptive.analyse` on the chain's layer
graph. A fresh ``summarize`` of a meta-built model gives the same numbers but spends most of its time in meta
kernels (about 0.2 s for 30 layers); this path takes a few milliseconds and the tests hold both to the same
figures. Rows after the first invalid layer are *not checked*; the ones before it stay valid.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import json
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, cast

import torch
import torch.fx as fx
from torch import nn

from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.graph import GraphNode, LayerGraph
from cnnviz.core.models import LoadedModel
from cnnviz.core.receptive import analyse, to_receptive_field
from cnnviz.core.spec import (
    ACTIVATION_TYPES,
    DROPOUT_TYPES,
    SUPPORTED_TYPES,
    SpecReport,
    build_model,
    validate_spec,
)
from cnnviz.core.summary import fill_layer_geometry, module_macs, module_params
from cnnviz.core.summary_types import LayerRow, ReceptiveField, Summary

__all__ = [
    "ACTIVATION_TYPES",
    "INSERTABLE",
    "POOLING_TYPES",
    "ApplyResult",
    "Architecture",
    "DenseComparison",
    "EditLayer",
    "EditSession",
    "LiveRow",
    "LiveTable",
    "NotEditableError",
    "apply_architecture",
    "architecture_from_spec",
    "argument_default",
    "delta_text",
    "editable_architecture",
    "live_table",
    "new_layer",
]

Shape = tuple[int, ...]

INFERRED: dict[str, str] = {
    "Conv2d": "in_channels",
    "ConvTranspose2d": "in_channels",
    "Linear": "in_features",
    "BatchNorm2d": "num_features",
    "BatchNorm1d": "num_features",
}
"""The argument of each type that follows from its input (left out of editable layers)."""

POOLING_TYPES: tuple[str, ...] = ("MaxPool2d", "AvgPool2d")
ADAPTIVE_TYPES: tuple[str, ...] = ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")

INSERTABLE: tuple[str, ...] = (
    "Conv2d",
    "Conv2d 1×1",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "BatchNorm2d",
    *ACTIVATION_TYPES,
    "Dropout",
    "Dropout2d",
    "Flatten",
    "Linear",
)
"""What the editor offers to insert (``"Conv2d 1×1"`` is a pointwise convolution)."""

# Torchvision families that are not a plain sequence, and why (matched on the class name).
_READ_ONLY_REASONS = (
    ("ResNet", "its blocks add their input to their output (residual connections)"),
    ("ResNeXt", "its blocks add their input to their output (residual connections)"),
    ("Inception", "its blocks run parallel branches and concatenate them"),
    ("GoogLeNet", "its blocks run parallel branches and concatenate them"),
    ("DenseNet", "each layer concatenates the outputs of all layers before it"),
    ("MobileNet", "its inverted-residual blocks add their input to their output"),
    ("EfficientNet", "its blocks add their input to their output and use squeeze-and-excitation"),
    ("RegNet", "its blocks add their input to their output (residual connections)"),
    ("ShuffleNet", "its blocks split, shuffle and concatenate channels"),
    ("SqueezeNet", "its Fire modules run two branches and concatenate them"),
    ("MNASNet", "its blocks add their input to their output"),
    ("ConvNeXt", "its blocks add their input to their output and use layer norm"),
    ("VisionTransformer", "it is a transformer made of attention blocks, not a sequence of layers"),
    ("SwinTransformer", "it is a transformer made of attention blocks, not a sequence of layers"),
    ("MaxVit", "it mixes attention and convolution blocks with residual connections"),
)

_WHAT_IS_EDITABLE = (
    "the editor changes models that are one plain sequence of layers: spec files, cnnviz train "
    "checkpoints, and the features of VGG and AlexNet"
)


class NotEditableError(CnnvizError):
    """The model is shown read-only; the message says why."""


# --------------------------------------------------------------------------------------------------------------
# Snapshots


def _frozen_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy (lists become tuples, as validate_spec reads them)."""

    def freeze(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return tuple(freeze(x) for x in v)
        return v

    return MappingProxyType({str(k): freeze(v) for k, v in config.items()})


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class EditLayer:
    """One layer of a snapshot: a spec layer object (``{"type": ..., args}``) with its identity.

    ``locked`` layers belong to a part of the model that is not editable (VGG's classifier); they carry a fixed
    display ``name``. Editable layers are named by position (with the architecture's prefix).
    """

    uid: int
    config: Mapping[str, Any]
    locked: bool = False
    name: str | None = None

    @property
    def type(self) -> str:
        return str(self.config.get("type"))

    def to_json(self) -> dict[str, Any]:
        return {k: _json_value(v) for k, v in self.config.items()}

    def key(self) -> str:
        """A canonical text of the configuration (for comparisons and alignment)."""
        return json.dumps(self.to_json(), sort_keys=True, default=str)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EditLayer):
            return NotImplemented
        return (
            self.uid == other.uid
            and self.locked == other.locked
            and self.name == other.name
            and dict(self.config) == dict(other.config)
        )

    def __hash__(self) -> int:
        return hash((self.uid, self.key()))


@dataclass(frozen=True)
class Architecture:
    """An immutable snapshot of the layers being edited.

    ``prefix`` names editable layers (``"features."`` for VGG, ``""`` for specs); ``meta`` holds the spec's
    other keys (name, labels, description, preprocess); ``family`` is ``"spec"`` or ``"features"``.
    """

    input_shape: tuple[int, int, int]
    layers: tuple[EditLayer, ...]
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    prefix: str = ""
    family: str = "spec"

    # -- reading ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    @property
    def editable_count(self) -> int:
        """Number of editable layers; they come first, locked ones after."""
        return sum(1 for layer in self.layers if not layer.locked)

    def name_of(self, index: int) -> str:
        layer = self.layers[index]
        if layer.locked and layer.name:
            return layer.name
        return f"{self.prefix}{index}"

    def index_of(self, uid: int) -> int | None:
        for i, layer in enumerate(self.layers):
            if layer.uid == uid:
                return i
        return None

    def spec(self, *, editable_only: bool = False) -> dict[str, Any]:
        """The spec JSON object (locked layers included, unless ``editable_only``)."""
        spec: dict[str, Any] = {}
        for key in ("name", "description"):
            if self.meta.get(key) is not None:
                spec[key] = self.meta[key]
        spec["input_shape"] = list(self.input_shape)
        if self.meta.get("labels") is not None and not editable_only:
            spec["labels"] = list(self.meta["labels"])
        if self.meta.get("preprocess") is not None:
            spec["preprocess"] = copy.deepcopy(dict(self.meta["preprocess"]))
        spec["layers"] = [
            layer.to_json() for layer in self.layers if not (editable_only and layer.locked)
        ]
        return spec

    # -- edits (each returns a new snapshot) -------------------------------------------------------------------
    def _check_index(self, index: int, what: str = "edit") -> EditLayer:
        if not 0 <= index < len(self.layers):
            raise CnnvizError(
                f"there is no layer {index} to {what}; the model has layers 0 to {len(self.layers) - 1}"
            )
        layer = self.layers[index]
        if layer.locked:
            raise CnnvizError(
                f"layer {self.name_of(index)} is part of the fixed part of the model and cannot be "
                f"changed; only layers {self.prefix}0 to {self.prefix}{self.editable_count - 1} are editable"
            )
        return layer

    def _with_layers(self, layers: Iterable[EditLayer]) -> Architecture:
        return replace(self, layers=tuple(layers))

    def with_param(self, index: int, key: str, value: Any) -> Architecture:
        """Set argument ``key`` of layer ``index`` (``None`` removes it: torch's default applies)."""
        layer = self._check_index(index)
        if key == "type":
            return self.with_type(index, value)
        config = dict(layer.config)
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
        return self._replace_at(index, replace(layer, config=_frozen_config(config)))

    def with_type(self, index: int, new_type: str) -> Architecture:
        """Change a layer's type (MaxPool2d <-> AvgPool2d, ReLU -> GELU ...), keeping arguments both accept."""
        layer = self._check_index(index)
        if new_type not in SUPPORTED_TYPES:
            raise CnnvizError(
                f"layer type {new_type!r} is not supported; use one of {', '.join(SUPPORTED_TYPES)}"
            )
        accepted = _arguments(new_type)
        config = {"type": new_type}
        config.update({k: v for k, v in layer.config.items() if k != "type" and k in accepted})
        return self._replace_at(index, replace(layer, config=_frozen_config(config)))

    def _replace_at(self, index: int, layer: EditLayer) -> Architecture:
        layers = list(self.layers)
        layers[index] = layer
        return self._with_layers(layers)

    def inserted(self, index: int, config: Mapping[str, Any], uid: int) -> Architecture:
        """A new layer at position ``index`` (0 .. editable_count); later layers move down."""
        if not 0 <= index <= self.editable_count:
            raise CnnvizError(
                f"a layer can be inserted at positions 0 to {self.editable_count}, not {index}"
            )
        if any(layer.uid == uid for layer in self.layers):
            raise CnnvizError(f"layer id {uid} is already in use")
        layers = list(self.layers)
        layers.insert(index, EditLayer(uid, _frozen_config(config)))
        return self._with_layers(layers)

    def without(self, index: int) -> Architecture:
        """The snapshot without layer ``index``."""
        self._check_index(index, "delete")
        return self._with_layers(layer for i, layer in enumerate(self.layers) if i != index)

    def moved(self, index: int, offset: int) -> Architecture:
        """Layer ``index`` moved by ``offset`` places (-1: up), within the editable layers."""
        self._check_index(index, "move")
        target = index + offset
        if not 0 <= target < self.editable_count:
            raise CnnvizError(
                f"layer {self.name_of(index)} cannot move {'up' if offset < 0 else 'down'} any further"
            )
        layers = list(self.layers)
        layer = layers.pop(index)
        layers.insert(target, layer)
        return self._with_layers(layers)


@functools.cache
def _signature_params(layer_type: str) -> dict[str, inspect.Parameter]:
    cls = getattr(nn, layer_type)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {
        p.name: p
        for p in params
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("device", "dtype")
    }


def _arguments(layer_type: str) -> list[str]:
    return list(_signature_params(layer_type)) if layer_type in SUPPORTED_TYPES else []


def argument_default(layer_type: str, key: str) -> Any:
    """torch's default for argument ``key`` of ``layer_type`` (``inspect.Parameter.empty`` when required)."""
    param = _signature_params(layer_type).get(key)
    if param is None:
        raise CnnvizError(f"{layer_type} has no argument {key!r}")
    return param.default


def new_layer(kind: str, input_shape: Shape | None) -> dict[str, Any]:
    """A sensible new layer of ``kind`` (one of :data:`INSERTABLE`) for an input of ``input_shape``.

    New convolutions keep the channel count and new linear layers the feature count, so an insertion leaves
    the layers after it valid; the student then changes what the lesson is about.
    """
    spatial = input_shape is not None and len(input_shape) == 3
    flat = input_shape is not None and len(input_shape) == 1
    channels = int(input_shape[0]) if input_shape else 16
    if kind == "Conv2d":
        return {
            "type": "Conv2d",
            "out_channels": channels if spatial else 16,
            "kernel_size": 3,
            "padding": 1,
        }
    if kind in ("Conv2d 1×1", "Conv2d 1x1"):
        return {"type": "Conv2d", "out_channels": channels if spatial else 16, "kernel_size": 1}
    if kind in POOLING_TYPES:
        return {"type": kind, "kernel_size": 2}
    if kind in ADAPTIVE_TYPES:
        return {"type": kind, "output_size": 1}
    if kind == "BatchNorm2d":
        return {"type": "BatchNorm1d" if flat else "BatchNorm2d"}
    if kind in ("BatchNorm1d", "Flatten", "Identity") or kind in ACTIVATION_TYPES:
        return {"type": kind}
    if kind in DROPOUT_TYPES:
        return {"type": kind, "p": 0.5}
    if kind == "Linear":
        return {"type": "Linear", "out_features": channels if flat else 10}
    raise CnnvizError(f"cannot insert a {kind!r} layer; choose one of {', '.join(INSERTABLE)}")


# --------------------------------------------------------------------------------------------------------------
# From models and specs to snapshots


def _strip_inferred(layers: list[dict[str, Any]], input_shape: Shape) -> list[dict[str, Any]]:
    """Drop inferred arguments that agree with the incoming shape, so they follow edits upstream."""
    report = validate_spec({"input_shape": list(input_shape), "layers": layers})
    out = []
    for layer, check in zip(layers, report.layers, strict=True):
        key = INFERRED.get(str(layer.get("type")))
        layer = dict(layer)
        if key is not None and key in layer and check.ok and check.input_shape is not None:
            if layer[key] == check.module_kwargs.get(key):
                layer.pop(key)
        out.append(layer)
    return out


def architecture_from_spec(
    spec: Mapping[str, Any], *, input_shape: Shape | None = None
) -> Architecture:
    """An editable snapshot of a spec (uids 0..n-1 by position); ``input_shape`` overrides the spec's.

    Raises SpecError when the spec has no usable ``input_shape`` or ``layers`` list (layer problems are kept
    and shown as red rows, not raised).
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f"a spec must be a JSON object, not {type(spec).__name__}")
    shape = input_shape if input_shape is not None else spec.get("input_shape")
    if (
        not isinstance(shape, list | tuple)
        or len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    ):
        raise SpecError(
            f'"input_shape" must be [C, H, W], three positive integers such as [1, 28, 28], not {shape!r}'
        )
    layers = spec.get("layers")
    if not isinstance(layers, list | tuple):
        raise SpecError('the spec needs "layers": a list of layer objects')
    for i, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or not isinstance(layer.get("type"), str):
            raise SpecError(
                f'layer {i} must be an object with a "type" such as {{"type": "ReLU"}}', i, None
            )
    in_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    clean = _strip_inferred([dict(layer) for layer in layers], in_shape)
    meta = {
        k: copy.deepcopy(spec[k])
        for k in ("name", "description", "labels", "preprocess")
        if spec.get(k) is not None
    }
    return Architecture(
        in_shape,
        tuple(EditLayer(i, _frozen_config(layer)) for i, layer in enumerate(clean)),
        MappingProxyType(meta),
    )


def _read_only_reason(model: LoadedModel) -> str:
    name = model.name
    if model.source in ("torchscript", "export", "pickled module"):
        kind = {"torchscript": "a TorchScript archive", "export": "a torch.export program"}.get(
            model.source, "a pickled module"
        )
        return f"{name} is read-only: it is {kind}, whose layers cannot be rebuilt; {_WHAT_IS_EDITABLE}"
    cls = type(model.module).__name__
    for family, why in _READ_ONLY_REASONS:
        if family.lower() in cls.lower():
            return f"{name} is read-only: {why}; {_WHAT_IS_EDITABLE}"
    return (
        f"{name} is read-only: it is a {cls} whose forward is its own code, not a sequence of layers; "
        f"{_WHAT_IS_EDITABLE}"
    )


def _is_features_model(module: nn.Module) -> bool:
    return (
        type(module).__name__ in ("VGG", "AlexNet")
        and isinstance(getattr(module, "features", None), nn.Sequential)
        and isinstance(getattr(module, "avgpool", None), nn.Module)
        and isinstance(getattr(module, "classifier", None), nn.Sequential)
    )


def _parts(module: nn.Module) -> tuple[nn.Sequential, nn.Module, nn.Sequential]:
    """(features, avgpool, classifier) of a VGG/AlexNet."""
    return (
        cast(nn.Sequential, module.features),
        cast(nn.Module, module.avgpool),
        cast(nn.Sequential, module.classifier),
    )


def _tail_modules(module: nn.Module) -> list[nn.Module | None]:
    """The locked layers' modules in order; the flatten is a function call in torchvision (None)."""
    _, avgpool, classifier = _parts(module)
    return [avgpool, None, *classifier]


def editable_architecture(model: LoadedModel) -> Architecture:
    """The editable snapshot of a loaded model; raises :class:`NotEditableError` saying why it is read-only."""
    from cnnviz.core.spec import spec_from_sequential

    if model.spec is not None:
        return architecture_from_spec(model.spec, input_shape=model.input_shape)
    module = model.module
    if _is_features_model(module):
        features_module, avgpool, classifier = _parts(module)
        try:
            features = spec_from_sequential(features_module, model.input_shape)
            out = validate_spec(features).output_shape
            assert out is not None
            tail = spec_from_sequential(nn.Sequential(avgpool, nn.Flatten(), *classifier), out)
        except SpecError as exc:
            raise NotEditableError(f"{model.name} is read-only: {exc}") from None
        editable = architecture_from_spec(features)
        names = ["avgpool", "flatten"] + [f"classifier.{i}" for i in range(len(classifier))]
        tail_modules = _tail_modules(module)
        locked = []
        for offset, (layer, name, sub) in enumerate(
            zip(tail["layers"], names, tail_modules, strict=True)
        ):
            layer = dict(layer)
            key = INFERRED.get(layer["type"])
            if key is not None and sub is not None:
                # Stated explicitly so that an edit the classifier cannot take is an error, not a silent change.
                layer[key] = int(getattr(sub, key))
            uid = len(editable.layers) + offset
            locked.append(EditLayer(uid, _frozen_config(layer), locked=True, name=name))
        return Architecture(
            editable.input_shape,
            editable.layers + tuple(locked),
            MappingProxyType({"name": model.name}),
            prefix="features.",
            family="features",
        )
    if isinstance(module, nn.Sequential):
        try:
            spec = spec_from_sequential(module, model.input_shape, labels=model.labels)
        except SpecError as exc:
            raise NotEditableError(f"{model.name} is read-only: {exc}") from None
        return architecture_from_spec(spec)
    raise NotEditableError(_read_only_reason(model))


# --------------------------------------------------------------------------------------------------------------
# The live table


@dataclass
class LiveRow:
    """One row of the live table.

    ``status`` compares with the original model: ``"same"``, ``"changed"`` (same layer, new settings) or
    ``"new"`` (inserted). ``weights`` says what Apply does with the layer's weights: ``"kept"``,
    ``"re-initialised"`` (fresh weights from the last Apply), ``"new on Apply"`` (will be re-initialised), or
    ``""`` for layers without parameters or buffers. ``dense_params`` is what a fully-connected layer from this
    layer's input to its output would need (convolutions only).
    """

    index: int
    uid: int
    name: str
    type: str
    locked: bool
    ok: bool
    checked: bool
    reason: str | None
    input_shape: Shape | None
    output_shape: Shape | None
    params: int | None = None
    macs: int | None = None
    formula: str | None = None
    rf: ReceptiveField | None = None
    settings: str = ""
    status: str = "same"
    weights: str = ""
    base_params: int | None = None
    base_macs: int | None = None
    base_output_shape: Shape | None = None
    dense_params: int | None = None
    signature: str | None = None
    config_key: str = ""
    layer: LayerRow | None = None

    @property
    def params_delta(self) -> int | None:
        if self.params is None:
            return None
        return self.params - (self.base_params or 0)

    @property
    def macs_delta(self) -> int | None:
        if self.macs is None:
            return None
        return self.macs - (self.base_macs or 0)

    def cells(self) -> dict[str, Any]:
        """Plain values for comparisons (tests) and JSON."""
        return {
            "name": self.name,
            "type": self.type,
            "ok": self.ok,
            "checked": self.checked,
            "reason": self.reason,
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "params": self.params,
            "macs": self.macs,
            "formula": self.formula,
            "rf": self.rf.to_json() if self.rf is not None else None,
            "settings": self.settings,
            "status": self.status,
            "weights": self.weights,
            "params_delta": self.params_delta,
        }


@dataclass(frozen=True)
class DenseComparison:
    """Convolutions versus fully-connected layers with the same input and output sizes."""

    conv_layers: int
    conv_params: int
    dense_params: int

    @property
    def ratio(self) -> float | None:
        return self.dense_params / self.conv_params if self.conv_params else None

    def text(self) -> str:
        if not self.conv_layers:
            return "No convolutions yet: insert a Conv2d to compare with a fully-connected layer."
        what = (
            "the convolution has"
            if self.conv_layers == 1
            else f"the {self.conv_layers} convolutions have"
        )
        ratio = self.ratio
        times = f" ({_times(ratio)} more)" if ratio is not None else ""
        return (
            f"Parameter sharing: {what} {self.conv_params:,} parameters; fully-connected layers with the same "
            f"input and output sizes would need {self.dense_params:,}{times}."
        )


def _times(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}×"
    if ratio >= 10:
        return f"{ratio:.1f}×"
    return f"{ratio:.2f}×"


@dataclass
class LiveTable:
    """The live table of a snapshot: one :class:`LiveRow` per layer, totals, deltas and the first error.

    Totals cover the valid layers (all of them when ``ok``). ``error`` is one line naming the layer and the
    reason; ``error_index`` is its row (None for a whole-model problem such as labels that no longer fit).
    ``summary`` is the per-layer table of the valid layers in the summary's own types.
    """

    rows: list[LiveRow]
    ok: bool
    error: str | None
    error_index: int | None
    input_shape: tuple[int, int, int]
    output_shape: Shape | None
    total_params: int
    total_macs: int
    base_params: int | None
    base_macs: int | None
    base_output_shape: Shape | None
    dense: DenseComparison
    removed: list[str]
    summary: Summary

    @property
    def params_delta(self) -> int | None:
        return None if self.base_params is None else self.total_params - self.base_params

    @property
    def macs_delta(self) -> int | None:
        return None if self.base_macs is None else self.total_macs - self.base_macs

    def totals_text(self) -> str:
        """One line with totals and their change against the original model."""
        c, h, w = self.input_shape
        out = "×".join(str(v) for v in self.output_shape) if self.output_shape else "?"
        params = f"{self.total_params:,}"
        macs = f"{self.total_macs:,}"
        if self.ok and self.base_params is not None and self.base_macs is not None:
            params += f" ({delta_text(self.total_params, self.base_params)})"
            macs += f" ({delta_text(self.total_macs, self.base_macs)})"
        scope = "" if self.ok else " (valid layers only)"
        return f"Input {c}×{h}×{w} → output {out} · parameters {params} · MACs {macs}{scope}"

    def cells(self) -> list[dict[str, Any]]:
        return [row.cells() for row in self.rows]


def delta_text(new: int, old: int) -> str:
    """``+1,234 (+12%)``-style change; ``unchanged`` when equal."""
    diff = new - old
    if diff == 0:
        return "unchanged"
    sign = "+" if diff > 0 else "−"
    text = f"{sign}{abs(diff):,}"
    if not old:
        return text
    pct = abs(100.0 * diff / old)
    if pct >= 10:
        share = f"{pct:.0f}%"
    elif pct >= 1:
        share = f"{pct:.1f}%"
    elif pct >= 0.01:
        share = f"{pct:.2f}%"
    else:
        share = "<0.01%"
    return f"{text}, {sign}{share}"


@functools.lru_cache(maxsize=4096)
def _meta_module(layer_type: str, kwargs: tuple[tuple[str, Any], ...]) -> nn.Module:
    """A module on the meta device: its parameters have shapes but no memory (cached per configuration)."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return getattr(nn, layer_type)(**dict(kwargs))


def _module_of(check: Any) -> nn.Module:
    return _meta_module(str(check.type), tuple(check.module_kwargs.items()))


def _signature(module: nn.Module) -> str:
    """What torch builds, as text: equal signatures mean interchangeable weights and the same layer."""
    return f"{type(module).__name__}({module.extra_repr()})"


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


class _ChainGraph(LayerGraph):
    """The layer graph of a chain of modules, built directly: what torch.fx traces for an ``nn.Sequential``.

    Tracing costs about as much per layer as the rest of the live table together; a chain has only one
    possible graph (input -> "0" -> "1" -> ...), so it is written down instead. The tests compare the result
    with the traced graph's receptive fields.
    """

    def _trace(self) -> None:
        graph = fx.Graph()
        x = graph.placeholder("x")
        self.nodes.append(GraphNode("input", "input", "Input", x))
        key_of: dict[fx.Node, str] = {x: "input"}
        previous = "input"
        for name, module in self.model._modules.items():
            assert module is not None
            x = graph.call_module(name, (x,))
            self.nodes.append(
                GraphNode(name, "module", type(module).__name__, x, module, name, [previous], [])
            )
            key_of[x] = name
            previous = name
        graph.output(x)
        self._fx_graph = graph
        self._key_of = key_of


def _pair_text(value: Any) -> str:
    if isinstance(value, tuple | list):
        if len(value) == 2 and value[0] != value[1]:
            return f"{value[0]}×{value[1]}"
        value = value[0]
    return str(value)


def _square(value: Any) -> str:
    if isinstance(value, tuple | list):
        return _pair_text(value)
    return f"{value}×{value}"


def _settings(layer_type: str, kw: Mapping[str, Any]) -> str:
    """Compact hyperparameters for the table (the form below the table edits them)."""
    parts: list[str] = []
    if layer_type in ("Conv2d", "ConvTranspose2d"):
        parts.append(_square(kw.get("kernel_size", "?")))
        parts.append(f"s{_pair_text(kw.get('stride', 1))}")
        padding = kw.get("padding", 0)
        parts.append(f"p{padding}" if isinstance(padding, str) else f"p{_pair_text(padding)}")
        if _pair_text(kw.get("dilation", 1)) != "1":
            parts.append(f"d{_pair_text(kw.get('dilation', 1))}")
        if kw.get("groups", 1) != 1:
            parts.append(f"g{kw['groups']}")
        if kw.get("bias", True) is False:
            parts.append("no bias")
    elif layer_type in POOLING_TYPES:
        kernel = kw.get("kernel_size", "?")
        parts.append(_square(kernel))
        stride = kw.get("stride")
        parts.append(f"s{_pair_text(stride if stride is not None else kernel)}")
        if _pair_text(kw.get("padding", 0)) != "0":
            parts.append(f"p{_pair_text(kw.get('padding', 0))}")
    elif layer_type in ADAPTIVE_TYPES:
        size = kw.get("output_size")
        parts.append(f"→ {_square(size)}" if size is not None else "→ input size")
    elif layer_type == "Linear":
        parts.append(f"{kw.get('in_features', '?')} → {kw.get('out_features', '?')}")
    elif layer_type in DROPOUT_TYPES:
        parts.append(f"p {kw.get('p', 0.5)}")
    elif layer_type == "LeakyReLU":
        parts.append(f"slope {kw.get('negative_slope', 0.01)}")
    elif layer_type == "ELU":
        parts.append(f"α {kw.get('alpha', 1.0)}")
    return " ".join(parts)


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _dense_params(module: nn.Module, inp: Shape, out: Shape) -> int | None:
    if not isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return None
    n_in, n_out = _numel(inp), _numel(out)
    return n_in * n_out + (n_out if module.bias is not None else 0)


def _message(arch: Architecture, report: SpecReport) -> tuple[str | None, int | None]:
    error = report.first_error
    if error is None:
        return None, None
    if error.index is None:
        return error.reason, None
    reason = _worded(arch, error.index, error.reason)
    return f"layer {arch.name_of(error.index)} ({error.type}): {reason}", error.index


def _worded(arch: Architecture, index: int, reason: str | None) -> str | None:
    if reason is None or not arch.layers[index].locked or reason.startswith("not checked"):
        return reason
    # The usual hint ("set in_features to ...") would ask for an edit the fixed part does not allow.
    return reason.split("; ")[0] + (
        f"; {arch.name_of(index)} belongs to the fixed part of the model, so change the editable "
        "layers until it fits again"
    )


def live_table(
    arch: Architecture,
    *,
    baseline: LiveTable | None = None,
    applied: Mapping[int, str | None] | None = None,
    reinitialised: Iterable[int] = (),
) -> LiveTable:
    """The table of ``arch`` without computing anything (see the module docstring).

    ``baseline`` (the original model's table) gives the deltas and each row's status; ``applied`` maps the
    uids of the model Apply takes weights from to their signatures, and ``reinitialised`` holds the uids that
    the last Apply gave fresh weights: together they fill the ``weights`` column.
    """
    spec = arch.spec()
    report = validate_spec(spec)
    error, error_index = _message(arch, report)
    base_rows = {row.uid: row for row in baseline.rows} if baseline is not None else {}
    fresh = set(reinitialised)

    rows: list[LiveRow] = []
    modules: list[nn.Module] = []
    for index, (layer, check) in enumerate(zip(arch.layers, report.layers, strict=True)):
        row = LiveRow(
            index=index,
            uid=layer.uid,
            name=arch.name_of(index),
            type=layer.type,
            locked=layer.locked,
            ok=check.ok,
            checked=check.checked,
            reason=_worded(arch, index, check.reason),
            input_shape=check.input_shape,
            output_shape=check.output_shape,
            settings=_settings(layer.type, {**layer.config, **check.module_kwargs}),
            config_key=layer.key(),
        )
        if check.ok:
            module = _module_of(check)
            modules.append(module)
            row.signature = _signature(module)
        rows.append(row)

    # The valid prefix as a chain of meta modules: the summary's own per-module numbers, the receptive-field
    # analysis on its graph.
    valid = len(modules)
    chain = nn.Sequential(*modules)
    graph = _ChainGraph(chain)
    values: dict[str, Any] = {"input": torch.empty((1, *arch.input_shape), device="meta")}
    for i in range(valid):
        shape = rows[i].output_shape
        assert shape is not None
        values[str(i)] = torch.empty((1, *shape), device="meta")
    info = analyse(graph, values) if graph.traced else {}
    summary_rows: list[LayerRow] = []
    dense_layers = dense_conv = dense_total = 0
    for i in range(valid):
        row, module = rows[i], modules[i]
        inp = values["input"] if i == 0 else values[str(i - 1)]
        out = values[str(i)]
        layer_row = LayerRow(row.name, row.type, "module", 0, tuple(out.shape))
        layer_row.params, layer_row.trainable_params = module_params(module)
        layer_row.macs = module_macs(module, inp, out)
        fill_layer_geometry(layer_row, module)
        layer_row.rf = to_receptive_field(info.get(str(i)))
        layer_row.inputs = [rows[i - 1].name if i else "input"]
        summary_rows.append(layer_row)
        row.layer = layer_row
        row.params, row.macs = layer_row.params, layer_row.macs
        row.formula, row.rf = layer_row.param_formula, layer_row.rf
        assert row.input_shape is not None and row.output_shape is not None
        row.dense_params = _dense_params(module, row.input_shape, row.output_shape)
        if row.dense_params is not None:
            dense_layers += 1
            dense_conv += row.params
            dense_total += row.dense_params

    for row in rows:
        base = base_rows.get(row.uid)
        if base is None:
            row.status = "new" if baseline is not None else "same"
        else:
            row.base_params, row.base_macs = base.params, base.macs
            row.base_output_shape = base.output_shape
            same = (
                base.signature == row.signature
                if row.signature is not None and base.signature is not None
                else base.config_key == row.config_key
            )
            row.status = "same" if same else "changed"
        if row.signature is not None and _has_state(modules[row.index]):
            if applied is None:
                row.weights = "kept"
            elif applied.get(row.uid) == row.signature:
                row.weights = "re-initialised" if row.uid in fresh else "kept"
            else:
                row.weights = "new on Apply"

    total_params = sum(r.params or 0 for r in rows)
    total_macs = sum(r.macs or 0 for r in rows)
    present = {row.uid for row in rows}
    removed = [row.name for row in baseline.rows if row.uid not in present] if baseline else []
    summary = Summary(
        model_name=str(arch.meta.get("name") or "edited model"),
        input_shape=arch.input_shape,
        rows=summary_rows,
        total_params=total_params,
        trainable_params=sum(r.trainable_params for r in summary_rows),
        total_macs=total_macs,
    )
    return LiveTable(
        rows=rows,
        ok=report.ok,
        error=error,
        error_index=error_index,
        input_shape=arch.input_shape,
        output_shape=report.output_shape,
        total_params=total_params,
        total_macs=total_macs,
        base_params=baseline.total_params if baseline is not None else None,
        base_macs=baseline.total_macs if baseline is not None else None,
        base_output_shape=baseline.output_shape if baseline is not None else None,
        dense=DenseComparison(dense_layers, dense_conv, dense_total),
        removed=removed,
        summary=summary,
    )


def dense_row_text(row: LiveRow) -> str | None:
    """The parameter-sharing lesson for one convolution row, or None for other layers."""
    if row.dense_params is None or row.params is None:
        return None
    assert row.input_shape is not None and row.output_shape is not None
    shape_in = "×".join(map(str, row.input_shape))
    shape_out = "×".join(map(str, row.output_shape))
    ratio = f" ({_times(row.dense_params / row.params)} more)" if row.params else ""
    return (
        f"{row.name} maps {shape_in} to {shape_out} with {row.params:,} parameters; a fully-connected layer "
        f"between the same sizes would need {row.dense_params:,}{ratio}."
    )


# --------------------------------------------------------------------------------------------------------------
# Apply


@dataclass
class ApplyResult:
    """The model built from an edited snapshot.

    ``reinitialised`` and ``kept`` are indices into ``architecture.layers`` of the layers with parameters or
    buffers: fresh weights (torch's default initialisation) versus weights copied from the previous model.
    """

    model: LoadedModel
    architecture: Architecture
    reinitialised: frozenset[int]
    kept: frozenset[int]

    @property
    def reinitialised_names(self) -> list[str]:
        return [self.architecture.name_of(i) for i in sorted(self.reinitialised)]


def _signatures(arch: Architecture) -> dict[int, str | None]:
    report = validate_spec(arch.spec())
    return {
        layer.uid: (_signature(_module_of(check)) if check.ok else None)
        for layer, check in zip(arch.layers, report.layers, strict=True)
    }


def _source_modules(model: LoadedModel, arch: Architecture) -> dict[int, nn.Module]:
    """uid -> the real module of ``model`` that the layer of ``arch`` with that uid describes."""
    module = model.module
    if arch.family == "features":
        features, _, _ = _parts(module)
        tail = _tail_modules(module)
        out: dict[int, nn.Module] = {}
        editable = arch.editable_count
        for i, layer in enumerate(arch.layers):
            sub = features[i] if i < editable else tail[i - editable]
            if sub is not None:
                out[layer.uid] = sub
        return out
    children = list(module.children())
    return {layer.uid: children[i] for i, layer in enumerate(arch.layers) if i < len(children)}


def apply_architecture(
    source: LoadedModel | None,
    source_arch: Architecture | None,
    new_arch: Architecture,
    *,
    seed: int | None = None,
) -> ApplyResult:
    """Build ``new_arch`` with real weights: layers unchanged since ``source_arch`` keep ``source``'s weights.

    A layer is unchanged when the same uid builds the same module (type and settings, inferred ones included);
    others get torch's default initialisation (reproducible with ``seed``). For VGG/AlexNet the locked
    ``avgpool``/``classifier`` modules are reused as they are. Raises SpecError when ``new_arch`` is invalid.
    """
    report = validate_spec(new_arch.spec())
    if not report.ok:
        message, index = _message(new_arch, report)
        error = report.first_error
        raise SpecError(
            f"the edited model cannot be built: {message}",
            index,
            error.type if error is not None else None,
        )
    old_sigs = _signatures(source_arch) if source_arch is not None else {}
    old_modules = (
        _source_modules(source, source_arch)
        if source is not None and source_arch is not None
        else {}
    )
    new_sigs = _signatures(new_arch)
    features = new_arch.family == "features"
    build_spec = new_arch.spec(editable_only=features)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        built = build_model(build_spec)
    kept: set[int] = set()
    fresh: set[int] = set()
    built_children = list(built.children())
    for i, layer in enumerate(new_arch.layers):
        if layer.locked:
            continue
        target = built_children[i]
        if not _has_state(target):
            continue
        src = old_modules.get(layer.uid)
        if src is not None and old_sigs.get(layer.uid) == new_sigs.get(layer.uid):
            state = src.state_dict()
            own = target.state_dict()
            if state.keys() == own.keys() and all(state[k].shape == own[k].shape for k in own):
                with torch.no_grad():
                    target.load_state_dict({k: v.detach().clone() for k, v in state.items()})
                kept.add(i)
                continue
        fresh.add(i)

    if features:
        assert source is not None
        base = source.module
        module = copy.copy(base)
        # A shallow copy shares the registries; new dicts keep the original model untouched.
        module._modules = OrderedDict(base._modules)
        module._parameters = OrderedDict(base._parameters)
        module._buffers = OrderedDict(base._buffers)
        module._modules["features"] = built
        tail = _tail_modules(base)
        editable = new_arch.editable_count
        for i, layer in enumerate(new_arch.layers):
            sub = tail[i - editable] if layer.locked else None
            if sub is not None and _has_state(sub):
                kept.add(i)
    else:
        module = built
    module.eval()

    spec_out: dict[str, Any] | None = None if features else new_arch.spec()
    name = source.name if source is not None else str(new_arch.meta.get("name") or "edited model")
    if not name.endswith("(edited)"):
        name = f"{name} (edited)"
    if source is not None:
        preprocess = source.preprocess
        labels = source.labels if features else (new_arch.meta.get("labels") or source.labels)
        metadata = dict(source.metadata)
    else:
        from cnnviz.core.models import _spec_preprocess

        preprocess = _spec_preprocess(new_arch.spec())
        labels = new_arch.meta.get("labels")
        metadata = {}
    metadata["edited"] = {
        "reinitialised": [new_arch.name_of(i) for i in sorted(fresh)],
        "kept": [new_arch.name_of(i) for i in sorted(kept)],
    }
    loaded = LoadedModel(
        module=module,
        name=name,
        input_shape=new_arch.input_shape,
        preprocess=preprocess,
        labels=list(labels) if labels else None,
        spec=spec_out,
        source="edited",
        metadata=metadata,
    )
    return ApplyResult(loaded, new_arch, frozenset(fresh), frozenset(kept))


# --------------------------------------------------------------------------------------------------------------
# The session


class EditSession:
    """Editing one model: the original snapshot, the current one, and the model Apply takes weights from.

    Each edit method returns the new current snapshot. ``goto`` sets the current snapshot (undo/redo keep the
    snapshots they return to). :meth:`table` is the live table of the current snapshot, with deltas against
    the original.
    """

    def __init__(self, arch: Architecture, model: LoadedModel | None = None):
        self.model = model
        self.original = arch
        self.current = arch
        self.applied = arch
        self.reinitialised: frozenset[int] = frozenset()
        self._next_uid = max((layer.uid for layer in arch.layers), default=-1) + 1
        # Without a model there are no weights to keep: every layer is "new on Apply".
        self._applied_sigs: dict[int, str | None] = _signatures(arch) if model is not None else {}
        self.baseline = live_table(arch)
        self._table: tuple[Architecture, LiveTable] | None = None

    @classmethod
    def from_model(cls, model: LoadedModel) -> EditSession:
        """Raises :class:`NotEditableError` (with the reason) for read-only models."""
        return cls(editable_architecture(model), model)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> EditSession:
        """A session without weights (Apply initialises every layer)."""
        return cls(architecture_from_spec(spec))

    # -- state -----------------------------------------------------------------------------------------------
    def new_uid(self) -> int:
        uid = self._next_uid
        self._next_uid += 1
        return uid

    def goto(self, arch: Architecture) -> Architecture:
        self.current = arch
        for layer in arch.layers:
            self._next_uid = max(self._next_uid, layer.uid + 1)
        return arch

    def table(self, arch: Architecture | None = None) -> LiveTable:
        """The live table of ``arch`` (default: the current snapshot); the last one is cached."""
        arch = self.current if arch is None else arch
        if self._table is not None and self._table[0] is arch:
            return self._table[1]
        table = live_table(
            arch,
            baseline=self.baseline,
            applied=self._applied_sigs,
            reinitialised=self.reinitialised,
        )
        if arch is self.current:
            self._table = (arch, table)
        return table

    @property
    def editable_spec(self) -> dict[str, Any]:
        return self.current.spec()

    # -- edits -----------------------------------------------------------------------------------------------
    def set_param(self, index: int, key: str, value: Any) -> Architecture:
        return self.goto(self.current.with_param(index, key, value))

    def set_type(self, index: int, new_type: str) -> Architecture:
        return self.goto(self.current.with_type(index, new_type))

    def insert(self, index: int, kind: str | Mapping[str, Any]) -> Architecture:
        """Insert ``kind`` (an :data:`INSERTABLE` name or a layer object) at position ``index``."""
        if isinstance(kind, str):
            shape = self.input_shape_at(index)
            config: Mapping[str, Any] = new_layer(kind, shape)
        else:
            config = kind
        return self.goto(self.current.inserted(index, config, self.new_uid()))

    def delete(self, index: int) -> Architecture:
        return self.goto(self.current.without(index))

    def move(self, index: int, offset: int) -> Architecture:
        return self.goto(self.current.moved(index, offset))

    def input_shape_at(self, index: int) -> Shape | None:
        """The shape that reaches position ``index`` in the current snapshot (None past an error)."""
        if index == 0:
            return self.current.input_shape
        rows = self.table().rows
        if 0 < index <= len(rows):
            return rows[index - 1].output_shape
        return None

    def replace_spec(self, spec: Mapping[str, Any]) -> Architecture:
        """Open a spec as the new current snapshot (an edit): layers that match the current ones keep their uids.

        The spec must take the same input shape; for VGG/AlexNet it must end with the model's fixed layers
        (as a saved architecture does) or hold the features alone.
        """
        arch = architecture_from_spec(spec)
        current = self.current
        if arch.input_shape != current.input_shape:
            shape = "×".join(map(str, arch.input_shape))
            ours = "×".join(map(str, current.input_shape))
            raise SpecError(
                f"this architecture takes {shape} inputs but the model being edited takes {ours}; "
                "open it as a model instead (File → Open model)"
            )
        incoming = list(arch.layers)
        locked = [layer for layer in current.layers if layer.locked]
        if locked:
            tail_keys = [layer.key() for layer in locked]
            if [layer.key() for layer in incoming[-len(locked) :]] == tail_keys:
                incoming = incoming[: -len(locked)]
            elif any(layer.key() in tail_keys for layer in incoming[-len(locked) :]):
                names = ", ".join(layer.name or "" for layer in locked)
                raise SpecError(
                    "this architecture does not end with the fixed layers of the model being edited "
                    f"({names}); open one saved from this model, or one with its features alone"
                )
        editable = [layer for layer in current.layers if not layer.locked]
        matcher = difflib.SequenceMatcher(
            a=[layer.key() for layer in editable],
            b=[layer.key() for layer in incoming],
            autojunk=False,
        )
        uids: list[int | None] = [None] * len(incoming)
        for tag, a0, a1, b0, b1 in matcher.get_opcodes():
            if tag == "equal":
                for k in range(a1 - a0):
                    uids[b0 + k] = editable[a0 + k].uid
            elif tag == "replace":
                # Layers in the same place with the same type are the same layer, changed.
                for a, b in zip(range(a0, a1), range(b0, b1), strict=False):
                    if editable[a].type == incoming[b].type:
                        uids[b] = editable[a].uid
        layers = [
            EditLayer(uid if uid is not None else self.new_uid(), layer.config)
            for uid, layer in zip(uids, incoming, strict=True)
        ]
        meta = dict(current.meta)
        for key in ("name", "description", "labels", "preprocess"):
            if key in arch.meta and current.family == "spec":
                meta[key] = arch.meta[key]
        new = replace(current, layers=tuple(layers) + tuple(locked), meta=MappingProxyType(meta))
        return self.goto(new)

    # -- apply -----------------------------------------------------------------------------------------------
    def build(self, arch: Architecture | None = None, *, seed: int | None = None) -> ApplyResult:
        """Build ``arch`` (default: the current snapshot) without changing the session; see :meth:`commit`."""
        return apply_architecture(
            self.model,
            self.applied if self.model is not None else None,
            self.current if arch is None else arch,
            seed=seed,
        )

    def builder(self) -> Callable[[], ApplyResult]:
        """A call that builds the current snapshot later, e.g. on a worker thread, whatever is edited meanwhile."""
        model, applied, arch = self.model, self.applied, self.current
        return functools.partial(
            apply_architecture, model, applied if model is not None else None, arch
        )

    def commit(self, result: ApplyResult) -> None:
        """Make an applied result the model later Applies take weights from (deltas stay against the original)."""
        self.model = result.model
        self.applied = result.architecture
        self._applied_sigs = _signatures(result.architecture)
        self.reinitialised = frozenset(
            result.architecture.layers[i].uid for i in result.reinitialised
        )
        self._table = None

    def apply(self, *, seed: int | None = None) -> ApplyResult:
        """Build and commit in one step."""
        result = self.build(seed=seed)
        self.commit(result)
        return result
