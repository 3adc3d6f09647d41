"""Immutable architecture snapshots of an editable model, and what makes a model editable.

What can be edited
==================

Models that are one plain sequence of layers: spec JSON models, ``cnnviz train`` checkpoints (both carry a
spec), any ``nn.Sequential`` of spec-supported layers, and the ``features`` part of torchvision's VGG and AlexNet.
For VGG/AlexNet the rest of the network (``avgpool``, the flatten, ``classifier``) is kept as *locked* layers:
shown in the table and checked (an edit that no longer fits the classifier is an error in words), never edited.
Other models are read-only, and :func:`editable_architecture` says why.

An :class:`Architecture` is an immutable snapshot: the input shape and a tuple of :class:`EditLayer`, each a
spec layer object with a *uid*. Every edit returns a new snapshot, so undo is a matter of keeping the old one.
The uid is what ties a layer to its past: the layers of the loaded model get uids 0..n-1 (their positions in
it) and inserted layers get fresh ones, so a layer that was moved, or has an insertion before it, is still
recognised by Apply (its weights are kept) and by the deltas against the original.

Inferred arguments (``in_channels``, ``in_features``, ``num_features``) are left out of editable layers, so they
follow the layer before: change a convolution's ``out_channels`` and the next convolution, batch norm or linear
layer adapts. Where a spec states one that disagrees with its input it is kept, and the row says so.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, cast

from torch import nn

from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.models import LoadedModel
from cnnviz.core.models.layertypes import (
    ACTIVATION_TYPES,
    ADAPTIVE_TYPES,
    DROPOUT_TYPES,
    INFERRED,
    INSERTABLE,
    POOLING_TYPES,
    SUPPORTED_TYPES,
)
from cnnviz.core.models.spec import validate_spec

Shape = tuple[int, ...]


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
    from cnnviz.core.models.spec import spec_from_sequential

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
