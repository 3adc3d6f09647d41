"""Channel propagation: which settings must follow when a module's output channels (or features) change.

From the changed module's calls the data flow is followed through the traced graph to the next consumers,
through layers that keep the channel count (activations, dropout, pooling, identity, padding, upsampling) and,
for a Linear, through a flatten (whose spatial size multiplies the features). A batch norm's ``num_features``
and a depthwise convolution (in = out = groups) follow and the walk goes on past them; a convolution's
``in_channels`` and a Linear's ``in_features`` follow and the walk stops there. A squeeze-and-excitation gate
(``x * gate(x)``, the gate computed from the same path) is passed: the gate's last convolution follows. An
addition, concatenation or any other merge is never passed: its other side is fixed, and the explained error
says what else must change.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.graph import LayerGraph
from cnnviz.core.models.edits import ModuleEdit, rebuildable

_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.Mish,
    nn.Hardsigmoid, nn.Dropout, nn.Dropout2d, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d, nn.ZeroPad2d, nn.Upsample,
)  # fmt: skip
_PASS_FUNCTIONS = frozenset({
    "relu", "relu6", "relu_", "gelu", "silu", "hardswish", "sigmoid", "tanh", "dropout", "max_pool2d",
    "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "contiguous", "clone", "hardsigmoid",
    "leaky_relu", "elu", "mish", "interpolate", "pad",
})  # fmt: skip
_FLATTEN = frozenset({"flatten", "view", "reshape"})


def _spatial(value: Any) -> int:
    if isinstance(value, torch.Tensor) and value.dim() > 2:
        n = 1
        for s in value.shape[2:]:
            n *= int(s)
        return n
    return 1


def _gate_source(graph: LayerGraph, gate: str, path: str) -> str | None:
    """The convolution whose output channels a gate ``x * gate(x)`` takes, when the gate is computed from ``path``
    (through a global pooling and shape-keeping layers) by exactly one ordinary convolution at its end."""
    key: str | None = gate
    while key is not None:
        node = graph.node(key)
        m = node.module
        if isinstance(m, nn.Conv2d) and rebuildable(m) and m.groups == 1:
            return node.module_name if _reaches(graph, key, path) else None
        passes = isinstance(m, _PASS_MODULES) or (
            m is None and node.type.split(".")[-1] in _PASS_FUNCTIONS
        )
        key = node.inputs[0] if passes and len(node.inputs) == 1 else None
    return None


def _reaches(graph: LayerGraph, key: str, ancestor: str) -> bool:
    seen: set[str] = set()
    todo = [key]
    while todo:
        k = todo.pop()
        if k == ancestor:
            return True
        if k not in seen:
            seen.add(k)
            todo.extend(graph.node(k).inputs)
    return False


def followers(
    graph: LayerGraph, values: dict[str, Any], module: str, channels: int
) -> list[ModuleEdit]:
    """The edits (``follows=True``) that make the consumers of ``module`` take ``channels`` channels."""
    starts = [n.key for n in graph.nodes if n.module_name == module]
    users: dict[str, list[str]] = {}
    for n in graph.nodes:
        for k in n.inputs:
            users.setdefault(k, []).append(n.key)
    out: list[ModuleEdit] = []
    done: set[str] = set()
    # (node key, channels, factor): a flatten multiplies the features by the spatial size it folds in
    todo: list[tuple[str, int, int]] = [(s, channels, 1) for s in starts]
    while todo:
        k, c, factor = todo.pop()
        for u in users.get(k, []):
            if u in done:
                continue
            done.add(u)
            node = graph.node(u)
            m = node.module
            op = node.type.split(".")[-1]
            if m is not None:
                name = node.module_name or u
                if isinstance(m, _PASS_MODULES):
                    todo.append((u, c, factor))
                elif isinstance(m, nn.modules.batchnorm._BatchNorm) and rebuildable(m):
                    out.append(ModuleEdit("set", name, {"num_features": c}, follows=True))
                    todo.append((u, c, factor))
                elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and rebuildable(m):
                    if m.groups == m.in_channels == m.out_channels and m.groups > 1:
                        settings = {"in_channels": c, "out_channels": c, "groups": c}
                        out.append(ModuleEdit("set", name, settings, follows=True))
                        todo.append((u, c, factor))
                    elif m.groups == 1:
                        out.append(ModuleEdit("set", name, {"in_channels": c}, follows=True))
                elif isinstance(m, nn.Linear) and rebuildable(m):
                    out.append(ModuleEdit("set", name, {"in_features": c * factor}, follows=True))
                elif isinstance(m, nn.Flatten):
                    todo.append((u, c, factor * _spatial(values.get(k))))
            elif op in _PASS_FUNCTIONS:
                todo.append((u, c, factor))
            elif op in ("mul", "imul") and len(node.inputs) == 2:
                # x * gate(x) (squeeze-and-excitation): the gate's last layer must give c channels too
                gate = next(i for i in node.inputs if i != k) if k in node.inputs else None
                last = _gate_source(graph, gate, k) if gate is not None else None
                if last is not None:
                    out.append(ModuleEdit("set", last, {"out_channels": c}, follows=True))
                    todo.append((u, c, factor))
            elif op in _FLATTEN:
                todo.append((u, c, factor * _spatial(values.get(k))))
    return out
