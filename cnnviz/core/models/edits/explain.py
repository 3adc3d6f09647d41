"""Explained errors: the node where an edited graph breaks, both sides in words, the edit that did it, the fix.

``layer1.0.add: residual addition of 64×28×28 (from layer1.0.bn2) and 64×56×56 (from layer1.0's input):
layer1.0.conv1 now has stride 2; give layer1.0 a downsample or restore stride 1``. Merges (additions,
multiplications such as squeeze-and-excitation gates, concatenations) name both inputs; layers that take a
fixed channel or feature count (convolutions, batch norms, linear layers after a flatten) name what they
expect and what arrives. Nodes are named by their row key, as the layer table shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
from torch import nn

from cnnviz.core import text
from cnnviz.core.errors import CnnvizError, one_line
from cnnviz.core.models.edits.patch import ModuleEdit
from cnnviz.core.models.edits.walk import WalkFailure, _sig

if TYPE_CHECKING:
    from cnnviz.core.analysis.graph import GraphNode, LayerGraph

OriginalConfig = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class GraphEditError:
    """Where an edited graph breaks: the node's row key and one sentence saying what, why and what to do."""

    node: str
    message: str

    def __str__(self) -> str:
        return self.message


def _dims(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        return text.dims(shape[1:] if len(shape) > 1 else shape)
    if isinstance(value, list | tuple):
        return " and ".join(_dims(v) for v in value)
    return type(value).__name__


def _arg_nodes(failure: WalkFailure) -> list[Any]:
    node = failure.node.fx_node
    assert node is not None
    out: list[Any] = []
    for a in node.args:
        if isinstance(a, list | tuple):
            out.extend(a)
        else:
            out.append(a)
    return out


def _tensor_inputs(
    failure: WalkFailure, graph: LayerGraph
) -> list[tuple[torch.Tensor, str | None]]:
    """(value, source key) of each tensor the failing node received, in argument order."""
    values: list[Any] = []
    for v in failure.args:
        if isinstance(v, list | tuple):
            values.extend(v)
        else:
            values.append(v)
    nodes = _arg_nodes(failure)
    out = []
    for value, node in zip(values, nodes, strict=False):
        if isinstance(value, torch.Tensor):
            key = graph.node_key(node) if isinstance(node, fx.Node) else None
            out.append((value, key))
    return out


def _origin(graph: LayerGraph, at: GraphNode, key: str | None) -> tuple[str, str | None]:
    """How the source ``key`` reads from ``at``: ``layer1.0.bn2`` or ``layer1.0's input``; and that block."""
    if key is None:
        return "a constant", None
    src = graph.node(key)
    if src.kind == "input":
        return "the model's input", None
    for container in reversed(at.scope):
        if container not in src.scope:
            return f"{container}'s input", container
        break
    return key, None


def _part(graph: LayerGraph, at: GraphNode, key: str) -> str:
    """The branch ``key`` belongs to, seen from ``at``: the sub-container of ``at``'s block holding it, else itself."""
    src = graph.node(key)
    if len(src.scope) > len(at.scope) and src.scope[: len(at.scope)] == at.scope:
        return src.scope[len(at.scope)]
    return key


def _ancestors(graph: LayerGraph, key: str) -> set[str]:
    seen: set[str] = set()
    todo = [key]
    while todo:
        k = todo.pop()
        if k in seen:
            continue
        seen.add(k)
        todo.extend(graph.node(k).inputs)
    return seen


def _touches(edit: ModuleEdit, names: set[str]) -> bool:
    prefix = edit.module
    return any(n == prefix or not prefix or n.startswith(prefix + ".") for n in names)


def _module_names(graph: LayerGraph, keys: set[str]) -> set[str]:
    names = set()
    for k in keys:
        node = graph.node(k)
        names.add(node.module_name or k)
        names.update(node.scope)
    return names


def _cause(
    edits: Sequence[ModuleEdit], graph: LayerGraph, key: str, sources: Sequence[str | None] = ()
) -> tuple[ModuleEdit | None, str | None]:
    """The latest edit upstream of ``key`` and which of ``sources`` it reaches (None: not one of them)."""
    names = _module_names(graph, _ancestors(graph, key))
    for edit in reversed(edits):
        if edit.follows or not _touches(edit, names):
            continue
        for src in sources:
            if src is not None and _touches(edit, _module_names(graph, _ancestors(graph, src))):
                return edit, src
        return edit, None
    return None, None


def _restore(edit: ModuleEdit | None, original: OriginalConfig) -> str | None:
    if edit is None:
        return None
    if edit.op == "set":
        config = original(edit.module) or {}
        parts = []
        for k in edit.settings:
            if k in config:
                v = config[k]
                parts.append(
                    f"{k} {v[0] if isinstance(v, list | tuple) and len(set(v)) == 1 else v}"
                )
        return f"restore {', '.join(parts)}" if parts else f"undo the change of {edit.module}"
    if edit.op == "replace":
        return f"undo the replacement of {edit.module}"
    if edit.op == "insert":
        return f"remove the {edit.type} inserted into {edit.module}"
    return f"restore {edit.module}"


def _merge_name(op: str, values: list[torch.Tensor], residual: bool) -> str:
    if op in ("add", "iadd", "sub", "isub"):
        return "residual addition" if residual else "addition"
    if op in ("mul", "imul"):
        gate = any(v.dim() == 4 and tuple(v.shape[2:]) == (1, 1) for v in values)
        return "squeeze-and-excitation gate multiplication" if gate else "multiplication"
    return "concatenation"


def first_breaking(
    edits: Sequence[ModuleEdit],
    failure: WalkFailure,
    walk: Callable[[tuple[ModuleEdit, ...]], WalkFailure | None],
) -> ModuleEdit | None:
    """The user edit after which the graph first breaks as it does now: at the same node, receiving the same
    shapes. ``walk(prefix)`` walks the model with the edits of ``prefix`` made and returns its failure (None when
    it runs; a CnnvizError when the prefix cannot be made is skipped). Edits that ``follows`` another belong to
    it: a prefix never ends between them."""
    seen = (failure.node.key, _sig(failure.args))
    edits = tuple(edits)
    starts = [i for i, e in enumerate(edits) if not e.follows]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(edits)
        if end == len(edits):
            return edits[start]
        try:
            earlier = walk(edits[:end])
        except CnnvizError:
            continue
        if earlier is not None and (earlier.node.key, _sig(earlier.args)) == seen:
            return edits[start]
    return None


def explain(
    failure: WalkFailure,
    graph: LayerGraph,
    edits: Sequence[ModuleEdit],
    original: OriginalConfig = lambda _name: None,
    cause: ModuleEdit | None = None,
) -> GraphEditError:
    """The explained error of a walk that stopped at ``failure`` (see the module docstring).

    ``cause`` is the edit known to have broken the graph; without it, the latest edit upstream of the node.
    """
    gnode = failure.node
    key = gnode.key
    op = gnode.type.split(".")[-1].lower()
    inputs = _tensor_inputs(failure, graph)
    module = gnode.module
    sources = [src for _, src in inputs]
    edit, edited_src = _cause([cause] if cause is not None else edits, graph, key, sources)
    if edit is None:
        edit = cause
    said = edit.describe() if edit is not None else None
    restore = _restore(edit, original)

    if (
        module is None
        and op in ("add", "iadd", "sub", "isub", "mul", "imul", "cat", "concat", "stack")
        and len(inputs) >= 2
    ):
        origins = [_origin(graph, gnode, src) for _, src in inputs]
        wheres = [w for w, _ in origins]
        described = []
        blocks = []
        for (merged, src), (where, block) in zip(inputs, origins, strict=True):
            if wheres.count(where) > 1 and src is not None:
                where, block = src, None  # two inputs from outside the block: name each
            described.append(f"{_dims(merged)} (from {where})")
            blocks.append(block)
        values = [v for v, _ in inputs]
        what = _merge_name(op, values, bool(gnode.scope))
        if what == "concatenation":
            what = "concatenation along channels" if _cat_dim(failure) in (1, -3) else what
        head = f"{key}: {what} of {' and '.join(described)}"
        fix = None
        if any(b is not None for b in blocks) and op in ("add", "iadd"):
            block = next(b for b in blocks if b is not None)
            a, b = values[0], values[1]
            if (
                a.dim() == 4
                and b.dim() == 4
                and a.shape[1] != b.shape[1]
                and a.shape[2:] == b.shape[2:]
            ):
                fix = f"give {block} a downsample with {a.shape[1] if edited_src == sources[0] else b.shape[1]} output channels"
            else:
                fix = f"give {block} a downsample"
        elif edited_src is not None and op in ("add", "iadd", "sub", "isub"):
            other = [s for s in sources if s != edited_src and s is not None]
            if other:
                fix = f"change {_part(graph, gnode, other[0])} to match"
        hint = " or ".join(p for p in (fix, restore) if p) or None
        return GraphEditError(key, _colon(head, said, hint))

    value = inputs[0][0] if inputs else None
    src = inputs[0][1] if inputs else None
    where, _ = _origin(graph, gnode, src)
    received = f"{_dims(value)} (from {where})" if value is not None else "no tensor"
    if isinstance(module, nn.Linear) and value is not None:
        got = int(value.shape[-1])
        head = f"{key}: Linear expects {module.in_features} input features but receives {got} (from {where})"
        hint = " or ".join(p for p in (f"set {key}'s in_features to {got}", restore) if p)
        return GraphEditError(key, _colon(head, said, hint))
    if (
        isinstance(module, nn.Conv2d | nn.ConvTranspose2d)
        and value is not None
        and value.dim() >= 3
    ):
        got = int(value.shape[1])
        if got != module.in_channels:
            head = f"{key}: convolution expects {module.in_channels} input channels but receives {received}"
            hint = " or ".join(p for p in (f"set {key}'s in_channels to {got}", restore) if p)
            return GraphEditError(key, _colon(head, said, hint))
    if (
        isinstance(module, nn.modules.batchnorm._BatchNorm)
        and value is not None
        and value.dim() >= 2
    ):
        got = int(value.shape[1])
        head = f"{key}: batch norm expects {module.num_features} channels but receives {received}"
        hint = " or ".join(p for p in (f"set {key}'s num_features to {got}", restore) if p)
        return GraphEditError(key, _colon(head, said, hint))
    head = f"{key} ({gnode.type}) cannot take {received}: {one_line(failure.error, 160)}"
    return GraphEditError(key, _colon(head, said, restore))


def _cat_dim(failure: WalkFailure) -> Any:
    if "dim" in failure.kwargs:
        return failure.kwargs["dim"]
    return failure.args[1] if len(failure.args) > 1 else 0


def _colon(head: str, cause: str | None, hint: str | None) -> str:
    """``head: cause; hint`` (the cause after a colon, as one sentence)."""
    if cause:
        return f"{head}: {cause}" + (f"; {hint}" if hint else "")
    return head + (f"; {hint}" if hint else "")
