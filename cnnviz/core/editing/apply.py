"""Apply: the model built from an edited snapshot, keeping the weights of the layers that did not change."""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnviz.core.editing.architecture import Architecture, _parts, _tail_modules
from cnnviz.core.editing.live import _has_state, _message, _module_of, _signature
from cnnviz.core.errors import SpecError
from cnnviz.core.models import LoadedModel
from cnnviz.core.models.spec import build_model, validate_spec


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
        from cnnviz.core.models.spec import spec_preprocess

        preprocess = spec_preprocess(new_arch.spec())
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
