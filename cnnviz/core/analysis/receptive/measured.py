"""Receptive fields of models torch.fx cannot trace, measured as gradient support on a structural copy."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.graph import LayerGraph, resolve_layer
from cnnviz.core.analysis.receptive.boxes import UnitBox
from cnnviz.core.analysis.receptive.effective import forward_until
from cnnviz.core.errors import LayerError
from cnnviz.core.models.layertypes import GATES


def structural_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose gradients reveal structure, not values.

    Weights become positive, max pooling becomes average pooling of the same geometry and gating nonlinearities
    become identities, so every input pixel a unit can depend on gets a strictly positive gradient.
    """
    import copy

    clone = copy.deepcopy(model).float().eval()

    def replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d) and child.dilation in (1, (1, 1)):
                pool = nn.AvgPool2d(
                    child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode
                )
                setattr(parent, name, pool)
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(parent, name, nn.AdaptiveAvgPool2d(child.output_size))
            elif isinstance(child, GATES):
                setattr(parent, name, nn.Identity())
            else:
                replace(child)

    replace(clone)
    with torch.no_grad():
        for module in clone.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.is_floating_point():
                weight.copy_(weight.abs() + 0.1)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor) and bias.is_floating_point():
                bias.zero_()
            if (
                isinstance(module, nn.modules.batchnorm._BatchNorm)
                and module.running_mean is not None
                and module.running_var is not None
            ):
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
    return clone


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
    x = torch.ones((1, *input_shape), requires_grad=True)
    with torch.enable_grad():
        out = forward_until(structural, x, key)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() != 4:
            raise LayerError(f"layer '{layer}' has no spatial map (output shape {list(out.shape)})")
        hh, ww = sizes or (out.shape[2], out.shape[3])
        y, xx = int(unit[0]), int(unit[1])
        if not (0 <= y < hh and 0 <= xx < ww):
            raise LayerError(
                f"unit ({y}, {xx}) is outside layer '{layer}', whose map is {hh}×{ww}: "
                f"y must be 0..{hh - 1} and x 0..{ww - 1}"
            )
        (grad,) = torch.autograd.grad(out[0, :, y, xx].sum(), x)
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
