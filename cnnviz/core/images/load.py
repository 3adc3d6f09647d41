"""A picture made ready for a model: :class:`LoadedImage`, :func:`preprocess_pil`, :func:`load_image`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from cnnviz.core.errors import ArgumentTypeError, ImageLoadError
from cnnviz.core.images.decode import ImageSource, open_image
from cnnviz.core.images.geometry import ORIGINAL_SIZE_KEY, ImageGeometry, _geometry_of
from cnnviz.core.images.limits import MAX_IMAGE_BYTES_ENV, MAX_SIDE, _pixel_bytes, decode_budget
from cnnviz.core.images.preprocess import _INTERPOLATIONS, Preprocess
from cnnviz.core.text import nbytes

if TYPE_CHECKING:
    import torch


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


def _check_resized(height: int, width: int, mode: str, path: str | None) -> None:
    needed = _pixel_bytes(mode) * height * width
    if needed > decode_budget():
        what = f"'{path}'" if path else "The picture"
        raise ImageLoadError(
            f"{what} would be resized to {height}×{width} for this model, which needs "
            f"{nbytes(needed)}, more than the {nbytes(decode_budget())} budget; crop it to a less "
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
