"""Pictures: bounded decoding, preprocessing for a model, and the map back to original pixels.

Three steps, each exact about geometry:

1. :func:`open_image` (``decode``) reads a file (or bytes, or a PIL image) into an 8-bit
   ``"RGB"`` or ``"L"`` picture: EXIF orientation applied, alpha composited onto white, 16-bit
   and float data scaled to 8 bits (``modes``). Pictures larger than ``max_side`` pixels on the
   long side are reduced by an integer factor while they are decoded (JPEG: DCT scaling through
   ``Image.draft``; PNG: row strips, ``png_stream``; other formats: decoded whole, then
   converted and reduced strip by strip), so a 400-megapixel PNG loads in bounded memory. A
   picture that must be decoded whole is first sized from its header and refused when it would
   need more than the memory budget (``limits``: :data:`MAX_DECODE_BYTES`, or the
   ``CNNVIZ_MAX_IMAGE_BYTES`` environment variable). The original size and the exact map back
   to it travel in ``Image.info``.
2. :class:`Preprocess` (``preprocess``) holds how that picture becomes the model input, the way
   torchvision does it; :func:`preprocess_pil` and :func:`load_image` (``load``) apply it
   (``resize_crop`` equals ``weights.transforms()`` on the same picture, bit for bit).
3. :class:`ImageGeometry` (``geometry``) maps model-input pixels back to original-image pixels
   per axis: a model pixel edge ``u`` lies at original edge ``u * scale + offset`` (pixel ``i``
   spans ``[i, i + 1)``). Scales and offsets are :class:`fractions.Fraction`, so box maps have
   no rounding error.

``samples`` gives the picture shown before the user opens one.
"""

from __future__ import annotations

from cnnviz.core.images.decode import IMAGE_FILE_EXTENSIONS, ImageSource, open_image
from cnnviz.core.images.geometry import ORIGINAL_SIZE_KEY, TO_ORIGINAL_KEY, ImageGeometry
from cnnviz.core.images.limits import (
    MAX_DECODE_BYTES,
    MAX_IMAGE_BYTES_ENV,
    MAX_PIXELS,
    MAX_SIDE,
    decode_budget,
)
from cnnviz.core.images.load import LoadedImage, load_image, preprocess_pil
from cnnviz.core.images.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

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
