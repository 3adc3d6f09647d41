"""The memory budget: sizes that cannot fit are refused before anything is allocated.

A picture, a spec or a few flags can ask for more memory than any machine has: an input of 3×100000×100000, a
convolution with ten million output channels, an ``Upsample`` by 10000, a padding of 100000 pixels. torch would
try, and either die with an allocator traceback or bring the machine to its knees. Instead, every place that is
about to allocate in proportion to a user's number first computes what it would take -- from shapes on *meta*
tensors, from a spec's hyperparameters or from the output-size formula -- and raises :class:`MemoryBudgetError`
(one sentence naming the layer and the size) when that is over the budget.

What is counted
---------------
For a model: its parameters and buffers, the input tensor, and the layer outputs alive at the worst moment of one
forward pass at batch 1, as float32 on the CPU. A capture keeps every layer's output until it returns (that is
what it is for), so for a capture -- and the table, which describes what a capture would hold -- every output
counts; a plain forward (a prediction) frees each output after its last use. Views (``flatten``, ``view``) share
their base's memory and are not counted twice. Scratch space inside torch's kernels is not counted: the figure is
an estimate, meant to separate "fits easily" from "cannot possibly fit".

The default: 8 GiB
------------------
Large enough that every torchvision classifier fits at its own input size with room to spare: the largest,
``regnet_y_128gf`` (644 M parameters), needs about 3.1 GiB for a full capture at 224×224, ``vit_h_14`` 2.9 GiB
(about 5.3 GiB at the 518×518 of its largest pretrained weights) and ``inception_v3`` at 299×299 228 MiB
(measured by ``tests/core/test_memory_budget.py``). Small enough that on a 16-24 GB machine what is
refused would really not have fitted next to the desktop, the app and torch's own scratch space. Change it with the ``CNNVIZ_MEMORY_BUDGET`` environment variable or the
``--memory-budget`` option: ``16GiB``, ``16GB``, ``2e10`` (bytes), ``512M``; ``none`` or ``0`` for no limit.
"""

from __future__ import annotations

import math
import os
import re
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cnnviz.core.errors import InvalidArgumentError, MemoryBudgetError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

DEFAULT_BUDGET = 8 * GiB
ENV_VAR = "CNNVIZ_MEMORY_BUDGET"
FLOAT_BYTES = 4  # float32, the dtype of every input and activation cnnviz makes

ADVICE = "raise the budget with --memory-budget SIZE or CNNVIZ_MEMORY_BUDGET (e.g. 16GiB, or none for no limit)"

_UNITS = {
    "": 1,
    "b": 1,
    "k": KiB, "m": MiB, "g": GiB, "t": TiB,
    "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
}  # fmt: skip
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_UNLIMITED = ("none", "unlimited", "off", "inf")

_override: list[int | None] = []  # set by the command line for the whole process


def parse_size(text: str | int | float) -> int | None:
    """A size in bytes from ``"16GiB"``, ``"16GB"``, ``"512M"``, ``"2e10"`` or a number; None for no limit.

    Binary units: K, M, G, T, KiB ... TiB; decimal: kB, MB, GB, TB. ``"none"``, ``"unlimited"`` and 0 mean no
    limit. Raises :class:`InvalidArgumentError` for anything else.
    """
    if isinstance(text, bool):
        raise InvalidArgumentError(f"{text!r} is not a memory size; give e.g. 16GiB, 2e10 or none.")
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = str(text).strip()
        if raw.lower() in _UNLIMITED:
            return None
        match = _SIZE.fullmatch(raw)
        unit = _UNITS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            raise InvalidArgumentError(
                f"'{text}' is not a memory size; give a number with an optional unit, "
                "e.g. 16GiB, 16GB, 512M or 2e10 (bytes), or none for no limit."
            )
        value = float(match.group(1)) * unit
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(
            f"{text!r} is not a memory size; give a positive size such as 16GiB, or none for no limit."
        )
    return None if value == 0 else max(1, int(value))


def set_budget(value: str | int | float | None) -> None:
    """Set the budget for the rest of the process (the ``--memory-budget`` option); None restores the default."""
    _override.clear()
    if value is not None:
        _override.append(parse_size(value))


@contextmanager
def budget_override(value: str | int | float | None) -> Iterator[None]:
    """Use ``value`` as the budget inside the block (None: no limit)."""
    saved = list(_override)
    _override[:] = [None if value is None else parse_size(value)]
    try:
        yield
    finally:
        _override[:] = saved


def memory_budget(budget: str | int | float | None = None) -> int | None:
    """The budget in bytes in effect (None: unlimited).

    An explicit ``budget`` wins, then ``--memory-budget``, then ``$CNNVIZ_MEMORY_BUDGET``, then 8 GiB.
    """
    if budget is not None:
        return parse_size(budget)
    if _override:
        return _override[0]
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        try:
            return parse_size(env)
        except InvalidArgumentError:
            raise InvalidArgumentError(
                f"The environment variable {ENV_VAR}='{env}' is not a memory size; set it to e.g. 16GiB, "
                "16GB or 2e10 (bytes), or none for no limit."
            ) from None
    return DEFAULT_BUDGET


def format_bytes(n: float) -> str:
    """``20070400000000`` -> ``'18.3 TiB'``: three significant digits, binary units."""
    n = float(n)
    if n < KiB:
        return f"{int(n)} bytes"
    for unit, size in (("KiB", KiB), ("MiB", MiB), ("GiB", GiB), ("TiB", TiB)):
        value = n / size
        if value < 1000 or unit == "TiB":
            break
    if value >= 1000:  # beyond TiB: keep the unit, grow the number
        return f"{value:,.0f} {unit}"
    text = f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return f"{text} {unit}"


def shape_text(shape: Sequence[int]) -> str:
    """``(1, 64, 280000, 280000)`` -> ``'1×64×280000×280000'``."""
    return "×".join(str(int(s)) for s in shape)


def check_fits(
    nbytes: float, what: str, budget: str | int | float | None = None, *, advice: str = ""
) -> None:
    """Raise :class:`MemoryBudgetError` when ``nbytes`` is over the budget.

    The message reads "{what} would take 18.3 TiB, over the 8 GiB memory budget; {advice}, or raise the budget
    ...". ``what`` names the thing (e.g. "an input of 3×100000×100000").
    """
    limit = memory_budget(budget)
    if limit is None or nbytes <= limit:
        return
    raise MemoryBudgetError(
        f"{what} would take {format_bytes(nbytes)}, over the {format_bytes(limit)} memory budget; "
        f"{advice + ', or ' if advice else ''}{ADVICE}."
    )


def over_budget(nbytes: float, budget: str | int | float | None = None) -> bool:
    """True when ``nbytes`` is over the budget in effect."""
    limit = memory_budget(budget)
    return limit is not None and nbytes > limit


def tensor_bytes(shape: Iterable[int], element_size: int = FLOAT_BYTES) -> int:
    """Bytes of a dense tensor of ``shape`` (exact integer arithmetic: no overflow for absurd sizes)."""
    n = element_size
    for s in shape:
        n *= int(s)
    return n


def check_input(shape: Sequence[int], budget: str | int | float | None = None) -> None:
    """Refuse an input (C, H, W) whose float32 tensor at batch 1 would not fit."""
    check_fits(
        tensor_bytes(shape),
        f"an input of {shape_text(shape)}",
        budget,
        advice="use a smaller input size or picture",
    )


# --------------------------------------------------------------------------------------------------------------
# One forward pass, walked on meta tensors


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


def model_param_bytes(module: Any) -> int:
    """Bytes of a module's distinct parameters and buffers (a meta module counts as if it were real)."""
    seen: set[int] = set()
    total = 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def _roots(value: Any) -> list[Any]:
    """The distinct tensors whose memory ``value`` uses (a view stands for its base)."""
    import torch

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
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(int(s) for s in value.shape)
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
    model: Any, input_shape: Sequence[int], keep: Iterable[str] | None = None
) -> ForwardEstimate:
    """Walk one forward pass of ``model`` at batch 1 on meta tensors; nothing real is allocated.

    A model that cannot run on meta tensors (data-dependent control flow, a TorchScript archive) gets an
    incomplete estimate: parameters and input only. Cached per traced graph, input shape and ``keep``.
    """
    import torch

    from cnnviz.core.capture import ForwardError, unwrap_module
    from cnnviz.core.graph import layer_graph

    module = unwrap_module(model)
    shape = tuple(int(s) for s in input_shape)
    keep_key = None if keep is None else frozenset(keep)
    graph = layer_graph(module)
    cache = _CACHE.setdefault(graph, {})
    hit = cache.get((shape, keep_key))
    if hit is not None and hit.params == model_param_bytes(module):
        return hit
    from cnnviz.core import summary

    values: dict[str, Any] | None = None
    try:
        if graph.traced:
            values, _received = summary._run_on_meta(graph, shape)
        elif not graph.compiled:
            x = torch.empty((1, *shape), device="meta")
            values, _received = summary._run_hooks(module, x, meta=True)
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
    over = f"over the {format_bytes(limit)} memory budget"
    if params > limit:
        raise MemoryBudgetError(
            f"the model's parameters would take {format_bytes(params)}, {over}; "
            f"use a smaller model, or {ADVICE}."
        )
    if params + n * estimate.input > limit:
        shape = shape_text((n, *estimate.input_shape))
        raise MemoryBudgetError(
            f"an input of {shape} would take {format_bytes(n * estimate.input)} next to "
            f"{format_bytes(params)} of parameters, {over}; use a smaller input size or picture, "
            f"or {ADVICE}."
        )
    step = next(s for s in estimate.steps if params + n * (s.total - params) > limit)
    total, nbytes = params + n * (step.total - params), n * step.nbytes
    dims = (n, *step.shape[1:]) if step.shape else None
    shape = f" {shape_text(dims)}" if dims else ""
    if nbytes > limit / 2:
        what = f"would produce a{shape} output of {format_bytes(nbytes)}"
    else:
        what = (
            f"would bring the forward pass to {format_bytes(total)} (its{shape} output "
            f"{format_bytes(nbytes)}, the parameters {format_bytes(params)})"
        )
    raise MemoryBudgetError(
        f"layer '{step.key}' ({step.type}) {what}, {over}; use a smaller input or layer, or {ADVICE}."
    )


def static_estimate(model: Any, input_shape: Sequence[int]) -> ForwardEstimate:
    """Parameters and input only: what is known before the model runs at all."""
    from cnnviz.core.capture import unwrap_module

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
) -> ForwardEstimate | None:
    """Refuse, before anything real is allocated, a forward pass that would not fit the budget.

    ``input_shape`` is (C, H, W); ``keep`` as in :func:`estimate_forward`. Checks parameters and input first,
    then walks the pass on meta tensors. Returns the estimate when it fits (None without a budget).
    """
    if memory_budget(budget) is None:
        return None
    check_estimate(static_estimate(model, input_shape), budget, batch=batch)
    estimate = estimate_forward(model, input_shape, keep)
    check_estimate(estimate, budget, batch=batch)
    return estimate
