"""Output shapes without arithmetic: one pass of a model on *meta* tensors.

torch computes every output shape with its own shape rules but allocates and computes nothing, so the shapes
match a real forward pass exactly and are cheap enough to refresh while layers are edited. The table, the
receptive fields and the memory budget all read their shapes from here.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.fx as fx
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


def _elementwise_forward(module: nn.Module) -> Any:
    """A forward for an elementwise activation on meta tensors: a float input's shape, dtype and layout.

    torch runs these through Python reference implementations on meta tensors (0.3-3 ms each, more than the
    real kernel on a small map). In place, torch hands back the input itself, so that is what this returns.
    """
    original = type(module).forward

    def forward(x: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            type(x) is torch.Tensor
            and x.is_meta
            and x.is_floating_point()
            and not args
            and not kwargs
        ):
            return x if getattr(module, "inplace", False) is True else torch.empty_like(x)
        return original(module, x, *args, **kwargs)

    return forward


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)
_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.LogSigmoid,
)  # fmt: skip


@contextmanager
def _fast_meta_norms(model: nn.Module) -> Iterator[None]:
    """Swap in shape-only forwards for normalisations and elementwise activations while on meta tensors."""
    patched = []
    for m in model.modules():
        kind = type(m)
        if "forward" in m.__dict__:
            continue
        if kind in _NORMS:
            m.forward = _checked_norm_forward(m)  # type: ignore[method-assign]
        elif kind in _ELEMENTWISE_MODULES:
            m.forward = _elementwise_forward(m)  # type: ignore[method-assign]
        else:
            continue
        patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _is_float_meta(v: Any) -> bool:
    return type(v) is torch.Tensor and v.is_meta and v.is_floating_point()


def _unary(op: Callable[..., Any], extras: int) -> Callable[..., Any]:
    """``op`` on meta tensors by its shape rule: a float input's shape, dtype and layout (the input, in place).

    ``extras`` positional arguments after the input are not ``inplace`` (``leaky_relu``'s slope ...).
    """

    def shape_rule(x: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_float_meta(x) and len(args) <= extras and set(kwargs) <= {"inplace"}:
            return x if kwargs.get("inplace") is True else torch.empty_like(x)
        return op(x, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


def _binary(op: Callable[..., Any]) -> Callable[..., Any]:
    """An arithmetic operator on meta tensors by the broadcasting rule, where its result's layout is plain.

    Two float tensors of one dtype whose result has the shape of a contiguous one (or of two alike), or a float
    tensor and a Python number; anything else (type promotion, odd layouts) goes to torch's own rule.
    """

    def shape_rule(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            a_t, b_t = _is_float_meta(a), _is_float_meta(b)
            if a_t and b_t and a.dtype == b.dtype:
                if a.shape == b.shape:
                    if a.stride() == b.stride():
                        return torch.empty_like(a)
                else:
                    shape = torch.broadcast_shapes(a.shape, b.shape)
                    for t in (a, b):
                        if t.shape == shape and t.is_contiguous():
                            return torch.empty_like(t)
            elif a_t and type(b) in (int, float):
                return torch.empty_like(a)
            elif b_t and type(a) in (int, float):
                return torch.empty_like(b)
        return op(a, b, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


def _batch_norm(op: Callable[..., Any]) -> Callable[..., Any]:
    """``F.batch_norm`` at inference on meta tensors (timm's BatchNormAct calls it): the input's shape, dtype
    and layout, after the checks torch makes; training, other dtypes or shapes go to torch (its Python
    decomposition costs ~3 ms per call on meta tensors)."""

    def per_channel(t: Any, c: int, dtype: torch.dtype, optional: bool) -> bool:
        if t is None:
            return optional
        return _is_float_meta(t) and t.dtype == dtype and tuple(t.shape) == (c,)

    names = ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")

    def shape_rule(x: Any, *args: Any, **kwargs: Any) -> Any:
        # fx records the call with the optional arguments by keyword
        bound = dict(zip(names, args, strict=False))
        if (
            _is_float_meta(x)
            and x.dim() >= 2
            and len(args) <= len(names)
            and set(kwargs) <= set(names[len(args) :])
        ):
            bound.update(kwargs)
            c = int(x.shape[1])
            if (
                bound.get("training", False) is False
                and per_channel(bound.get("running_mean"), c, x.dtype, False)
                and per_channel(bound.get("running_var"), c, x.dtype, False)
                and per_channel(bound.get("weight"), c, x.dtype, True)
                and per_channel(bound.get("bias"), c, x.dtype, True)
            ):
                return torch.empty_like(x)
        return op(x, *args, **kwargs)

    shape_rule.__name__ = getattr(op, "__name__", "op")
    return shape_rule


_F = nn.functional
_SHAPE_RULES: dict[Any, Callable[..., Any]] = {
    **{
        f: _unary(f, 0) for f in (_F.relu, _F.relu6, _F.silu, _F.hardswish, _F.hardsigmoid, _F.mish)
    },
    **{
        f: _unary(f, 0)
        for f in (torch.relu, torch.sigmoid, torch.tanh, _F.gelu, _F.sigmoid, _F.tanh)
    },
    **{f: _unary(f, 1) for f in (_F.leaky_relu, _F.elu, _F.celu)},
    _F.hardtanh: _unary(_F.hardtanh, 2),
    _F.batch_norm: _batch_norm(_F.batch_norm),
    **{f: _binary(f) for f in (operator.add, operator.sub, operator.mul, operator.truediv)},
    **{f: _binary(f) for f in (torch.add, torch.sub, torch.mul, torch.div)},
}
_METHOD_RULES: dict[str, Callable[..., Any]] = {
    **{m: _unary(getattr(torch.Tensor, m), 0) for m in ("relu", "sigmoid", "tanh")},
    **{m: _binary(getattr(torch.Tensor, m)) for m in ("add", "sub", "mul", "div")},
}
_META_MODULES: weakref.WeakKeyDictionary[LayerGraph, fx.GraphModule] = weakref.WeakKeyDictionary()


def _meta_module(graph: LayerGraph) -> fx.GraphModule:
    """The capture module of every layer with elementwise operations run by their shape rules (cached)."""
    meta = _META_MODULES.get(graph)
    if meta is not None:
        return meta
    # rewritten before it is compiled: one GraphModule instead of a capture module and a copy of it
    new_graph = graph.capture_graph(None)
    for node in new_graph.nodes:
        if node.op == "call_function" and node.target in _SHAPE_RULES:
            node.target = _SHAPE_RULES[node.target]
        elif node.op == "call_method" and node.target in _METHOD_RULES:
            node.op, node.target = "call_function", _METHOD_RULES[str(node.target)]
    meta = fx.GraphModule(graph.model, new_graph)
    _META_MODULES[graph] = meta
    return meta


def run_on_meta(
    graph: LayerGraph, input_shape: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values (meta tensors) of every layer and the inputs each layer received, for one batch."""
    model = graph.model
    x = torch.empty((1, *input_shape), device="meta")
    received: dict[str, Any] = {}
    if graph.traced:
        gm = _meta_module(graph)
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
