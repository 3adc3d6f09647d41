"""Editing the layers of any traceable model: the patch file, the module edits, and explained shape errors.

``patch`` reads and writes the JSON patch (a base model and a list of :class:`ModuleEdit`); ``modules``
rebuilds modules with new constructor arguments and applies edits to a model without changing it; ``walk``
infers every node's shape on meta tensors with caches and stops at the first node that fails; ``explain``
turns that failure into one sentence naming the node, both sides and the edit that caused it; ``load`` is the
model source that :func:`cnnviz.core.models.load_model` uses for a patch.
"""

from __future__ import annotations

from cnnviz.core.models.edits.explain import GraphEditError, explain
from cnnviz.core.models.edits.modules import (
    EditOutcome,
    apply_edits,
    build_module,
    meta_copy,
    module_config,
    rebuildable,
    why_not_editable,
)
from cnnviz.core.models.edits.patch import (
    ModuleEdit,
    Patch,
    is_patch,
    parse_edit,
    parse_patch,
    read_patch,
)
from cnnviz.core.models.edits.walk import MetaWalk, WalkFailure

__all__ = [
    "EditOutcome",
    "GraphEditError",
    "MetaWalk",
    "ModuleEdit",
    "Patch",
    "WalkFailure",
    "apply_edits",
    "build_module",
    "explain",
    "is_patch",
    "meta_copy",
    "module_config",
    "parse_edit",
    "parse_patch",
    "read_patch",
    "rebuildable",
    "why_not_editable",
]
