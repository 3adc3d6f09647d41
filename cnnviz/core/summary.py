"""The per-layer table: output shapes, parameters, MACs, layer geometry -- without real compute.

Shapes come from running the traced graph on *meta* tensors (torch computes every output shape with its own
shape rules, but no arithmetic), so the table matches a real forward pass exactly and is cheap enough to refresh
while layers are edited. MACs count multiply-accumulates of convolutions, linear layers and matrix products for a
batch of one (the convention of torchinfo and most papers); element-wise layers count none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from cnnviz.core import budget
from cnnviz.core.capture import ForwardError, _first_line, _shape_of, unwrap_module
from cnnviz.core.errors import CnnvizError
from cnnviz.core.graph import OUTPUT_KEY, GraphNode, LayerGraph, eval_mode, layer_graph
from cnnviz.core.summary_types import LayerRow, Pair, Summary
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


def _meta_state(module: nn.Module) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        state[name] = torch.empty_like(p, device="meta")
    for name, b in module.named_buffers(remove_duplicate=False):
        state[name] = torch.empty_like(b, device="meta")
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


def _run_on_meta(
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
            raise _meta_failure(graph, x, exc) from exc
        return values, received
    return _run_hooks_on_meta(model, x)


def _meta_failure(graph: LayerGraph, x: torch.Tensor, exc: Exception) -> CnnvizError:
    from cnnviz.core.capture import _Locator

    gm = graph.capture_module(None)
    locator = _Locator(gm, graph)

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
            f"the model cannot run on an input of shape {_shape_of(x)}: {_first_line(exc)}"
        )
    key, kind, received = locator.failed
    return ForwardError(
        f"the model cannot run on an input of shape {_shape_of(x)}: layer '{key}' ({kind}) "
        f"received {received}: {_first_line(exc)}"
    )


def _run_hooks_on_meta(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hook every module; run on meta tensors, or for real where the model needs values (``.item()``...)."""
    if isinstance(model, torch.jit.ScriptModule):
        # compiled: no hooks and no meta tensors; one real pass (the capture's) gives the output's shape
        from cnnviz.core.capture import capture, model_device

        return {
            OUTPUT_KEY: capture(model, torch.zeros(x.shape, device=model_device(model))).output
        }, {}
    try:
        return _run_hooks(model, x, meta=True)
    except ForwardError:
        # Data-dependent control flow cannot run on meta tensors: one real pass on zeros instead.
        from cnnviz.core.capture import model_device

        real = torch.zeros(x.shape, device=model_device(model))
        return _run_hooks(model, real, meta=False)


def _run_hooks(
    model: nn.Module, x: torch.Tensor, meta: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
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
            f"the model cannot run on an input of shape {_shape_of(x)}{where}: {_first_line(exc)}"
        ) from exc
    finally:
        for h in handles:
            h.remove()
    return {k: values[k] for k in order if k in values}, received


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
    field (see :mod:`cnnviz.core.receptive`).
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
    budget.check_estimate(budget.static_estimate(module, shape))
    graph = layer_graph(module)
    values, received = _run_on_meta(graph, shape)
    # A capture keeps every layer's output: the table refuses what a capture of it could not hold.
    budget.check_estimate(budget.estimate_from_values(graph, module, shape, values))
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
        from cnnviz.core.receptive import attach_receptive_fields

        attach_receptive_fields(summary, graph, values)
    return summary
