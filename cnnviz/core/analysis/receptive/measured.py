"""Receptive fields measured as gradient support on a structural copy: untraceable models, and traced layers
whose field cannot be derived from their operations (Swin's window attention, token reshapes).

The copy keeps every module and runs its real forward: only the values change, never the wiring, so dynamic
padding (TensorFlow "same" convolutions and pools), fused norm + activation layers and any custom module keep
their exact spatial dependence. While it runs, a function mode swaps the few functions that could hide a
dependence for stand-ins of the same geometry: activations and gates (which zero or saturate a gradient) become
straight-through functions (their own value forward, a gradient of one backward), max pooling (whose gradient
reaches one position of its window) passes its gradient to the whole window, and ``-inf`` padding (put in front
of a max pool) becomes zero padding, which the window reads as nothing. Weights are positive and each output's weights sum to
one, in double precision, so nothing cancels, overflows or underflows through a deep network.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.overrides import TorchFunctionMode

from cnnviz.core.analysis.graph import LayerGraph, resolve_layer
from cnnviz.core.analysis.receptive.boxes import UnitBox
from cnnviz.core.analysis.receptive.effective import forward_until
from cnnviz.core.errors import LayerError

# Elementwise functions whose gradient can be zero (or underflow) where the function is closed or saturated.
_GATING_FUNCTIONS: frozenset[Any] = frozenset({
    F.relu, F.relu_, F.relu6, F.hardtanh, F.hardtanh_, F.leaky_relu, F.leaky_relu_, F.elu, F.elu_, F.selu,
    F.celu, F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.sigmoid, F.tanh, F.threshold,
    F.rrelu, F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, F.feature_alpha_dropout,
    torch.relu, torch.relu_, torch.sigmoid, torch.sigmoid_, torch.tanh, torch.tanh_, torch.dropout,
    torch.Tensor.relu, torch.Tensor.relu_, torch.Tensor.sigmoid, torch.Tensor.sigmoid_, torch.Tensor.tanh,
    torch.Tensor.tanh_,
})  # fmt: skip
_MAX_POOLS: frozenset[Any] = frozenset({
    F.max_pool2d, getattr(F, "_max_pool2d", None), F.max_pool2d_with_indices, torch.max_pool2d,
    torch.max_pool2d_with_indices if hasattr(torch, "max_pool2d_with_indices") else None,
}) - {None}  # fmt: skip
_ADAPTIVE_MAX_POOLS: frozenset[Any] = frozenset({
    F.adaptive_max_pool2d, getattr(F, "_adaptive_max_pool2d", None), F.adaptive_max_pool2d_with_indices,
}) - {None}  # fmt: skip


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _window_sum(
    x: torch.Tensor, kernel: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> torch.Tensor:
    """The mean over each window of a max pool with this geometry: every position of a window reaches the output."""
    k = _pair(kernel)
    s = _pair(stride) if stride not in (None, [], ()) else k
    p, d = _pair(padding), _pair(dilation)
    extra = []
    for a in range(2):
        n = x.shape[-2 + a]
        span = d[a] * (k[a] - 1) + 1
        if ceil_mode:
            out = -(-(n + 2 * p[a] - span) // s[a]) + 1
            if (out - 1) * s[a] >= n + p[a]:
                out -= 1  # the last window must start inside the input or its left padding
        else:
            out = (n + 2 * p[a] - span) // s[a] + 1
        extra.append(max(0, (out - 1) * s[a] + span - (n + 2 * p[a])))
    flat = x.reshape(-1, 1, *x.shape[-2:])
    if any(extra):
        flat = F.pad(flat, (0, extra[1], 0, extra[0]))
    ones = torch.full((1, 1, *k), 1.0 / (k[0] * k[1]), dtype=x.dtype, device=x.device)
    y = F.conv2d(flat, ones, stride=s, padding=p, dilation=d)
    return y.reshape(*x.shape[:-2], *y.shape[-2:])


def _straight_through(value: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
    """``value`` forward, the gradient of ``path`` backward (same shape): real magnitudes, no closed gate."""
    return value.detach() + (path - path.detach())


class _StructuralMode(TorchFunctionMode):
    """Runs a forward with gates opened and max pools turned into window sums (see the module docstring)."""

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _GATING_FUNCTIONS:
            # the function's own value (a gate stays a gate: x * sigmoid(.) must not square x), a gradient of one
            x = args[0] if args else kwargs["input"]
            if not isinstance(x, torch.Tensor):
                return func(*args, **kwargs)
            kwargs = {k: v for k, v in kwargs.items() if k != "inplace"}
            value = func(
                x.detach().clone(), *args[1:], **{k: v for k, v in kwargs.items() if k != "input"}
            )
            return _straight_through(value, x)
        if func in _MAX_POOLS:
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            given = dict(zip(names, args[1:], strict=False)) | kwargs
            x = args[0] if args else given.pop("input")
            pooled = _window_sum(
                x, given["kernel_size"], given.get("stride"), given.get("padding", 0),
                given.get("dilation", 1), bool(given.get("ceil_mode", False)),
            )  # fmt: skip
            real = func(*args, **kwargs)
            if isinstance(real, tuple):
                return _straight_through(real[0], pooled), real[1]
            return _straight_through(real, pooled)
        if func in _ADAPTIVE_MAX_POOLS:
            x = args[0] if args else kwargs["input"]
            size = args[1] if len(args) > 1 else kwargs["output_size"]
            pooled = F.adaptive_avg_pool2d(x, size)
            real = func(*args, **kwargs)
            if isinstance(real, tuple):
                return _straight_through(real[0], pooled), real[1]
            return _straight_through(real, pooled)
        if func is F.pad:
            value = kwargs.get("value", args[3] if len(args) > 3 else None)
            if isinstance(value, float) and value == float("-inf"):
                # the padding of a "same" max pool: zeros, which a window sum reads as nothing
                kwargs = {**kwargs, "value": 0.0}
                args = args[:3]
        return func(*args, **kwargs)


class _Structural(nn.Module):
    """The structural copy: the model's own modules, run under :class:`_StructuralMode`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with _StructuralMode():
            return self.model(*args, **kwargs)


def _positive_weights(model: nn.Module, seed: int = 0) -> None:
    """Positive weights, each output's summing to one; positive norm scales; zero biases."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.is_floating_point():
                if weight.dim() >= 2:
                    # per output: random positive values (never equal, so a centring norm cannot cancel them)
                    out_dim = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
                    values = torch.rand(weight.shape, generator=gen, dtype=torch.float64) + 0.5
                    dims = [d for d in range(weight.dim()) if d != out_dim]
                    values = values / values.sum(dims, keepdim=True)
                    weight.copy_(values.to(weight.dtype))
                else:
                    # norm scales: unequal, or a unit summing a layer norm's channels would be constant (zero)
                    values = torch.rand(weight.shape, generator=gen, dtype=torch.float64) + 0.5
                    weight.copy_(values.to(weight.dtype))
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor) and bias.is_floating_point():
                bias.zero_()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                if module.running_mean is not None:
                    module.running_mean.zero_()
                if module.running_var is not None:
                    module.running_var.fill_(1.0)


def structural_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose input gradients reveal structure, not values (see the module docstring).

    Every pixel a unit can depend on gets a non-zero gradient; the model itself is not changed.
    """
    clone = copy.deepcopy(model).double().eval()
    _positive_weights(clone)
    return _Structural(clone)


def _structural_input(input_shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((1, *input_shape), generator=gen, dtype=torch.float64) + 0.5


def spatial_axes(shape: tuple[int, ...], input_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The (H, W) dims of a 4-D output of an untraced layer: (2, 3) for N C H W, (1, 2) for channel-last N H W C.

    Without a graph the layout is read from the shape: the image axes are the pair of dims whose sizes keep the
    input's aspect ratio (the strides of the two axes within a factor 1.5), tried in that order; None when
    neither pair does (tokens in blocks, a matrix of features).
    """
    if len(shape) != 4:
        return None
    for axes in ((2, 3), (1, 2)):
        h, w = shape[axes[0]], shape[axes[1]]
        if h < 1 or w < 1:
            continue
        sh, sw = input_hw[0] / h, input_hw[1] / w
        if max(sh, sw) <= 1.5 * min(sh, sw):
            return axes
    return None


def measured_unit_box(
    structural: nn.Module,
    graph: LayerGraph,
    layer: str,
    unit: tuple[int, int],
    input_shape: tuple[int, int, int],
    geometry: Any = None,
    map_sizes: dict[str, tuple[int, int] | None] | None = None,
) -> UnitBox:
    """The receptive field of one unit measured as its gradient support on a structural copy of the model."""
    key = resolve_layer(graph, layer)
    sizes = (map_sizes or {}).get(key)
    inner = structural.model if isinstance(structural, _Structural) else structural
    x = _structural_input(input_shape).requires_grad_(True)
    with torch.enable_grad():
        if isinstance(structural, _Structural):
            with _StructuralMode():
                out = forward_until(inner, x, key)
        else:
            out = forward_until(inner, x.to(next(inner.parameters()).dtype), key)
        if isinstance(out, (tuple, list)):
            out = out[0]
        axes = spatial_axes(tuple(out.shape), input_shape[1:])
        return _support_box(out, x, axes, sizes, layer, unit, input_shape, geometry)


def truncated_structural(structural: nn.Module, graph: LayerGraph, key: str) -> nn.Module:
    """The traced graph up to layer ``key``, run on the modules of a structural copy (see :func:`structural_copy`)."""
    inner = structural.model if isinstance(structural, _Structural) else structural
    truncated = graph.truncated_module(key).graph
    # a graph of its own: the cached GraphModule of the original model keeps its graph
    wired = fx.Graph()
    wired.output(wired.graph_copy(truncated, {}))
    return _Structural(fx.GraphModule(inner, wired))


def measured_traced_box(
    truncated: nn.Module,
    layer: str,
    unit: tuple[int, int],
    input_shape: tuple[int, int, int],
    axes: tuple[int, int] | None,
    geometry: Any = None,
) -> UnitBox:
    """A unit's field measured on a traced graph (:func:`truncated_structural`) where it cannot be derived.

    ``axes`` are the (H, W) dims of the layer's output the analysis found; None reads them from the shape.
    """
    x = _structural_input(input_shape).requires_grad_(True)
    with torch.enable_grad():
        out = truncated(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise LayerError(f"layer '{layer}' has no spatial map to pick a unit from")
        if axes is None:
            axes = spatial_axes(tuple(out.shape), input_shape[1:])
        return _support_box(out, x, axes, None, layer, unit, input_shape, geometry)


def _support_box(
    out: torch.Tensor,
    x: torch.Tensor,
    axes: tuple[int, int] | None,
    sizes: tuple[int, int] | None,
    layer: str,
    unit: tuple[int, int],
    input_shape: tuple[int, int, int],
    geometry: Any,
) -> UnitBox:
    """The bounding box of the input gradient's support of one unit of ``out`` (all its channels summed)."""
    if axes is None or out.dim() != 4 or axes not in ((2, 3), (1, 2)):
        raise LayerError(f"layer '{layer}' has no spatial map (output shape {list(out.shape)})")
    hh, ww = sizes or (out.shape[axes[0]], out.shape[axes[1]])
    y, xx = int(unit[0]), int(unit[1])
    if not (0 <= y < hh and 0 <= xx < ww):
        raise LayerError(
            f"unit ({y}, {xx}) is outside layer '{layer}', whose map is {hh}×{ww}: "
            f"y must be 0..{hh - 1} and x 0..{ww - 1}"
        )
    target = (out[0, :, y, xx] if axes == (2, 3) else out[0, y, xx, :]).sum()
    if not torch.isfinite(target):
        raise LayerError(
            f"the receptive field of layer '{layer}' could not be measured: its values overflow"
        )
    # a unit made of parameters alone (ConViT's positional maps) does not use the input at all
    (grad,) = torch.autograd.grad(target, x, allow_unused=True)
    if grad is None:
        raise LayerError(f"unit ({y}, {xx}) of layer '{layer}' does not depend on the input")
    if not torch.isfinite(grad).all():
        raise LayerError(
            f"the receptive field of layer '{layer}' could not be measured: its gradients overflow"
        )
    support = grad[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if rows.numel() == 0:
        raise LayerError(f"unit ({y}, {xx}) of layer '{layer}' does not depend on the input")
    box = (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))
    size = (box[2] - box[0] + 1, box[3] - box[1] + 1)
    return UnitBox(
        layer, (y, xx), input_shape, size, (Fraction(0), Fraction(0)), (Fraction(0), Fraction(0)), box, box, box,
        0.0, global_=False, uniform=False, measured=True,
        image_box=geometry.box_to_original(box) if geometry is not None else None,
    )  # fmt: skip
