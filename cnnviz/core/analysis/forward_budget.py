"""The memory one forward pass would hold, walked on meta tensors before anything real is allocated.

What is counted and why the default budget is what it is: see :mod:`cnnviz.core.budget`, which holds the
budget itself and the checks that need no model. Here the model runs on meta tensors (see
:mod:`cnnviz.core.analysis.shapes`), and the timeline of live outputs gives the peak.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cnnviz.core import text
from cnnviz.core.analysis.failures import ForwardError
from cnnviz.core.analysis.graph import LayerGraph, layer_graph, unwrap_module
from cnnviz.core.analysis.shapes import run_hooks, run_on_meta
from cnnviz.core.budget import (
    ADVICE,
    memory_budget,
    model_param_bytes,
    tensor_bytes,
)
from cnnviz.core.errors import MemoryBudgetError


@dataclass(frozen=True)
class Step:
    """One layer of the walk: its output (batch included) and the memory alive just after it was produced."""

    key: str
    type: str
    shape: tuple[int, ...] | None
    nbytes: int  # new memory this layer allocates (0 for views and aliases)
    total: int  # parameters + input + every output alive at this moment


@dataclass(frozen=True)
class ForwardEstimate:
    """What one forward pass at batch 1 would hold: parameters, input, and the timeline of live outputs."""

    params: int
    input: int
    steps: tuple[Step, ...]
    complete: bool  # False when the model could not run on meta tensors (then only params + input are known)
    input_shape: tuple[int, ...] = ()  # (C, H, W), without the batch

    @property
    def peak(self) -> int:
        """The most memory alive at any moment (bytes)."""
        return max([self.params + self.input, *(s.total for s in self.steps)])


def _roots(value: Any) -> list[Any]:
    """The distinct tensors whose memory ``value`` uses (a view stands for its base)."""
    if type(value) is torch.Tensor:  # almost every layer's value
        base = value._base
        return [value if base is None else base]
    found: list[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, torch.Tensor):
            found.append(v._base if v._base is not None else v)
        elif isinstance(v, (tuple, list)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return found


def _batch_shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return _batch_shape(value[0])
    return None


def _timeline(items: Sequence[tuple[str, str, Any, int, bool]], start: int) -> tuple[Step, ...]:
    """Steps from (key, type, value, index of last use, kept) in execution order, starting at ``start`` bytes."""
    first: dict[int, int] = {}
    last: dict[int, float] = {}
    size: dict[int, int] = {}
    for i, (_key, _type, value, last_use, kept) in enumerate(items):
        end = math.inf if kept else max(i, last_use)
        for root in _roots(value):
            rid = id(root)
            if rid not in first:
                first[rid] = i
                size[rid] = root.numel() * root.element_size()
            last[rid] = max(last.get(rid, -1), end)
    born: dict[int, list[int]] = {}
    dies: dict[int, list[int]] = {}
    for rid, i in first.items():
        born.setdefault(i, []).append(rid)
        if last[rid] != math.inf:
            dies.setdefault(int(last[rid]), []).append(rid)
    live = start
    steps = []
    for i, (key, kind, value, _last, _kept) in enumerate(items):
        new = sum(size[r] for r in born.get(i, ()))
        live += new
        steps.append(Step(key, kind, _batch_shape(value), new, live))
        live -= sum(size[r] for r in dies.get(i, ()))
    return tuple(steps)


def _traced_items(
    graph: Any, values: dict[str, Any], keep: frozenset[str] | None
) -> list[tuple[str, str, Any, int, bool]]:
    nodes = [n for n in graph.nodes if n.fx_node is not None]
    position = {n.fx_node: i for i, n in enumerate(nodes)}
    kept_keys: set[str] | None = None
    if keep is not None:
        kept_keys = set(keep)
        for key in keep:
            info = graph.containers.get(key)
            if info is not None and info.output_key:
                kept_keys.add(info.output_key)
    items = []
    for i, node in enumerate(nodes):
        users = [
            position.get(u, len(nodes)) for u in node.fx_node.users
        ]  # the output node: the end
        last_use = max(users) if users else i
        kept = kept_keys is None or node.key in kept_keys or last_use >= len(nodes)
        items.append((node.key, node.type, values.get(node.key), last_use, kept))
    return items


def estimate_from_values(
    graph: Any,
    module: Any,
    input_shape: Sequence[int],
    values: dict[str, Any],
    keep: Iterable[str] | None = None,
) -> ForwardEstimate:
    """The estimate of a forward pass whose layer values (meta tensors) are known, e.g. from the table's pass.

    ``keep`` are the layer keys a capture keeps (None: every layer, as a full capture does; empty: only the
    model's output, as a prediction does).
    """
    keep_set = None if keep is None else frozenset(keep)
    params = model_param_bytes(module)
    input_bytes = tensor_bytes((1, *input_shape))
    if graph.traced:
        items = _traced_items(graph, values, keep_set)
    else:
        types = {name: type(m).__name__ for name, m in module.named_modules()}
        items = [
            (key, types.get(key.split("@")[0], "output"), value, len(values), True)
            for key, value in values.items()
        ]
    # the input node (traced graphs) is the input tensor itself: then it is counted among the outputs
    has_input = graph.traced and any(n.kind == "input" for n in graph.nodes if n.key in values)
    start = params + (0 if has_input else input_bytes)
    shape = tuple(int(s) for s in input_shape)
    return ForwardEstimate(params, input_bytes, _timeline(items, start), True, shape)


_CACHE: weakref.WeakKeyDictionary[Any, dict[Any, ForwardEstimate]] = weakref.WeakKeyDictionary()


def estimate_forward(
    model: Any,
    input_shape: Sequence[int],
    keep: Iterable[str] | None = None,
    *,
    param_bytes: int | None = None,
    graph: LayerGraph | None = None,
) -> ForwardEstimate:
    """Walk one forward pass of ``model`` at batch 1 on meta tensors; nothing real is allocated.

    A model that cannot run on meta tensors (data-dependent control flow, a TorchScript archive) gets an
    incomplete estimate: parameters and input only. Cached per traced graph, input shape and ``keep``;
    ``param_bytes`` (the model's, when the caller has counted them) and ``graph`` (its current layer graph,
    when the caller holds it) save finding them again.
    """
    module = unwrap_module(model)
    shape = tuple(int(s) for s in input_shape)
    keep_key = None if keep is None else frozenset(keep)
    if graph is None:
        graph = layer_graph(module)
    cache = _CACHE.setdefault(graph, {})
    hit = cache.get((shape, keep_key))
    if param_bytes is None:
        param_bytes = model_param_bytes(module)
    if hit is not None and hit.params == param_bytes:
        return hit
    values: dict[str, Any] | None = None
    try:
        if graph.traced:
            values, _received = run_on_meta(graph, shape)
        elif not graph.compiled:
            x = torch.empty((1, *shape), device="meta")
            values, _received = run_hooks(module, x, meta=True)
    except ForwardError:
        values = None
    if values is None:
        params = model_param_bytes(module)
        estimate = ForwardEstimate(params, tensor_bytes((1, *shape)), (), False, shape)
    else:
        estimate = estimate_from_values(graph, module, shape, values, keep_key)
    cache[(shape, keep_key)] = estimate
    return estimate


def check_estimate(
    estimate: ForwardEstimate, budget: str | int | float | None = None, *, batch: int = 1
) -> None:
    """Raise :class:`MemoryBudgetError` naming the first layer at which the pass would go over the budget.

    ``batch`` scales the input and every output (the estimate is for a batch of one).
    """
    limit = memory_budget(budget)
    params, n = estimate.params, max(1, int(batch))
    if limit is None or params + n * (estimate.peak - params) <= limit:
        return
    over = f"over the {text.nbytes(limit)} memory budget"
    if params > limit:
        raise MemoryBudgetError(
            f"the model's parameters would take {text.nbytes(params)}, {over}; "
            f"use a smaller model, or {ADVICE}."
        )
    if params + n * estimate.input > limit:
        shape = text.dims((n, *estimate.input_shape))
        raise MemoryBudgetError(
            f"an input of {shape} would take {text.nbytes(n * estimate.input)} next to "
            f"{text.nbytes(params)} of parameters, {over}; use a smaller input size or picture, "
            f"or {ADVICE}."
        )
    step = next(s for s in estimate.steps if params + n * (s.total - params) > limit)
    total, nbytes = params + n * (step.total - params), n * step.nbytes
    dims = (n, *step.shape[1:]) if step.shape else None
    shape = f" {text.dims(dims)}" if dims else ""
    if nbytes > limit / 2:
        what = f"would produce a{shape} output of {text.nbytes(nbytes)}"
    else:
        what = (
            f"would bring the forward pass to {text.nbytes(total)} (its{shape} output "
            f"{text.nbytes(nbytes)}, the parameters {text.nbytes(params)})"
        )
    raise MemoryBudgetError(
        f"layer '{step.key}' ({step.type}) {what}, {over}; use a smaller input or layer, or {ADVICE}."
    )


def static_estimate(model: Any, input_shape: Sequence[int]) -> ForwardEstimate:
    """Parameters and input only: what is known before the model runs at all."""
    shape = tuple(int(s) for s in input_shape)
    params = model_param_bytes(unwrap_module(model))
    return ForwardEstimate(params, tensor_bytes((1, *shape)), (), False, shape)


def check_forward(
    model: Any,
    input_shape: Sequence[int],
    *,
    keep: Iterable[str] | None = None,
    batch: int = 1,
    budget: str | int | float | None = None,
    graph: LayerGraph | None = None,
) -> ForwardEstimate | None:
    """Refuse, before anything real is allocated, a forward pass that would not fit the budget.

    ``input_shape`` is (C, H, W); ``keep`` as in :func:`estimate_forward`. Checks parameters and input first,
    then walks the pass on meta tensors. Returns the estimate when it fits (None without a budget). ``graph``
    as in :func:`estimate_forward`.
    """
    if memory_budget(budget) is None:
        return None
    first = static_estimate(model, input_shape)
    check_estimate(first, budget, batch=batch)
    estimate = estimate_forward(model, input_shape, keep, param_bytes=first.params, graph=graph)
    check_estimate(estimate, budget, batch=batch)
    return estimate
