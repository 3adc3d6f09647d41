"""Truth computed from torch itself, shared by the core and GUI tests.

Each oracle measures what the code under test computes analytically: shapes from a real forward pass,
receptive fields from the support of an input gradient. They deliberately do not use cnnviz (not even its
own ``structural_copy``), so a bug there cannot hide a bug in the analysis.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

# Elementwise gates that could zero a gradient path; the oracle replaces them by the identity.
_GATING = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.SiLU,
    nn.GELU,
    nn.Dropout,
)


def structural_copy(model: nn.Module) -> nn.Module:
    """Positive weights, avg instead of max pooling, no gating nonlinearities (sums of positives never cancel)."""
    model = copy.deepcopy(model).eval()

    def replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1)), "avg-pool has no dilation"
                setattr(
                    parent,
                    name,
                    nn.AvgPool2d(
                        child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode
                    ),
                )
            elif isinstance(child, _GATING):
                setattr(parent, name, nn.Identity())
            else:
                replace(child)

    replace(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.uniform_(0.5, 1.0)
                if module.bias is not None:
                    module.bias.zero_()
            if isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
    return model


def module_output(layer: str) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """A ``layer_output`` for :func:`gradient_bbox`: the output of the module ``layer``, the forward stopped there."""

    def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = {}

        def hook(_m: nn.Module, _i: object, o: torch.Tensor) -> None:
            out["v"] = o
            raise StopIteration

        handle = dict(model.named_modules())[layer].register_forward_hook(hook)
        try:
            model(x)
        except StopIteration:
            pass
        finally:
            handle.remove()
        return out["v"]

    return run


def gradient_bbox(
    model: nn.Module,
    layer_output: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    shape: tuple[int, int, int],
    unit: tuple[int, int],
) -> tuple[int, int, int, int] | None:
    """Bounding box (top, left, bottom, right) of the input pixels with non-zero gradient, or None."""
    x = torch.ones((1, *shape), requires_grad=True)
    out = layer_output(model, x)
    out[0, :, unit[0], unit[1]].sum().backward()
    assert x.grad is not None
    support = (x.grad[0].abs().sum(0) > 0).numpy()
    rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
    if rows.size == 0:
        return None
    return (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))


def hooked_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Every module's output shape from real forward hooks: the truth for a table's module rows."""
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def record(_m: nn.Module, _a: tuple, out: torch.Tensor) -> None:
            shapes.setdefault(name, tuple(out.shape))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return shapes


def forward_shapes(model: nn.Sequential, input_shape: list[int]) -> list[tuple[int, ...]]:
    """Each layer's output shape (without batch) from a real forward pass."""
    shapes = []
    x = torch.randn(1, *input_shape)
    model.eval()
    with torch.no_grad():
        for module in model:
            x = module(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


def gradient_rf(model: nn.Sequential, input_shape: list[int], layer: int) -> tuple[int, int]:
    """Receptive-field size of the centre unit of ``layer`` from the support of the input gradient.

    All weights positive, inputs positive and max pooling replaced by average pooling, so no path is
    cancelled or cut: the support is the whole field (Luo et al. 2016).
    """
    m = copy.deepcopy(model).double().eval()
    for i, module in enumerate(m):
        if isinstance(module, nn.MaxPool2d):
            m[i] = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.abs() + 0.1)
    x = (torch.rand(1, *input_shape, dtype=torch.float64) + 0.5).requires_grad_(True)
    out = m[: layer + 1](x)
    y, xx = out.shape[2] // 2, out.shape[3] // 2
    out[0, :, y, xx].sum().backward()
    assert x.grad is not None
    support = x.grad[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    return (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))


def original_support(
    model: nn.Module,
    layer_output: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    shape: tuple[int, int, int],
    unit: tuple[int, int],
    seeds: int = 2,
    channel_last: bool = False,
) -> tuple[int, int, int, int] | None:
    """Bounding box of the gradient support of one unit on the model itself (eval, float64, its own weights).

    The union over ``seeds`` random normal inputs: a ReLU closed or a max pool's other positions on one input
    are open on another, so the union approaches every pixel the unit can depend on, and never exceeds it.
    """
    m = copy.deepcopy(model).double().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    support = np.zeros(shape[1:], dtype=bool)
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((1, *shape), generator=gen, dtype=torch.float64).requires_grad_(True)
        out = layer_output(m, x)
        picked = out[0, unit[0], unit[1], :] if channel_last else out[0, :, unit[0], unit[1]]
        if not picked.requires_grad:
            continue  # made of parameters alone: no path from the input
        (grad,) = torch.autograd.grad(picked.sum(), x, allow_unused=True)
        if grad is not None:
            support |= (grad[0].abs().sum(0) > 0).numpy()
    rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
    if rows.size == 0:
        return None
    return (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))
