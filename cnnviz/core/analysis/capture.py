"""One forward pass -> the output of every layer that runs."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from cnnviz.core.analysis.deferred import LayerValues, NormSnapshots, Recipe, first_tensor
from cnnviz.core.analysis.failures import (
    ForwardError,
    Locator,
    _is_tensorish,
    forward_error,
    shape_of,
)
from cnnviz.core.analysis.forward_budget import check_forward
from cnnviz.core.analysis.graph import (
    OUTPUT_KEY,
    SWITCHED_IN_PLACE,
    LayerGraph,
    eval_mode,
    layer_graph,
    model_device,
    resolve_layer,
    unwrap_input,
    unwrap_module,
)
from cnnviz.core.errors import one_line
from cnnviz.core.moduletree import walked_once
from cnnviz.core.validate import check_capture_arguments


@dataclass
class CaptureResult(Mapping[str, Any]):
    """Layer outputs of one forward pass, in execution order, plus the model's final output.

    ``method`` is ``"fx"`` (traced graph: modules, containers and functional operations) or ``"hooks"`` (module
    hooks only: functional operations are not captured; ``note`` says why). A traced capture of every layer keeps
    the values of its elementwise layers (batch norms, activations, additions) as recipes and computes each,
    bit-equal to the pass, when it is first read (:class:`~cnnviz.core.analysis.deferred.LayerValues`).
    """

    activations: Mapping[str, Any]
    output: Any
    method: str
    note: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.activations[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.activations)

    def __len__(self) -> int:
        return len(self.activations)


def _has_tensor(value: Any) -> bool:
    """A tensor, or a tuple or list holding one (``nn.MultiheadAttention`` returns ``(output, None)``)."""
    if _is_tensorish(value):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value)


def as_numpy(value: Any) -> np.ndarray | None:
    """A layer output as a float32 NumPy array on the CPU (the first tensor of a tuple), or None if none."""
    if isinstance(value, (tuple, list)):
        value = first_tensor(value)
    if value is None or not hasattr(value, "detach"):
        return None
    t = value.detach()
    if not t.is_floating_point():
        t = t.float()
    return t.float().cpu().numpy()


class LayerArrays(Mapping[str, np.ndarray]):
    """A capture's layer values as float32 NumPy arrays on the CPU (see :func:`as_numpy`), each converted -- and
    a deferred one computed -- when first read, then kept; :meth:`shape` needs neither."""

    def __init__(self, result: CaptureResult):
        self._values = result.activations
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        array = self._arrays.get(key)
        if array is None:
            array = as_numpy(self._values[key])
            if array is None:
                raise KeyError(key)
            # it may share memory with a value that other layers are computed from: read-only
            array.flags.writeable = False
            self._arrays[key] = array
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of ``key``'s array, without computing or converting it."""
        values = self._values
        if isinstance(values, LayerValues):
            return values.shape(key)
        first = first_tensor(values[key])
        if first is None:
            raise KeyError(key)
        return tuple(first.shape)


_HEAP_TUNED = False


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system (Linux only, once).

    A capture keeps every layer's output alive, so its tensors cannot reuse each other's memory as a plain forward
    does; when they are freed, glibc hands large blocks back to the kernel and the next capture page-faults all of
    them in again -- 30-60% of a forward pass on ResNets. Keeping freed blocks (mmap threshold 256 MiB, trim
    threshold 1 GiB) makes repeated captures cost about what a forward does. The process keeps its peak memory.
    Set ``CNNVIZ_KEEP_FREED_MEMORY=0`` to opt out. Returns whether the setting is in effect.
    """
    global _HEAP_TUNED
    if _HEAP_TUNED:
        return True
    import os
    import sys

    if (
        not sys.platform.startswith("linux")
        or os.environ.get("CNNVIZ_KEEP_FREED_MEMORY", "1") == "0"
    ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        ok = (
            libc.mallopt(m_mmap_threshold, 256 << 20) == 1
            and libc.mallopt(m_trim_threshold, 1 << 30) == 1
        )
    except (OSError, AttributeError):
        return False
    _HEAP_TUNED = ok
    return ok


def capture(
    model: Any,
    x: Any,
    *,
    layers: Iterable[str] | None = None,
    dtype: torch.dtype | None = None,
    to_cpu: bool = False,
) -> CaptureResult:
    """Run one forward pass of ``model`` on ``x`` and return every layer's output.

    Keys are capture keys (module names as in ``named_modules()``, ``name@n`` for repeated calls, ``scope.op`` for
    functional operations; see :mod:`cnnviz.core.analysis.graph`). ``layers`` keeps only those keys (others are freed as the
    pass goes on); ``dtype`` (e.g. ``torch.float16``) stores activations in that type to bound memory. The model's
    train/eval flags and in-place settings are restored afterwards, also when the forward raises; then a
    :class:`ForwardError` names the layer that failed and the shape it received.
    """
    candidate = getattr(model, "module", model)
    # the checks, the memory estimate and the mode flags below all walk the same module tree
    with walked_once(candidate) if isinstance(candidate, nn.Module) else contextlib.nullcontext():
        return _capture(model, x, layers, dtype, to_cpu)


def _capture(
    model: Any,
    x: Any,
    layers: Iterable[str] | None,
    dtype: torch.dtype | None,
    to_cpu: bool,
) -> CaptureResult:
    check_capture_arguments(model, x, layers, dtype, to_cpu)
    module = unwrap_module(model)
    tensor = unwrap_input(x)
    device = model_device(module)
    if tensor.device != device:
        tensor = tensor.to(device)
    keep_freed_memory()
    graph = layer_graph(module)
    selected: frozenset[str] | None = None
    if layers is not None:
        selected = frozenset(resolve_layer(graph, name) for name in layers)
    # Refused from meta shapes before the real pass allocates anything.
    check_forward(
        module, tuple(tensor.shape[1:]), keep=selected, batch=int(tensor.shape[0]), graph=graph
    )
    if graph.traced:
        return _capture_fx(graph, tensor, selected, dtype, to_cpu)
    if graph.compiled:
        return _capture_output_only(graph, module, tensor, dtype, to_cpu)
    return _capture_hooks(graph, module, tensor, selected, dtype, to_cpu)


def _capture_output_only(
    graph: LayerGraph, module: nn.Module, x: torch.Tensor, dtype: torch.dtype | None, to_cpu: bool
) -> CaptureResult:
    keep = _keeper(dtype, to_cpu)
    try:
        with torch.inference_mode():
            output = module(x)
    except Exception as exc:
        raise ForwardError(
            f"the compiled model failed on an input of shape {shape_of(x)}: {one_line(exc)}"
        ) from exc
    value = keep(output) if keep is not None else output
    activations = {OUTPUT_KEY: value} if _is_tensorish(value) else {}
    return CaptureResult(activations, output, "compiled", graph.note)


def _keeper(dtype: torch.dtype | None, to_cpu: bool) -> Any:
    if dtype is None and not to_cpu:
        return None
    return _KEEPERS.setdefault((dtype, to_cpu), _make_keeper(dtype, to_cpu))


def _make_keeper(dtype: torch.dtype | None, to_cpu: bool) -> Any:
    def keep(value: Any) -> Any:
        if type(value) in (tuple, list):
            return type(value)(keep(v) for v in value)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if to_cpu:
                value = value.to("cpu", non_blocking=False)
            if dtype is not None:
                value = value.to(dtype)
        return value

    return keep


_KEEPERS: dict[tuple[Any, bool], Any] = {}


def container_outputs(graph: LayerGraph, key: str) -> list[str]:
    """The keys of the values a traced-through module hands on: its output, or each value that leaves it.

    A module returning a list (timm HRNet's stages) has no single output node; the values used after it, in
    execution order, stand for it.
    """
    info = graph.containers[key]
    if info.output_key is not None:
        return [info.output_key]
    members = {n.fx_node: n.key for n in graph.nodes if key in n.scope and n.fx_node is not None}
    return [k for node, k in members.items() if any(u not in members for u in node.users)]


@dataclass(frozen=True)
class _ResultPlan:
    """Which values a capture computes (``wanted``) and how each result key is read from them: one source key,
    or (a container without one output node) the list of values leaving it."""

    wanted: frozenset[str] | None
    entries: tuple[tuple[str, str | tuple[str, ...]], ...]


_PLANS: weakref.WeakKeyDictionary[LayerGraph, dict[frozenset[str] | None, _ResultPlan]] = (
    weakref.WeakKeyDictionary()
)


def _result_plan(graph: LayerGraph, selected: frozenset[str] | None) -> _ResultPlan:
    # The same for every pass over one graph: worked out once, since walking the keys and containers again
    # cost a capture of a small network a twentieth of its forward pass.
    plans = _PLANS.setdefault(graph, {})
    plan = plans.get(selected)
    if plan is not None:
        return plan
    wanted = selected
    if selected is not None:
        # a container without one output node is the values leaving it: compute those too
        wanted = selected | {
            k
            for key in selected
            if key in graph.containers and graph.containers[key].output_key is None
            for k in container_outputs(graph, key)
        }
    entries: list[tuple[str, str | tuple[str, ...]]] = []
    for key, is_container, _depth in graph.ordered_keys():
        if selected is not None and key not in selected:
            continue
        if is_container and graph.containers[key].output_key is None:
            sources = tuple(container_outputs(graph, key))
            if sources:
                entries.append((key, sources))
            continue
        source = graph.containers[key].output_key if is_container else key
        if source is not None:
            entries.append((key, source))
    plan = plans[selected] = _ResultPlan(wanted, tuple(entries))
    return plan


@dataclass
class _Deferral:
    """A graph's capture that defers elementwise layers: the compiled pass, the recipes, the batch norms they
    read, and what each module they stand for must still be for them to hold (see :func:`_still_holds`)."""

    module: fx.GraphModule
    recipes: dict[str, Recipe]
    norms: NormSnapshots
    checks: tuple[tuple[Any, ...], ...]
    tensors: frozenset[str]


# Per graph: the deferral built after a first pass that kept everything (which tells the tensor-valued keys).
_DEFERRALS: weakref.WeakKeyDictionary[LayerGraph, _Deferral] = weakref.WeakKeyDictionary()
# The settings a recipe or an in-place decision was compiled with.
_CHECKED = ("inplace", SWITCHED_IN_PLACE, "min_val", "max_val", "negative_slope", "approximate")
_NORM_CHECKED = ("track_running_stats", "eps")


def _build_deferral(graph: LayerGraph, tensors: frozenset[str]) -> _Deferral:
    gm, recipes = graph.deferring_capture_module(tensors)
    norms = NormSnapshots(tuple((k, r.norm) for k, r in recipes.items() if r.norm is not None))
    norm_modules = {id(r.norm) for r in recipes.values() if r.norm is not None}
    watched: dict[int, tuple[Any, ...]] = {}
    for node in graph.nodes:
        m = node.module
        if m is None or id(m) in watched:
            continue
        names = tuple(n for n in _CHECKED if n in m.__dict__)
        if id(m) in norm_modules:
            names = _NORM_CHECKED
        watched[id(m)] = (m, type(m), names, _settings_of(m, names), id(m) in norm_modules)
    checks = tuple(
        (m, cls, names, values, _norm_layout(m) if is_norm else None)
        for m, cls, names, values, is_norm in watched.values()
    )
    return _Deferral(gm, recipes, norms, checks, tensors)


def _settings_of(module: nn.Module, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(map(module.__dict__.get, names))


def _norm_layout(module: nn.Module) -> tuple[Any, ...]:
    """Where a batch norm keeps what its recipe reads: parametrizations and ``del weight`` move it."""
    buffers = module._buffers
    return (
        tuple(module._parameters),
        tuple(buffers),
        buffers.get("running_mean") is None,
        buffers.get("running_var") is None,
    )


def _still_holds(deferral: _Deferral) -> bool | None:
    """True when the deferral still computes what the model does; False when a module's class or a setting it
    was compiled with changed (compile again); None when a hook or a forward set on an instance may act during
    the pass (capture this pass by keeping every value: a hook can write into a value or bypass a recipe)."""
    hooks = torch.nn.modules.module
    hooked = bool(hooks._global_forward_hooks or hooks._global_forward_pre_hooks)
    for m, cls, names, values, layout in deferral.checks:
        d = m.__dict__
        if m.__class__ is not cls or _settings_of(m, names) != values:
            return False
        if layout is not None and _norm_layout(m) != layout:
            return False
        if d["_forward_hooks"] or d["_forward_pre_hooks"] or "forward" in d:
            hooked = True
    return None if hooked else True


def _deferral_for(graph: LayerGraph) -> _Deferral | None:
    found = _DEFERRALS.get(graph)
    if found is None:
        return None
    holds = _still_holds(found)
    if holds is False:
        graph.forget_capture_modules()
        found = _DEFERRALS[graph] = _build_deferral(graph, found.tensors)
        holds = _still_holds(found)
    return found if holds else None


def _own_tensors(module: nn.Module, x: torch.Tensor, values: Mapping[str, Any]) -> frozenset[str]:
    """The keys whose value is a tensor of the capture's own: not a view of a parameter, a buffer or the
    caller's input, which can change after the capture (recipes read only these)."""
    with torch.inference_mode():
        foreign = {
            t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers(), x)
        }
        return frozenset(
            k
            for k, v in values.items()
            if isinstance(v, torch.Tensor) and v.untyped_storage().data_ptr() not in foreign
        )


def _capture_fx(
    graph: LayerGraph,
    x: torch.Tensor,
    selected: frozenset[str] | None,
    dtype: torch.dtype | None,
    to_cpu: bool,
) -> CaptureResult:
    plan = _result_plan(graph, selected)
    # A capture of every layer in the model's own type defers its elementwise layers (see deferred.py), from the
    # second pass over a graph on: the first, keeping every value, tells which layers hold tensors.
    everything = selected is None and dtype is None and not to_cpu
    # checked on every path: a changed setting also drops the compiled passes that keep values
    deferral = _deferral_for(graph)
    if not everything:
        deferral = None
    if deferral is not None:
        gm = deferral.module
    else:
        gm = graph.capture_module(plan.wanted, _keeper(dtype, to_cpu))
    module = graph.model
    try:
        with torch.inference_mode():
            norms = deferral.norms.take() if deferral is not None else None
            with eval_mode(module, out_of_place=True):
                output, values = gm(x)
    except Exception as exc:
        raise _locate_failure(graph, gm, x, exc) from exc
    if everything and graph not in _DEFERRALS:
        _DEFERRALS[graph] = _build_deferral(graph, _own_tensors(module, x, values))
    recipes: Mapping[str, Recipe] = deferral.recipes if deferral is not None else {}
    sources: dict[str, str | tuple[str, ...]] = {}
    tensor = torch.Tensor
    for key, source in plan.entries:
        if type(source) is str:
            if source in recipes:
                sources[key] = source
                continue
            value = values.get(source, _ABSENT)
            if value is not _ABSENT and (type(value) is tensor or _has_tensor(value)):
                sources[key] = source
        elif all(k in values or k in recipes for k in source):
            if any(k in recipes or _has_tensor(values.get(k)) for k in source):
                sources[key] = source
    return CaptureResult(LayerValues(sources, values, recipes, norms), output, "fx", None)


_ABSENT = object()


def _locate_failure(
    graph: LayerGraph, gm: fx.GraphModule, x: torch.Tensor, exc: Exception
) -> Exception:
    locator = Locator(gm, graph)
    try:
        with torch.inference_mode(), eval_mode(graph.model, out_of_place=True):
            locator.run(x)
    except Exception:  # noqa: BLE001 - the same failure, now located
        pass
    if locator.failed is None:
        return ForwardError(f"the forward pass failed: {one_line(exc)}")
    return forward_error(exc, *locator.failed)


def _capture_hooks(
    graph: LayerGraph,
    module: nn.Module,
    x: torch.Tensor,
    selected: frozenset[str] | None,
    dtype: torch.dtype | None,
    to_cpu: bool,
) -> CaptureResult:
    keep = _keeper(dtype, to_cpu)
    activations: dict[str, Any] = {}
    calls: dict[str, int] = {}
    last: list[tuple[str, str, str]] = []
    handles = []

    def make_hooks(name: str, sub: nn.Module) -> None:
        def pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            n = calls.get(name, 0)
            key = name if n == 0 else f"{name}@{n}"
            last.append((key, type(sub).__name__, shape_of(args[0]) if args else "no input"))

        def post(_m: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            n = calls.get(name, 0)
            calls[name] = n + 1
            key = name if n == 0 else f"{name}@{n}"
            if last and last[-1][0] == key:
                last.pop()
            if (selected is None or key in selected) and _has_tensor(out):
                activations[key] = keep(out) if keep is not None else out

        handles.append(sub.register_forward_pre_hook(pre))
        handles.append(sub.register_forward_hook(post))

    for name, sub in module.named_modules():
        if name:
            make_hooks(name, sub)
    try:
        with torch.inference_mode(), eval_mode(module, out_of_place=True):
            output = module(x)
    except Exception as exc:
        if last:
            raise forward_error(exc, *last[-1]) from exc
        raise ForwardError(f"the forward pass failed: {one_line(exc)}") from exc
    finally:
        for h in handles:
            h.remove()
    return CaptureResult(activations, output, "hooks", graph.note)
