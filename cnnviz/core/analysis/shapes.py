"""Output shapes without arithmetic: one pass of a model on *meta* tensors.

torch computes every output shape with its own shape rules but allocates and computes nothing, so the shapes
match a real forward pass exactly and are cheap enough to refresh while layers are edited. The table, the
receptive fields and the memory budget all read their shapes from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.failures import ForwardError, Locator, shape_of
from cnnviz.core.analysis.graph import LayerGraph, eval_mode, model_device
from cnnviz.core.errors import CnnvizError, one_line


def _meta_state(module: nn.Module) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    # one meta tensor per shared weight: functional_call refuses two
    made: dict[int, torch.Tensor] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        state[name] = made.setdefault(id(p), torch.empty_like(p, device="meta"))
    for name, b in module.named_buffers(remove_duplicate=False):
        state[name] = made.setdefault(id(b), torch.empty_like(b, device="meta"))
    return state


def _checked_norm_forward(module: nn.Module) -> Any:
    """A forward for normalisation layers on meta tensors: torch's own input checks, then the input's shape.

    On meta tensors torch runs batch and layer norm through Python decompositions (about 3 ms each); their output
    always has the input's shape, so only the checks torch would make are worth running.
    """

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module._check_input_dim(x)
            if x.shape[1] != module.num_features:
                raise RuntimeError(
                    f"running_mean should contain {x.shape[1]} elements not {module.num_features}"
                )
        elif isinstance(module, nn.LayerNorm):
            tail = tuple(x.shape[x.dim() - len(module.normalized_shape) :])
            if tail != tuple(module.normalized_shape):
                raise RuntimeError(
                    f"Given normalized_shape={list(module.normalized_shape)}, expected input with shape "
                    f"[*, {', '.join(str(v) for v in module.normalized_shape)}], but got input of size "
                    f"{list(x.shape)}"
                )
        return torch.empty_like(x)

    return forward


@contextmanager
def _fast_meta_norms(model: nn.Module) -> Iterator[None]:
    patched = [
        m
        for m in model.modules()
        if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)
        and "forward" not in m.__dict__
    ]
    for m in patched:
        m.forward = _checked_norm_forward(m)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def run_on_meta(
    graph: LayerGraph, input_shape: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values (meta tensors) of every layer and the inputs each layer received, for one batch."""
    model = graph.model
    x = torch.empty((1, *input_shape), device="meta")
    received: dict[str, Any] = {}
    if graph.traced:
        gm = graph.capture_module(None)
        try:
            with torch.no_grad(), eval_mode(model), _fast_meta_norms(model):
                _out, values = torch.func.functional_call(gm, _meta_state(gm), (x,), strict=False)
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
