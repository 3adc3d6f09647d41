"""The per-layer table: output shapes, parameters, MACs, layer geometry -- without real compute.

Shapes come from running the traced graph on *meta* tensors (torch computes every output shape with its own
shape rules, but no arithmetic), so the table matches a real forward pass exactly and is cheap enough to refresh
while layers are edited. MACs count multiply-accumulates of convolutions, linear layers and matrix products for a
batch of one (the convention of torchinfo and most papers); element-wise layers count none.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis import forward_budget
from cnnviz.core.analysis.graph import (
    OUTPUT_KEY,
    GraphNode,
    LayerGraph,
    layer_graph,
    model_device,
    unwrap_module,
)
from cnnviz.core.analysis.receptive import attach_receptive_fields
from cnnviz.core.analysis.shapes import run_on_meta
from cnnviz.core.analysis.types import LayerRow, Pair, Summary
from cnnviz.core.errors import CnnvizError
from cnnviz.core.validate import check_summarize_arguments

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONVT_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL_TYPES = (nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d, nn.AvgPool1d, nn.LPPool2d)


def _pair(value: Any) -> Pair | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return (int(value[0]), int(value[0]))
        if len(value) >= 2:
            return (int(value[-2]), int(value[-1]))
    return None


def conv_padding(module: nn.Module) -> Pair | None:
    """Leading (top, left) padding of a convolution, resolving ``'same'`` and ``'valid'`` as torch does."""
    padding = getattr(module, "padding", None)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        kernel = _pair(module.kernel_size)
        dilation = _pair(module.dilation)
        assert kernel is not None and dilation is not None
        # torch pads 'same' with total d*(k-1), the smaller half first
        return (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    return _pair(padding)


def _numel(shape: Any) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _fmt(n: int) -> str:
    return f"{n:,}"


def conv_formula(module: nn.Module) -> str:
    """The parameter count of a convolution spelled out with its numbers."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)  # a convolution's weight is a Parameter
    k = list(weight.shape[2:])
    c_out = module.out_channels
    c_in = module.in_channels
    groups = module.groups
    kernel = " × ".join(str(v) for v in k)
    cin = f"{c_in}/{groups}" if groups != 1 else f"{c_in}"
    if isinstance(module, _CONVT_TYPES):
        cin, cout = f"{c_in}", f"{c_out}/{groups}" if groups != 1 else f"{c_out}"
        core = f"{kernel} × {cin} × {cout}"
    else:
        core = f"{kernel} × {cin} × {c_out}"
    bias = module.bias is not None
    total = sum(p.numel() for p in module.parameters(recurse=False))
    names = "K_h × K_w × C_in" + ("/groups" if groups != 1 else "") + " × C_out"
    if bias:
        return f"{names} + bias = {core} + {c_out} = {_fmt(total)}"
    return f"{names} = {core} = {_fmt(total)}"


def module_macs(module: nn.Module, inp: Any, out: Any) -> int:
    if isinstance(module, _CONV_TYPES) and isinstance(out, torch.Tensor):
        return module.weight.numel() * _numel(out.shape[2:])
    if isinstance(module, _CONVT_TYPES) and isinstance(inp, torch.Tensor):
        # every input pixel is multiplied by the whole kernel
        return module.weight.numel() * _numel(inp.shape[2:])
    if isinstance(module, nn.Linear) and isinstance(out, torch.Tensor):
        positions = _numel(out.shape[1:-1]) if out.dim() > 2 else 1
        return module.in_features * module.out_features * positions
    return 0


def _function_macs(node: GraphNode, args: list[Any], out: Any) -> int:
    name = node.type.split(".")[-1]
    if not isinstance(out, torch.Tensor):
        return 0
    if (
        name in ("conv1d", "conv2d", "conv3d")
        and len(args) >= 2
        and isinstance(args[1], torch.Tensor)
    ):
        return args[1].numel() * _numel(out.shape[2:])
    if name == "linear" and len(args) >= 2 and isinstance(args[1], torch.Tensor):
        return args[1].numel() * (_numel(out.shape[1:-1]) if out.dim() > 2 else 1)
    if name in ("matmul", "mm", "bmm", "matmul_") and len(args) >= 2:
        a = args[0]
        if isinstance(a, torch.Tensor) and a.dim() >= 1:
            batch_one = out.shape[1:] if out.dim() > 2 else out.shape
            return _numel(batch_one) * int(a.shape[-1])
    return 0


def fill_layer_geometry(row: LayerRow, module: nn.Module) -> None:
    if isinstance(module, _CONV_TYPES + _CONVT_TYPES):
        row.kernel_size = _pair(module.kernel_size)
        row.stride = _pair(module.stride)
        row.padding = conv_padding(module)
        row.dilation = _pair(module.dilation)
        row.groups = int(module.groups)
        row.in_channels = int(module.in_channels)
        row.out_channels = int(module.out_channels)
        row.param_formula = conv_formula(module)
    elif isinstance(module, _POOL_TYPES):
        row.kernel_size = _pair(module.kernel_size)
        row.stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        row.padding = _pair(getattr(module, "padding", 0))
        row.dilation = _pair(getattr(module, "dilation", 1))
    elif isinstance(module, nn.Linear):
        row.in_channels = int(module.in_features)
        row.out_channels = int(module.out_features)
        total = sum(p.numel() for p in module.parameters(recurse=False))
        bias = " + bias" if module.bias is not None else ""
        core = f"{module.in_features} × {module.out_features}"
        extra = f" + {module.out_features}" if module.bias is not None else ""
        row.param_formula = f"D_in × D_out{bias} = {core}{extra} = {_fmt(total)}"


def _shape(value: Any) -> tuple[int, ...] | list[tuple[int, ...]] | None:
    if isinstance(value, torch.Tensor):
        return tuple(int(s) for s in value.shape)
    if (
        isinstance(value, (tuple, list))
        and value
        and all(isinstance(v, torch.Tensor) for v in value)
    ):
        return [tuple(int(s) for s in v.shape) for v in value]
    return None


def module_params(module: nn.Module) -> tuple[int, int]:
    total = trainable = 0
    seen: set[int] = set()
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


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
    # Parameters and input first: a model that cannot run on meta tensors gets one real pass below.
    forward_budget.check_estimate(forward_budget.static_estimate(module, shape))
    graph = layer_graph(module)
    values, received = _layer_values(graph, shape)
    # A capture keeps every layer's output: the table refuses what a capture of it could not hold.
    forward_budget.check_estimate(forward_budget.estimate_from_values(graph, module, shape, values))
    rows: list[LayerRow] = []
    if graph.traced:
        for key, is_container, depth in graph.ordered_keys():
            if is_container:
                info = graph.containers[key]
                out = values.get(info.output_key) if info.output_key else None
                total, trainable = module_params(info.module)
                if out is None and total == 0:
                    continue  # no output and no weights (e.g. torch.export's guard function): not a layer
                rows.append(
                    LayerRow(key, info.type, "container", depth, _shape(out), total, trainable)
                )
                continue
            gnode = graph.node(key)
            value = values.get(key)
            out_shape = _shape(value)
            if out_shape is None:
                continue  # sizes, ints, unpacking: not layers
            node = gnode.fx_node
            assert node is not None
            # layer inputs by their values; parameters read with get_attr by the tensors themselves
            args = [
                values.get(k) if (k := graph.node_key(a)) is not None else graph.constant(a)
                for a in node.args
                if hasattr(a, "op")
            ]
            row = LayerRow(key, gnode.type, gnode.kind, depth, out_shape, inputs=list(gnode.inputs))
            if gnode.module is not None:
                row.params, row.trainable_params = module_params(gnode.module)
                row.macs = module_macs(gnode.module, args[0] if args else None, value)
                fill_layer_geometry(row, gnode.module)
            else:
                row.macs = _function_macs(gnode, args, value)
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
            row.params, row.trainable_params = module_params(sub)
            if kind == "module":
                row.macs = module_macs(sub, received.get(key), value)
                fill_layer_geometry(row, sub)
            rows.append(row)
    total, trainable = module_params(module)
    total_macs = sum(r.macs for r in rows if r.kind != "container")
    summary = Summary(
        model_name=name or getattr(model, "name", None) or type(module).__name__,
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
    return summary
