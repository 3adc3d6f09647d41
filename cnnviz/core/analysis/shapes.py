"""Output shapes without arithmetic: one pass of a model on *meta* tensors.

torch computes every output shape with its own shape rules but allocates and computes nothing, so the shapes
match a real forward pass exactly and are cheap enough to refresh while layers are edited. The table, the
receptive fields and the memory budget all read their shapes from here.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from cnnviz.core.analysis.failures import ForwardError, Locator, shape_of
from cnnviz.core.analysis.graph import LayerGraph, eval_mode, model_device, out_of_place_call
from cnnviz.core.analysis.shape_rules import (
    ASK_TORCH,
    METHOD_RULES,
    MODULE_RULES,
    SHAPE_RULES,
    fast_meta_norms,
    like,
)
from cnnviz.core.errors import CnnvizError, one_line
from cnnviz.core.moduletree import distinct_tensors


def _meta_state(module: nn.Module) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    # one meta tensor per shared weight: functional_call refuses two
    made: dict[int, torch.Tensor] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        state[name] = made.setdefault(id(p), torch.empty_like(p, device="meta"))
    for name, b in module.named_buffers(remove_duplicate=False):
        state[name] = made.setdefault(id(b), torch.empty_like(b, device="meta"))
    return state


@dataclass(frozen=True)
class _Step:
    """One layer node of the graph, ready to run on meta tensors: its call made out of place (as capture runs
    it) and the shape rule that stands in for torch where one applies."""

    key: str
    op: str
    target: Any
    args: Any
    kwargs: Any
    module: nn.Module | None
    rule: Callable[..., Any] | None
    returns_input: bool


_PROGRAMS: weakref.WeakKeyDictionary[LayerGraph, list[_Step]] = weakref.WeakKeyDictionary()


def _program(graph: LayerGraph) -> list[_Step]:
    """The graph's layer nodes as steps (cached per traced graph: a new structure is a new graph)."""
    steps = _PROGRAMS.get(graph)
    if steps is not None:
        return steps
    steps = []
    for gnode in graph.nodes:
        node = gnode.fx_node
        assert node is not None  # every node of a traced graph has its fx node
        if gnode.kind == "input":
            steps.append(_Step(gnode.key, "input", None, (), {}, None, None, False))
            continue
        target, kwargs = out_of_place_call(node.op, node.target, node.kwargs)
        rule: Callable[..., Any] | None = None
        if node.op == "call_function":
            rule = SHAPE_RULES.get(target)
        elif node.op == "call_method":
            rule = METHOD_RULES.get(str(target))
        steps.append(
            _Step(
                gnode.key,
                node.op,
                target,
                node.args,
                kwargs,
                gnode.module,
                rule,
                gnode.returns_input,
            )
        )
    _PROGRAMS[graph] = steps
    return steps


def _has_state(module: nn.Module) -> bool:
    return bool(distinct_tensors(module))


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _run_module(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A module the rules do not cover, on meta tensors: its parameters and buffers swapped for meta ones."""
    if type(module) in MODULE_RULES and not _has_hooks(module) and "forward" not in module.__dict__:
        out = MODULE_RULES[type(module)](module, args, kwargs)
        if out is not ASK_TORCH:
            return out
    with fast_meta_norms(module):
        if not _has_state(module):
            return module(*args, **kwargs)
        return torch.func.functional_call(module, _meta_state(module), args, kwargs, strict=False)


def _interpret(graph: LayerGraph, x: torch.Tensor) -> dict[str, Any]:
    """Every layer's value for input ``x`` (meta), node by node, with the shape rules where they apply."""
    env: dict[str, Any] = {}
    constants: dict[str, Any] = {}
    key_of = graph.node_key

    def value_of(node: fx.Node) -> Any:
        key = key_of(node)
        if key is not None:
            return env[key]
        if node.op != "get_attr":
            return None
        name = str(node.target)
        if name not in constants:
            const = graph.constant(node)
            constants[name] = like(const) if isinstance(const, torch.Tensor) else const
        return constants[name]

    given = False
    for step in _program(graph):
        if step.op == "input":
            if given:
                raise TypeError("the model takes more than one input; the table is made for one")
            env[step.key], given = x, True
            continue
        args = fx.node.map_arg(step.args, value_of)
        kwargs = fx.node.map_arg(step.kwargs, value_of) if step.kwargs else {}
        if step.op == "call_module":
            assert step.module is not None
            if step.returns_input:
                value = args[0]
            else:
                value = _run_module(step.module, args, kwargs)
        elif step.rule is not None:
            value = step.rule(*args, **kwargs)
        elif step.op == "call_method":
            value = getattr(args[0], str(step.target))(*args[1:], **kwargs)
        else:
            value = step.target(*args, **kwargs)
        env[step.key] = value
    return env


def _input_dtype(model: nn.Module) -> torch.dtype:
    """The floating type ``model`` computes in (that of its first floating parameter or buffer): the meta pass of
    a half- or double-precision model takes an input of that type, as a real pass would."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def run_on_meta(
    graph: LayerGraph, input_shape: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values (meta tensors) of every layer and the inputs each layer received, for one batch."""
    model = graph.model
    x = torch.empty((1, *input_shape), dtype=_input_dtype(model), device="meta")
    received: dict[str, Any] = {}
    if graph.traced:
        try:
            with torch.no_grad(), eval_mode(model):
                values = _interpret(graph, x)
        except Exception as exc:
            raise meta_failure(graph, x, exc) from exc
        return values, received
    return run_hooks_on_meta(model, x)


def meta_failure(graph: LayerGraph, x: torch.Tensor, exc: Exception) -> CnnvizError:
    """Re-walk a graph that failed on meta tensors node by node, to name the layer that raised."""
    gm = graph.capture_module(None)
    locator = Locator(gm, graph)

    class _Locate(nn.Module):
        """Lets functional_call swap meta parameters into ``gm`` while the locator walks it."""

        def __init__(self) -> None:
            super().__init__()
            self.gm = gm

        def forward(self, inp: torch.Tensor) -> Any:
            return locator.run(inp)

    state = {f"gm.{k}": v for k, v in _meta_state(gm).items()}
    try:
        with torch.no_grad(), eval_mode(graph.model):
            torch.func.functional_call(_Locate(), state, (x,), strict=False)
    except Exception:  # noqa: BLE001 - the same failure, now located
        pass
    if locator.failed is None:
        return ForwardError(
            f"the model cannot run on an input of shape {shape_of(x)}: {one_line(exc)}"
        )
    key, kind, received = locator.failed
    return ForwardError(
        f"the model cannot run on an input of shape {shape_of(x)}: layer '{key}' ({kind}) "
        f"received {received}: {one_line(exc)}"
    )


def run_hooks_on_meta(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hook every module; run on meta tensors, or for real where the model needs values (``.item()``...).

    Not for TorchScript: a compiled program has no hooks and cannot run on meta tensors.
    """
    try:
        return run_hooks(model, x, meta=True)
    except ForwardError:
        # Data-dependent control flow cannot run on meta tensors: one real pass on zeros instead.
        real = torch.zeros(x.shape, device=model_device(model))
        return run_hooks(model, real, meta=False)


def run_hooks(
    model: nn.Module, x: torch.Tensor, meta: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every module's output and the input it received, in call order, from one hooked pass."""
    values: dict[str, Any] = {}
    received: dict[str, Any] = {}
    order: list[str] = []
    calls: dict[str, int] = {}
    handles = []
    for name, sub in model.named_modules():
        if not name:
            continue

        def pre(_m: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            n = calls.get(name, 0)
            calls[name] = n + 1
            key = name if n == 0 else f"{name}@{n}"
            order.append(key)
            received[key] = args[0] if args else None

        def post(_m: nn.Module, _a: tuple[Any, ...], out: Any, name: str = name) -> None:
            n = calls[name] - 1
            values[name if n == 0 else f"{name}@{n}"] = out

        handles.append(sub.register_forward_pre_hook(pre))
        handles.append(sub.register_forward_hook(post))
    try:
        with torch.no_grad(), eval_mode(model):
            if meta:
                torch.func.functional_call(model, _meta_state(model), (x,), strict=False)
            else:
                model(x)
    except Exception as exc:
        last = order[-1] if order else None
        where = f" at layer '{last}'" if last else ""
        raise ForwardError(
            f"the model cannot run on an input of shape {shape_of(x)}{where}: {one_line(exc)}"
        ) from exc
    finally:
        for h in handles:
            h.remove()
    return {k: values[k] for k in order if k in values}, received
