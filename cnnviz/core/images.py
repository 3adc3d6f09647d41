"""Image loading, preprocessing for a model, and the map back to original-image pixels.

Three steps, each exact about geometry:

1. :func:`open_image` reads a file (or bytes, or a PIL image) into an 8-bit ``"RGB"`` or ``"L"``
   picture: EXIF orientation applied, alpha composited onto white, 16-bit and float data scaled
   to 8 bits. Pictures larger than ``max_side`` pixels on the long side are reduced by an
   integer factor while they are decoded (JPEG: DCT scaling through ``Image.draft``; PNG: row
   strips; other formats: decoded whole, then converted and reduced strip by strip), so a
   400-megapixel PNG loads in bounded memory. A picture that must be decoded whole is first
   sized from its header and refused when it would need more than the memory budget
   (:data:`MAX_DECODE_BYTES`, or the ``CNNVIZ_MAX_IMAGE_BYTES`` environment variable).
   The original size and the exact map back to it travel in ``Image.info``.
2. :class:`Preprocess` turns that picture into the model input, the way torchvision does
   (``resize_crop`` equals ``weights.transforms()`` on the same picture, bit for bit).
3. :class:`ImageGeometry` maps model-input pixels back to original-image pixels per axis:
   a model pixel edge ``u`` lies at original edge ``u * scale + offset`` (pixel ``i`` spans
   ``[i, i + 1)``). Scales and offsets are :class:`fractions.Fraction`, so box maps have no
   rounding error.
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnviz.core.budget import format_bytes, parse_size
from cnnviz.core.errors import ArgumentTypeError, CnnvizError, ImageLoadError, InvalidArgumentError
from cnnviz.core.fileio import open_regular_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_FILE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_DECODE_BYTES",
    "MAX_IMAGE_BYTES_ENV",
    "MAX_PIXELS",
    "MAX_SIDE",
    "ORIGINAL_SIZE_KEY",
    "TO_ORIGINAL_KEY",
    "ImageGeometry",
    "ImageSource",
    "LoadedImage",
    "Preprocess",
    "decode_budget",
    "load_image",
    "open_image",
    "preprocess_pil",
]

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Image.Image]

MAX_SIDE = 4096
"""Longest side, in pixels, that a picture is decoded at; larger ones are reduced while loading."""

MAX_PIXELS = 1_000_000_000
"""Pictures with more pixels than this are refused whatever their format (or their budget).

PNG and JPEG pictures are decoded in bounded memory (row strips, DCT scaling), so for them
this is a bound on time: inflating a billion pixels takes tens of seconds."""

MAX_DECODE_BYTES = 512 << 20
"""Memory budget, in bytes, for one picture decoded whole (512 MiB).

A picture that cannot be streamed (TIFF, BMP, GIF, WebP, PPM, TGA, ICO, interlaced PNG,
progressive JPEG coefficients) is sized from its header before any pixel is decoded: width x
height x the bytes a pixel of its mode takes in memory, plus what its decoder buffers (a TIFF
strip, WebP's canvases). Above the budget it is refused with a sentence naming both figures.
Conversion and reduction then work in strips, so the peak stays near the budget. The same
budget bounds a model input (float32 x channels x height x width). Raise or lower it with the
environment variable named by :data:`MAX_IMAGE_BYTES_ENV`."""

MAX_IMAGE_BYTES_ENV = "CNNVIZ_MAX_IMAGE_BYTES"
"""Environment variable that replaces :data:`MAX_DECODE_BYTES`: bytes, or a number with K, M
or G (powers of 1024), e.g. ``2G``."""

ORIGINAL_SIZE_KEY = "cnnviz.original_size"
"""``Image.info`` key set by :func:`open_image`: the original ``(H, W)`` after EXIF rotation."""

TO_ORIGINAL_KEY = "cnnviz.to_original"
"""``Image.info`` key set by :func:`open_image`: ``(factor, offset_y, offset_x)`` such that a
loaded pixel edge ``u`` lies at original edge ``u * factor + offset``."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGE_FILE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".bmp",
    ".dib",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".tga",
    ".ico",
)

# Plugins that only parse pixels. Others (EPS runs Ghostscript, for one) are refused.
# (MPO, the multi-picture JPEG of cameras, is opened by the JPEG plugin.)
_READ_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO")
_FORMAT_LIST = "PNG, JPEG, BMP, GIF, TIFF, WebP, PPM, TGA or ICO"

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})

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

# EXIF orientation -> (PIL transpose, output axes swapped, output y flipped, output x flipped).
# The transposes are those of PIL.ImageOps.exif_transpose; the flags say where each output
# axis comes from, which the downscaled-geometry offsets need.
_T = Image.Transpose
_ORIENTATIONS: dict[int, tuple[Image.Transpose | None, bool, bool, bool]] = {
    1: (None, False, False, False),
    2: (_T.FLIP_LEFT_RIGHT, False, False, True),
    3: (_T.ROTATE_180, False, True, True),
    4: (_T.FLIP_TOP_BOTTOM, False, True, False),
    5: (_T.TRANSPOSE, True, False, False),
    6: (_T.ROTATE_270, True, False, True),
    7: (_T.TRANSVERSE, True, True, True),
    8: (_T.ROTATE_90, True, True, False),
}
_EXIF_ORIENTATION = 0x0112

# PIL's own decompression-bomb limit is far below MAX_PIXELS; it is lifted only while this
# module opens a file (the byte budget takes its place), under a lock so concurrent callers
# restore it correctly.
_BOMB_LOCK = threading.RLock()


def decode_budget() -> int:
    """The memory budget in bytes: ``CNNVIZ_MAX_IMAGE_BYTES`` when set, else MAX_DECODE_BYTES.

    The value is read like every memory size in cnnviz (:func:`cnnviz.core.budget.parse_size`).
    """
    text = os.environ.get(MAX_IMAGE_BYTES_ENV, "").strip()
    if not text:
        return MAX_DECODE_BYTES
    try:
        value = parse_size(text)
    except InvalidArgumentError:
        value = 0
    if not value:
        raise InvalidArgumentError(
            f"The environment variable {MAX_IMAGE_BYTES_ENV} is {text!r}; set it to a number "
            "of bytes such as 1000000000 or 1G, or unset it for the default "
            f"({format_bytes(MAX_DECODE_BYTES)})."
        )
    return value


def _over_budget(name: str, what: str, needed: int, advice: str) -> ImageLoadError:
    budget = decode_budget()
    return ImageLoadError(
        f"{name} {what} would need {format_bytes(needed)} of memory to decode, more than the "
        f"{format_bytes(budget)} budget; {advice}, or raise the budget with the environment variable "
        f"{MAX_IMAGE_BYTES_ENV} (e.g. {MAX_IMAGE_BYTES_ENV}=2G)."
    )


# --------------------------------------------------------------------------------------------
# Preprocess
# --------------------------------------------------------------------------------------------


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
            f"Preprocess size {height}x{width} with {channels} channel(s) would need "
            f"{format_bytes(tensor_bytes)} for one float32 input, more than the {format_bytes(budget)} budget; "
            f"use a smaller input size or raise the budget with the environment variable "
            f"{MAX_IMAGE_BYTES_ENV}."
        )
    if resize_size is not None:
        # The picture is resized to at least resize_size x resize_size before the crop.
        picture_bytes = _pixel_bytes("L" if channels == 1 else "RGB") * resize_size**2
        if picture_bytes > budget:
            raise CnnvizError(
                f"Preprocess resize_size {resize_size} would need {format_bytes(picture_bytes)} for "
                f"the resized picture, more than the {format_bytes(budget)} budget; use a smaller "
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
            raise CnnvizError(f"Preprocess size must be at least 1x1 pixels, not {size}.")
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


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _frac(value: Any) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


@dataclass(frozen=True)
class ImageGeometry:
    """Per-axis affine map from model-input pixel edges to original-image pixel edges.

    A model edge coordinate ``u`` (pixel ``i`` spans ``[i, i + 1)``) lies at original edge
    ``u * scale + offset``. ``input_size`` is the model input ``(H, W)``;
    ``original_size`` the picture's ``(H, W)`` after EXIF rotation, before any downscaling.
    Point methods use pixel-index coordinates (``(i, j)`` is the centre of pixel ``i, j``).
    """

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    scale_y: Fraction
    offset_y: Fraction
    scale_x: Fraction
    offset_x: Fraction

    def __post_init__(self) -> None:
        for name in ("scale_y", "offset_y", "scale_x", "offset_x"):
            object.__setattr__(self, name, _frac(getattr(self, name)))
        if self.scale_y <= 0 or self.scale_x <= 0:
            raise ValueError("ImageGeometry scales must be positive.")
        object.__setattr__(self, "original_size", tuple(int(v) for v in self.original_size))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @classmethod
    def identity(cls, height: int, width: int) -> ImageGeometry:
        """The geometry of a picture fed to the model as it is."""
        return cls(
            (height, width), (height, width), Fraction(1), Fraction(0), Fraction(1), Fraction(0)
        )

    def then(self, outer: ImageGeometry) -> ImageGeometry:
        """Compose: this map (into ``outer``'s input space), then ``outer``'s map."""
        return ImageGeometry(
            outer.original_size,
            self.input_size,
            self.scale_y * outer.scale_y,
            self.offset_y * outer.scale_y + outer.offset_y,
            self.scale_x * outer.scale_x,
            self.offset_x * outer.scale_x + outer.offset_x,
        )

    def _edges(
        self, box: tuple[int, int, int, int]
    ) -> tuple[Fraction, Fraction, Fraction, Fraction]:
        top, left, bottom, right = (int(v) for v in box)
        if bottom < top or right < left:
            raise ValueError(f"Box {tuple(box)} has bottom < top or right < left.")
        return (
            top * self.scale_y + self.offset_y,
            left * self.scale_x + self.offset_x,
            (bottom + 1) * self.scale_y + self.offset_y,
            (right + 1) * self.scale_x + self.offset_x,
        )

    def box_edges_to_original(
        self, box: tuple[int, int, int, int]
    ) -> tuple[float, float, float, float]:
        """Inclusive model box ``(top, left, bottom, right)`` -> unclipped original edges.

        Returns ``(y0, x0, y1, x1)`` in original pixel-edge coordinates, for drawing; a box
        reaching into padding reaches outside the picture.
        """
        y0, x0, y1, x1 = self._edges(box)
        return (float(y0), float(x0), float(y1), float(x1))

    def box_to_original(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        """Inclusive model box -> inclusive original pixel box, clipped to the picture.

        Every original pixel that overlaps the box (with positive area) is included. Returns
        None when nothing of the box lies on the picture (e.g. all of it is padding).
        """
        y0, x0, y1, x1 = self._edges(box)
        height, width = self.original_size
        top, left = max(math.floor(y0), 0), max(math.floor(x0), 0)
        bottom, right = min(math.ceil(y1) - 1, height - 1), min(math.ceil(x1) - 1, width - 1)
        if top > bottom or left > right:
            return None
        return (top, left, bottom, right)

    def box_edges_from_original(
        self, edges: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """Original edges ``(y0, x0, y1, x1)`` -> model-input edges (inverse of the edge map)."""
        y0, x0, y1, x1 = edges
        return (
            float((_frac(y0) - self.offset_y) / self.scale_y),
            float((_frac(x0) - self.offset_x) / self.scale_x),
            float((_frac(y1) - self.offset_y) / self.scale_y),
            float((_frac(x1) - self.offset_x) / self.scale_x),
        )

    def point_to_original(self, y: float, x: float) -> tuple[float, float]:
        """Model pixel-index point (``(i, j)`` = centre of pixel i, j) -> original pixel-index point."""
        half = Fraction(1, 2)
        return (
            float((_frac(y) + half) * self.scale_y + self.offset_y - half),
            float((_frac(x) + half) * self.scale_x + self.offset_x - half),
        )

    def point_from_original(self, y: float, x: float) -> tuple[float, float]:
        """Original pixel-index point -> model pixel-index point (inverse of point_to_original)."""
        half = Fraction(1, 2)
        return (
            float((_frac(y) + half - self.offset_y) / self.scale_y - half),
            float((_frac(x) + half - self.offset_x) / self.scale_x - half),
        )

    def pixel_from_original(self, y: float, x: float) -> tuple[int, int] | None:
        """The model pixel whose area holds original pixel-index point ``(y, x)``, or None."""
        half = Fraction(1, 2)
        i = math.floor((_frac(y) + half - self.offset_y) / self.scale_y)
        j = math.floor((_frac(x) + half - self.offset_x) / self.scale_x)
        if 0 <= i < self.input_size[0] and 0 <= j < self.input_size[1]:
            return (i, j)
        return None


# --------------------------------------------------------------------------------------------
# Reading pictures
# --------------------------------------------------------------------------------------------


@dataclass
class _Decoded:
    image: Image.Image  # "L" or "RGB"
    original_size: tuple[int, int]  # (H, W) after EXIF rotation
    factor: int  # original pixels per loaded pixel, both axes
    offset: tuple[int, int]  # (y, x) original edge of loaded edge 0


@contextmanager
def _bomb_check_lifted() -> Iterator[None]:
    with _BOMB_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _natural_mode(mode: str) -> str:
    return "L" if mode in _GRAY_MODES else "RGB"


def _value_range(im: Image.Image) -> tuple[float, float] | None:
    """Smallest and largest finite value of an "I"/"F" picture (None when there is none)."""
    arr: np.ndarray = np.asarray(im, dtype=np.float32)
    finite = arr[np.isfinite(arr)]
    if not finite.size:
        return None
    return float(finite.min()), float(finite.max())


def _scale_to_uint8(
    im: Image.Image, bounds: tuple[float, float] | None | bool = False
) -> Image.Image:
    """16-bit, 32-bit and float pictures -> 8-bit "L" (PIL's own convert clips instead).

    ``bounds`` is the whole picture's value range when ``im`` is one strip of it (False: read
    it from ``im``), so that every strip is scaled alike.
    """
    if im.mode.startswith("I;16"):
        wide = np.asarray(im).astype(np.uint32)
        return Image.fromarray(((wide + 128) // 257).astype(np.uint8), "L")
    if bounds is False:
        bounds = _value_range(im)
    arr: np.ndarray = np.asarray(im, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        arr = np.where(finite, arr, np.float32(0))
    lo, hi = bounds if isinstance(bounds, tuple) else (0.0, 0.0)
    if not finite.all():  # non-finite values read as 0, so 0 belongs to the range
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if im.mode == "F" and lo >= 0 and hi <= 1:
        arr = arr * 255
    elif lo >= 0 and hi <= 255:
        pass
    elif im.mode != "F" and lo >= 0 and hi <= 65535:
        arr = arr / 257
    elif hi > lo:
        arr = (arr - lo) * (255 / (hi - lo))
    else:
        arr = np.zeros_like(arr)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def _premultiplied_onto_white(im: Image.Image) -> Image.Image:
    """ "La"/"RGBa" (colour already multiplied by alpha) composited onto white: c + 255 - a."""
    arr = np.asarray(im).astype(np.int16)
    colour, alpha = arr[..., :-1], arr[..., -1:]
    out = np.clip(colour + (255 - alpha), 0, 255).astype(np.uint8)
    return Image.fromarray(out[..., 0], "L") if im.mode == "La" else Image.fromarray(out, "RGB")


def _lab_to_rgb(im: Image.Image) -> Image.Image:
    """CIE L*a*b* -> sRGB through littleCMS (PIL's plain convert would copy the bands as they are)."""
    try:
        from PIL import ImageCms

        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        transform = ImageCms.buildTransform(lab, srgb, "LAB", "RGB")
        out = ImageCms.applyTransform(im, transform)
    except (ImportError, OSError, ValueError, TypeError) as exc:
        raise _ModeError(im.mode) from exc
    if out is None:
        raise _ModeError(im.mode)
    return out


def _to_mode(
    im: Image.Image, target: str, bounds: tuple[float, float] | None | bool = False
) -> Image.Image:
    """Any PIL mode -> ``target`` ("L" or "RGB"): alpha onto white, high depths scaled."""
    if im.mode.startswith("I") or im.mode == "F":
        im = _scale_to_uint8(im, bounds)
    if im.mode in ("La", "RGBa"):
        im = _premultiplied_onto_white(im)
    if im.mode == "LAB":
        im = _lab_to_rgb(im)
    if im.mode in _ALPHA_MODES or ("transparency" in im.info and im.mode in ("1", "L", "P", "RGB")):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        background.alpha_composite(im)
        im = background.convert("RGB")
    if im.mode != target:
        try:
            if im.mode not in ("1", "L", "P", "RGB"):
                im = im.convert("RGB")
            im = im.convert(target)
        except ValueError:
            raise _ModeError(im.mode) from None
    return im


def _convert_reduced(im: Image.Image, target: str, factor: int) -> Image.Image:
    """``_to_mode`` then ``reduce(factor)``, a strip at a time, so that the working copies of a
    large picture (RGBA, float) never exist for all of it at once. Strips start on multiples
    of ``factor``, so the result equals reducing the whole converted picture."""
    width, height = im.size
    rows = max(1, (_STRIP_BYTES // (16 * width)) // factor) * factor
    if height <= rows:
        image = _to_mode(im, target)
        return image.reduce(factor) if factor > 1 else image
    bounds: tuple[float, float] | None | bool = False
    if (im.mode.startswith("I") and not im.mode.startswith("I;16")) or im.mode == "F":
        ranges = [
            _value_range(im.crop((0, top, width, min(height, top + rows))))
            for top in range(0, height, rows)
        ]
        found = [r for r in ranges if r is not None]
        bounds = (min(r[0] for r in found), max(r[1] for r in found)) if found else None
    out = Image.new(target, (math.ceil(width / factor), math.ceil(height / factor)))
    for top in range(0, height, rows):
        piece = _to_mode(im.crop((0, top, width, min(height, top + rows))), target, bounds)
        out.paste(piece.reduce(factor) if factor > 1 else piece, (0, top // factor))
    return out


class _ModeError(Exception):
    """A colour mode PIL cannot convert to RGB."""


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    if isinstance(source, Image.Image):
        filename = getattr(source, "filename", "")
        return f"'{filename}'" if filename else "the given picture"
    return "the image data"


def _open_stream(source: Any, name: str) -> IO[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError("The image data is empty (0 bytes); give the bytes of a picture.")
        return io.BytesIO(bytes(source))
    try:
        path = os.fspath(source)
    except TypeError:
        raise ArgumentTypeError(
            f"An image path must be text, not {type(source).__name__}."
        ) from None
    try:
        # Non-blocking and checked on the open descriptor: a FIFO, socket or device is
        # refused at once instead of waiting for a writer or streaming forever.
        stream = open_regular_file(path)  # closed by the caller
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if reason == "does not exist":
            raise ImageLoadError(f"Image file {name} does not exist; check the path.") from None
        if reason.startswith("is a folder"):
            raise ImageLoadError(
                f"{name} is a folder, not an image file; choose a picture inside it."
            ) from None
        if reason.startswith("cannot be read"):
            raise ImageLoadError(f"Image file {name} {reason}; check its permissions.") from None
        if reason.startswith("is "):
            raise ImageLoadError(f"{name} {reason}; choose a picture file.") from None
        raise ImageLoadError(f"Image file {name} {reason}; check the path.") from None
    try:
        empty = os.fstat(stream.fileno()).st_size == 0
    except OSError:
        empty = False
    if empty:
        stream.close()
        raise ImageLoadError(f"Image file {name} is empty (0 bytes); choose another picture.")
    return stream


def _header_check(stream: IO[bytes], name: str) -> None:
    """Refuse WebP and ICO bombs from their headers: PIL allocates (WebP: two canvases) or
    decodes (ICO: the embedded picture) while it merely opens them."""
    head = stream.read(32)
    stream.seek(0)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        size = _webp_size(head)
        if size is not None:
            _check_budget(name, "WEBP", size[0], size[1], _WEBP_BYTES_PER_PIXEL)
    elif head[:4] == b"\0\0\1\0":
        for width, height in _ico_frame_sizes(stream):
            # The embedded PNG or DIB is decoded as RGBA, then copied into the icon.
            _check_budget(name, "ICO", width, height, 8)
        stream.seek(0)


# libwebp's animation decoder keeps two RGBA canvases, hands PIL a third copy, and PIL unpacks
# that into its own picture: four RGBA copies in all.
_WEBP_BYTES_PER_PIXEL = 16


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """The canvas size in a WebP header (lossy VP8, lossless VP8L or extended VP8X)."""
    kind = head[12:16]
    if kind == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        return width, int.from_bytes(head[27:30], "little") + 1
    if kind == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _ico_frame_sizes(stream: IO[bytes]) -> Iterator[tuple[int, int]]:
    """The real sizes of the pictures inside an ICO (the directory's own are at most 256)."""
    stream.seek(4)
    count = int.from_bytes(stream.read(2), "little")
    directory = stream.read(16 * count)
    for index in range(len(directory) // 16):
        offset = int.from_bytes(directory[16 * index + 12 : 16 * index + 16], "little")
        stream.seek(offset)
        head = stream.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
            yield struct.unpack(">II", head[16:24])
        elif len(head) >= 12:
            width, height = struct.unpack("<ii", head[4:12])
            yield abs(width), abs(height) // 2


def _identify(stream: IO[bytes], name: str) -> Image.Image:
    _header_check(stream, name)
    try:
        Image.init()
        return Image.open(stream, formats=[f for f in _READ_FORMATS if f in Image.OPEN])
    except UnidentifiedImageError:
        pass
    except MemoryError:
        raise ImageLoadError(
            f"{name} is too large to open with the memory available; scale it down first."
        ) from None
    except Exception as exc:  # noqa: BLE001 - a PIL plugin may raise anything on damaged bytes
        raise ImageLoadError(
            f"{name} could not be read: the file is damaged ({_detail(exc)}); "
            "re-save or re-download it."
        ) from None
    # Name the format when PIL knows it, so the message can say what to convert. Only the
    # header is parsed here; the picture is never decoded.
    try:
        stream.seek(0)
        # PIL's own guard at a quarter of the budget in pixels: an other format's bomb is
        # refused here, never decoded.
        Image.MAX_IMAGE_PIXELS = max(1, decode_budget() // 8)
        other = Image.open(stream)
        fmt = other.format
        other.close()
    except Exception:  # noqa: BLE001
        fmt = None
    finally:
        Image.MAX_IMAGE_PIXELS = None
    if fmt:
        raise ImageLoadError(
            f"{name} is a {fmt} image, which cnnviz does not read; convert it to PNG or JPEG."
        )
    raise ImageLoadError(
        f"{name} is not a picture cnnviz can read: it is damaged or not in a supported format "
        f"({_FORMAT_LIST}); check the file or re-save it as PNG."
    )


def _orientation_of(exif: Image.Exif) -> int:
    try:
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except (TypeError, ValueError):
        return 1
    return value if value in _ORIENTATIONS else 1


def _read_orientation(im: Image.Image) -> int:
    try:
        return _orientation_of(im.getexif())
    except Exception:  # a damaged EXIF block must not stop the picture from loading
        return 1


def _jpeg_draft(im: Image.Image, factor: int) -> int:
    """Ask the JPEG decoder to scale by 1/2, 1/4 or 1/8 (at most ``factor``); returns the scale."""
    if im.format not in ("JPEG", "MPO") or factor < 2:
        return 1
    wanted = 8 if factor >= 8 else 4 if factor >= 4 else 2
    width, height = im.size
    result = im.draft(im.mode, (max(1, width // wanted), max(1, height // wanted)))
    if result is None:
        return 1
    scale = round(width / result[1][2])
    return scale if scale in (1, 2, 4, 8) else 1


def _detail(exc: BaseException) -> str:
    """A decoder's complaint on one short line (it goes inside a sentence of ours)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _decode_error(name: str, exc: BaseException) -> ImageLoadError:
    return ImageLoadError(
        f"{name} could not be decoded: the file is truncated or damaged ({_detail(exc)}); "
        "re-save or re-download it."
    )


def _pixel_bytes(mode: str) -> int:
    """Bytes one pixel of a PIL mode takes in memory (PIL keeps 2-4 bands in 4 bytes)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _check_budget(name: str, fmt: str, width: int, height: int, per_pixel: float) -> None:
    needed = math.ceil(width * height * per_pixel)
    if needed > decode_budget():
        advice = (
            "scale it down"
            if fmt in ("PNG", "JPEG", "MPO")
            else "scale it down or convert it to PNG (which is read in strips)"
        )
        raise _over_budget(name, f"({fmt}, {width}x{height})", needed, advice)


def _tiff_buffer_bytes(im: Image.Image, width: int, height: int) -> int:
    """The largest strip or tile the TIFF decoder reads into memory at once, in bytes."""
    tags = getattr(im, "tag_v2", None)
    if tags is None:
        return 0
    try:
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        samples = int(tags.get(277, len(bits)))
        per_sample = max(int(b) for b in bits) if bits else 8
        row = math.ceil(width * max(samples, len(bits)) * per_sample / 8)
        if 322 in tags and 323 in tags:  # tiled: one tile at a time
            tile_w, tile_h = int(tags[322]), int(tags[323])
            tile_row = math.ceil(tile_w * max(samples, len(bits)) * per_sample / 8)
            return min(tile_row * tile_h, row * height)
        rows = int(tags.get(278, height))
        return row * min(max(rows, 1), height)
    except (TypeError, ValueError, OverflowError):
        return 0


def _budget_whole_decode(im: Image.Image, name: str, full: tuple[int, int]) -> None:
    """Refuse, from the header alone, a picture whose whole decoding would exceed the budget."""
    width, height = im.size  # after a JPEG draft: the reduced size
    fmt = im.format or "picture"
    per_pixel: float = _pixel_bytes(im.mode)
    extra = 0
    if fmt == "TIFF":
        extra = _tiff_buffer_bytes(im, width, height)
    elif fmt == "WEBP":
        per_pixel = _WEBP_BYTES_PER_PIXEL
    elif fmt in ("JPEG", "MPO") and (im.info.get("progressive") or im.info.get("progression")):
        # A progressive JPEG keeps every DCT coefficient (2 bytes a sample) of the whole
        # picture, whatever the draft scale.
        extra = full[0] * full[1] * len(im.getbands()) * 2
    needed = math.ceil(width * height * per_pixel) + extra
    if needed > decode_budget():
        advice = (
            "scale it down or re-save it as a baseline (not progressive) JPEG"
            if fmt in ("JPEG", "MPO")
            else "scale it down first"
            if fmt == "PNG"
            else "scale it down or convert it to PNG (which is read in strips)"
        )
        raise _over_budget(name, f"({fmt}, {full[0]}x{full[1]})", needed, advice)


def _decode(im: Image.Image, name: str, mode: str | None, max_side: int) -> _Decoded:
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name} has no pixels ({width}x{height}); choose another picture.")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            f"{name} is {width}x{height} = {width * height:,} pixels, more than the "
            f"{MAX_PIXELS:,} cnnviz reads; scale it down first."
        )
    needed = math.ceil(max(width, height) / max_side)
    try:
        streamed = None
        if needed > 1 and im.format == "PNG":
            streamed = _stream_png(im, name, mode or _natural_mode(im.mode), needed)
        if streamed is not None:
            image, orientation = streamed
            factor = needed
        else:
            draft = _jpeg_draft(im, needed)
            if getattr(im, "_im", True) is None:  # not decoded yet (a file, not pixels)
                _budget_whole_decode(im, name, (width, height))
            im.load()
            orientation = _read_orientation(im)
            # The mode is read after loading: a GIF, for one, may turn from "P" to "L" then.
            rest = math.ceil(max(im.size) / max_side)
            image = _convert_reduced(im, mode or _natural_mode(im.mode), rest)
            factor = draft * rest
    except CnnvizError:
        raise
    except _ModeError as exc:
        raise ImageLoadError(
            f"{name} uses the {exc} colour mode, which cannot be converted to RGB; "
            "re-save it as an RGB or grayscale picture."
        ) from None
    except MemoryError:
        raise ImageLoadError(
            f"{name} ({width}x{height}) is too large to decode with the memory available; "
            "scale it down first."
        ) from None
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise many kinds on damaged bytes
        raise _decode_error(name, exc) from None

    transpose, swap, flip_y, flip_x = _ORIENTATIONS[orientation]
    loaded_w, loaded_h = image.size
    if transpose is not None:
        image = image.transpose(transpose)
    # A loaded row covers `factor` original rows from the top edge; the last one may stick out
    # past the picture, which after a flip moves that overhang to the start of the axis.
    over_y, over_x = factor * loaded_h - height, factor * loaded_w - width
    if swap:
        over_y, over_x = over_x, over_y
        height, width = width, height
    offset = (-over_y if flip_y else 0, -over_x if flip_x else 0)
    if image is im:
        image = im.copy()
    # A fresh info dict: the EXIF orientation is applied now and must not be applied twice.
    image.info = {}
    return _Decoded(image, (height, width), factor, offset)


@contextmanager
def _quiet() -> Iterator[None]:
    """PIL warns on damaged files (truncated EXIF, odd sizes); the errors we raise say enough,
    and a warning printed by a command line tool reads like a failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _read(source: ImageSource, mode: str | None, max_side: int) -> _Decoded:
    if mode not in (None, "L", "RGB"):
        raise InvalidArgumentError(f"mode must be None, 'L' or 'RGB', not {mode!r}.")
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)):
        raise ArgumentTypeError(
            f"max_side must be a whole number of pixels, not {type(max_side).__name__}."
        )
    if max_side < 1:
        raise InvalidArgumentError(f"max_side must be positive, not {max_side}.")
    max_side = int(max_side)
    decode_budget()  # a malformed budget variable is reported before any file is touched
    name = _source_name(source)
    if isinstance(source, Image.Image):
        with _bomb_check_lifted(), _quiet():
            return _decode(source, name, mode, max_side)
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise ArgumentTypeError(
            f"An image source is a path, bytes or a PIL image, not {type(source).__name__}."
        )
    stream = _open_stream(source, name)
    try:
        with _bomb_check_lifted(), _quiet():
            im = _identify(stream, name)
            try:
                return _decode(im, name, mode, max_side)
            finally:
                im.close()
    except (CnnvizError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a header parser's error while sizing
        raise _decode_error(name, exc) from None
    finally:
        stream.close()


def open_image(
    source: ImageSource, mode: str | None = None, *, max_side: int = MAX_SIDE
) -> Image.Image:
    """Read a picture into an 8-bit ``"RGB"`` or ``"L"`` PIL image.

    ``source``: a path, the bytes of a file, or a PIL image. ``mode``: ``"RGB"``, ``"L"`` or
    None (grayscale sources stay ``"L"``, all others become ``"RGB"``). EXIF orientation is
    applied, transparency is composited onto white, GIF/TIFF/WebP give their first frame.
    Pictures longer than ``max_side`` are reduced by an integer factor while decoding;
    ``info[ORIGINAL_SIZE_KEY]`` keeps the original ``(H, W)`` and ``info[TO_ORIGINAL_KEY]``
    the exact map back. Raises :class:`ImageLoadError` naming the file on any bad input.
    """
    decoded = _read(source, mode, max_side)
    image = decoded.image
    image.info[ORIGINAL_SIZE_KEY] = decoded.original_size
    image.info[TO_ORIGINAL_KEY] = (decoded.factor, *decoded.offset)
    return image


# --------------------------------------------------------------------------------------------
# Large PNG files in row strips
# --------------------------------------------------------------------------------------------

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_BYTE_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_STRIP_BYTES = 16 << 20
_INFLATE_CHUNK = 8 << 20


def _stream_png(
    im: Image.Image, name: str, target: str, factor: int
) -> tuple[Image.Image, int] | None:
    """Decode a large non-interlaced PNG strip by strip, reducing each strip by ``factor``.

    PIL decodes a PNG in one piece. Here the zlib stream is inflated in bounded pieces and
    each strip of filtered rows is unfiltered by PIL's own PNG decoder: the strip is
    re-wrapped as a stored (uncompressed) zlib stream, preceded by the previous strip's last
    row (unfiltered, filter type 0) so that Up/Average/Paeth filters see their reference row.
    The strip is decoded into an image mode with the same bytes per pixel as the file, so the
    raw bytes come back unchanged. Returns None when the file does not fit this path.
    """
    fp = getattr(im, "fp", None)
    tile = getattr(im, "tile", None)
    if (
        im.format != "PNG"
        or fp is None
        or not tile
        or len(tile) != 1
        or tile[0][0] != "zip"
        or tuple(tile[0][1]) != (0, 0, *im.size)
        or im.info.get("interlace")
        or getattr(im, "n_frames", 1) != 1
    ):
        return None
    rawmode = tile[0][3]
    fp.seek(0)
    head = fp.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if colour not in _PNG_CHANNELS:
        return None
    bits = depth * _PNG_CHANNELS[colour]
    bpp = max(1, bits // 8)
    if bpp not in _BYTE_MODES or (width, height) != im.size:
        return None
    rowbytes = (width * bits + 7) // 8
    byte_mode, byte_width = _BYTE_MODES[bpp], rowbytes // bpp
    # Strips are sized by their decoded footprint (up to 4 bytes a pixel), not their raw bytes.
    strip_rows = max(1, (_STRIP_BYTES // max(rowbytes + 1, 4 * width)) // factor) * factor

    out_w, out_h = math.ceil(width / factor), math.ceil(height / factor)
    out = Image.new(target, (out_w, out_h))
    palette = im.palette
    transparency = im.info.get("transparency")
    state: dict[str, Any] = {"rows": 0, "prev": None}
    pending = bytearray()
    inflate = zlib.decompressobj()

    # When the file's pixel layout is a PIL mode as it is (L, LA, RGB, RGBA at 8 bits), the
    # byte image already is the picture and needs no second unpacking.
    direct = rawmode == byte_mode == im.mode

    def emit(nrows: int) -> None:
        need = nrows * (rowbytes + 1)
        prev = state["prev"]
        packer = zlib.compressobj(0)
        with memoryview(pending) as view:
            stored = b"".join(
                [
                    packer.compress(b"\x00" + prev) if prev is not None else b"",
                    packer.compress(view[:need]),
                    packer.flush(),
                ]
            )
        del pending[:need]
        first = 1 if prev is not None else 0
        rows_in = nrows + first
        raw_img = Image.frombytes(byte_mode, (byte_width, rows_in), stored, "zip", byte_mode)
        del stored
        state["prev"] = raw_img.crop((0, rows_in - 1, byte_width, rows_in)).tobytes()
        box = (0, first, width, rows_in)
        if direct and transparency is None and byte_mode == target:
            reduced = raw_img.reduce(factor, box=box)
        else:
            if direct:
                strip = raw_img.crop(box) if first else raw_img
            else:
                with memoryview(raw_img.tobytes()) as raw:
                    strip = Image.frombytes(
                        im.mode, (width, nrows), raw[first * rowbytes :], "raw", rawmode
                    )
                if palette is not None and strip.mode in ("P", "PA"):
                    strip.putpalette(palette.palette, palette.rawmode or "RGB")
            if transparency is not None:
                strip.info["transparency"] = transparency
            reduced = _to_mode(strip, target).reduce(factor)
        out.paste(reduced, (0, state["rows"] // factor))
        state["rows"] += nrows

    def feed(piece: bytes) -> None:
        while piece and state["rows"] < height and not inflate.eof:
            pending.extend(inflate.decompress(piece, _INFLATE_CHUNK))
            piece = inflate.unconsumed_tail
            while state["rows"] < height:
                nrows = min(strip_rows, height - state["rows"])
                if len(pending) < nrows * (rowbytes + 1):
                    break
                emit(nrows)

    orientation = 1
    exif_early = im.info.get("exif")
    if isinstance(exif_early, bytes):
        orientation = _orientation_of(_load_exif(exif_early))
    fp.seek(8)
    seen_idat = idat_over = False
    while True:
        header = fp.read(8)
        if len(header) < 8:
            break
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IDAT" and not idat_over:
            seen_idat = True
            left = length
            while left:
                piece = fp.read(min(left, 1 << 20))
                if not piece:
                    raise ImageLoadError(
                        f"{name} is truncated: the file ends inside its pixel data; "
                        "re-save or re-download it."
                    )
                left -= len(piece)
                feed(piece)
        else:
            idat_over = seen_idat
            if kind == b"IEND":
                break
            if kind == b"eXIf" and length < (1 << 24):
                orientation = _orientation_of(_load_exif(fp.read(length)))
            else:
                fp.seek(length, os.SEEK_CUR)
        fp.read(4)  # CRC
    if state["rows"] < height:
        raise ImageLoadError(
            f"{name} is truncated: its pixel data ends after {state['rows']} of {height} rows; "
            "re-save or re-download it."
        )
    return out, orientation


def _load_exif(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # damaged EXIF: treat as absent
        return Image.Exif()
    return exif


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


@dataclass
class LoadedImage:
    """A picture ready for a model, with everything needed to show it and map back.

    ``display``: uint8 ``HxWx3`` (RGB) or ``HxW`` (gray), as the user sees it, possibly
    reduced (``display_scale`` display pixels per original pixel; ``display_geometry`` maps
    display pixels to original ones exactly). ``tensor``: ``1xCxHxW`` float32, normalised.
    ``model_input_image``: uint8 ``HxWxC`` as the model sees it before normalisation.
    ``geometry``: model-input pixels -> original pixels. ``inverted``: auto_invert fired.
    """

    path: str | None
    display: np.ndarray
    display_scale: float
    tensor: torch.Tensor
    model_input_image: np.ndarray
    geometry: ImageGeometry
    inverted: bool
    preprocess: Preprocess
    display_geometry: ImageGeometry = field(repr=False)

    @property
    def original_size(self) -> tuple[int, int]:
        """The picture's ``(H, W)`` after EXIF rotation, before any downscaling."""
        return self.geometry.original_size


def _border(arr: np.ndarray) -> np.ndarray:
    """Border pixels of an ``HxW`` or ``HxWxC`` array, as ``N x C``."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w = arr.shape[:2]
    parts = [arr[0], arr[-1]]
    if h > 2:
        parts += [arr[1:-1, 0], arr[1:-1, -1]]
    return np.concatenate(parts, axis=0).reshape(-1, arr.shape[2])


def _resized_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """torchvision's Resize(int) output size (the same float expression, so the same ints)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shorter, int(shorter * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_h, new_w


def _crop_start(length: int, crop: int) -> int:
    """torchvision CenterCrop's start index (negative: zero padding before the picture)."""
    if crop > length:
        return -((crop - length) // 2)
    return int(round((length - crop) / 2.0))


def _geometry_of(image: Image.Image) -> ImageGeometry:
    """Loaded-picture pixels -> original pixels, from open_image's info keys (else identity)."""
    width, height = image.size
    original = image.info.get(ORIGINAL_SIZE_KEY)
    to_original = image.info.get(TO_ORIGINAL_KEY)
    if original is None or to_original is None:
        return ImageGeometry.identity(height, width)
    factor, offset_y, offset_x = to_original
    return ImageGeometry(
        tuple(original),
        (height, width),
        Fraction(factor),
        Fraction(offset_y),
        Fraction(factor),
        Fraction(offset_x),
    )


def _check_resized(height: int, width: int, mode: str, path: str | None) -> None:
    needed = _pixel_bytes(mode) * height * width
    if needed > decode_budget():
        what = f"'{path}'" if path else "The picture"
        raise ImageLoadError(
            f"{what} would be resized to {height}x{width} for this model, which needs "
            f"{format_bytes(needed)}, more than the {format_bytes(decode_budget())} budget; crop it to a less "
            f"elongated shape or raise the budget with the environment variable "
            f"{MAX_IMAGE_BYTES_ENV}."
        )


def preprocess_pil(
    image: Image.Image, preprocess: Preprocess, *, path: str | None = None, max_side: int = MAX_SIDE
) -> LoadedImage:
    """Turn a PIL picture into a :class:`LoadedImage` for a model with ``preprocess``.

    A picture from :func:`open_image` keeps its original size and downscale map; any other
    PIL image is first read like a file (EXIF, alpha, bit depth, size limit).
    """
    if not isinstance(image, Image.Image):
        raise ArgumentTypeError(f"preprocess_pil takes a PIL image, not {type(image).__name__}.")
    if not isinstance(preprocess, Preprocess):
        raise ArgumentTypeError(
            f"preprocess must be a Preprocess (e.g. Preprocess.imagenet()), not "
            f"{type(preprocess).__name__}."
        )
    if ORIGINAL_SIZE_KEY not in image.info or image.mode not in ("L", "RGB"):
        image = open_image(image, max_side=max_side)
    display_geometry = _geometry_of(image)
    display = np.asarray(image).copy()

    model_mode = "L" if preprocess.channels == 1 else "RGB"
    picture = image.convert(model_mode) if image.mode != model_mode else image.copy()

    inverted = False
    if preprocess.auto_invert:
        gray = picture if model_mode == "L" else picture.convert("L")
        if float(np.median(_border(np.asarray(gray)))) > 127.5:
            picture = ImageOps.invert(picture)
            inverted = True

    out_h, out_w = preprocess.size
    resample = _INTERPOLATIONS[preprocess.interpolation]
    width, height = picture.size
    if preprocess.mode == "resize":
        model = picture.resize((out_w, out_h), resample)
        local = ImageGeometry(
            (height, width),
            (out_h, out_w),
            Fraction(height, out_h),
            Fraction(0),
            Fraction(width, out_w),
            Fraction(0),
        )
    elif preprocess.mode == "resize_crop":
        new_h, new_w = _resized_size(height, width, preprocess.effective_resize_size)
        # A long thin picture resized by its shorter side can grow far beyond the input.
        _check_resized(new_h, new_w, model_mode, path)
        resized = (
            picture
            if (new_h, new_w) == (height, width)
            else picture.resize((new_w, new_h), resample)
        )
        top, left = _crop_start(new_h, out_h), _crop_start(new_w, out_w)
        model = resized.crop((left, top, left + out_w, top + out_h))
        sy, sx = Fraction(height, new_h), Fraction(width, new_w)
        local = ImageGeometry((height, width), (out_h, out_w), sy, top * sy, sx, left * sx)
    else:  # letterbox
        side = max(height, width)
        _check_resized(side, side, model_mode, path)
        pad_top, pad_left = (side - height) // 2, (side - width) // 2
        background = np.median(_border(np.asarray(picture)), axis=0)
        fill = tuple(int(round(float(v))) for v in background)
        square = Image.new(model_mode, (side, side), fill[0] if model_mode == "L" else fill)
        square.paste(picture, (pad_left, pad_top))
        model = square.resize((out_w, out_h), resample)
        sy, sx = Fraction(side, out_h), Fraction(side, out_w)
        local = ImageGeometry(
            (height, width), (out_h, out_w), sy, Fraction(-pad_top), sx, Fraction(-pad_left)
        )

    model_arr = np.asarray(model)
    if model_arr.ndim == 2:
        model_arr = model_arr[:, :, None]
    model_arr = np.ascontiguousarray(model_arr)
    import torch  # here, so that reading pictures alone does not load torch

    tensor = torch.from_numpy(model_arr.copy()).permute(2, 0, 1).to(torch.float32) / 255.0
    mean = torch.as_tensor(preprocess.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(preprocess.std, dtype=torch.float32).view(-1, 1, 1)
    tensor = tensor.sub_(mean).div_(std).unsqueeze(0).contiguous()

    factor = display_geometry.scale_y
    return LoadedImage(
        path=path,
        display=display,
        display_scale=float(1 / factor),
        tensor=tensor,
        model_input_image=model_arr,
        geometry=local.then(display_geometry),
        inverted=inverted,
        preprocess=preprocess,
        display_geometry=display_geometry,
    )


def load_image(
    source: ImageSource, preprocess: Preprocess, *, max_side: int = MAX_SIDE
) -> LoadedImage:
    """Read ``source`` (path, bytes or PIL image) and preprocess it for a model."""
    if isinstance(source, (str, os.PathLike)):
        path: str | None = os.fspath(source)
    elif isinstance(source, Image.Image):
        path = getattr(source, "filename", None) or None
    else:
        path = None
    return preprocess_pil(
        open_image(source, max_side=max_side), preprocess, path=path, max_side=max_side
    )
