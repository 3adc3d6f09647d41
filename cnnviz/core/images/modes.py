"""Colour modes to 8-bit ``"L"``/``"RGB"`` (alpha onto white, high bit depths scaled, strip by
strip for large pictures) and the EXIF orientation.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


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


_STRIP_BYTES = 16 << 20


def _load_exif(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # damaged EXIF: treat as absent
        return Image.Exif()
    return exif
