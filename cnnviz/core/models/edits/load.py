"""A patch as a model source: the base model loaded as usual, the edits made, the graph checked.

:func:`cnnviz.core.models.load_model` hands a patch (a ``.json`` file or an object with ``base`` and
``edits``) to :func:`load_patch`. The edited model keeps the base's weights in every module whose parameter
shapes did not change, and its preprocessing and labels; its name says how many changes were made. A patch
whose edits break the graph is refused with the explained error (:mod:`cnnviz.core.models.edits.explain`).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cnnviz.core.errors import SpecError
from cnnviz.core.models.edits.explain import explain, first_breaking
from cnnviz.core.models.edits.modules import (
    EditOutcome,
    apply_edits,
    full_config,
    meta_copy,
    rebuildable,
)
from cnnviz.core.models.edits.patch import ModuleEdit, Patch, parse_patch, read_patch
from cnnviz.core.models.edits.walk import MetaWalk, WalkFailure
from cnnviz.core.models.loaded import LoadedModel


def check_edited_graph(
    module: Any, input_shape: tuple[int, ...], edits: Sequence[ModuleEdit], base: Any = None
) -> None:
    """Raise SpecError with the explained error when ``module`` cannot run on ``input_shape`` (meta tensors)."""
    # The one tracer of the code base; see pyproject's import contract for why models may use it here.
    from cnnviz.core.analysis.graph import LayerGraph

    meta = meta_copy(module)
    for m in meta.modules():
        m.training = False
    graph = LayerGraph(meta)
    if not graph.traced:
        return  # nothing to name nodes by: the forward pass reports problems as usual
    _values, failure = MetaWalk(graph).run(tuple(input_shape))
    if failure is None:
        return
    modules = dict(base.named_modules()) if base is not None else {}
    cause = None
    if base is not None:
        base_meta = meta_copy(base)
        for m in base_meta.modules():
            m.training = False

        def walk(prefix: tuple[ModuleEdit, ...]) -> WalkFailure | None:
            # the base with the first edits only, on the meta device (shapes, no memory)
            earlier = apply_edits(base_meta, prefix, device=torch.device("meta")).module
            earlier_graph = LayerGraph(earlier)
            if not earlier_graph.traced:
                return None
            return MetaWalk(earlier_graph).run(tuple(input_shape))[1]

        cause = first_breaking(edits, failure, walk)

    def original(name: str) -> dict[str, Any] | None:
        m = modules.get(name)
        return full_config(m) if m is not None and rebuildable(m) else None

    raise SpecError(
        "the edited model does not fit together: "
        + explain(failure, graph, edits, original, cause).message
    )


def edited_loaded_model(
    base: LoadedModel, edits: Sequence[ModuleEdit], name: str | None = None
) -> tuple[LoadedModel, EditOutcome]:
    """``base`` with ``edits`` made on a copy of its module (weights kept where shapes agree), checked."""
    outcome = apply_edits(copy.deepcopy(base.module), edits)
    module = outcome.module.eval()
    check_edited_graph(module, base.input_shape, edits, base.module)
    # an edited model edited again: the patch is its base's patch plus the new edits
    prior = (
        list(base.metadata.get("edited", {}).get("edits", [])) if base.source == "edited" else []
    )
    every = prior + [e.to_json() for e in edits]
    changes = sum(1 for e in every if not e.get("follows"))
    stem = re.sub(r" \(edited: \d+ changes?\)$", "", base.name)
    label = name or f"{stem} (edited: {changes} change{'s' if changes != 1 else ''})"
    metadata = dict(base.metadata)
    metadata["base"] = base.metadata.get("base") or base.metadata.get("path") or base.name
    metadata["edited"] = {
        "edits": every,
        "reinitialised": sorted(outcome.fresh),
        "kept": sorted(outcome.rebuilt - outcome.fresh),
    }
    loaded = LoadedModel(
        module=module,
        name=label,
        input_shape=base.input_shape,
        preprocess=base.preprocess,
        labels=list(base.labels) if base.labels else None,
        spec=None,
        source="edited",
        metadata=metadata,
    )
    return loaded, outcome


def load_patch(
    patch: Patch | Mapping[str, Any] | str | os.PathLike[str],
    weights: Any = "default",
    trust: bool = False,
    *,
    input_shape: tuple[int, int, int] | None = None,
    progress: Any = None,
) -> LoadedModel:
    """The edited model a patch describes; ``weights`` and ``trust`` apply to the base."""
    from cnnviz.core.models.load import load_model

    if isinstance(patch, Patch):
        parsed = patch
    elif isinstance(patch, Mapping):
        parsed = parse_patch(patch)
    else:
        parsed = read_patch(Path(patch))
    base_spec = parsed.base_spec()
    try:
        base = load_model(base_spec, weights, trust, input_shape=input_shape, progress=progress)
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(f"the patch's base {parsed.base!r} cannot be loaded: {exc}") from None
    loaded, _ = edited_loaded_model(base, parsed.edits, parsed.name)
    if parsed.description:
        loaded.metadata["description"] = parsed.description
    loaded.metadata["base"] = (
        parsed.base_spec()
    )  # resolved: a patch saved elsewhere still finds its base
    return loaded
