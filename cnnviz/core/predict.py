"""Class predictions: the top-k labels and probabilities for one image."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnviz.core.errors import CnnvizError

if TYPE_CHECKING:
    from cnnviz.core.models import LoadedModel


@dataclass(frozen=True)
class Prediction:
    """One class: its label, its index among the model's outputs, and its probability (0..1)."""

    label: str
    index: int
    probability: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict ``{"label", "index", "probability"}``."""
        return asdict(self)


def _last_module(module: nn.Module) -> nn.Module:
    modules = list(module.modules())
    return modules[-1] if modules else module


def probabilities(module: nn.Module, outputs: torch.Tensor) -> torch.Tensor:
    """Turn a model's outputs (N x K) into probabilities, without applying softmax twice.

    A model ending in Softmax already gives probabilities; one ending in LogSoftmax gives their logs.
    """
    last = _last_module(module)
    if isinstance(last, nn.Softmax):
        return outputs
    if isinstance(last, nn.LogSoftmax):
        return outputs.exp()
    return torch.softmax(outputs, dim=1)


def _input_tensor(model: LoadedModel, image: Any) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        x = image
    elif hasattr(image, "tensor") and isinstance(image.tensor, torch.Tensor):
        x = image.tensor
    else:
        from cnnviz.core.images import load_image

        if isinstance(image, os.PathLike):
            image = os.fspath(image)
        x = load_image(image, model.preprocess).tensor
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise CnnvizError(
            f"Cannot predict from a tensor of shape {list(x.shape)}: pass one image as C x H x W or 1 x C x H x W."
        )
    expected = tuple(model.input_shape)
    if tuple(x.shape[1:]) != expected and x.shape[1] != expected[0]:
        raise CnnvizError(
            f"The image has {x.shape[1]} channels but the model {model.name} takes {expected[0]}: "
            "preprocess the image with the model's preprocessing."
        )
    return x.float()


def predict(model: LoadedModel, image: Any, top: int = 5) -> list[Prediction]:
    """The ``top`` most likely classes for ``image``, best first.

    ``image`` is a path, a PIL image, a ``LoadedImage`` or an already preprocessed tensor
    (C x H x W or 1 x C x H x W).
    """
    if int(top) < 1:
        raise CnnvizError(f"Cannot show the top {top} classes: use --top 1 or more.")
    module = model.module
    x = _input_tensor(model, image)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(x.to(device))
    finally:
        module.train(was_training)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise CnnvizError(
            f"The model {model.name} does not return a tensor, so it has no class scores to rank."
        )
    out = out.detach().float().cpu()
    if out.ndim > 2 and all(s == 1 for s in out.shape[2:]):
        out = out.flatten(1)  # e.g. N x K x 1 x 1 from a fully convolutional head
    if out.ndim == 1:
        out = out.unsqueeze(0)
    if out.ndim != 2:
        raise CnnvizError(
            f"The model {model.name} outputs shape {list(out.shape)}, not one score per class, "
            "so it has no classes to rank."
        )
    probs = probabilities(module, out)[0]
    k = min(int(top), probs.shape[0])
    values, indices = torch.topk(probs, k)
    labels = model.labels
    result = []
    for p, i in zip(values.tolist(), indices.tolist(), strict=True):
        label = labels[i] if labels is not None and i < len(labels) else str(i)
        result.append(Prediction(label=str(label), index=int(i), probability=float(p)))
    return result
