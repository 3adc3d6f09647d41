"""Image loading, preprocessing and geometry: every file is written here with PIL (or by hand)."""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageDraw, ImageOps

from cnnviz.core.errors import CnnvizError, ImageLoadError
from cnnviz.core.images import (
    ORIGINAL_SIZE_KEY,
    TO_ORIGINAL_KEY,
    ImageGeometry,
    Preprocess,
    decode,
    load_image,
    modes,
    open_image,
    png_stream,
    preprocess_pil,
)

# --------------------------------------------------------------------------------------------
# helpers (independent of the module under test)
# --------------------------------------------------------------------------------------------


def _pattern(h: int, w: int, seed: int = 0) -> np.ndarray:
    """RGBA uint8: colour gradients plus noise, alpha from 0 to 255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([yy * 255 // max(h - 1, 1), xx * 255 // max(w - 1, 1), (yy + xx) % 256], -1)
    rgb = np.clip(rgb + rng.integers(-20, 21, rgb.shape), 0, 255)
    alpha = (xx * 255 // max(w - 1, 1))[..., None]
    return np.concatenate([rgb, alpha], -1).astype(np.uint8)


def _onto_white(rgba: np.ndarray) -> np.ndarray:
    colour, alpha = rgba[..., :-1].astype(np.float64), rgba[..., -1:].astype(np.float64) / 255
    return np.rint(colour * alpha + 255 * (1 - alpha)).astype(np.int64)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, the definition PIL's "L" conversion follows."""
    rgb = rgb.astype(np.float64)
    return np.rint(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bytes(
    samples: np.ndarray,
    depth: int,
    colour: int,
    *,
    filters: tuple[int, ...] = (0, 1, 2, 3, 4),
    before: tuple[bytes, ...] = (),
    after: tuple[bytes, ...] = (),
    idat_piece: int = 97,
) -> bytes:
    """A PNG written by hand, each row with a chosen filter type, IDAT split in small chunks."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    h, w = samples.shape[:2]
    samples = samples.reshape(h, w * channels)
    if depth == 16:
        rows = [samples[y].astype(">u2").tobytes() for y in range(h)]
    elif depth == 8:
        rows = [samples[y].astype(np.uint8).tobytes() for y in range(h)]
    else:
        bits = np.unpackbits(samples.astype(np.uint8)[..., None], axis=-1)[..., 8 - depth :]
        rows = [np.packbits(bits[y].reshape(-1)).tobytes() for y in range(h)]
    bpp = max(1, depth * channels // 8)
    prev = bytes(len(rows[0]))
    filtered = []
    for y, row in enumerate(rows):
        kind = filters[y % len(filters)]
        out = bytearray([kind])
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out.append((x - pred) & 0xFF)
        filtered.append(bytes(out))
        prev = row
    data = zlib.compress(b"".join(filtered), 9)
    idat = b"".join(
        _chunk(b"IDAT", data[i : i + idat_piece]) for i in range(0, len(data), idat_piece)
    )
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + b"".join(before)
        + idat
        + b"".join(after)
        + _chunk(b"IEND", b"")
    )


def _exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _save(img: Image.Image, path: Path, fmt: str, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


# --------------------------------------------------------------------------------------------
# formats x modes
# --------------------------------------------------------------------------------------------


def _make(mode: str, h: int = 23, w: int = 37) -> tuple[Image.Image, dict]:
    rgba = _pattern(h, w)
    base = Image.fromarray(rgba, "RGBA")
    rgb = base.convert("RGB")
    gray = rgb.convert("L")
    yy, xx = np.mgrid[0:h, 0:w]
    kw: dict = {}
    if mode == "1":
        return gray.point(lambda v: 255 if v > 100 else 0).convert("1"), kw
    if mode == "L":
        return gray, kw
    if mode == "LA":
        la = gray.copy()
        la.putalpha(base.getchannel("A"))
        return la, kw
    if mode == "P":
        return rgb.quantize(40), kw
    if mode == "P_trns":
        kw["transparency"] = 3
        return rgb.quantize(40), kw
    if mode == "PA":
        pa = rgb.quantize(40).convert("PA")
        pa.putalpha(base.getchannel("A"))
        return pa, kw
    if mode == "RGB":
        return rgb, kw
    if mode == "RGBA":
        return base, kw
    if mode == "CMYK":
        return rgb.convert("CMYK"), kw
    if mode == "I;16":
        return Image.fromarray((yy * 1500 + xx * 800).astype(np.uint16)), kw
    if mode == "I":
        return Image.fromarray((yy * 1500 + xx * 800).astype(np.int32), "I"), kw
    if mode == "F":
        return Image.fromarray(((yy + xx) / (h + w)).astype(np.float32), "F"), kw
    raise AssertionError(mode)


def _expected(raw: Image.Image) -> np.ndarray:
    """What open_image must give, derived from PIL's own decode of the file."""
    mode = raw.mode
    arr = np.asarray(raw)
    if mode == "1":
        return np.where(arr, 255, 0)
    if mode == "L" and "transparency" not in raw.info:
        return arr.astype(np.int64)
    if mode in ("LA", "La"):
        gray_rgba = np.stack([arr[..., 0]] * 3 + [arr[..., 1]], -1)
        return _onto_white(gray_rgba)[..., 0]
    if mode in ("P", "PA", "RGBA", "L") or "transparency" in raw.info:
        rgba = np.asarray(raw.convert("RGBA"))
        return _onto_white(rgba)
    if mode == "RGB":
        return arr.astype(np.int64)
    if mode == "CMYK":
        return np.asarray(raw.convert("RGB")).astype(np.int64)
    if mode.startswith("I;16") or mode == "I":
        return (arr.astype(np.int64) + 128) // 257
    if mode == "F":
        return np.clip(np.rint(arr.astype(np.float64) * 255), 0, 255)
    raise AssertionError(mode)


FORMAT_CASES = [
    ("PNG", ".png", ["1", "L", "LA", "P", "P_trns", "RGB", "RGBA", "I;16"]),
    ("JPEG", ".jpg", ["L", "RGB", "CMYK"]),
    ("BMP", ".bmp", ["1", "L", "P", "RGB", "RGBA"]),
    ("GIF", ".gif", ["L", "P", "P_trns"]),
    ("TIFF", ".tif", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
    ("WEBP", ".webp", ["RGB", "RGBA"]),
]
GRAY_SOURCES = {"1", "L", "LA", "I;16", "I", "F"}


@pytest.mark.parametrize("fmt,ext,mode", [(f, e, m) for f, e, modes in FORMAT_CASES for m in modes])
def test_formats_and_modes(tmp_path, fmt, ext, mode):
    img, kw = _make(mode)
    if fmt == "WEBP":
        kw["lossless"] = True
    path = _save(img, tmp_path / f"pic{ext}", fmt, **kw)
    raw = Image.open(path)
    raw.load()
    want = _expected(raw)

    out = open_image(path)
    gray = mode in GRAY_SOURCES and fmt != "GIF"  # a GIF is always a palette picture
    assert out.mode == ("L" if gray else "RGB")
    got = np.asarray(out).astype(np.int64)
    if gray and want.ndim == 3:
        want = _luma(want)
    if not gray and want.ndim == 2:
        want = np.stack([want] * 3, -1)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1
    assert out.info[ORIGINAL_SIZE_KEY] == (img.height, img.width)
    assert out.info[TO_ORIGINAL_KEY] == (1, 0, 0)

    forced = open_image(path, "RGB" if gray else "L")
    assert forced.mode == ("RGB" if gray else "L")
    # Bytes and an already-open PIL image give the same picture as the path.
    assert np.array_equal(np.asarray(open_image(path.read_bytes())), np.asarray(out))
    assert np.array_equal(np.asarray(open_image(Image.open(path))), np.asarray(out))


def test_sixteen_bit_png_uses_full_range(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 128, 65279]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png", "PNG")
    assert Image.open(path).mode == "I;16"
    got = np.asarray(open_image(path))
    assert got.tolist() == [[0, 1, 128], [255, 0, 254]]


def test_float_and_wide_int_tiffs_are_scaled(tmp_path):
    wide = np.array([[-1000, 0], [500, 3000]], dtype=np.int32)
    got = np.asarray(open_image(_save(Image.fromarray(wide, "I"), tmp_path / "i.tif", "TIFF")))
    want = np.rint((wide - wide.min()) * 255 / (wide.max() - wide.min()))
    assert np.array_equal(got, want)
    floats = np.array([[0.0, 500.0], [np.nan, 1000.0]], dtype=np.float32)
    got = np.asarray(open_image(_save(Image.fromarray(floats, "F"), tmp_path / "f.tif", "TIFF")))
    assert got.tolist() == [[0, 128], [0, 255]]


def test_gif_gives_first_frame(tmp_path):
    red = Image.new("RGB", (12, 9), (220, 10, 10)).quantize(4)
    blue = Image.new("RGB", (12, 9), (10, 10, 220)).quantize(4)
    path = tmp_path / "anim.gif"
    red.save(path, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    got = np.asarray(open_image(path))
    assert got.shape == (9, 12, 3)
    assert (got == np.asarray(red.convert("RGB"))).all()


def test_animated_webp_and_multipage_tiff_give_first_frame(tmp_path):
    first = Image.new("RGB", (8, 6), (0, 200, 0))
    second = Image.new("RGB", (8, 6), (200, 0, 200))
    for fmt, ext, kw in (("WEBP", ".webp", {"lossless": True}), ("TIFF", ".tif", {})):
        path = tmp_path / f"multi{ext}"
        first.save(path, fmt, save_all=True, append_images=[second], **kw)
        assert np.array_equal(np.asarray(open_image(path)), np.asarray(first))


# --------------------------------------------------------------------------------------------
# EXIF orientation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil_exif_transpose(tmp_path, orientation):
    picture = Image.fromarray(_pattern(20, 31, seed=orientation)[..., :3])
    path = _save(picture, tmp_path / "o.jpg", "JPEG", exif=_exif_bytes(orientation), quality=95)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    out = open_image(path)
    assert np.array_equal(np.asarray(out), want)
    swapped = orientation >= 5
    assert out.info[ORIGINAL_SIZE_KEY] == ((31, 20) if swapped else (20, 31))
    # The orientation is applied once: reading the result again changes nothing.
    assert np.array_equal(np.asarray(open_image(out)), want)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_png(tmp_path, orientation):
    picture = Image.fromarray(_pattern(11, 17)[..., :3])
    path = _save(picture, tmp_path / "o.png", "PNG", exif=_exif_bytes(orientation))
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert want.shape == (17, 11, 3)
    assert np.array_equal(np.asarray(open_image(path)), want)


def _check_block_means(display: np.ndarray, geometry: ImageGeometry, original: np.ndarray) -> None:
    """Each reduced pixel is the mean of the original pixels its box maps to."""
    for i in range(display.shape[0]):
        for j in range(display.shape[1]):
            box = geometry.box_to_original((i, j, i, j))
            assert box is not None
            top, left, bottom, right = box
            mean = original[top : bottom + 1, left : right + 1].astype(np.float64).mean()
            assert abs(float(display[i, j]) - mean) <= 1.0, (i, j, box)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("streamed", [True, False])
def test_downscaled_geometry_is_exact_with_orientation(tmp_path, orientation, streamed):
    rng = np.random.default_rng(orientation)
    noise = rng.integers(0, 256, (61, 103), dtype=np.uint8)
    exif = _chunk(b"eXIf", _exif_bytes(orientation))
    if streamed:  # hand-written PNG, the eXIf chunk after the pixel data
        data = _png_bytes(noise, 8, 0, after=(exif,))
    else:  # TIFF has no strip decoder: decoded whole, then reduced
        buf = io.BytesIO()
        Image.fromarray(noise).save(buf, "TIFF", exif=_exif_bytes(orientation))
        data = buf.getvalue()
    original = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    li = load_image(data, Preprocess(1, (8, 8), "resize", None, (0.0,), (1.0,)), max_side=16)
    factor = math.ceil(103 / 16)
    assert li.original_size == original.shape
    assert li.display_scale == pytest.approx(1 / factor)
    assert li.display.shape == tuple(math.ceil(s / factor) for s in original.shape)
    _check_block_means(li.display, li.display_geometry, original)


def test_box_mean_check_catches_a_wrong_offset():
    """The block-mean check above is strong enough to see a one-pixel shift."""
    rng = np.random.default_rng(5)
    original = rng.integers(0, 256, (60, 60)).astype(np.uint8)
    display = np.asarray(Image.fromarray(original).reduce(6))
    good = ImageGeometry((60, 60), (10, 10), 6, 0, 6, 0)
    _check_block_means(display, good, original)
    with pytest.raises(AssertionError):
        _check_block_means(display, ImageGeometry((60, 60), (10, 10), 6, 1, 6, 0), original)


# --------------------------------------------------------------------------------------------
# large pictures
# --------------------------------------------------------------------------------------------

PNG_KINDS = [
    (0, 1),
    (0, 2),
    (0, 4),
    (0, 8),
    (0, 16),
    (2, 8),
    (2, 16),  # 6 bytes a pixel: decoded whole, then reduced
    (3, 1),
    (3, 4),
    (3, 8),
    (4, 8),
    (4, 16),
    (6, 8),
    (6, 16),  # 8 bytes a pixel: decoded whole, then reduced
]


@pytest.mark.parametrize("colour,depth", PNG_KINDS)
def test_png_strip_decoding_equals_whole_decoding(tmp_path, monkeypatch, colour, depth):
    rng = np.random.default_rng(depth * 10 + colour)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    h, w = 45, 33
    top = (1 << depth) - 1
    samples = rng.integers(0, top + 1, (h, w, channels))
    before: tuple[bytes, ...] = ()
    if colour == 3:
        entries = 1 << depth
        palette = rng.integers(0, 256, (entries, 3), dtype=np.uint8)
        before = (_chunk(b"PLTE", palette.tobytes()), _chunk(b"tRNS", bytes([0, 128])))
    data = _png_bytes(samples, depth, colour, before=before)
    path = tmp_path / "kind.png"
    path.write_bytes(data)
    # The hand-written file is a valid PNG: PIL reads back the samples.
    if colour != 3 and depth >= 8 and not (colour in (4, 2, 6) and depth == 16):
        assert np.array_equal(np.asarray(Image.open(path)).reshape(h, w, -1), samples)

    whole = open_image(path)
    monkeypatch.setattr(modes, "_STRIP_BYTES", 1)  # one strip per reduced row
    monkeypatch.setattr(png_stream, "_INFLATE_CHUNK", 53)
    reduced = open_image(path, max_side=8)
    factor = math.ceil(45 / 8)
    assert reduced.size == (math.ceil(w / factor), math.ceil(h / factor))
    assert reduced.info[TO_ORIGINAL_KEY] == (factor, 0, 0)
    assert np.array_equal(np.asarray(reduced), np.asarray(whole.reduce(factor)))


def test_png_strip_decoding_is_used_and_checks_truncation(tmp_path, monkeypatch):
    noise = np.random.default_rng(3).integers(0, 256, (40, 30), dtype=np.uint8)
    data = _png_bytes(noise, 8, 0)
    calls = []
    real = decode._stream_png
    monkeypatch.setattr(decode, "_stream_png", lambda *a: calls.append(1) or real(*a))
    path = tmp_path / "cut.png"
    path.write_bytes(data)
    assert open_image(path, max_side=10).size == (8, 10)
    assert calls
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.png"):
        open_image(path, max_side=10)


def test_jpeg_large_uses_draft_and_keeps_geometry(tmp_path):
    picture = Image.new("L", (1200, 700), 255)
    draw = ImageDraw.Draw(picture)
    squares = [(100, 160, 259, 319), (480, 700, 639, 859)]  # (top, left, bottom, right)
    for top, left, bottom, right in squares:
        draw.rectangle((left, top, right, bottom), fill=0)
    path = _save(picture, tmp_path / "big.jpg", "JPEG", quality=90)

    probe = Image.open(path)
    assert decode._jpeg_draft(probe, 12) == 8
    assert probe.size == (150, 88)  # the decoder scales, nothing larger is decoded

    li = load_image(path, Preprocess(1, (16, 16), "resize", None, (0.0,), (1.0,)), max_side=100)
    assert li.original_size == (700, 1200)
    assert li.display.shape == (math.ceil(700 / 16), math.ceil(1200 / 16))
    assert li.display_scale == pytest.approx(1 / 16)
    for top, left, bottom, right in squares:
        centre = li.display_geometry.pixel_from_original((top + bottom) / 2, (left + right) / 2)
        assert centre is not None and li.display[centre] < 60
        inner = li.display_geometry.pixel_from_original(top + 24, left + 24)
        assert li.display_geometry.box_to_original(inner + inner)[0] >= top


_BIG_SCRIPT = """
import json, resource, sys, time
import numpy as np
from cnnviz.core.images import ORIGINAL_SIZE_KEY, TO_ORIGINAL_KEY, ImageGeometry, open_image
def peak_mb():
    # VmHWM belongs to this process image; ru_maxrss would carry over a big parent's peak across exec.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)
before = peak_mb()
start = time.perf_counter()
picture = open_image(sys.argv[1])
seconds = time.perf_counter() - start
display = np.asarray(picture)
factor, oy, ox = picture.info[TO_ORIGINAL_KEY]
original = picture.info[ORIGINAL_SIZE_KEY]
geometry = ImageGeometry(original, display.shape, factor, oy, factor, ox)
ys, xs = np.nonzero(display < 128)
box = geometry.box_to_original((int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())))
print(json.dumps({
    "before_mb": before, "after_mb": peak_mb(), "seconds": seconds, "torch": "torch" in sys.modules,
    "display": list(display.shape), "original": list(original), "box": box,
}))
"""


@pytest.mark.slow
def test_huge_png_loads_downscaled_in_bounded_memory(tmp_path):
    side = 20000
    picture = Image.new("L", (side, side), 255)
    ImageDraw.Draw(picture).rectangle((5000, 10000, 5999, 10999), fill=0)  # x0, y0, x1, y1
    path = tmp_path / "huge.png"
    picture.save(path, "PNG", compress_level=1)
    del picture

    done = subprocess.run(
        [sys.executable, "-c", _BIG_SCRIPT, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert not report["torch"]  # reading pictures does not import torch
    assert report["original"] == [side, side]
    assert report["display"] == [4000, 4000]
    assert report["box"] == [10000, 5000, 10999, 5999]
    # Whole decoding would need 400 MB for the pixels alone; strips stay far below.
    assert report["after_mb"] - report["before_mb"] < 300, report
    assert report["after_mb"] < 1536, report


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(b""))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + _chunk(b"IEND", b"")


def test_absurd_sizes_are_refused_clearly(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(40000, 40000))
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*1,600,000,000 pixels"):
        open_image(path)
    assert Image.MAX_IMAGE_PIXELS is not None  # PIL's own guard is restored


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------


def _truncated(fmt: str, ext: str):
    def build(tmp_path: Path) -> Path:
        noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        path = tmp_path / f"truncated{ext}"
        buf = io.BytesIO()
        Image.fromarray(noise).save(buf, fmt)
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        return path

    return build


def _write(name: str, data: bytes):
    def build(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return build


def _folder(tmp_path: Path) -> Path:
    path = tmp_path / "pictures.png"
    path.mkdir()
    return path


def _pcx(tmp_path: Path) -> Path:
    return _save(Image.new("RGB", (4, 4)), tmp_path / "old.pcx", "PCX")


BAD_INPUTS = {
    "missing": (lambda tmp_path: tmp_path / "nowhere.png", "does not exist"),
    "directory": (_folder, "folder"),
    "empty": (_write("empty.png", b""), "empty"),
    "text": (_write("notes.png", b"these are not pixels\n" * 10), "not a picture"),
    "bad header": (_write("header.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "not a picture"),
    "truncated png": (_truncated("PNG", ".png"), "truncated"),
    "truncated jpeg": (_truncated("JPEG", ".jpg"), "truncated"),
    "unsupported": (_pcx, "PCX image"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_one_line_errors_naming_the_file(tmp_path, case):
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    for call in (
        lambda: open_image(path),
        lambda: load_image(str(path), Preprocess.imagenet()),
    ):
        with pytest.raises(ImageLoadError) as info:
            call()
        message = str(info.value)
        assert path.name in message
        assert words in message
        assert "\n" not in message and message.endswith(".")


def test_bad_bytes_and_types():
    with pytest.raises(ImageLoadError, match="empty"):
        open_image(b"")
    with pytest.raises(ImageLoadError, match="not a picture"):
        open_image(b"GIF89a but not really")
    with pytest.raises(TypeError):
        open_image(12345)  # type: ignore[arg-type]


def test_pil_source_is_not_changed():
    source = Image.fromarray(_pattern(10, 12), "RGBA")
    before = np.asarray(source).copy()
    out = open_image(source)
    assert out is not source and out.mode == "RGB"
    assert source.mode == "RGBA" and ORIGINAL_SIZE_KEY not in source.info
    assert np.array_equal(np.asarray(source), before)


# --------------------------------------------------------------------------------------------
# Preprocess
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights,crop,resize",
    [
        (torchvision.models.ResNet18_Weights.DEFAULT, 224, 256),
        (torchvision.models.Inception_V3_Weights.DEFAULT, 299, 342),
    ],
)
def test_from_torchvision_weights(weights, crop, resize):
    pre = Preprocess.from_torchvision_weights(weights)
    ref = weights.transforms()
    assert pre.channels == 3 and pre.mode == "resize_crop"
    assert pre.size == (crop, crop) and pre.resize_size == resize
    assert list(pre.mean) == list(ref.mean) and list(pre.std) == list(ref.std)
    assert pre.interpolation == ref.interpolation.value
    assert (
        Preprocess.from_torchvision_weights(str(weights).replace("IMAGENET1K_V1", "DEFAULT")) == pre
    )


@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (256, 256), (100, 150), (333, 257)])
@pytest.mark.parametrize(
    "weights",
    [torchvision.models.ResNet18_Weights.DEFAULT, torchvision.models.Inception_V3_Weights.DEFAULT],
)
def test_resize_crop_equals_torchvision_transforms(shape, weights):
    picture = Image.fromarray(_pattern(*shape, seed=sum(shape))[..., :3])
    li = preprocess_pil(picture, Preprocess.from_torchvision_weights(weights))
    want = weights.transforms()(picture)
    assert li.tensor.shape == (1, *want.shape)
    assert torch.equal(li.tensor[0], want)


@pytest.mark.parametrize(
    "pre",
    [
        Preprocess(3, (20, 30), "resize", None, (0.1, 0.2, 0.3), (0.9, 0.5, 0.25)),
        Preprocess(1, (28, 28), "letterbox", None, (0.1307,), (0.3081,)),
        Preprocess(3, (16, 16), "resize_crop", 18, (0.5,), (0.2,), "bicubic"),
    ],
)
def test_normalisation_equals_formula(pre):
    picture = Image.fromarray(_pattern(31, 45)[..., :3])
    li = preprocess_pil(picture, pre)
    x = li.model_input_image.astype(np.float64) / 255
    assert li.model_input_image.dtype == np.uint8
    assert li.model_input_image.shape == (*pre.size, pre.channels)
    mean = np.broadcast_to(np.array(pre.mean), (pre.channels,))
    std = np.broadcast_to(np.array(pre.std), (pre.channels,))
    want = ((x - mean) / std).transpose(2, 0, 1)[None]
    assert li.tensor.dtype == torch.float32 and li.tensor.shape == want.shape
    assert np.allclose(li.tensor.numpy(), want, atol=1e-5)


def test_gray_model_uses_luma_and_colour_model_replicates_gray():
    rgb = _pattern(12, 14)[..., :3]
    li = preprocess_pil(
        Image.fromarray(rgb), Preprocess(1, (12, 14), "resize", None, (0.0,), (1.0,))
    )
    assert np.abs(li.model_input_image[..., 0].astype(int) - _luma(rgb)).max() <= 1
    assert li.display.shape == (12, 14, 3)

    gray = rgb[..., 0]
    li = preprocess_pil(
        Image.fromarray(gray), Preprocess(3, (12, 14), "resize", None, (0.0,), (1.0,))
    )
    assert li.display.shape == (12, 14)
    for c in range(3):
        assert np.array_equal(li.model_input_image[..., c], gray)


def _digit(ink: int, paper: int, size: tuple[int, int] = (40, 24)) -> Image.Image:
    picture = Image.new("L", (size[1], size[0]), paper)
    draw = ImageDraw.Draw(picture)
    draw.line((4, 6, size[1] - 5, 6), fill=ink, width=4)
    draw.line((size[1] - 5, 6, 8, size[0] - 5), fill=ink, width=4)
    return picture


def test_auto_invert_dark_ink_on_white():
    pre = Preprocess.digits()
    dark_on_white = preprocess_pil(_digit(0, 255), pre)
    light_on_dark = preprocess_pil(_digit(255, 0), pre)
    assert dark_on_white.inverted and not light_on_dark.inverted
    for li in (dark_on_white, light_on_dark):
        m = li.model_input_image[..., 0]
        # Letterbox padding (left and right of a tall picture) takes the dark background.
        assert m[:, 0].max() == 0 and m[:, -1].max() == 0
        assert m.max() > 200
    assert (
        np.abs(
            dark_on_white.model_input_image.astype(int)
            - light_on_dark.model_input_image.astype(int)
        ).max()
        <= 1
    )
    # The display shows the picture as it is, not inverted.
    assert dark_on_white.display[0, 0] == 255

    colour = preprocess_pil(
        _digit(0, 255).convert("RGB"),
        Preprocess(3, (8, 8), "resize", None, (0.0,), (1.0,), auto_invert=True),
    )
    assert colour.inverted and colour.model_input_image[0, 0].tolist() == [0, 0, 0]
    plain = preprocess_pil(_digit(0, 255), Preprocess(1, (8, 8), "resize", None, (0.0,), (1.0,)))
    assert not plain.inverted


def test_letterbox_pads_with_border_colour():
    picture = np.full((10, 30, 3), (200, 40, 90), dtype=np.uint8)
    picture[3:7, 10:20] = 0
    pre = Preprocess(3, (30, 30), "letterbox", None, (0.0,), (1.0,), "nearest")
    m = preprocess_pil(Image.fromarray(picture), pre).model_input_image
    assert m[:10].reshape(-1, 3).tolist() == [[200, 40, 90]] * 300
    assert m[20:].reshape(-1, 3).tolist() == [[200, 40, 90]] * 300
    assert np.array_equal(m[10:20], picture)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"channels": 2}, "channels"),
        ({"size": (0, 5)}, "size"),
        ({"size": (1, 2, 3)}, "size"),
        ({"mode": "zoom"}, "mode"),
        ({"mean": (0.1, 0.2)}, "mean"),
        ({"std": (0.0,)}, "std"),
        ({"std": ("x",)}, "std"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"auto_invert": "yes"}, "auto_invert"),
        ({"resize_size": -3}, "resize_size"),
    ],
)
def test_preprocess_validation(kwargs, words):
    base = {
        "channels": 3,
        "size": (8, 8),
        "mode": "resize",
        "resize_size": None,
        "mean": (0.5,),
        "std": (0.5,),
    }
    with pytest.raises(CnnvizError, match=words):
        Preprocess(**{**base, **kwargs})


def test_preprocess_dict_round_trip():
    for pre in (
        Preprocess.imagenet(),
        Preprocess.digits(),
        Preprocess(1, (5, 7), "resize", None, (0.25,), (2.0,), "nearest", True),
    ):
        data = json.loads(json.dumps(pre.to_dict()))
        assert Preprocess.from_dict(data) == pre
    data = Preprocess.imagenet().to_dict()
    with pytest.raises(CnnvizError, match="unknown"):
        Preprocess.from_dict({**data, "colour": "red"})
    del data["mean"]
    with pytest.raises(CnnvizError, match="mean"):
        Preprocess.from_dict(data)
    with pytest.raises(CnnvizError, match="dict"):
        Preprocess.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(CnnvizError, match="weights"):
        Preprocess.from_torchvision_weights("NoSuch_Weights.DEFAULT")


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------

GEOMETRY_CASES = [
    ("resize", None, (20, 30)),
    ("resize", None, (64, 50)),
    ("resize_crop", 40, (32, 32)),
    ("resize_crop", 33, (24, 40)),
    ("resize_crop", 20, (32, 32)),  # crop larger than the picture: zero padding
    ("letterbox", None, (28, 28)),
    ("letterbox", None, (30, 21)),
]


def _sample_candidates(centre: Fraction) -> set[int]:
    """Pixels a nearest-neighbour resampler may pick for an exact centre (float tolerance)."""
    eps = Fraction(1, 1000)
    return {math.floor(centre - eps), math.floor(centre + eps)}


@pytest.mark.parametrize("shape", [(45, 71), (71, 45)])
@pytest.mark.parametrize("mode,resize_size,size", GEOMETRY_CASES)
def test_geometry_is_exact_against_nearest_resampling(shape, mode, resize_size, size):
    """Every model pixel shows the original pixel its centre maps to (noise: no coincidences)."""
    rng = np.random.default_rng(7)
    original = rng.integers(0, 256, shape, dtype=np.uint8)
    pre = Preprocess(1, size, mode, resize_size, (0.0,), (1.0,), "nearest")
    li = preprocess_pil(Image.fromarray(original), pre)
    m, g = li.model_input_image[..., 0], li.geometry
    assert g.original_size == shape and g.input_size == size
    border = np.concatenate([original[0], original[-1], original[1:-1, 0], original[1:-1, -1]])
    pad = int(round(float(np.median(border)))) if mode == "letterbox" else 0
    outside = 0
    for i in range(size[0]):
        cy = _sample_candidates((i + Fraction(1, 2)) * g.scale_y + g.offset_y)
        for j in range(size[1]):
            cx = _sample_candidates((j + Fraction(1, 2)) * g.scale_x + g.offset_x)
            seen = {
                int(original[y, x])
                for y in cy
                for x in cx
                if 0 <= y < shape[0] and 0 <= x < shape[1]
            }
            if not seen:
                assert m[i, j] == pad
                outside += 1
            else:
                assert int(m[i, j]) in seen, (i, j)
    if mode == "resize":
        assert outside == 0


@pytest.mark.parametrize("mode,resize_size,size", GEOMETRY_CASES)
def test_geometry_marker_round_trip_bilinear(mode, resize_size, size):
    """A bright marker, smoothed by bilinear resampling, maps back onto itself."""
    shape, (top, left, bottom, right) = (90, 140), (40, 60, 51, 75)
    original = np.zeros(shape, dtype=np.uint8)
    original[top : bottom + 1, left : right + 1] = 255
    pre = Preprocess(1, size, mode, resize_size, (0.0,), (1.0,))
    li = preprocess_pil(Image.fromarray(original), pre)
    m = li.model_input_image[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]]
    cy, cx = (m * ys).sum() / m.sum(), (m * xs).sum() / m.sum()
    oy, ox = li.geometry.point_to_original(cy, cx)
    g = li.geometry
    assert abs(oy - (top + bottom) / 2) <= float(g.scale_y) / 2 + 0.5
    assert abs(ox - (left + right) / 2) <= float(g.scale_x) / 2 + 0.5
    peak = np.unravel_index(np.argmax(m), m.shape)
    box = g.box_to_original((*peak, *peak))
    assert box is not None
    assert box[0] <= bottom and box[2] >= top and box[1] <= right and box[3] >= left


def test_geometry_through_downscaling_and_preprocessing():
    """Model pixel -> display pixel -> original: the model sees the display's nearest pixel."""
    rng = np.random.default_rng(11)
    original = rng.integers(0, 256, (77, 130), dtype=np.uint8)
    pre = Preprocess(1, (24, 24), "resize_crop", 30, (0.0,), (1.0,), "nearest")
    li = load_image(Image.fromarray(original), pre, max_side=40)
    factor = math.ceil(130 / 40)
    assert li.display.shape == (math.ceil(77 / factor), math.ceil(130 / factor))
    assert li.geometry.scale_y == li.display_geometry.scale_y * Fraction(li.display.shape[0], 30)
    _check_block_means(li.display, li.display_geometry, original)
    dg = li.display_geometry
    for i in range(24):
        for j in range(24):
            y0, x0, y1, x1 = li.geometry.box_edges_to_original((i, j, i, j))
            dy0, dx0, dy1, dx1 = dg.box_edges_from_original((y0, x0, y1, x1))
            cy = _sample_candidates(Fraction((dy0 + dy1) / 2))
            cx = _sample_candidates(Fraction((dx0 + dx1) / 2))
            seen = {int(li.display[y, x]) for y in cy for x in cx}
            assert int(li.model_input_image[i, j, 0]) in seen


def test_geometry_box_and_point_maps():
    g = ImageGeometry((10, 20), (8, 8), Fraction(20, 8), Fraction(-5), Fraction(20, 8), Fraction(0))
    # Rows 0 and 1 of the input map to original edges -5 .. 0: all padding.
    assert g.box_to_original((0, 0, 1, 7)) is None
    assert g.box_edges_to_original((0, 0, 1, 7)) == (-5.0, 0.0, 0.0, 20.0)
    # Row 2 spans edges 0 .. 2.5: original rows 0, 1, 2 overlap it.
    assert g.box_to_original((2, 0, 2, 0)) == (0, 0, 2, 2)
    # A box reaching past the input is clipped to the picture.
    assert g.box_to_original((-3, -3, 100, 100)) == (0, 0, 9, 19)
    assert g.box_edges_from_original(g.box_edges_to_original((2, 3, 4, 5))) == (2.0, 3.0, 5.0, 6.0)
    for y, x in [(0, 0), (3.25, 7), (7, 7)]:
        assert g.point_from_original(*g.point_to_original(y, x)) == pytest.approx((y, x))
    assert g.point_to_original(2, 0) == (0.75, 0.75)
    assert g.pixel_from_original(0, 0) == (2, 0)
    assert g.pixel_from_original(-1, 0) == (1, 0)  # on the padding, off the picture
    assert g.pixel_from_original(-30, 0) is None
    identity = ImageGeometry.identity(4, 6)
    assert identity.box_to_original((1, 2, 3, 5)) == (1, 2, 3, 5)
