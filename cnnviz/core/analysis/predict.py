"""Class predictions: the top-k labels and probabilities for one image."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnviz.core.analysis.capture import ForwardError, capture
from cnnviz.core.analysis.forward_budget import check_forward
from cnnviz.core.analysis.graph import eval_mode
from cnnviz.core.errors import (
    ArgumentTypeError,
    CnnvizError,
    InvalidArgumentError,
    first_line,
    is_out_of_memory,
)
from cnnviz.core.models.loaded import check_loaded_model
from cnnviz.core.text import dims
from cnnviz.core.validate import as_whole_number, describe

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
        from PIL import Image

        from cnnviz.core.images import load_image

        if isinstance(image, os.PathLike):
            image = os.fspath(image)
        if not isinstance(image, (str, bytes, bytearray, memoryview, Image.Image)):
            raise ArgumentTypeError(
                f"Cannot predict from {describe(image)}: give a picture (a path, its bytes or a PIL "
                "image), an image from cnnviz.load_image or a preprocessed tensor."
            )
        x = load_image(image, model.preprocess).tensor
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise InvalidArgumentError(
            f"Cannot predict from a tensor of shape {list(x.shape)}: pass one image as C x H x W or "
            "1 x C x H x W."
        )
    if x.numel() == 0:
        raise InvalidArgumentError(
            f"Cannot predict from a tensor of shape {list(x.shape)}, which holds no pixels."
        )
    if x.is_complex() or x.dtype == torch.bool:
        raise InvalidArgumentError(
            f"Cannot predict from a tensor of {str(x.dtype).removeprefix('torch.')} values: "
            "give real numbers, e.g. from cnnviz.load_image."
        )
    expected = tuple(model.input_shape)
    if tuple(x.shape[1:]) != expected and x.shape[1] != expected[0]:
        raise InvalidArgumentError(
            f"The image has {x.shape[1]} channels but the model {model.name} takes {expected[0]}: "
            "preprocess the image with the model's preprocessing."
        )
    return x.float()


def _size_hint(model: LoadedModel, x: torch.Tensor) -> str:
    """What to check when a forward fails: the input size against what the model was made for."""
    given = tuple(x.shape[1:])
    expected = tuple(model.input_shape)
    if given != expected:
        return (
            f"the model {model.name} takes {dims(expected)} inputs but this one is {dims(given)}; "
            "preprocess the image with the model's own preprocessing"
        )
    spec_shape = (model.spec or {}).get("input_shape")
    if isinstance(spec_shape, (list, tuple)) and tuple(spec_shape) != expected:
        return (
            f"the model {model.name} was built for {dims(spec_shape)} inputs, not {dims(expected)}; "
            "drop --input-size or give the size it was built for"
        )
    return f"check that {dims(given)} is the input size the model {model.name} was made for"


def _forward_failure(model: LoadedModel, x: torch.Tensor, exc: Exception) -> CnnvizError:
    """The failure of a plain forward as the located error a capture gives (layer and shape named)."""
    if is_out_of_memory(exc):
        return ForwardError(
            f"The computer ran out of memory running the model {model.name} on a {dims(x.shape[1:])} "
            "input; close other programs or use a smaller input size."
        )
    try:
        capture(model.module, x, layers=[])  # a second run, traced, to name the failing layer
    except ForwardError as located:
        return ForwardError(f"{located}; {_size_hint(model, x)}")
    except CnnvizError as other:
        return other
    except Exception:  # noqa: BLE001 - the plain forward's failure is the one to report
        pass
    return ForwardError(
        f"The model {model.name} failed on an input of shape {list(x.shape)}: {first_line(exc)}; "
        f"{_size_hint(model, x)}"
    )


def predict(model: LoadedModel, image: Any, top: int = 5) -> list[Prediction]:
    """The ``top`` most likely classes for ``image``, best first.

    ``image`` is a path, a PIL image, a ``LoadedImage`` or an already preprocessed tensor
    (C x H x W or 1 x C x H x W). A forward pass that fails raises :class:`ForwardError` naming the
    layer, the shape it received and what to check.
    """
    model = check_loaded_model(model)
    k = as_whole_number(top, "The number of classes to show (top)")
    if k < 1:
        raise InvalidArgumentError(f"Cannot show the top {k} classes: use top=1 or more.")
    module = model.module
    x = _input_tensor(model, image)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    x = x.to(device)
    # refused from meta shapes, before the forward allocates
    check_forward(module, tuple(x.shape[1:]), keep=())
    try:
        # eval_mode sets the flags directly: torch.export programs refuse eval() and train().
        with torch.no_grad(), eval_mode(module):
            out = module(x)
    except Exception as exc:
        raise _forward_failure(model, x, exc) from exc
    return rank_output(model, out, k)


def rank_output(model: LoadedModel, output: Any, top: int = 5) -> list[Prediction]:
    """The ``top`` most likely classes in a forward pass's ``output``, best first.

    The first tensor of a tuple output is taken; an N x K x 1 x 1 head counts as N x K. Raises
    :class:`ForwardError` for an output that is not one score per class.
    """
    out = output
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ForwardError(
            f"The model {model.name} does not return a tensor, so it has no class scores to rank."
        )
    out = out.detach().float().cpu()
    if out.ndim > 2 and all(s == 1 for s in out.shape[2:]):
        out = out.flatten(1)  # e.g. N x K x 1 x 1 from a fully convolutional head
    if out.ndim == 1:
        out = out.unsqueeze(0)
    if out.ndim != 2 or out.shape[1] == 0:
        raise ForwardError(
            f"The model {model.name} outputs shape {list(out.shape)}, not one score per class, "
            "so it has no classes to rank."
        )
    probs = probabilities(model.module, out)[0]
    k = min(top, probs.shape[0])
    values, indices = torch.topk(probs, k)
    labels = model.labels
    result = []
    for p, i in zip(values.tolist(), indices.tolist(), strict=True):
        label = labels[i] if labels is not None and i < len(labels) else str(i)
        result.append(Prediction(label=str(label), index=int(i), probability=float(p)))
    return result
