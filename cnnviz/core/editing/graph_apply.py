"""Apply for the graph editor: the edited model built with real weights, kept from the last Apply.

:func:`build_edited` makes the edits on a copy of the loaded model (each rebuilt module keeps its weights where
its parameter shapes did not change) and then takes, for every module the last Apply also had with the same
parameter and buffer shapes, that Apply's weights (trained since, perhaps); the others are fresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cnnviz.core.models import LoadedModel
from cnnviz.core.models.edits import ModuleEdit


@dataclass
class GraphApplyResult:
    """The model built from the edits: weights kept for every module whose parameter shapes did not change.

    ``reinitialised`` names the modules that got fresh weights; ``kept`` the rebuilt ones that kept theirs.
    ``original_names`` maps each module of the built model to its name in the loaded model (None: inserted),
    so that a later Apply can find each module again.
    """

    model: LoadedModel
    edits: tuple[ModuleEdit, ...]
    reinitialised: tuple[str, ...]
    kept: tuple[str, ...]
    original_names: dict[str, str | None] = field(default_factory=dict)

    @property
    def reinitialised_names(self) -> list[str]:
        return list(self.reinitialised)


def build_edited(
    model: LoadedModel,
    edits: tuple[ModuleEdit, ...],
    previous: GraphApplyResult | None = None,
) -> GraphApplyResult:
    """The loaded model with ``edits`` made on a copy of it (see :meth:`GraphEditSession.apply`); with
    ``previous`` (the last Apply), every module it has with the same parameter and buffer shapes keeps its
    weights from there."""
    from cnnviz.core.models.edits.load import edited_loaded_model

    loaded, outcome = edited_loaded_model(model, edits)
    names = {name: outcome.original_name(name) for name, _ in loaded.module.named_modules()}
    fresh = set(outcome.fresh)
    if previous is not None:
        fresh -= _take_weights(loaded.module, names, previous)
        loaded.metadata["edited"] = {
            **loaded.metadata.get("edited", {}),
            "reinitialised": sorted(fresh),
            "kept": sorted(outcome.rebuilt - fresh),
        }
    kept = tuple(sorted(outcome.rebuilt - fresh))
    return GraphApplyResult(loaded, edits, tuple(sorted(fresh)), kept, names)


def _take_weights(
    module: nn.Module, names: dict[str, str | None], previous: GraphApplyResult
) -> set[str]:
    """Copy into ``module`` the parameters and buffers of each module of the previous Apply that is the same
    module (same original name, or the same inserted name) of the same type and shapes; the names copied."""
    before = dict(previous.model.module.named_modules())
    by_original = {o: n for n, o in previous.original_names.items() if o is not None}
    taken: set[str] = set()
    for name, target in module.named_modules():
        original = names.get(name)
        source_name = (
            by_original.get(original)
            if original is not None
            else name
            if name in previous.original_names and previous.original_names[name] is None
            else None
        )
        source = before.get(source_name) if source_name is not None else None
        if source is None or type(source) is not type(target):
            continue
        mine = {**target._parameters, **target._buffers}
        theirs = {**source._parameters, **source._buffers}
        if mine.keys() != theirs.keys() or any(
            (v is None) != (theirs[k] is None)
            or (v is not None and theirs[k] is not None and v.shape != theirs[k].shape)
            for k, v in mine.items()
        ):
            continue
        with torch.no_grad():
            for k, v in mine.items():
                other = theirs[k]
                if v is not None and other is not None:
                    v.copy_(other)
        taken.add(name)
    return taken
