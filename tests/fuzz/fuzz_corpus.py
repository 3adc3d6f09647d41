"""Deterministic generators of hostile inputs, written into a test's folder at run time.

Nothing binary is committed: every picture, pickle and archive is made here from a fixed seed.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import random
import socket
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SEED = 20240601

# Formats cnnviz reads (cnnviz.core.images reads exactly these PIL plugins) with a file suffix each.
READ_FORMATS = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "BMP": ".bmp",
    "DIB": ".dib",
    "GIF": ".gif",
    "TIFF": ".tif",
    "WEBP": ".webp",
    "PPM": ".ppm",
    "TGA": ".tga",
    "ICO": ".ico",
}
MODES = (
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBX",
    "RGBa",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "I;16",
    "I;16L",
    "I;16B",
    "F",
)


def noise_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A picture of ``mode`` with seeded random content (size is (width, height))."""
    rng = np.random.default_rng(seed)
    w, h = size
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode in ("I;16", "I;16L", "I;16B"):
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)).convert(mode)
    if mode == "I":
        return Image.fromarray(rng.integers(-(2**20), 2**20, (h, w), dtype=np.int32), "I")
    if mode == "F":
        values = rng.normal(0, 1e3, (h, w)).astype(np.float32)
        values[0, 0] = np.nan
        values[-1, -1] = np.inf
        return Image.fromarray(values, "F")
    if mode == "PA":
        pal = rgb.convert("P")
        alpha = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
        out = pal.convert("PA")
        out.putalpha(alpha)
        return out
    if mode in ("LA", "La", "RGBA", "RGBa"):
        base = rgb.convert("RGBA" if mode.startswith("RGB") else "LA")
        base.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L"))
        return base if mode in ("LA", "RGBA") else base.convert(mode)
    return rgb.convert(mode)


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def mode_format_files(folder: Path) -> list[tuple[str, Path]]:
    """Every (mode, format) pair PIL can write, 13x9 pixels of noise; pairs PIL refuses are skipped."""
    out: list[tuple[str, Path]] = []
    seen: set[bytes] = set()
    for fi, (fmt, suffix) in enumerate(READ_FORMATS.items()):
        for mi, mode in enumerate(MODES):
            try:
                data = encode(noise_image(mode, (13, 9), SEED + 31 * fi + mi), fmt)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if data in seen:
                continue
            seen.add(data)
            path = folder / f"mode-{mode.replace(';', '_')}-{fmt}{suffix}"
            path.write_bytes(data)
            out.append((f"{fmt}/{mode}", path))
    return out


def base_files() -> dict[str, bytes]:
    """One ordinary RGB picture per format, the seed of truncations and byte flips."""
    image = noise_image("RGB", (23, 17), SEED)
    out = {}
    for fmt in READ_FORMATS:
        params: dict[str, Any] = {"compression": "tiff_deflate"} if fmt == "TIFF" else {}
        out[fmt] = encode(image, fmt, **params)
    return out


def truncated_files(folder: Path) -> list[tuple[str, Path]]:
    out = []
    for fmt, data in base_files().items():
        n = len(data)
        for cut in sorted({0, 1, 2, 7, 8, 16, 33, 64, n // 4, n // 2, 3 * n // 4, n - 2, n - 1}):
            if 0 <= cut < n:
                path = folder / f"trunc-{cut}-{fmt}{READ_FORMATS[fmt]}"
                path.write_bytes(data[:cut])
                out.append((f"{fmt} cut at {cut}/{n}", path))
    return out


def flipped_files(folder: Path, per_format: int = 5) -> list[tuple[str, Path]]:
    rng = random.Random(SEED)
    out = []
    for fmt, data in base_files().items():
        for k in range(per_format):
            buf = bytearray(data)
            for _ in range(rng.choice((1, 2, 4, 16))):
                # headers are where decoders trust numbers; bias flips towards them
                pos = (
                    rng.randrange(min(len(buf), 64))
                    if rng.random() < 0.6
                    else rng.randrange(len(buf))
                )
                buf[pos] ^= 1 << rng.randrange(8)
            path = folder / f"flip-{k}-{fmt}{READ_FORMATS[fmt]}"
            path.write_bytes(bytes(buf))
            out.append((f"{fmt} flips #{k}", path))
    return out


# ---------------------------------------------------------------------------------------------
# Decompression bombs and absurd headers, crafted by hand


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(
    width: int, height: int, bit_depth: int = 8, color: int = 0, idat: bytes = b""
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
    if idat:
        data += _png_chunk(b"IDAT", idat)
    return data + _png_chunk(b"IEND", b"")


@functools.cache
def png_zero_bomb(width: int, height: int) -> bytes:
    """A complete, valid grayscale PNG of zeros: a few hundred KB that decode to width*height bytes."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    block = row * max(1, (1 << 22) // len(row))
    rows_per_block = len(block) // len(row)
    parts = []
    done = 0
    while done < height:
        n = min(rows_per_block, height - done)
        parts.append(comp.compress(block if n == rows_per_block else row * n))
        done += n
    parts.append(comp.flush())
    return png_header(width, height, idat=b"".join(parts))


def _tiff(width: int, height: int, strip_bytes: int) -> bytes:
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, strip_bytes),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<HHI", tag, typ, count)
        packed += struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00\x00\x00\x00" + b"\x00" * 64


def _jpeg_resized(width: int, height: int) -> bytearray:
    data = bytearray(encode(noise_image("RGB", (16, 16), SEED), "JPEG"))
    i = 2
    while i < len(data) - 9:
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            break
        i += 2 + length
    return data


def _webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 32
    chunk = b"VP8L" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _bmp(width: int, height: int, bpp: int = 24) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + header + b"\x00" * 16


def _gif(width: int, height: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00" * 6
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return screen + image + b"\x08\x02\x4c\x01\x00\x3b"


def _tga(width: int, height: int) -> bytes:
    return struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, width, height, 24, 0) + b"\x00" * 30


def _ico_around(png: bytes) -> bytes:
    head = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return head + entry + png


def bomb_files(folder: Path) -> list[tuple[str, Path]]:
    """Tiny files whose headers claim huge pictures, and real zero bombs that decode to hundreds of MB."""
    big_png = png_header(50000, 50000, idat=zlib.compress(b"\x00" * 50001 * 4))
    cases: dict[str, tuple[str, bytes]] = {
        "png 50000x50000 header": (".png", big_png),
        "png 65535x65535 rgba16 header": (".png", png_header(65535, 65535, 16, 6)),
        "png 2^31-1 x 1 header": (".png", png_header(2**31 - 1, 1)),
        "png 1 x 2^31-1 header": (".png", png_header(1, 2**31 - 1)),
        "png zero-size header": (".png", png_header(0, 0)),
        "png zero bomb 16000x16000 (256 MB)": (".png", png_zero_bomb(16000, 16000)),
        "png zero bomb 60000x10 wide": (".png", png_zero_bomb(60000, 10)),
        "gif 65535x65535": (".gif", _gif(65535, 65535)),
        "bmp 50000x50000": (".bmp", _bmp(50000, 50000)),
        "bmp 50000x-50000 top-down": (".bmp", _bmp(50000, -50000)),
        "bmp 2^31-1 x 1 32-bit": (".bmp", _bmp(2**31 - 1, 1, 32)),
        "tiff 50000x50000": (".tif", _tiff(50000, 50000, 2_500_000_000)),
        "tiff 4294967295x1": (".tif", _tiff(2**32 - 1, 1, 2**32 - 1)),
        "jpeg SOF 65500x65500": (".jpg", bytes(_jpeg_resized(65500, 65500))),
        "jpeg SOF 0x0": (".jpg", bytes(_jpeg_resized(0, 0))),
        "webp vp8l 16384x16384": (".webp", _webp_vp8l(16384, 16384)),
        "ppm P5 50000x50000": (".ppm", b"P5\n50000 50000\n255\n" + b"\x00" * 100),
        "ppm P6 65535 maxval": (".ppm", b"P6\n40000 40000\n65535\n" + b"\x00" * 100),
        "ppm 5000-digit width": (".ppm", b"P5\n" + b"9" * 5000 + b" 2\n255\n" + b"\x00" * 10),
        "tga 65535x65535": (".tga", _tga(65535, 65535)),
        "ico around png 50000x50000": (".ico", _ico_around(big_png)),
        "ico around zero bomb": (".ico", _ico_around(png_zero_bomb(16000, 16000))),
    }
    out = []
    for i, (name, (suffix, data)) in enumerate(cases.items()):
        path = folder / f"bomb-{i}{suffix}"
        path.write_bytes(data)
        out.append((name, path))
    return out


def odd_size_files(folder: Path) -> list[tuple[str, Path]]:
    sizes = [(1, 1), (1, 5000), (5000, 1), (65535, 1), (1, 65535), (2, 3)]
    out = []
    for w, h in sizes:
        for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "TGA", "PPM"):
            if fmt == "WEBP" and max(w, h) > 16383:
                continue
            if fmt == "JPEG" and max(w, h) > 65500:
                continue
            try:
                data = encode(noise_image("L", (w, h), SEED + w + h), fmt)
            except (OSError, ValueError):
                continue
            path = folder / f"odd-{w}x{h}-{fmt}{READ_FORMATS[fmt]}"
            path.write_bytes(data)
            out.append((f"{fmt} {w}x{h}", path))
    return out


def exif_files(folder: Path) -> list[tuple[str, Path]]:
    """Orientation tags 1..8 and invalid values on a non-square picture, in JPEG, PNG, WebP and TIFF."""
    image = noise_image("RGB", (7, 13), SEED)
    out = []
    for value in (*range(0, 10), 255, 65535):
        exif = Image.Exif()
        exif[0x0112] = value
        for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            params: dict[str, Any] = {"exif": exif.tobytes()} if fmt != "TIFF" else {"exif": exif}
            try:
                data = encode(image, fmt, **params)
            except (OSError, ValueError, TypeError):
                continue
            path = folder / f"exif-{value}-{fmt}{READ_FORMATS[fmt]}"
            path.write_bytes(data)
            out.append((f"{fmt} orientation {value}", path))
    # an EXIF block that is itself garbage
    path = folder / "exif-garbage.jpg"
    path.write_bytes(encode(image, "JPEG", exif=b"Exif\x00\x00MM\x00*" + b"\xff" * 40))
    out.append(("JPEG garbage EXIF", path))
    return out


def animated_files(folder: Path) -> list[tuple[str, Path]]:
    frames = [noise_image("RGB", (11 + 2 * i, 9 + i), SEED + i) for i in range(4)]
    out = []
    for fmt, suffix, extra in (
        ("GIF", ".gif", {"loop": 0, "duration": 20}),
        ("WEBP", ".webp", {"loop": 0, "duration": 20}),
        ("TIFF", ".tif", {}),
        ("PNG", ".png", {"duration": 20}),
    ):
        same = [f.resize((11, 9)) for f in frames]
        for label, seq in (("frames", same), ("mixed sizes", frames)):
            buf = io.BytesIO()
            try:
                seq[0].save(buf, fmt, save_all=True, append_images=seq[1:], **extra)
            except (OSError, ValueError, RuntimeError):
                continue
            path = folder / f"anim-{label.replace(' ', '_')}-{fmt}{suffix}"
            path.write_bytes(buf.getvalue())
            out.append((f"{fmt} animated/multi-page ({label})", path))
    return out


def other_content_files(folder: Path) -> list[tuple[str, Path]]:
    """Files that are not pictures of a readable format, under picture names."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(x) print showpage\n"
    cases = {
        "eps named .png": (".png", eps),
        "eps": (".eps", eps),
        "empty": (".png", b""),
        "text": (".jpg", b"hello, not a picture\n" * 10),
        "zip named .png": (".png", _zip_bytes({"a.txt": b"x"})),
        "random bytes": (".gif", random.Random(SEED).randbytes(4096)),
        "svg": (".png", b"<svg xmlns='http://www.w3.org/2000/svg' width='99999' height='99999'/>"),
        "no suffix png": ("", encode(noise_image("RGB", (5, 5), SEED), "PNG")),
        "pdf": (".tif", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
    }
    out = []
    for i, (name, (suffix, data)) in enumerate(cases.items()):
        path = folder / f"other-{i}{suffix}"
        path.write_bytes(data)
        out.append((name, path))
    return out


def special_paths(folder: Path) -> Iterator[tuple[str, str]]:
    """Non-regular files: FIFO, unix socket, /dev/zero, symlink loop, broken link, folder, odd names.

    The socket is bound in a short folder (socket paths are limited to about 100 bytes) and stays bound
    while the caller iterates.
    """
    fifo = folder / "fifo.png"
    os.mkfifo(fifo)
    yield "FIFO", str(fifo)
    loop_a, loop_b = folder / "loop-a.png", folder / "loop-b.png"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    yield "symlink loop", str(loop_a)
    broken = folder / "broken.png"
    broken.symlink_to(folder / "missing-target.png")
    yield "broken symlink", str(broken)
    sub = folder / "a-folder.png"
    sub.mkdir()
    yield "folder", str(sub)
    yield "/dev/zero", "/dev/zero"
    yield "/dev/null", "/dev/null"
    yield "missing file", str(folder / "does-not-exist.png")
    yield "empty name", ""
    yield "very long name", str(folder / ("x" * 5000 + ".png"))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fz") as short:
        sock_path = os.path.join(short, "s.png")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(sock_path)
        sock.listen(1)
        try:
            yield "unix socket", sock_path
        finally:
            sock.close()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Model files


class Payload:
    """Unpickling this runs code: it writes ``marker``. A loader that never runs code never creates it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.marker!r}, 'w').write('payload ran')",))


def rewrite_zip(
    data: bytes, replace: dict[str, bytes | None], add: dict[str, bytes] | None = None
) -> bytes:
    """A copy of a zip with members replaced (matched by name suffix), removed (None) or added."""
    src = zipfile.ZipFile(io.BytesIO(data))
    prefix = src.namelist()[0].split("/")[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            key = next((k for k in replace if info.filename.endswith(k)), None)
            if key is None:
                out.writestr(info, src.read(info.filename))
            elif replace[key] is not None:
                out.writestr(info, replace[key])  # type: ignore[arg-type]
        for name, body in (add or {}).items():
            out.writestr(f"{prefix}/{name}", body)
    return buf.getvalue()


def torch_save_bytes(obj: Any, **kwargs: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def tiny_pt2() -> bytes:
    """A real ``torch.export.save`` archive of a tiny convolutional model (a 1x8x8 input)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).eval()
    program = torch.export.export(model, (torch.zeros(1, 1, 8, 8),))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def tiny_torchscript() -> bytes:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = torch.jit.script(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    buf = io.BytesIO()
    torch.jit.save(model, buf)
    return buf.getvalue()


def pt2_payloads(pt2: bytes, marker: Callable[[str], Path]) -> dict[str, bytes]:
    """``.pt2`` archives whose inner pickles run code: sample inputs, a pickled weight, an opaque constant."""
    import json

    src = zipfile.ZipFile(io.BytesIO(pt2))
    names = src.namelist()
    weights_config = next(n for n in names if n.endswith("_weights_config.json"))
    constants_config = next(n for n in names if n.endswith("_constants_config.json"))
    config = json.loads(src.read(weights_config))
    first = next(iter(config["config"]))
    config["config"][first]["use_pickle"] = True
    weight_file = config["config"][first]["path_name"]
    constants = {
        "config": {
            "evil": {
                "path_name": "opaque_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }
        }
    }
    sample = next(n for n in names if "/sample_inputs/" in n)
    return {
        "pt2 sample_inputs payload": rewrite_zip(
            pt2, {sample.split("/", 1)[1]: torch_save_bytes(Payload(marker("pt2-sample")))}
        ),
        "pt2 pickled weight payload": rewrite_zip(
            pt2,
            {
                weights_config.split("/", 1)[1]: json.dumps(config).encode(),
                f"data/weights/{weight_file}": torch_save_bytes(Payload(marker("pt2-weight"))),
            },
        ),
        "pt2 opaque constant payload": rewrite_zip(
            pt2,
            {constants_config.split("/", 1)[1]: json.dumps(constants).encode()},
            {"data/constants/opaque_obj_0": pickle.dumps(Payload(marker("pt2-constant")))},
        ),
    }
