"""Bad pictures: files that are not files, decompression bombs of every format, rare colour
modes, damaged bytes and wrong arguments. Every file is written here, most bombs by hand."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cnnviz.core import images as images_mod
from cnnviz.core.errors import ArgumentTypeError, CnnvizError, ImageLoadError, InvalidArgumentError
from cnnviz.core.images import MAX_IMAGE_BYTES_ENV, Preprocess, load_image, open_image
from cnnviz.core.text import nbytes

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a thread; fail (instead of hanging the suite) when it blocks."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call blocked for more than {seconds} s"
    return outcome[0]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int, *, interlace: int = 0) -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, interlace))
    idat = _chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + _chunk(b"IEND", b"")


def _tiff(width: int, height: int, samples: int, data: bytes, *, bits: int = 8) -> bytes:
    """A little-endian, deflate-compressed, single-strip TIFF written by hand."""
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes
    bits_value = struct.pack("<" + "H" * samples, *([bits] * samples))

    def add(tag: int, kind: int, count: int, value: bytes) -> None:
        entries.append((tag, kind, count, value))

    add(256, 4, 1, struct.pack("<I", width))
    add(257, 4, 1, struct.pack("<I", height))
    add(258, 3, samples, bits_value)
    add(259, 3, 1, struct.pack("<H", 8))  # deflate
    add(262, 3, 1, struct.pack("<H", 2 if samples >= 3 else 1))
    add(273, 4, 1, b"")  # strip offset, filled below
    add(277, 3, 1, struct.pack("<H", samples))
    add(278, 4, 1, struct.pack("<I", height))
    add(279, 4, 1, struct.pack("<I", len(data)))
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    extra = b""
    records = []
    for tag, kind, count, value in entries:
        if len(value) > 4:
            records.append((tag, kind, count, struct.pack("<I", extra_at + len(extra))))
            extra += value
        else:
            records.append((tag, kind, count, value))
    data_at = extra_at + len(extra)
    body = struct.pack("<H", len(records))
    for tag, kind, count, value in records:
        if tag == 273:
            value = struct.pack("<I", data_at)
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
    body += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + body + extra + data


def _deflated_zeros(nbytes: int) -> bytes:
    packer = zlib.compressobj(9)
    block = bytes(1 << 24)
    parts = []
    while nbytes:
        piece = min(nbytes, len(block))
        parts.append(packer.compress(block[:piece]))
        nbytes -= piece
    parts.append(packer.flush())
    return b"".join(parts)


def _saved(image: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _jpeg_with_size(width: int, height: int, *, progressive: bool) -> bytes:
    data = bytearray(
        _saved(Image.new("RGB", (16, 16), (90, 140, 200)), "JPEG", progressive=progressive)
    )
    marker = b"\xff\xc2" if progressive else b"\xff\xc0"
    at = data.index(marker)
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_with_size(width: int, height: int) -> bytes:
    data = bytearray(_saved(Image.new("P", (8, 8)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    at = data.index(b",")  # image descriptor
    data[at + 5 : at + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def _bmp_with_size(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + info + b"\0" * 64


def _webp_lossless_with_size(width: int, height: int) -> bytes:
    data = bytearray(_saved(Image.new("RGB", (8, 8), (1, 2, 3)), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    bits = int.from_bytes(data[21:25], "little")
    bits = (bits & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
    data[21:25] = bits.to_bytes(4, "little")
    return bytes(data)


def _tga_with_size(width: int, height: int) -> bytes:
    return struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, width, height, 24, 0) + b"\0" * 64


def _ico_with_png(width: int, height: int) -> bytes:
    png = _png_header(width, height)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


# --------------------------------------------------------------------------------------------
# files that are not pictures at all
# --------------------------------------------------------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "sock.png"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    _SOCKETS.append(server)
    return path


def _loop(tmp_path: Path) -> Path:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.symlink_to(second)
    second.symlink_to(first)
    return first


_SOCKETS: list[socket.socket] = []

NOT_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "fifo": (_fifo, "is a FIFO (named pipe), not a regular file; choose a picture file."),
    "socket": (_socket, "is a socket, not a regular file"),
    "/dev/zero": (lambda tmp_path: Path("/dev/zero"), "is a character device"),
    "/dev/urandom": (lambda tmp_path: Path("/dev/urandom"), "is a character device"),
    "symlink loop": (_loop, "symlink loop"),
}


@pytest.mark.parametrize("case", list(NOT_FILES))
def test_non_regular_files_are_refused_at_once(tmp_path, case):
    build, words = NOT_FILES[case]
    path = build(tmp_path)
    if not os.path.exists(path) and case.startswith("/dev"):
        pytest.skip(f"{path} is not available here")
    try:
        for call in (
            lambda: open_image(path),
            lambda: open_image(str(path)),
            lambda: load_image(path, Preprocess.imagenet()),
        ):
            error = _within(10, call)
            assert isinstance(error, ImageLoadError), error
            message = str(error)
            assert str(path) in message and words in message
            assert "does not exist" not in message and "\n" not in message
    finally:
        for server in _SOCKETS:
            server.close()
        _SOCKETS.clear()


# --------------------------------------------------------------------------------------------
# decompression bombs, each loaded in a child process with an address-space limit
# --------------------------------------------------------------------------------------------

_LIMIT_SCRIPT = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from cnnviz.core.errors import ImageLoadError
from cnnviz.core.images import open_image
def peak_mb():
    # VmHWM belongs to this process image; ru_maxrss would carry over the parent's peak.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
start = time.perf_counter()
try:
    picture = open_image(sys.argv[1])
    outcome = {"loaded": list(picture.size)}
except ImageLoadError as exc:
    outcome = {"error": str(exc)}
outcome.update(seconds=time.perf_counter() - start, peak_mb=peak_mb())
print(json.dumps(outcome))
"""

PEAKS: dict[str, float] = {}


def _load_limited(path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _LIMIT_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "", done.stderr[-2000:]  # no warning, no traceback
    report: dict[str, Any] = json.loads(done.stdout)
    PEAKS[path.name] = report["peak_mb"]
    return report


BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    "png_40000.png": (lambda: _png_header(40000, 40000), "pixels"),
    "png_interlaced.png": (lambda: _png_header(30000, 30000, interlace=1), "budget"),
    "jpeg_progressive.jpg": (lambda: _jpeg_with_size(30000, 30000, progressive=True), "budget"),
    "gif.gif": (lambda: _gif_with_size(30000, 30000), "budget"),
    "bmp.bmp": (lambda: _bmp_with_size(30000, 30000), ""),
    "tiff_header.tif": (lambda: _tiff(30000, 30000, 3, zlib.compress(b"\0" * 99)), "budget"),
    "webp.webp": (lambda: _webp_lossless_with_size(16384, 16384), "budget"),
    "ppm.ppm": (lambda: b"P6 30000 30000 255\n" + b"\0" * 64, "budget"),
    "tga.tga": (lambda: _tga_with_size(30000, 30000), "budget"),
    "ico_png.ico": (lambda: _ico_with_png(30000, 30000), "budget"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_header_bombs_are_refused_in_bounded_memory(tmp_path, name):
    build, words = BOMBS[name]
    path = tmp_path / name
    path.write_bytes(build())
    report = _load_limited(path)
    assert "error" in report, report
    assert name in report["error"] and words in report["error"]
    assert report["peak_mb"] < 2048, report
    assert report["seconds"] < 30, report


def test_budget_message_names_size_budget_and_remedy(tmp_path):
    path = tmp_path / "bomb.tif"
    path.write_bytes(_tiff(30000, 30000, 3, zlib.compress(b"\0" * 99)))
    with pytest.raises(ImageLoadError) as info:
        open_image(path)
    message = str(info.value)
    # Pixels are kept in 4 bytes each, plus the one strip of 3 bytes a pixel the decoder reads.
    needed = 30000 * 30000 * (4 + 3)
    assert nbytes(needed) in message
    assert f"{images_mod.MAX_DECODE_BYTES >> 20} MiB budget" in message
    assert "30000×30000" in message and MAX_IMAGE_BYTES_ENV in message and "PNG" in message


@pytest.mark.slow
def test_real_deflate_tiff_bomb_is_refused_from_its_header(tmp_path):
    side = 20000
    data = _deflated_zeros(side * side * 3)
    path = tmp_path / "rgb_bomb.tif"
    path.write_bytes(_tiff(side, side, 3, data))
    assert path.stat().st_size < 2_000_000
    report = _load_limited(path)
    assert "budget" in report.get("error", ""), report
    assert report["peak_mb"] < 2048 and report["seconds"] < 10, report


@pytest.mark.slow
def test_real_tiff_under_the_budget_loads_with_peak_near_its_size(tmp_path):
    side = 20000  # 8-bit gray in one strip: 400 MB of pixels plus the 400 MB strip buffer
    path = tmp_path / "gray_bomb.tif"
    path.write_bytes(_tiff(side, side, 1, _deflated_zeros(side * side)))
    report = _load_limited(path)
    assert "800 MiB" not in report.get("error", "") and "763 MiB" in report["error"], report

    # Under a budget that admits it, it is decoded whole and reduced in strips: the peak is
    # what the header said, not a multiple of it.
    report = _load_limited(path, {MAX_IMAGE_BYTES_ENV: "1G"})
    assert report.get("loaded") == [4000, 4000], report
    assert report["peak_mb"] < 763 + 250, report

    # The same file under a smaller budget is refused before anything is decoded.
    small = _load_limited(path, {MAX_IMAGE_BYTES_ENV: "100M"})
    assert "100 MiB budget" in small.get("error", ""), small
    assert small["peak_mb"] < 200, small


def test_baseline_jpeg_of_30000_pixels_is_drafted_in_bounded_memory(tmp_path):
    path = tmp_path / "huge.jpg"
    path.write_bytes(_jpeg_with_size(30000, 30000, progressive=False))
    report = _load_limited(path)  # the data is truncated: a clear error, but never a bomb
    assert report["peak_mb"] < 2048, report


def test_worst_peak_over_all_formats_stays_under_two_gigabytes():
    if not PEAKS:
        pytest.skip("run with the bomb tests")
    print(json.dumps({"peak_mb": PEAKS}, indent=1))  # shown with pytest -s
    assert max(PEAKS.values()) < 2048, PEAKS


def test_budget_environment_variable(monkeypatch, tmp_path):
    path = tmp_path / "pic.bmp"
    Image.new("RGB", (1000, 1000), (10, 20, 30)).save(path)
    assert open_image(path).size == (1000, 1000)
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "1M")
    assert images_mod.decode_budget() == 1 << 20
    needed = re.escape(nbytes(4 * 1000 * 1000))  # RGB is kept in 4 bytes a pixel
    with pytest.raises(
        ImageLoadError, match=rf"pic\.bmp' \(BMP, 1000×1000\).*{needed}.*1 MiB budget"
    ):
        open_image(path)
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "8M")
    assert open_image(path).size == (1000, 1000)
    for bad in ("lots", "-5", "nan", "0"):
        monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, bad)
        with pytest.raises(InvalidArgumentError, match=MAX_IMAGE_BYTES_ENV):
            open_image(path)


# --------------------------------------------------------------------------------------------
# strip-wise conversion equals whole conversion
# --------------------------------------------------------------------------------------------


def _box_reduce(arr: np.ndarray, factor: int) -> np.ndarray:
    h, w = arr.shape[:2]
    out_h, out_w = -(-h // factor), -(-w // factor)
    padded = np.zeros((out_h * factor, out_w * factor) + arr.shape[2:], np.float64)
    counts = np.zeros((out_h * factor, out_w * factor), np.float64)
    padded[:h, :w] = arr
    counts[:h, :w] = 1
    sums = padded.reshape(out_h, factor, out_w, factor, *arr.shape[2:]).sum((1, 3))
    n = counts.reshape(out_h, factor, out_w, factor).sum((1, 3))
    return sums / (n if arr.ndim == 2 else n[..., None])


def test_large_rgba_tiff_is_composited_and_reduced_in_strips(tmp_path):
    rng = np.random.default_rng(1)
    h, w = 700, 8300  # many strips at 16 bytes a pixel; reduced by 3
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    path = tmp_path / "wide.tif"
    Image.fromarray(rgba, "RGBA").save(path, compression="tiff_deflate")
    out = open_image(path)
    colour, alpha = rgba[..., :3].astype(np.float64), rgba[..., 3:].astype(np.float64) / 255
    want = _box_reduce(colour * alpha + 255 * (1 - alpha), 3)
    assert out.size == (want.shape[1], want.shape[0])
    assert np.abs(np.asarray(out).astype(np.float64) - want).max() <= 1.5


def test_float_tiff_strips_share_one_scale(tmp_path):
    h, w = 900, 8300
    yy = np.arange(h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    values = yy * 10 - 3000  # each strip alone would have its own range
    path = tmp_path / "float.tif"
    Image.fromarray(values, "F").save(path)
    out = np.asarray(open_image(path)).astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    want = _box_reduce((values.astype(np.float64) - lo) * 255 / (hi - lo), 3)
    assert np.abs(out - want).max() <= 1.5


# --------------------------------------------------------------------------------------------
# colour modes
# --------------------------------------------------------------------------------------------


def _la_tiff(path: Path, gray: np.ndarray, alpha: np.ndarray) -> Path:
    """A TIFF with premultiplied (associated) alpha: PIL opens it as mode "La"."""
    premultiplied = np.rint(gray.astype(np.float64) * alpha / 255).astype(np.uint8)
    Image.fromarray(np.stack([premultiplied, alpha], -1), "LA").save(path)
    data = bytearray(path.read_bytes())
    # ExtraSamples (tag 338, one SHORT) from 2 (unassociated) to 1 (associated alpha).
    at = data.index(struct.pack("<HHI", 338, 3, 1))
    data[at + 8 : at + 10] = struct.pack("<H", 1)
    path.write_bytes(bytes(data))
    return path


def test_premultiplied_la_is_composited_on_white(tmp_path):
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    alpha = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    path = _la_tiff(tmp_path / "la.tif", gray, alpha)
    assert Image.open(path).mode == "La"
    out = open_image(path)
    assert out.mode == "L"
    a = alpha.astype(np.float64) / 255
    want = gray * a + 255 * (1 - a)
    assert np.abs(np.asarray(out).astype(np.float64) - want).max() <= 1.01
    assert open_image(path, "RGB").mode == "RGB"


def _expected_rgb(mode: str, source: Image.Image) -> np.ndarray:
    """The truth for modes PIL converts itself (YCbCr, RGBX) or through littleCMS (LAB)."""
    if mode == "LAB":
        from PIL import ImageCms

        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        transform = ImageCms.buildTransform(lab, srgb, "LAB", "RGB")
        return np.asarray(ImageCms.applyTransform(source, transform)).astype(np.int64)
    return np.asarray(source.convert("RGB")).astype(np.int64)


@pytest.mark.parametrize("mode", ["RGBX", "YCbCr", "LAB", "I;16B", "CMYK", "PA", "I;16L"])
def test_rare_tiff_modes_load(tmp_path, mode):
    rng = np.random.default_rng(3)
    bands = len(Image.new(mode, (1, 1)).getbands())
    if mode.startswith("I;16"):
        source = Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16)).convert(mode)
    else:
        data = rng.integers(0, 256, (12, 16, bands), dtype=np.uint8)
        source = Image.frombytes(mode, (16, 12), data.tobytes())
        if mode == "PA":
            source.putpalette(list(rng.integers(0, 256, 768)))
    path = tmp_path / "pic.tif"
    source.save(path)
    raw = Image.open(path)
    raw.load()
    out = open_image(path)
    got = np.asarray(out).astype(np.int64)
    if mode.startswith("I;16"):
        want = (np.asarray(raw).astype(np.int64) + 128) // 257
    elif mode == "PA":
        rgba = np.asarray(raw.convert("RGBA")).astype(np.float64)
        a = rgba[..., 3:] / 255
        want = np.rint(rgba[..., :3] * a + 255 * (1 - a)).astype(np.int64)
    else:
        want = _expected_rgb(mode, raw)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1


@pytest.mark.parametrize("mode", ["HSV", "RGBa", "La", "I", "F", "1", "LAB", "YCbCr"])
def test_every_pil_mode_loads_from_a_pil_image(mode):
    rng = np.random.default_rng(4)
    bands = len(Image.new(mode, (1, 1)).getbands())
    if mode in ("I", "F"):
        source = Image.fromarray(rng.integers(0, 1000, (8, 8)).astype(np.float32), "F")
        source = source.convert(mode)
    elif mode == "1":
        source = Image.fromarray(rng.integers(0, 2, (8, 8)).astype(bool))
    else:
        data = rng.integers(0, 256, (8, 8, bands), dtype=np.uint8)
        if mode in ("RGBa", "La"):  # premultiplied: colour never above alpha
            data[..., :-1] = np.minimum(data[..., :-1], data[..., -1:])
        source = Image.frombytes(mode, (8, 8), data.tobytes())
    out = open_image(source)
    assert out.mode in ("L", "RGB") and out.size == (8, 8)


# --------------------------------------------------------------------------------------------
# damaged bytes: only ImageLoadError ever escapes
# --------------------------------------------------------------------------------------------


def _samples() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (24, 20, 4), dtype=np.uint8), "RGBA")
    frames = [rgb.convert("P"), rgb.rotate(90).convert("P")]
    multipage = io.BytesIO()
    rgb.save(multipage, "TIFF", save_all=True, append_images=[rgba], compression="tiff_deflate")
    return {
        "png": _saved(rgba, "PNG"),
        "png_interlaced": _saved(rgb, "PNG", interlace=1),
        "jpeg": _saved(
            rgb, "JPEG", exif=b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0"
        ),
        "jpeg_progressive": _saved(rgb, "JPEG", progressive=True),
        "gif": _saved(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "bmp": _saved(rgb, "BMP"),
        "bmp_rle": _saved(rgb.convert("P"), "BMP"),
        "tiff": multipage.getvalue(),
        "tiff_raw": _saved(rgba, "TIFF"),
        "webp": _saved(rgb, "WEBP"),
        "webp_lossless": _saved(rgba, "WEBP", lossless=True),
        "ppm": _saved(rgb, "PPM"),
        "tga": _saved(rgb, "TGA", compression="tga_rle"),
        "ico": _saved(rgba, "ICO"),
    }


def test_fuzzed_pictures_raise_only_image_load_errors():
    rng = np.random.default_rng(6)
    escaped: list[str] = []
    tried = 0
    for kind, data in _samples().items():
        variants = [
            data[:cut] for cut in sorted({int(c) for c in np.linspace(1, len(data) - 1, 25)})
        ]
        for _ in range(40):
            flipped = bytearray(data)
            for at in rng.integers(0, len(data), int(rng.integers(1, 6))):
                flipped[at] = int(rng.integers(0, 256))
            variants.append(bytes(flipped))
        for variant in variants:
            tried += 1
            for call in (
                lambda variant=variant: open_image(variant),
                lambda variant=variant: load_image(variant, Preprocess.digits()),
            ):
                error = _within(30, call)
                if error is not None and not isinstance(error, ImageLoadError):
                    escaped.append(f"{kind}: {type(error).__name__}: {error}")
                elif error is not None:
                    assert "\n" not in str(error)
    assert tried > 500
    assert not escaped, escaped[:10]


# --------------------------------------------------------------------------------------------
# arguments and model inputs
# --------------------------------------------------------------------------------------------


def test_wrong_argument_types_and_values_are_cnnviz_errors(tmp_path):
    path = tmp_path / "pic.png"
    Image.new("RGB", (4, 4)).save(path)
    cases: list[tuple[Callable[[], Any], type[Exception]]] = [
        (lambda: open_image(123), TypeError),  # type: ignore[arg-type]
        (lambda: load_image(123, Preprocess.imagenet()), TypeError),  # type: ignore[arg-type]
        (lambda: open_image(path, "CMYK"), ValueError),
        (lambda: open_image(path, max_side=0), ValueError),
        (lambda: open_image(path, max_side="big"), TypeError),  # type: ignore[arg-type]
        (lambda: images_mod.preprocess_pil("pic", Preprocess.imagenet()), TypeError),  # type: ignore[arg-type]
        (lambda: load_image(path, "imagenet"), TypeError),  # type: ignore[arg-type]
    ]
    for call, base in cases:
        with pytest.raises(CnnvizError) as info:
            call()
        assert isinstance(info.value, base)
        assert isinstance(info.value, (ArgumentTypeError, InvalidArgumentError))


def test_model_input_sizes_that_cannot_fit_are_refused():
    budget = images_mod.MAX_DECODE_BYTES
    with pytest.raises(CnnvizError) as info:
        Preprocess(3, (60000, 60000), "resize_crop", None, (0.5,), (0.5,))
    message = str(info.value)
    needed = 4 * 3 * 60000 * 60000  # float32 x channels x H x W
    assert "60000×60000" in message and nbytes(needed) in message
    assert f"{budget >> 20} MiB budget" in message
    with pytest.raises(CnnvizError, match="60000×60000"):
        Preprocess.from_dict(
            {"channels": 1, "size": [60000, 60000], "mode": "resize", "mean": [0], "std": [1]}
        )
    with pytest.raises(CnnvizError, match="resize_size 100000"):
        Preprocess(3, (224, 224), "resize_crop", 100000, (0.5,), (0.5,))
    # The largest square float32 RGB input under the budget is accepted.
    side = int((budget / 12) ** 0.5)
    assert Preprocess(3, (side, side), "resize", None, (0.5,), (0.5,)).size == (side, side)


def test_elongated_picture_resized_by_its_short_side_is_refused():
    strip = Image.new("RGB", (8000, 2), (200, 100, 50))  # resized to 256 x 1024000
    with pytest.raises(ImageLoadError, match=r"256×1024000.*budget"):
        load_image(strip, Preprocess.imagenet())
