"""The per-layer table: output shapes, parameters, MACs, layer geometry -- without real compute.

Shapes come from running the traced graph on *meta* tensors (torch computes every output shape with its own
shape rules, but no arithmetic), so the table matches a real forward pass exactly and is cheap enough to refresh
while layers are edited. MACs count multiply-accumulates of convolutions, linear layers, matrix products
(``matmul``, ``bmm``, ``einsum``) and attention (``nn.MultiheadAttention``, ``F.scaled_dot_product_attention``,
torchvision's shifted windows) for a batch of one (the convention of torchinfo, fvcore and most papers);
element-wise layers count none. A layer that returns a tuple or list is a row too: its shapes, and
``output_structure`` says how it is built.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis import forward_budget
from cnnviz.core.analysis.capture import container_outputs
from cnnviz.core.analysis.graph import (
    OUTPUT_KEY,
    LayerGraph,
    _settings,  # noqa: F401 - kept importable from here
    graph_and_fingerprint,
    model_device,
    structure_fingerprint,  # noqa: F401 - kept importable from here
    unwrap_module,
)
from cnnviz.core.analysis.receptive import attach_receptive_fields
from cnnviz.core.analysis.shapes import run_on_meta
from cnnviz.core.analysis.types import LayerRow, Summary
from cnnviz.core.errors import CnnvizError
from cnnviz.core.models.layertypes import (
    CONV_MODULES,
    function_macs,
    geometry,
    module_macs,
    module_params,
    param_counts,
)
from cnnviz.core.moduletree import walked_once
from cnnviz.core.validate import check_summarize_arguments


def _shape(value: Any) -> tuple[int, ...] | list[tuple[int, ...]] | None:
    """A tensor's shape; a tuple or list of tensors gives each one's; a mix gives its first tensor's."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value:
        if all(isinstance(v, torch.Tensor) for v in value):
            return [tuple(v.shape) for v in value]
        first = next((v for v in value if isinstance(v, torch.Tensor)), None)
        if first is not None:
            return tuple(first.shape)
    return None


def _structure(value: Any) -> str | None:
    """How a tuple or list output is built (``tuple (tensor, None)``); None for a plain tensor."""
    if not isinstance(value, (tuple, list)) or not value:
        return None

    def part(v: Any) -> str:
        if isinstance(v, torch.Tensor):
            return "tensor"
        if isinstance(v, (tuple, list)):
            return f"{type(v).__name__} of {len(v)}"
        return "None" if v is None else type(v).__name__

    return f"{type(value).__name__} ({', '.join(part(v) for v in value)})"


def _call_args(graph: LayerGraph, values: Mapping[str, Any], items: Sequence[Any]) -> list[Any]:
    """An fx call's arguments: layers by their values, parameters by themselves, constants as they are."""

    def resolve(a: Any) -> Any:
        if hasattr(a, "op"):
            k = graph.node_key(a)
            return values.get(k) if k is not None else graph.constant(a)
        if isinstance(a, (tuple, list)):
            return type(a)(resolve(v) for v in a)
        return a

    return [resolve(a) for a in items]


def _fill_geometry(row: LayerRow, module: nn.Module) -> None:
    for name, value in geometry(module).items():
        setattr(row, name, value)


def _layer_values(
    graph: LayerGraph, shape: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    if graph.compiled:
        # no hooks and no meta tensors; one real pass (the capture's) gives the output's shape
        from cnnviz.core.analysis.capture import capture

        model = graph.model
        x = torch.zeros((1, *shape), device=model_device(model))
        return {OUTPUT_KEY: capture(model, x).output}, {}
    return run_on_meta(graph, shape)


def summarize(
    model: Any,
    input_shape: tuple[int, ...] | list[int] | None = None,
    *,
    receptive_fields: bool = True,
    name: str | None = None,
) -> Summary:
    """The per-layer table of ``model`` for an input of ``input_shape`` (C, H, W), in execution order.

    ``model`` is an ``nn.Module`` or a loaded model (whose ``input_shape`` is the default). Shapes are inferred on
    meta tensors, so nothing is computed. With ``receptive_fields`` each row carries its theoretical receptive
    field (see :mod:`cnnviz.core.analysis.receptive`).
    """
    check_summarize_arguments(model, input_shape, receptive_fields, name)
    module = unwrap_module(model)
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise CnnvizError("an input shape (C, H, W) is needed to summarise this model")
    shape = tuple(int(s) for s in input_shape)
    if any(s < 1 for s in shape):
        raise CnnvizError(f"input shape {list(shape)} must be positive in every dimension")
    with walked_once(module):
        return _summary_of(model, module, shape, receptive_fields, name)


def _summary_of(
    model: Any,
    module: nn.Module,
    shape: tuple[int, ...],
    receptive_fields: bool,
    name: str | None,
) -> Summary:
    graph, fingerprint = graph_and_fingerprint(module)
    model_name = name or getattr(model, "name", None) or type(module).__name__
    cache_key = (shape, receptive_fields, model_name)
    # a TorchScript archive's table comes from a real pass of its compiled program: not kept
    hit = None if graph.compiled else _TABLES.get(graph, {}).get(cache_key)
    if hit is not None and hit[0] == fingerprint:
        # the budget may have changed since: the stored estimate (parameters included) is checked again
        forward_budget.check_estimate(hit[1])
        return _copy_summary(hit[2])
    # Parameters and input first: a model that cannot run on meta tensors gets one real pass below.
    forward_budget.check_estimate(forward_budget.static_estimate(module, shape))
    summary, estimate = _summarize(graph, module, shape, receptive_fields, model_name)
    if not graph.compiled:
        _TABLES.setdefault(graph, {})[cache_key] = (fingerprint, estimate, summary)
    return _copy_summary(summary)


# A table per traced graph (forget_graph drops it with the graph), input shape and options, kept with the
# fingerprint of the model it was made for: the table again of an unchanged model is a copy of it.
_TABLES: weakref.WeakKeyDictionary[
    LayerGraph, dict[tuple[Any, ...], tuple[Any, forward_budget.ForwardEstimate, Summary]]
] = weakref.WeakKeyDictionary()


def _copy_summary(summary: Summary) -> Summary:
    """A copy whose rows can be changed without touching the stored table."""
    rows = []
    for r in summary.rows:
        row = object.__new__(LayerRow)
        row.__dict__.update(r.__dict__)
        row.inputs = list(r.inputs)
        rows.append(row)
    return dataclasses.replace(summary, rows=rows)


def _summarize(
    graph: LayerGraph,
    module: nn.Module,
    shape: tuple[int, ...],
    receptive_fields: bool,
    model_name: str,
) -> tuple[Summary, forward_budget.ForwardEstimate]:
    values, received = _layer_values(graph, shape)
    # A capture keeps every layer's output: the table refuses what a capture of it could not hold.
    estimate = forward_budget.estimate_from_values(graph, module, shape, values)
    forward_budget.check_estimate(estimate)
    rows: list[LayerRow] = []
    # one walk for every row's count (a TorchScript archive is counted as a whole, as before)
    counts = {} if graph.compiled else param_counts(module)
    if graph.traced:
        for key, is_container, depth in graph.ordered_keys():
            if is_container:
                info = graph.containers[key]
                structure = None
                if info.output_key:
                    out = values.get(info.output_key)
                else:
                    # a list returned (timm HRNet's stages): the values that leave it, in execution order
                    leaving = [values.get(k) for k in container_outputs(graph, key)]
                    out = leaving if leaving and all(v is not None for v in leaving) else None
                    structure = f"{len(leaving)} outputs" if out is not None else None
                total, trainable = counts.get(id(info.module)) or module_params(info.module)
                if out is None and total == 0:
                    continue  # no output and no weights (e.g. torch.export's guard function): not a layer
                row = LayerRow(key, info.type, "container", depth, _shape(out), total, trainable)
                row.output_structure = structure or _structure(out)
                rows.append(row)
                continue
            gnode = graph.node(key)
            value = values.get(key)
            out_shape = _shape(value)
            if out_shape is None:
                continue  # sizes, ints, unpacking: not layers
            node = gnode.fx_node
            assert node is not None
            args = _call_args(graph, values, node.args)
            row = LayerRow(key, gnode.type, gnode.kind, depth, out_shape, inputs=list(gnode.inputs))
            row.output_structure = _structure(value)
            if gnode.module is not None:
                row.params, row.trainable_params = counts.get(id(gnode.module)) or module_params(
                    gnode.module
                )
                row.macs = module_macs(gnode.module, args[0] if args else None, value, args)
                _fill_geometry(row, gnode.module)
            else:
                names = list(node.kwargs)
                kwargs = dict(
                    zip(names, _call_args(graph, values, list(node.kwargs.values())), strict=True)
                )
                row.macs = function_macs(gnode.type, args, value, kwargs)
            rows.append(row)
        # containers sum the MACs of what runs inside them
        by_key = {r.name: r for r in rows}
        for r in rows:
            if r.kind != "container":
                for ckey in graph.node(r.name).scope:
                    if ckey in by_key:
                        by_key[ckey].macs += r.macs
    else:
        modules = dict(module.named_modules())
        children = {n for n, m in modules.items() if n and any(True for _ in m.children())}
        for key, value in values.items():
            qual = key.split("@")[0]
            if key == OUTPUT_KEY and qual not in modules:
                out_shape = _shape(value)
                total, trainable = module_params(module)
                rows.append(LayerRow(key, "TorchScript", "module", 0, out_shape, total, trainable))
                continue
            sub = modules[qual]
            out_shape = _shape(value)
            if out_shape is None:
                continue
            kind = "container" if qual in children else "module"
            row = LayerRow(key, type(sub).__name__, kind, qual.count("."), out_shape)
            row.output_structure = _structure(value)
            row.params, row.trainable_params = module_params(sub)
            if kind == "module":
                row.macs = module_macs(sub, received.get(key), value)
                _fill_geometry(row, sub)
            rows.append(row)
    total, trainable = counts.get(id(module)) or module_params(module)
    total_macs = sum(r.macs for r in rows if r.kind != "container")
    summary = Summary(
        model_name=model_name,
        input_shape=shape,
        rows=rows,
        total_params=total,
        trainable_params=trainable,
        total_macs=total_macs,
        traced=graph.traced,
        note=graph.note,
    )
    if receptive_fields and graph.traced:
        attach_receptive_fields(summary, graph, values)
    return summary, estimate


_CONV_NAMES = frozenset(cls.__name__ for cls in CONV_MODULES)


def default_layer(shapes: Mapping[str, Sequence[int]], types: Mapping[str, str]) -> str | None:
    """The layer to show first: the first convolution with a spatial map, else the first spatial map, else the
    first layer.

    ``shapes`` are the captured outputs' shapes (batch included) in execution order; ``types`` the table's layer
    types by name (a layer missing there is not taken for a convolution).
    """
    names = list(shapes)
    for name in names:
        if types.get(name) in _CONV_NAMES and len(shapes[name]) == 4:
            return name
    for name in names:
        if len(shapes[name]) == 4:
            return name
    return names[0] if names else None
