"""Argument checks for the public API: a wrong type or value becomes one sentence, never a torch error.

Each ``check_*`` function returns the argument in the form the caller works with (a plain ``int``, a
``(y, x)`` tuple of ints, a ``(C, H, W)`` tuple) or raises :class:`ArgumentTypeError` (also a
``TypeError``) for the wrong kind of object and :class:`InvalidArgumentError` (also a ``ValueError``) for
the right kind with an unusable value. Whole numbers are ``int``, NumPy integers and one-element integer
tensors; ``bool`` and floats (even ``2.0``) are refused, so a unit or a count is never silently truncated.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnviz.core.errors import ArgumentTypeError, InvalidArgumentError
from cnnviz.core.moduletree import all_modules

MAX_SIDE = 1 << 16
"""Largest height, width or channel count accepted in an input shape given as an argument."""

MAX_INPUT_ELEMENTS = 1 << 28
"""Largest number of values (C x H x W) in one input given as a shape: 1 GiB of float32."""

MAX_NAME_LENGTH = 1000
"""Longest layer name looked up; longer ones cannot be layers and make close-match hints slow."""


def describe(value: Any) -> str:
    """A short, safe description of ``value`` for a message (type name, or a clipped repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        try:
            text = repr(value)
        except ValueError:  # Python refuses to print integers of more than 4,300 digits
            return "an integer too long to print"
        return text if len(text) <= 40 else text[:37] + "..."
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def as_whole_number(value: Any, what: str) -> int:
    """``value`` as an ``int``; refuses bools, floats, strings and anything else that is not an integer."""
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{what} must be a whole number, not {value!r}.")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_floating_point() or value.is_complex():
            raise ArgumentTypeError(f"{what} must be a whole number, not a tensor of that kind.")
        return int(value.item())
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, float):
        raise ArgumentTypeError(
            f"{what} must be a whole number, not {describe(value)}; "
            "give an int (fractions are never rounded for you)."
        )
    raise ArgumentTypeError(f"{what} must be a whole number, not {describe(value)}.")


def _sequence(value: Any, what: str, example: str) -> list[Any]:
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise ArgumentTypeError(f"{what} must be {example}, not {describe(value)}.")
    if isinstance(value, torch.Tensor):
        if value.dim() != 1:
            raise ArgumentTypeError(f"{what} must be {example}, not a {value.dim()}-d tensor.")
        return list(value)
    try:
        return list(value)
    except TypeError:
        raise ArgumentTypeError(f"{what} must be {example}, not {describe(value)}.") from None


def check_module(model: Any, what: str = "model") -> nn.Module:
    """The ``nn.Module`` of ``model`` (an ``nn.Module`` or a loaded model with ``.module``)."""
    module = getattr(model, "module", model)
    if not isinstance(module, nn.Module):
        raise ArgumentTypeError(
            f"The {what} must be a torch.nn.Module or a model from cnnviz.load_model, not "
            f"{describe(model)}; load it first, e.g. cnnviz.load_model('resnet18')."
        )
    from torch.nn.modules.lazy import LazyModuleMixin
    from torch.nn.parameter import UninitializedParameter

    # Only lazy modules hold uninitialised parameters (they become their plain class once made); the names are
    # looked up only when there is one to report: every capture and table passes through here.
    if any(isinstance(m, LazyModuleMixin) for m in all_modules(module)):
        lazy = [n for n, p in module.named_parameters() if isinstance(p, UninitializedParameter)]
        if lazy:
            raise InvalidArgumentError(
                f"The {what} has lazy layers whose weights are not made yet ({', '.join(lazy[:3])}); "
                "run it once on an example input first, e.g. model(torch.zeros(1, 3, 224, 224))."
            )
    return module


def check_layer_name(layer: Any) -> str:
    """A layer name: a string as in ``named_modules()`` or the table (``"layer1.0.conv1"``)."""
    if not isinstance(layer, str):
        raise ArgumentTypeError(
            f"The layer must be given by its name as a string (e.g. 'layer1.0.conv1'), "
            f"not {describe(layer)}; `cnnviz summary` lists the names."
        )
    if len(layer) > MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"The layer name is {len(layer):,} characters long, which no layer is; "
            "`cnnviz summary` lists the names."
        )
    return layer


def check_layer_names(layers: Any) -> list[str] | None:
    """None (every layer) or a list of layer names; a bare string is refused (it is not a list)."""
    if layers is None:
        return None
    if isinstance(layers, str):
        raise ArgumentTypeError(
            f"layers must be a list of layer names, e.g. [{layers[:40]!r}], not one string."
        )
    try:
        # a 0-d tensor or array claims to be iterable and raises only when iterated
        names = list(layers) if isinstance(layers, Iterable) else None
    except TypeError:
        names = None
    if names is None:
        raise ArgumentTypeError(
            f"layers must be a list of layer names (or None for all), not {describe(layers)}."
        )
    return [check_layer_name(name) for name in names]


def check_unit(unit: Any) -> tuple[int, int]:
    """A unit position ``(y, x)``: exactly two whole numbers (range is checked against the layer)."""
    example = "two whole numbers (y, x), e.g. (4, 7)"
    items = _sequence(unit, "The unit", example)
    if len(items) != 2:
        raise InvalidArgumentError(
            f"The unit must be {example}, not {len(items)} number{'s' if len(items) != 1 else ''}."
        )
    y = as_whole_number(items[0], "The unit's y (row)")
    x = as_whole_number(items[1], "The unit's x (column)")
    return (y, x)


def check_channel(channel: Any) -> int | None:
    """None (all channels) or a whole-number channel index (range is checked against the layer)."""
    if channel is None:
        return None
    return as_whole_number(channel, "The channel")


def check_count(value: Any, what: str, minimum: int = 1) -> int:
    """A whole number of at least ``minimum`` (``top``, a batch size)."""
    n = as_whole_number(value, what)
    if n < minimum:
        raise InvalidArgumentError(f"{what} must be {minimum} or more, not {n}.")
    return n


def check_flag(value: Any, what: str) -> bool:
    """A yes/no option: only ``True`` or ``False`` (a string such as ``"no"`` would read as true)."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{what} must be True or False, not {describe(value)}.")
    return value


def check_shape(
    shape: Any, what: str = "The input shape", *, dims: int | None = 3
) -> tuple[int, ...] | None:
    """None or an input shape without the batch: ``dims`` positive whole numbers (any count if None).

    Sizes are bounded (:data:`MAX_SIDE` per dimension, :data:`MAX_INPUT_ELEMENTS` in all) so that a typo
    cannot ask for terabytes.
    """
    if shape is None:
        return None
    example = (
        "(C, H, W), e.g. (3, 224, 224)" if dims == 3 else "(C, H, W) or (C, L), e.g. (3, 224, 224)"
    )
    items = _sequence(shape, what, example)
    if dims is not None and len(items) != dims:
        raise InvalidArgumentError(
            f"{what} must be {dims} whole numbers {example}, not {len(items)}: give channels, "
            "height and width."
        )
    if not 1 <= len(items) <= 4:
        raise InvalidArgumentError(
            f"{what} must be 1 to 4 whole numbers {example}, not {len(items)}."
        )
    values = tuple(as_whole_number(v, f"Every size in {what.lower()}") for v in items)
    if any(v < 1 for v in values):
        raise InvalidArgumentError(f"{what} {list(values)} must be positive in every dimension.")
    if any(v > MAX_SIDE for v in values):
        raise InvalidArgumentError(
            f"{what} {list(values)} has a dimension above {MAX_SIDE:,}; give the size the model "
            "really takes."
        )
    total = 1
    for v in values:
        total *= v
    if total > MAX_INPUT_ELEMENTS:
        raise InvalidArgumentError(
            f"{what} {list(values)} has {total:,} values, more than the {MAX_INPUT_ELEMENTS:,} "
            "(1 GiB of float32) one input may hold; give a smaller size."
        )
    return values


def check_geometry(geometry: Any) -> Any:
    """None or an image geometry (``image.geometry`` from :func:`cnnviz.load_image`)."""
    if geometry is None or callable(getattr(geometry, "box_to_original", None)):
        return geometry
    raise ArgumentTypeError(
        f"geometry must be the geometry of a loaded image (image.geometry from cnnviz.load_image) "
        f"or None, not {describe(geometry)}."
    )


def check_input(
    x: Any, what: str = "The input", *, image: bool = True, floating: bool = False
) -> torch.Tensor:
    """The tensor of ``x`` (a tensor or a loaded image with ``.tensor``), not yet batched.

    ``image``: it must be one picture C×H×W or a batch N×C×H×W (other inputs go to the model as they are).
    ``floating``: it must hold floating-point values (gradients are taken with respect to it).
    """
    tensor = getattr(x, "tensor", x)
    if not isinstance(tensor, torch.Tensor):
        raise ArgumentTypeError(
            f"{what} must be a tensor or an image from cnnviz.load_image, not {describe(x)}; "
            "read a picture with cnnviz.load_image(path, model.preprocess)."
        )
    if tensor.dim() == 0:
        raise InvalidArgumentError(
            f"{what} is a single number; give a batch of inputs (N×…), e.g. one picture as N×C×H×W."
        )
    if image and tensor.dim() not in (3, 4):
        raise InvalidArgumentError(
            f"{what} has shape {list(tensor.shape)}; give one picture as C×H×W or a batch as N×C×H×W."
        )
    if tensor.numel() == 0:
        raise InvalidArgumentError(f"{what} has shape {list(tensor.shape)}, which holds no values.")
    if floating and not tensor.is_floating_point():
        raise InvalidArgumentError(
            f"{what} holds {str(tensor.dtype).removeprefix('torch.')} values; gradients need a "
            "floating-point tensor, e.g. from cnnviz.load_image or x.float()."
        )
    return tensor


def check_dtype(dtype: Any) -> torch.dtype | None:
    """None or a floating-point torch dtype to store activations in."""
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArgumentTypeError(
            f"dtype must be a floating-point torch dtype such as torch.float16, or None, "
            f"not {describe(dtype)}."
        )
    return dtype


def check_capture_arguments(
    model: Any, x: Any, layers: Any = None, dtype: Any = None, to_cpu: Any = False
) -> None:
    """The checks of :func:`cnnviz.capture`."""
    check_module(model)
    check_input(x, image=False)
    check_layer_names(layers)
    check_dtype(dtype)
    check_flag(to_cpu, "to_cpu")


def check_summarize_arguments(
    model: Any, input_shape: Any = None, receptive_fields: Any = True, name: Any = None
) -> None:
    """The checks of :func:`cnnviz.summarize` (1-D and 2-D inputs have 2 or 3 sizes)."""
    check_module(model)
    check_shape(input_shape, dims=None)
    check_flag(receptive_fields, "receptive_fields")
    if name is not None and not isinstance(name, str):
        raise ArgumentTypeError(f"name must be a string or None, not {describe(name)}.")


def check_load_model_arguments(
    spec: Any, weights: Any, trust: Any, input_shape: Any, progress: Any = None
) -> None:
    """The checks of :func:`cnnviz.load_model` that its loaders do not make themselves."""
    import os
    from collections.abc import Mapping

    if not isinstance(spec, (str, os.PathLike, nn.Module, Mapping)):
        raise ArgumentTypeError(
            f"The model must be a name ('default', 'resnet18'), a file path, a torch.nn.Module or an edit "
            f"patch (a dict with 'base' and 'edits'), not {describe(spec)}."
        )
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"weights must be 'default', 'none' or the path of a state_dict file, not {describe(weights)}."
        )
    check_flag(trust, "trust")
    check_shape(input_shape)
    if progress is not None and not callable(progress):
        raise ArgumentTypeError(
            f"progress must be a function progress(done, total) or None, not {describe(progress)}."
        )


__all__ = [
    "MAX_INPUT_ELEMENTS",
    "MAX_NAME_LENGTH",
    "MAX_SIDE",
    "as_whole_number",
    "check_capture_arguments",
    "check_channel",
    "check_count",
    "check_dtype",
    "check_flag",
    "check_geometry",
    "check_input",
    "check_layer_name",
    "check_layer_names",
    "check_load_model_arguments",
    "check_module",
    "check_shape",
    "check_summarize_arguments",
    "check_unit",
    "describe",
]
