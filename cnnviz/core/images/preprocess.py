"""The settings that turn a picture into a model input: :class:`Preprocess`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from cnnviz.core.errors import CnnvizError
from cnnviz.core.images.limits import MAX_IMAGE_BYTES_ENV, _pixel_bytes, decode_budget
from cnnviz.core.text import nbytes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_MODES = ("resize_crop", "resize", "letterbox")


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CnnvizError(f"Preprocess {what} must be a whole number, not {value!r}.")
    return int(value)


def _as_floats(value: Any, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value,)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise CnnvizError(
            f"Preprocess {what} must be a list of numbers, one per channel, not {value!r}."
        ) from None
    if not out or not all(math.isfinite(v) for v in out):
        raise CnnvizError(f"Preprocess {what} must be finite numbers, one per channel.")
    return out


def _check_input_budget(channels: int, size: tuple[int, int], resize_size: int | None) -> None:
    """Refuse an input size whose tensor (or resized picture) cannot fit the memory budget."""
    budget = decode_budget()
    height, width = size
    tensor_bytes = 4 * channels * height * width  # float32
    if tensor_bytes > budget:
        raise CnnvizError(
            f"Preprocess size {height}×{width} with {channels} channel(s) would need "
            f"{nbytes(tensor_bytes)} for one float32 input, more than the {nbytes(budget)} budget; "
            f"use a smaller input size or raise the budget with the environment variable "
            f"{MAX_IMAGE_BYTES_ENV}."
        )
    if resize_size is not None:
        # The picture is resized to at least resize_size x resize_size before the crop.
        picture_bytes = _pixel_bytes("L" if channels == 1 else "RGB") * resize_size**2
        if picture_bytes > budget:
            raise CnnvizError(
                f"Preprocess resize_size {resize_size} would need {nbytes(picture_bytes)} for "
                f"the resized picture, more than the {nbytes(budget)} budget; use a smaller "
                f"resize_size or raise the budget with the environment variable "
                f"{MAX_IMAGE_BYTES_ENV}."
            )


@dataclass(frozen=True)
class Preprocess:
    """Everything needed to turn a picture into a model input.

    ``mode``: ``"resize_crop"`` resizes the shorter side to ``resize_size`` (default
    ``max(size)``) and centre-crops ``size``, exactly as torchvision's ``Resize`` +
    ``CenterCrop``; ``"resize"`` stretches to ``size``; ``"letterbox"`` pads to a square with the
    background colour (median of the border pixels), then resizes to ``size``.
    ``auto_invert`` inverts pictures with a light background (light-on-dark digit models).
    ``mean``/``std`` have one value per channel (or one value for all).
    """

    channels: int
    size: tuple[int, int]
    mode: str
    resize_size: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    auto_invert: bool = False

    def __post_init__(self) -> None:
        channels = _as_int(self.channels, "channels")
        if channels not in (1, 3):
            raise CnnvizError(
                f"Preprocess channels must be 1 (grayscale) or 3 (RGB), not {channels}."
            )
        size = self.size
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            size = (int(size), int(size))
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise CnnvizError(
                f"Preprocess size must be two numbers (height, width), not {self.size!r}."
            )
        size = (_as_int(size[0], "height"), _as_int(size[1], "width"))
        if min(size) < 1:
            raise CnnvizError(f"Preprocess size must be at least 1×1 pixels, not {size}.")
        if self.mode not in _MODES:
            raise CnnvizError(
                f"Preprocess mode {self.mode!r} is unknown; use one of {', '.join(_MODES)}."
            )
        resize_size = self.resize_size
        if resize_size is not None:
            resize_size = _as_int(resize_size, "resize_size")
            if resize_size < 1:
                raise CnnvizError(f"Preprocess resize_size must be positive, not {resize_size}.")
        _check_input_budget(channels, size, resize_size)
        mean = _as_floats(self.mean, "mean")
        std = _as_floats(self.std, "std")
        for what, values in (("mean", mean), ("std", std)):
            if len(values) not in (1, channels):
                raise CnnvizError(
                    f"Preprocess {what} has {len(values)} values but the model takes "
                    f"{channels} channel(s); give one value per channel."
                )
        if min(std) <= 0:
            raise CnnvizError(f"Preprocess std values must be positive, not {std}.")
        if self.interpolation not in _INTERPOLATIONS:
            raise CnnvizError(
                f"Preprocess interpolation {self.interpolation!r} is unknown; use one of "
                f"{', '.join(_INTERPOLATIONS)}."
            )
        if not isinstance(self.auto_invert, (bool, np.bool_)):
            raise CnnvizError(
                f"Preprocess auto_invert must be true or false, not {self.auto_invert!r}."
            )
        for name, value in (
            ("channels", channels),
            ("size", size),
            ("resize_size", resize_size),
            ("mean", mean),
            ("std", std),
            ("auto_invert", bool(self.auto_invert)),
        ):
            object.__setattr__(self, name, value)

    @property
    def effective_resize_size(self) -> int:
        """The shorter-side length used by ``resize_crop`` (``resize_size`` or ``max(size)``)."""
        return self.resize_size if self.resize_size is not None else max(self.size)

    @classmethod
    def imagenet(cls, size: int = 224, resize_size: int = 256) -> Preprocess:
        """The classic ImageNet preprocessing: resize to 256, centre-crop 224, RGB mean/std."""
        return cls(3, (size, size), "resize_crop", resize_size, IMAGENET_MEAN, IMAGENET_STD)

    @classmethod
    def digits(cls, size: int = 28, auto_invert: bool = True) -> Preprocess:
        """MNIST-style digits: grayscale, letterboxed, light ink on dark, MNIST mean/std."""
        return cls(
            1, (size, size), "letterbox", None, (0.1307,), (0.3081,), "bilinear", auto_invert
        )

    @classmethod
    def from_torchvision_weights(cls, weights: Any) -> Preprocess:
        """Read ``weights.transforms()`` (torchvision ``ImageClassification``) into a Preprocess.

        ``weights`` is a torchvision ``WeightsEnum`` member or its name, e.g.
        ``"ResNet18_Weights.DEFAULT"``. Building the transforms downloads nothing.
        """
        if isinstance(weights, str):
            from torchvision.models import get_weight

            try:
                weights = get_weight(weights)
            except (ValueError, KeyError, AttributeError):
                raise CnnvizError(
                    f"{weights!r} is not a torchvision weights name; use a name such as "
                    "'ResNet18_Weights.DEFAULT'."
                ) from None
        make = getattr(weights, "transforms", None)
        if make is None:
            raise CnnvizError(
                f"{weights!r} is not a torchvision weights entry (it has no transforms())."
            )
        transforms = make()
        try:
            crop = list(transforms.crop_size)
            resize = list(transforms.resize_size)
            mean = tuple(transforms.mean)
            std = tuple(transforms.std)
            interpolation = transforms.interpolation
        except (AttributeError, TypeError):
            raise CnnvizError(
                f"The transforms of {weights} are not an image-classification preset "
                "(crop_size, resize_size, mean, std); give the preprocessing explicitly."
            ) from None
        if len(crop) == 1:
            crop = crop * 2
        if len(crop) != 2 or len(resize) != 1:
            raise CnnvizError(
                f"The transforms of {weights} resize to {resize} and crop {crop}; only a single "
                "shorter-side resize followed by a centre crop is supported."
            )
        name = getattr(interpolation, "value", interpolation)
        return cls(len(mean), (crop[0], crop[1]), "resize_crop", resize[0], mean, std, str(name))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (checkpoints store it); :meth:`from_dict` reads it back."""
        return {
            "channels": self.channels,
            "size": list(self.size),
            "mode": self.mode,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "auto_invert": self.auto_invert,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        """Build from :meth:`to_dict` output; unknown or missing keys raise CnnvizError."""
        if not isinstance(data, Mapping):
            raise CnnvizError(
                f"Preprocess settings must be a JSON object (a dict), not {type(data).__name__}."
            )
        known = ("channels", "size", "mode", "resize_size", "mean", "std")
        optional = ("interpolation", "auto_invert")
        unknown = sorted(set(data) - set(known) - set(optional))
        if unknown:
            raise CnnvizError(
                f"Preprocess settings have unknown key(s) {', '.join(map(repr, unknown))}; "
                f"the keys are {', '.join(known + optional)}."
            )
        missing = [k for k in known if k not in data and k != "resize_size"]
        if missing:
            raise CnnvizError(
                f"Preprocess settings lack the key(s) {', '.join(map(repr, missing))}."
            )
        size = data["size"]
        if isinstance(size, list):
            size = tuple(size)
        return cls(
            channels=data["channels"],
            size=size,
            mode=data["mode"],
            resize_size=data.get("resize_size"),
            mean=data["mean"],
            std=data["std"],
            interpolation=data.get("interpolation", "bilinear"),
            auto_invert=data.get("auto_invert", False),
        )
