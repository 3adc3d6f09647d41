"""The effective receptive field (Luo et al. 2016): the input gradient of one unit."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core.analysis.capture import ForwardError, capture
from cnnviz.core.analysis.graph import (
    eval_mode,
    layer_graph,
    model_device,
    resolve_layer,
    unwrap_input,
)
from cnnviz.core.analysis.receptive.boxes import Box, _layer_key
from cnnviz.core.errors import (
    CnnvizError,
    InvalidArgumentError,
    LayerError,
    first_line,
    is_out_of_memory,
)
from cnnviz.core.validate import (
    check_channel,
    check_input,
    check_layer_name,
    check_module,
    check_unit,
)


@dataclass
class EffectiveRF:
    """|d unit / d input| summed over input channels (H x W, float32) and where it is non-zero."""

    layer: str
    unit: tuple[int, int]
    channel: int | None
    heatmap: np.ndarray
    support_box: Box | None
    seconds: float


def effective_receptive_field(
    model: Any, x: Any, layer: str, unit: tuple[int, int], channel: int | None = None
) -> EffectiveRF:
    """Gradient of one unit (one channel, or all channels summed) with respect to the input image.

    The forward pass stops at ``layer``; only the input gradient is computed (no weight gradients).
    ``x`` is one picture (C x H x W or 1 x C x H x W); a forward that fails on it raises
    :class:`~cnnviz.core.analysis.failures.ForwardError` naming the layer and the shape it received.
    """
    t0 = time.perf_counter()
    module = check_module(model)
    layer, unit, channel = check_layer_name(layer), check_unit(unit), check_channel(channel)
    tensor = check_input(x, floating=True)
    if tensor.dim() == 4 and tensor.shape[0] != 1:
        raise InvalidArgumentError(
            f"The effective receptive field is taken for one picture, not a batch of {tensor.shape[0]}; "
            "pass x[0:1]."
        )
    tensor = unwrap_input(tensor).detach().to(model_device(module))
    graph = layer_graph(module)
    key = _layer_key(graph, layer) if graph.traced else resolve_layer(graph, layer)
    tensor = tensor.clone().requires_grad_(True)
    with torch.enable_grad(), eval_mode(module, out_of_place=True):
        try:
            if graph.traced:
                out = graph.truncated_module(key)(tensor)
            else:
                out = forward_until(module, tensor, key)
        except CnnvizError:
            raise
        except Exception as exc:
            raise erf_forward_error(module, tensor, layer, exc) from exc
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() != 4:
            raise LayerError(f"layer '{layer}' has no spatial map (output shape {list(out.shape)})")
        hh, ww = out.shape[2], out.shape[3]
        y, xx = int(unit[0]), int(unit[1])
        if not (0 <= y < hh and 0 <= xx < ww):
            raise LayerError(
                f"unit ({y}, {xx}) is outside layer '{layer}', whose map is {hh}×{ww}: "
                f"y must be 0..{hh - 1} and x 0..{ww - 1}"
            )
        if channel is not None and not (0 <= channel < out.shape[1]):
            raise LayerError(
                f"channel {channel} is outside layer '{layer}', which has {out.shape[1]} channels"
            )
        target = out[0, channel, y, xx] if channel is not None else out[0, :, y, xx].sum()
        (grad,) = torch.autograd.grad(target, tensor)
    heat = grad[0].abs().sum(0).float().cpu().numpy()
    nz_rows = np.flatnonzero(heat.any(axis=1))
    nz_cols = np.flatnonzero(heat.any(axis=0))
    box = (
        (int(nz_rows[0]), int(nz_cols[0]), int(nz_rows[-1]), int(nz_cols[-1]))
        if nz_rows.size
        else None
    )
    return EffectiveRF(layer, (y, xx), channel, heat, box, time.perf_counter() - t0)


def erf_forward_error(
    module: nn.Module, tensor: torch.Tensor, layer: str, exc: Exception
) -> CnnvizError:
    """The located error of a capture on the same input, or a sentence with the shape given."""
    if is_out_of_memory(exc):
        return ForwardError(
            f"The computer ran out of memory computing the effective receptive field of layer '{layer}' "
            f"on an input of shape {list(tensor.shape)}; use a smaller picture or close other programs."
        )
    try:
        capture(module, tensor.detach(), layers=[])
    except CnnvizError as located:
        return located
    except Exception:  # noqa: BLE001 - the first failure is the one to report
        pass
    return ForwardError(
        f"the forward pass to layer '{layer}' failed on an input of shape {list(tensor.shape)}: "
        f"{first_line(exc)}"
    )


class _Stop(Exception):
    pass


def forward_until(module: nn.Module, x: torch.Tensor, key: str) -> torch.Tensor:
    """Run ``module`` until the call ``key`` (``name`` or ``name@n``) returns, and return its output."""
    name, _, nth = key.partition("@")
    wanted = int(nth) if nth else 0
    sub = dict(module.named_modules())[name]
    seen = [0]
    result: list[Any] = []

    def hook(_m: nn.Module, _a: Any, out: Any) -> None:
        if seen[0] == wanted:
            result.append(out)
            raise _Stop
        seen[0] += 1

    handle = sub.register_forward_hook(hook)
    try:
        module(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not result:
        raise LayerError(f"layer '{key}' did not run")
    return result[0]
