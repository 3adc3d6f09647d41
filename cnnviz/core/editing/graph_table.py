"""The live table of an edited graph: one row per layer and container, with deltas against the original.

The rows are those :func:`cnnviz.core.analysis.summary.summarize` makes for the edited model (same keys,
shapes, parameters, MACs, receptive fields; the tests hold both to the same figures), computed from the values
of a :class:`cnnviz.core.models.edits.walk.MetaWalk` instead of a fresh meta pass. Rows after the node where the
graph breaks are kept: those that depend on it are marked *not computed*, parallel branches are computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.graph import LayerGraph
from cnnviz.core.analysis.receptive import to_receptive_field
from cnnviz.core.analysis.receptive.analytic import _Analyzer
from cnnviz.core.analysis.summary import _call_args, _shape, _structure
from cnnviz.core.analysis.types import LayerRow, ReceptiveField, Summary
from cnnviz.core.models.edits import GraphEditError
from cnnviz.core.models.edits.modules import module_config, rebuildable
from cnnviz.core.models.edits.walk import _sig as _value_sig
from cnnviz.core.models.edits.walk import module_signature
from cnnviz.core.models.layertypes import (
    function_macs,
    geometry,
    module_macs,
    module_params,
    settings_text,
    window_geometry,
)

Shape = tuple[int, ...]


@dataclass
class GraphRow:
    """One row: the summary's :class:`LayerRow` (``layer``) plus the deltas against the original model.

    ``status`` is ``"same"``, ``"changed"`` (a module rebuilt with new settings, or a container holding one) or
    ``"new"`` (inserted). ``computed`` is False for the node where the graph breaks (``reason`` is the error)
    and for the rows that depend on it, containers holding it included (``reason`` names the node).
    """

    name: str
    type: str
    kind: str
    depth: int
    layer: LayerRow | None = None
    input_shape: Shape | None = None
    settings: str = ""
    base_output_shape: Any = None
    base_params: int | None = None
    base_macs: int | None = None
    status: str = "same"
    computed: bool = True
    reason: str | None = None
    original_name: str | None = None

    @property
    def output_shape(self) -> Any:
        return self.layer.output_shape if self.layer is not None else None

    @property
    def params(self) -> int | None:
        return self.layer.params if self.layer is not None else None

    @property
    def macs(self) -> int | None:
        return self.layer.macs if self.layer is not None else None

    @property
    def rf(self) -> ReceptiveField | None:
        return self.layer.rf if self.layer is not None else None

    @property
    def shape_changed(self) -> bool:
        """The output shape differs from the original's (a new row counts as changed)."""
        return self.computed and (
            self.status == "new" or self.output_shape != self.base_output_shape
        )

    @property
    def params_delta(self) -> int | None:
        if self.params is None or self.base_params is None:
            return None
        return self.params - self.base_params

    @property
    def macs_delta(self) -> int | None:
        if self.macs is None or self.base_macs is None:
            return None
        return self.macs - self.base_macs


@dataclass
class GraphTable:
    """The table of the current edits: rows in execution order, totals with deltas, and the first error."""

    rows: list[GraphRow]
    error: GraphEditError | None
    input_shape: tuple[int, ...]
    total_params: int
    total_macs: int
    base_params: int
    base_macs: int
    summary: Summary
    removed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def row(self, name: str) -> GraphRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def _settings(module: nn.Module | None) -> str:
    if module is None or not rebuildable(module):
        return ""
    config = module_config(module)
    return settings_text(config["type"], config)


class RowCache:
    """Rows already built, per (node, module configuration, input and output shapes): an edit rebuilds only the
    rows it changes. Modules cached by identity are kept alive with their entries."""

    def __init__(self, model: nn.Module | None = None) -> None:
        # Shared weights (tied embeddings) are counted once by module_params: children cannot simply be summed.
        self.unshared = model is not None and len({id(p) for p in model.parameters()}) == sum(
            1 for _ in model.named_parameters(remove_duplicate=False)
        )
        self.rows: dict[Any, LayerRow] = {}
        self.params: dict[int, tuple[nn.Module, tuple[int, int]]] = {}
        self.settings: dict[Any, str] = {}
        self.rf: dict[Any, Any] = {}
        self._fields: dict[int, tuple[Any, ReceptiveField | None]] = {}

    def receptive_field(self, info: Any) -> ReceptiveField | None:
        """``to_receptive_field`` of an analysis result, once per result."""
        if info is None:
            return None
        hit = self._fields.get(id(info))
        if hit is None or hit[0] is not info:
            hit = self._fields[id(info)] = (info, to_receptive_field(info))
        return hit[1]

    def module_params(self, module: nn.Module) -> tuple[int, int]:
        """``module_params`` of a module, summed over its children where no weight is shared (each child's count
        is kept, so a container copied along an edit's path costs only its own parameters)."""
        hit = self.params.get(id(module))
        if hit is None or hit[0] is not module:
            children = list(module._modules.values())
            if children and self.unshared:
                total = trainable = 0
                for p in module._parameters.values():
                    if p is not None:
                        total += p.numel()
                        trainable += p.numel() if p.requires_grad else 0
                for child in children:
                    if child is not None:
                        t, tr = self.module_params(child)
                        total += t
                        trainable += tr
                counts = (total, trainable)
            else:
                counts = module_params(module)
            hit = self.params[id(module)] = (module, counts)
        return hit[1]

    def settings_text(self, module: nn.Module | None) -> str:
        if module is None:
            return ""
        key = module_signature(module)
        text = self.settings.get(key)
        if text is None:
            text = self.settings[key] = _settings(module)
        return text


def _sig(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (value.shape, value.dtype)
    if isinstance(value, list | tuple):
        return tuple(_sig(v) for v in value)
    return type(value).__name__


def summary_rows(
    graph: LayerGraph,
    values: dict[str, Any],
    blocked: Mapping[str, str] | None = None,
    *,
    receptive_fields: bool = True,
    cache: RowCache | None = None,
) -> tuple[Summary, list[tuple[str, bool, int, str | None, str | None]]]:
    """The summary of the walked values and every row key with (container, depth, first input key, cause).

    ``blocked`` maps the nodes that could not be computed to the failed node they depend on
    (:attr:`WalkFailure.blocked`); their ``cause`` is that node, and so is the cause of a container holding one
    (its totals would be partial). Computed rows have no cause.
    """
    cache = cache or RowCache()
    blocked = blocked or {}
    container_cause: dict[str, str] = {}
    for gnode in graph.nodes:
        if gnode.key in blocked:
            for ckey in gnode.scope:
                container_cause.setdefault(ckey, blocked[gnode.key])
    # fields first: a row whose field, module and shapes are unchanged is the very row of the last table
    fields = _CachedAnalyzer(graph, values, cache).run() if receptive_fields else {}
    rows: list[LayerRow] = []
    order: list[tuple[str, bool, int, str | None, str | None]] = []
    for key, is_container, depth in graph.ordered_keys():
        if is_container:
            info = graph.containers[key]
            cause = container_cause.get(key)
            if cause is not None:
                order.append((key, True, depth, None, cause))
                continue
            out = values.get(info.output_key) if info.output_key else None
            if out is None:
                continue
            order.append((key, True, depth, None, None))
            total, trainable = cache.module_params(info.module)
            row = LayerRow(key, info.type, "container", depth, _shape(out), total, trainable)
            row.output_structure = _structure(out)
            row.rf = cache.receptive_field(fields.get(info.output_key or key))
            rows.append(row)
            continue
        gnode = graph.node(key)
        first_input = gnode.inputs[0] if gnode.inputs else None
        if key in blocked:
            order.append((key, False, depth, first_input, blocked[key]))
            continue
        value = values.get(key)
        if not isinstance(value, torch.Tensor | list | tuple):
            continue
        module = gnode.module
        row_key = (
            key,
            module_signature(module) if module is not None else None,
            tuple(_sig(values.get(k)) for k in gnode.inputs),
            _sig(value),
            id(fields.get(key)),
        )
        cached = cache.rows.get(row_key)
        if cached is not None:
            order.append((key, False, depth, first_input, None))
            rows.append(cached)
            continue
        out_shape = _shape(value)
        if out_shape is None:
            continue
        order.append((key, False, depth, first_input, None))
        node = gnode.fx_node
        assert node is not None
        args = _call_args(graph, values, node.args)
        row = LayerRow(key, gnode.type, gnode.kind, depth, out_shape, inputs=list(gnode.inputs))
        row.output_structure = _structure(value)
        if module is not None:
            row.params, row.trainable_params = cache.module_params(module)
            row.macs = module_macs(module, args[0] if args else None, value, args)
            for name, v in geometry(module).items():
                setattr(row, name, v)
        else:
            names = list(node.kwargs)
            kwargs = dict(
                zip(names, _call_args(graph, values, list(node.kwargs.values())), strict=True)
            )
            row.macs = function_macs(gnode.type, args, value, kwargs)
        row.rf = cache.receptive_field(fields.get(key))
        if module is None or module_signature(module)[0] != "id":
            cache.rows[row_key] = (
                row  # rows are never changed once made (container sums are fresh rows)
            )
        rows.append(row)
    by_key = {r.name: r for r in rows}
    for r in rows:
        if r.kind != "container":
            for ckey in graph.node(r.name).scope:
                if ckey in by_key:
                    by_key[ckey].macs += r.macs
    model = graph.model
    total, trainable = cache.module_params(model)
    summary = Summary(
        model_name=type(model).__name__,
        input_shape=tuple(values["input"].shape[1:]) if "input" in values else (),
        rows=rows,
        total_params=total,
        trainable_params=trainable,
        total_macs=sum(r.macs for r in rows if r.kind != "container"),
    )
    return summary, order


_CHANNEL_BLIND = (
    nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.Linear, nn.ReLU, nn.ReLU6, nn.SiLU,
    nn.GELU, nn.Hardswish, nn.Sigmoid, nn.Identity, nn.Dropout,
)  # fmt: skip


def _spatial_sig(value: Any) -> Any:
    """A value's signature without its channel count (the dimension a per-module field never reads)."""
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        return (shape[:1] + shape[2:] if len(shape) == 4 else shape, value.dtype)
    return _value_sig(value)


class _CachedAnalyzer(_Analyzer):
    """The receptive-field analysis, each node's result reused while its module, its inputs' results and the
    shapes it sees are unchanged (results are kept alive in the cache, so their identities stay unique)."""

    def __init__(self, graph: LayerGraph, values: dict[str, Any], cache: RowCache):
        super().__init__(graph, values)
        self._cache = cache

    def _analyse(self, node: Any) -> Any:
        module = node.module
        if isinstance(module, _CHANNEL_BLIND):
            # channel counts never move a field: a width edit keeps every field after it cached
            msig: Any = (type(module).__name__, window_geometry(module))
            sig = _spatial_sig
        else:
            msig = module_signature(module) if module is not None else None
            sig = _value_sig
        key = (
            node.key,
            msig,
            sig(self.values.get(node.key)),
            tuple((k, id(self.info.get(k)), sig(self.values.get(k))) for k in node.inputs),
        )
        try:
            hit = self._cache.rf.get(key)
        except TypeError:
            return super()._analyse(node)
        if hit is None:
            hit = self._cache.rf[key] = super()._analyse(node)
        return hit
