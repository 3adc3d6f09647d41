"""Limits on what one picture may cost: its longest side, its pixel count, and the memory
budget for decoding it whole, checked from the header before any pixel is decoded.
"""

from __future__ import annotations

import math
import os

from PIL import Image

from cnnviz.core.budget import parse_size
from cnnviz.core.errors import ImageLoadError, InvalidArgumentError
from cnnviz.core.text import nbytes

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
            f"({nbytes(MAX_DECODE_BYTES)})."
        )
    return value


def _over_budget(name: str, what: str, needed: int, advice: str) -> ImageLoadError:
    budget = decode_budget()
    return ImageLoadError(
        f"{name} {what} would need {nbytes(needed)} of memory to decode, more than the "
        f"{nbytes(budget)} budget; {advice}, or raise the budget with the environment variable "
        f"{MAX_IMAGE_BYTES_ENV} (e.g. {MAX_IMAGE_BYTES_ENV}=2G)."
    )


# libwebp's animation decoder keeps two RGBA canvases, hands PIL a third copy, and PIL unpacks
# that into its own picture: four RGBA copies in all.
_WEBP_BYTES_PER_PIXEL = 16


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
        raise _over_budget(name, f"({fmt}, {width}×{height})", needed, advice)


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
        raise _over_budget(name, f"({fmt}, {full[0]}×{full[1]})", needed, advice)
