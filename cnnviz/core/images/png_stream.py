"""Large non-interlaced PNG files decoded in row strips and reduced while they are read."""

from __future__ import annotations

import math
import os
import struct
import zlib
from typing import Any

from PIL import Image

from cnnviz.core.errors import ImageLoadError
from cnnviz.core.images import modes
from cnnviz.core.images.modes import _load_exif, _orientation_of, _to_mode

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_BYTE_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


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
    strip_rows = max(1, (modes._STRIP_BYTES // max(rowbytes + 1, 4 * width)) // factor) * factor

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
