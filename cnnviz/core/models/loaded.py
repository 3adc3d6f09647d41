"""The loaded model: the module with what the app needs around it (shape, preprocessing, labels, spec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnviz.core.images import Preprocess


@dataclass
class LoadedModel:
    """A model ready to run, with what the app needs around it.

    ``module`` is in eval mode. ``preprocess`` turns pictures into inputs of ``input_shape`` (C, H, W).
    ``labels`` names the output classes (None when unknown). ``spec`` is the architecture spec for models that are a
    sequence of layers (editable), else None. ``source`` says where it came from ("bundled", "torchvision", "spec",
    "checkpoint", "torchscript", "export", "state_dict").
    """

    module: nn.Module
    name: str
    input_shape: tuple[int, int, int]
    preprocess: Preprocess
    labels: list[str] | None = None
    spec: dict[str, Any] | None = None
    source: str = "module"
    metadata: dict[str, Any] = field(default_factory=dict)

    def example_input(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """A zero tensor of the model's input shape with a batch of one."""
        return torch.zeros((1, *self.input_shape), device=device)


def _shape3(shape: Any) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in shape)
    return (c, h, w)
