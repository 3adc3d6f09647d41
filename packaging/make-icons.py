#!/usr/bin/env python3
"""Generate the desktop icon set from the app's SVG icon.

Writes, under OUT (default: packaging/icons):

- ``hicolor/scalable/apps/cnnviz.svg`` and ``hicolor/NxN/apps/cnnviz.png`` for N in 16..512
  (the freedesktop icon-theme layout that install-desktop-entry.sh copies),
- ``cnnviz.ico`` (Windows, 16..256) and ``cnnviz.icns`` (macOS, 16..1024) for the PyInstaller build.

The SVG is rasterised with ``rsvg-convert`` when it is installed (the renderer desktops use) and
with Qt's QSvgRenderer otherwise, so the script works offline with only cnnviz's own dependencies.

Usage: python packaging/make-icons.py [--svg resources/icons/cnnviz.svg] [--out packaging/icons]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
NAME = "cnnviz"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS holds retina (@2x) variants up to 1024 px; PIL would upscale the 512 one for them otherwise.
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def default_svg() -> Path:
    """The app icon the window uses: resources/icons/cnnviz.svg, else the only SVG there."""
    icons = ROOT / "resources" / "icons"
    preferred = icons / f"{NAME}.svg"
    if preferred.is_file():
        return preferred
    svgs = sorted(icons.glob("*.svg"))
    if len(svgs) == 1:
        return svgs[0]
    raise SystemExit(
        f"make-icons: no icon SVG found in {icons} (expected {preferred.name}); pass --svg PATH"
    )


def render_rsvg(svg: Path, size: int) -> Image.Image | None:
    """The SVG as a size x size RGBA image via rsvg-convert, or None if it is not installed."""
    exe = shutil.which("rsvg-convert")
    if exe is None:
        return None
    png = subprocess.run(
        [exe, "--width", str(size), "--height", str(size), "--keep-aspect-ratio", str(svg)],
        check=True,
        capture_output=True,
    ).stdout
    return Image.open(io.BytesIO(png)).convert("RGBA")


def render_qt(svg: Path, size: int) -> Image.Image:
    """The SVG as a size x size RGBA image via Qt's SVG renderer (no display needed)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - keeps Qt alive
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make-icons: {svg} is not a valid SVG file")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.setAspectRatioMode(Qt.AspectRatioMode.KeepAspectRatio)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(data.data()))).convert("RGBA")


def render(svg: Path, size: int, renderer: str) -> Image.Image:
    """Rasterise with the chosen renderer ("auto" prefers rsvg-convert)."""
    if renderer in ("auto", "rsvg"):
        image = render_rsvg(svg, size)
        if image is not None:
            return image
        if renderer == "rsvg":
            raise SystemExit(
                "make-icons: rsvg-convert is not installed (apt-get install librsvg2-bin)"
            )
    image = render_qt(svg, size)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return image


def save_atomic(image: Image.Image, path: Path, **kwargs: object) -> None:
    """Write through a temporary file in the same folder so a crash never leaves half an icon."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, **kwargs)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_icons(svg: Path, out: Path, renderer: str = "auto") -> list[Path]:
    """Write the PNG sizes, the scalable SVG copy, .ico and .icns; returns the written paths."""
    written: list[Path] = []
    images: dict[int, Image.Image] = {}
    for size in PNG_SIZES:
        images[size] = render(svg, size, renderer)
        path = out / "hicolor" / f"{size}x{size}" / "apps" / f"{NAME}.png"
        save_atomic(images[size], path, format="PNG", optimize=True)
        written.append(path)
    for size in ICNS_SIZES:
        if size not in images:
            images[size] = render(svg, size, renderer)
    scalable = out / "hicolor" / "scalable" / "apps" / f"{NAME}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(svg, scalable)
    written.append(scalable)

    # Each size rendered from the vector, not downscaled from 256, so small icons stay crisp.
    ico = out / f"{NAME}.ico"
    biggest = images[max(ICO_SIZES)]
    save_atomic(
        biggest,
        ico,
        format="ICO",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[images[s] for s in ICO_SIZES if s != max(ICO_SIZES)],
    )
    written.append(ico)
    icns = out / f"{NAME}.icns"
    save_atomic(
        images[max(ICNS_SIZES)],
        icns,
        format="ICNS",
        append_images=[images[s] for s in ICNS_SIZES if s != max(ICNS_SIZES)],
    )
    written.append(icns)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate PNG/ICO/ICNS icons from the cnnviz SVG.")
    parser.add_argument(
        "--svg", type=Path, default=None, help="source SVG (default: resources/icons)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "packaging" / "icons", help="output folder"
    )
    parser.add_argument("--renderer", choices=("auto", "rsvg", "qt"), default="auto",
                        help="rasteriser (auto: rsvg-convert if installed, else Qt)")  # fmt: skip
    args = parser.parse_args(argv)
    svg = args.svg or default_svg()
    if not svg.is_file():
        print(f"make-icons: {svg} does not exist", file=sys.stderr)
        return 2
    for path in make_icons(svg, args.out, args.renderer):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
