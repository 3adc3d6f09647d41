"""Reading a file, bytes or a PIL image into an 8-bit ``"RGB"`` or ``"L"`` picture.

Only pixel-parsing PIL plugins are used; bombs are refused from their headers; large PNG and
JPEG pictures are reduced while they are decoded; the original size and the exact map back to
it travel in ``Image.info``.
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnviz.core.errors import ArgumentTypeError, CnnvizError, ImageLoadError, InvalidArgumentError
from cnnviz.core.fileio import open_regular_file
from cnnviz.core.images.geometry import ORIGINAL_SIZE_KEY, TO_ORIGINAL_KEY
from cnnviz.core.images.limits import (
    _WEBP_BYTES_PER_PIXEL,
    MAX_PIXELS,
    MAX_SIDE,
    _budget_whole_decode,
    _check_budget,
    decode_budget,
)
from cnnviz.core.images.modes import (
    _ORIENTATIONS,
    _convert_reduced,
    _ModeError,
    _natural_mode,
    _read_orientation,
)
from cnnviz.core.images.png_stream import _stream_png

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Image.Image]


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


# PIL's own decompression-bomb limit is far below MAX_PIXELS; it is lifted only while this
# module opens a file (the byte budget takes its place), under a lock so concurrent callers
# restore it correctly.
_BOMB_LOCK = threading.RLock()


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


def _decode(im: Image.Image, name: str, mode: str | None, max_side: int) -> _Decoded:
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name} has no pixels ({width}×{height}); choose another picture.")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            f"{name} is {width}×{height} = {width * height:,} pixels, more than the "
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
            f"{name} ({width}×{height}) is too large to decode with the memory available; "
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
