"""Figures: a raster plus vector shapes plus caption lines, rendered to RGBA or SVG.

:func:`feature_grid_figure` and :func:`rf_overlay_figure` build the two kinds of picture the app and
``cnnviz export`` write, so an exported PNG shows exactly what the window showed.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnviz.core.present.colormaps import RGBA, heatmap_rgba
from cnnviz.core.present.mosaic import FeatureMosaic

__all__ = [
    "HIGHLIGHT",
    "RF_COLOR",
    "RGBA",
    "Figure",
    "GridFrame",
    "Shape",
    "encode_png",
    "feature_grid_figure",
    "figure_to_svg",
    "render_figure",
    "rf_overlay_figure",
]

HIGHLIGHT: RGBA = (50, 255, 50, 255)
"""Colour of the selected unit in feature maps (absent from every colormap offered)."""

RF_COLOR: RGBA = (255, 140, 0, 255)
"""Colour of receptive-field boxes."""

_SHADOW: RGBA = (0, 0, 0, 150)
_OUTSIDE = 128  # grey level of the area outside the picture on an overlay
_CAPTION_SIZE = 14
_CAPTION_LINE = 19
_CAPTION_PAD = 8


@dataclass
class Shape:
    """A vector mark on a figure. ``coords`` are ``(y0, x0, y1, x1)`` in figure pixels (pixel edges): the corners
    of a ``"rect"`` or the ends of a ``"line"``."""

    kind: str
    coords: tuple[float, float, float, float]
    color: RGBA
    width: float = 2.0
    dash: bool = False
    fill: RGBA | None = None
    title: str | None = None


@dataclass
class Figure:
    """A picture to export: ``image`` (uint8 RGBA), shapes drawn over it, caption lines under it, and text
    ``metadata`` stored in the file (PNG text chunks, SVG description)."""

    image: np.ndarray
    shapes: list[Shape] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    frame: Any = None


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    # Cantarell (shipped, SIL OFL) has the glyphs captions use, such as × and –, which Pillow's built-in
    # font draws as empty boxes.
    from cnnviz.core.resources import resource_path

    try:
        return ImageFont.truetype(
            str(resource_path("fonts", "cantarell", "Cantarell-Regular.otf")), size
        )
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _caption_size(lines: Sequence[str]) -> tuple[int, int]:
    if not lines:
        return (0, 0)
    font = _font(_CAPTION_SIZE)
    width = max(int(math.ceil(font.getlength(line))) for line in lines) + 2 * _CAPTION_PAD
    return (width, len(lines) * _CAPTION_LINE + 2 * _CAPTION_PAD)


def _dashes(
    y0: float, x0: float, y1: float, x1: float, on: float, off: float
) -> Iterable[tuple[float, ...]]:
    length = math.hypot(y1 - y0, x1 - x0)
    if length == 0:
        return
    dy, dx = (y1 - y0) / length, (x1 - x0) / length
    pos = 0.0
    while pos < length:
        end = min(pos + on, length)
        yield (y0 + dy * pos, x0 + dx * pos, y0 + dy * end, x0 + dx * end)
        pos = end + off


def _dash_spans(a: int, b: int, on: int, off: int) -> Iterable[tuple[int, int]]:
    pos = a
    while pos <= b:
        yield (pos, min(pos + on - 1, b))
        pos += on + off


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    y0, x0, y1, x1 = shape.coords
    width = max(1, int(round(shape.width)))
    on, off = 3 * width + 3, 2 * width + 2
    if shape.kind != "rect":
        pieces = _dashes(y0, x0, y1, x1, on, off) if shape.dash else [(y0, x0, y1, x1)]
        for py0, px0, py1, px1 in pieces:
            draw.line([(px0, py0), (px1, py1)], fill=shape.color, width=width)
        return
    # Rectangles are drawn inside their pixel edges: the stroke covers pixels top..top+width-1, and so on.
    top, left = int(round(y0)), int(round(x0))
    bottom, right = int(round(y1)) - 1, int(round(x1)) - 1
    if bottom < top or right < left:
        return
    if shape.fill is not None:
        draw.rectangle([left, top, right, bottom], fill=shape.fill)
    if not shape.dash:
        draw.rectangle([left, top, right, bottom], outline=shape.color, width=width)
        return
    w1 = width - 1
    for a, b in _dash_spans(left, right, on, off):
        draw.rectangle([a, top, b, min(top + w1, bottom)], fill=shape.color)
        draw.rectangle([a, max(bottom - w1, top), b, bottom], fill=shape.color)
    for a, b in _dash_spans(top, bottom, on, off):
        draw.rectangle([left, a, min(left + w1, right), b], fill=shape.color)
        draw.rectangle([max(right - w1, left), a, right, b], fill=shape.color)


def render_figure(fig: Figure) -> np.ndarray:
    """Rasterise a figure: shapes drawn over the image, caption lines in a white band below -> uint8 RGBA."""
    base = Image.fromarray(np.ascontiguousarray(fig.image), "RGBA")
    if fig.shapes:
        overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for shape in fig.shapes:
            _draw_shape(draw, shape)
        base = Image.alpha_composite(base, overlay)
    if fig.caption:
        text_w, band = _caption_size(fig.caption)
        out = Image.new("RGBA", (max(base.width, text_w), base.height + band), (255, 255, 255, 255))
        out.paste(base, (0, 0))
        draw = ImageDraw.Draw(out)
        font = _font(_CAPTION_SIZE)
        for i, line in enumerate(fig.caption):
            draw.text(
                (_CAPTION_PAD, base.height + _CAPTION_PAD + i * _CAPTION_LINE),
                line,
                fill=(34, 34, 34, 255),
                font=font,
            )
        base = out
    return np.asarray(base)


def encode_png(rgba: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of a uint8 RGBA/RGB/gray array, with ``text`` as PNG text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(str(key), str(value))
    buf = io.BytesIO()
    if rgba.ndim == 3 and rgba.shape[2] == 4 and bool((rgba[..., 3] == 255).all()):
        rgba = rgba[..., :3]  # opaque: a quarter less to compress, and the same picture
    # zlib level 1: four times faster than the default 6 on these pictures (flat blocks of colour from
    # upscaled maps), for files about as small -- exporting every layer is bound by this call.
    Image.fromarray(np.ascontiguousarray(rgba)).save(
        buf, format="PNG", pnginfo=info, compress_level=1
    )
    return buf.getvalue()


def _svg_color(rgba: RGBA) -> tuple[str, float]:
    r, g, b, a = rgba
    return f"#{r:02x}{g:02x}{b:02x}", round(a / 255, 3)


def figure_to_svg(fig: Figure) -> str:
    """An SVG document: the raster embedded as PNG, shapes and caption as vector elements."""
    h, w = fig.image.shape[:2]
    text_w, band = _caption_size(fig.caption)
    total_w, total_h = max(w, text_w), h + band
    data = base64.b64encode(encode_png(fig.image)).decode("ascii")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}">',
    ]
    title = fig.metadata.get("Title") or (fig.caption[0] if fig.caption else "cnnviz figure")
    out.append(f"<title>{escape(title)}</title>")
    if fig.metadata:
        desc = "\n".join(f"{k}: {v}" for k, v in fig.metadata.items())
        out.append(f"<desc>{escape(desc)}</desc>")
    out.append(f'<rect x="0" y="0" width="{total_w}" height="{total_h}" fill="#ffffff"/>')
    out.append(
        f'<image x="0" y="0" width="{w}" height="{h}" style="image-rendering:pixelated" '
        f'preserveAspectRatio="none" href="data:image/png;base64,{data}" xlink:href="data:image/png;base64,{data}"/>'
    )
    for shape in fig.shapes:
        stroke, stroke_op = _svg_color(shape.color)
        attrs = f'stroke="{stroke}" stroke-opacity="{stroke_op}" stroke-width="{shape.width:g}"'
        if shape.dash:
            attrs += f' stroke-dasharray="{3 * shape.width + 3:g} {2 * shape.width + 2:g}"'
        y0, x0, y1, x1 = (round(v, 3) for v in shape.coords)
        tip = f"<title>{escape(shape.title)}</title>" if shape.title else ""
        if shape.kind == "rect":
            if shape.fill is not None:
                fill, fill_op = _svg_color(shape.fill)
                attrs += f' fill="{fill}" fill-opacity="{fill_op}"'
            else:
                attrs += ' fill="none"'
            half = shape.width / 2
            out.append(
                f'<rect x="{x0 + half:g}" y="{y0 + half:g}" width="{max(x1 - x0 - shape.width, 0):g}" '
                f'height="{max(y1 - y0 - shape.width, 0):g}" {attrs}>{tip}</rect>'
            )
        else:
            out.append(
                f'<line x1="{x0:g}" y1="{y0:g}" x2="{x1:g}" y2="{y1:g}" {attrs}>{tip}</line>'
            )
    for i, line in enumerate(fig.caption):
        y = h + _CAPTION_PAD + i * _CAPTION_LINE + _CAPTION_SIZE
        out.append(
            f'<text x="{_CAPTION_PAD}" y="{y}" font-family="sans-serif" font-size="{_CAPTION_SIZE}" '
            f'fill="#222222" xml:space="preserve">{escape(line)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


_LABEL_SIZE = 10
_LABEL_BAND = 13  # pixels above each row of tiles for the channel numbers
_BAR_HEIGHT = 12
_BAR_BAND = 40  # the colour bar and its tick labels under the grid


@dataclass(frozen=True)
class GridFrame:
    """Where a feature grid's mosaic sits in its figure: mosaic pixel edges ``(y, x)`` scale by ``scale``, then
    each row of tiles moves down by the label bands above it and everything moves right by ``left``."""

    scale: int
    tile_pitch: int
    band: int
    left: int
    rows: int

    def to_figure(self, y: float, x: float, row: int | None = None) -> tuple[float, float]:
        """Mosaic pixel-edge point -> figure point; ``row`` (the tile row) is needed only on a row's lower edge."""
        if row is None:
            row = min(int(y // self.tile_pitch) if self.tile_pitch else 0, max(self.rows - 1, 0))
        return (y * self.scale + (row + 1) * self.band, x * self.scale + self.left)


@lru_cache(maxsize=4096)
def _text_width(text: str, size: int) -> int:
    return int(math.ceil(_font(size).getlength(text)))


@lru_cache(maxsize=4096)
def _label_mask(text: str, size: int) -> np.ndarray:
    """The coverage (0..1, float32) of ``text`` drawn at the top left of a box one line high.

    Drawn once per label and then stamped with NumPy: a grid of hundreds of channel numbers would otherwise
    spend most of an export in the font renderer.
    """
    im = Image.new("L", (_text_width(text, size) + 2, size + 4), 0)
    ImageDraw.Draw(im).text((0, 0), text, fill=255, font=_font(size))
    mask = np.asarray(im, dtype=np.float32) / 255.0
    mask.setflags(write=False)
    return mask


def _stamp(coverage: np.ndarray, text: str, y: float, x: float) -> None:
    """Add label ``text`` to a coverage array with its box's top left at ``(y, x)`` (clipped to the array)."""
    mask = _label_mask(text, _LABEL_SIZE)
    top, left = int(round(y)), int(round(x))
    h = min(mask.shape[0], coverage.shape[0] - top)
    w = min(mask.shape[1], coverage.shape[1] - left)
    if h <= 0 or w <= 0 or top < 0 or left < 0:
        return
    region = coverage[top : top + h, left : left + w]
    np.maximum(region, mask[:h, :w], out=region)


def _ink(
    canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray, alpha: np.ndarray, ink: tuple[int, int, int]
) -> None:
    """Blend ``ink`` into RGBA ``canvas`` at pixels ``(ys, xs)`` with coverage ``alpha`` (N x 1)."""
    if not ys.size:
        return
    pixels = canvas[ys, xs, :3].astype(np.float32)
    canvas[ys, xs, :3] = np.round(
        pixels * (1 - alpha) + np.asarray(ink, dtype=np.float32) * alpha
    ).astype(np.uint8)


def _tick(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def _colorbar(mosaic: FeatureMosaic, width: int) -> np.ndarray:
    """The colour bar band (uint8 RGBA, ``_BAR_BAND`` high, ``width`` wide) with the range the colours span.

    Per-layer ranges (and one shown channel) get their real values as ticks; per-channel ranges differ from map
    to map, so the bar says so instead of showing ticks that fit no single map.
    """
    from cnnviz.core.present.colormaps import colormap_lut

    band = Image.new("RGBA", (width, _BAR_BAND), (255, 255, 255, 255))
    bar_w = max(16, min(256, width - 2 * _CAPTION_PAD))
    lut = colormap_lut(mosaic.cmap)
    idx = np.round(np.linspace(0, 255, bar_w)).astype(np.intp)
    strip = np.empty((_BAR_HEIGHT, bar_w, 4), dtype=np.uint8)
    strip[..., :3] = lut[idx][None, :, :]
    strip[..., 3] = 255
    x0, y0 = _CAPTION_PAD, 4
    band.paste(Image.fromarray(strip, "RGBA"), (x0, y0))
    draw = ImageDraw.Draw(band)
    draw.rectangle([x0 - 1, y0 - 1, x0 + bar_w, y0 + _BAR_HEIGHT], outline=(120, 120, 120, 255))
    font = _font(_LABEL_SIZE)
    ty = y0 + _BAR_HEIGHT + 3
    ink = (34, 34, 34, 255)
    shown = mosaic.lo.size and (mosaic.norm == "layer" or mosaic.channel is not None)
    if shown:
        ch = mosaic.channel if mosaic.channel is not None else 0
        lo, hi = float(mosaic.lo[ch]), float(mosaic.hi[ch])
        ticks = [(0.0, _tick(lo)), (1.0, _tick(hi))]
        if lo < 0 < hi and abs(lo + hi) <= 1e-6 * max(abs(lo), abs(hi)):
            ticks.insert(1, (0.5, "0"))
        for pos, label in ticks:
            tx = x0 + pos * (bar_w - 1) - _text_width(label, _LABEL_SIZE) * pos
            draw.text((tx, ty), label, fill=ink, font=font)
        note = "per layer" if mosaic.channel is None else f"channel {mosaic.channel}"
    else:
        draw.text((x0, ty), "low", fill=ink, font=font)
        draw.text((x0 + bar_w - _text_width("high", _LABEL_SIZE), ty), "high", fill=ink, font=font)
        note = "per channel: each map spans its own range"
    nx = x0 + bar_w + 8
    if nx + _text_width(note, _LABEL_SIZE) <= width:
        draw.text((nx, y0), note, fill=ink, font=font)
    else:
        draw.text((x0 + bar_w // 2 - _text_width(note, _LABEL_SIZE) // 2, ty + 12), note, fill=ink,
                  font=font)  # fmt: skip
    return np.asarray(band)


def _label_every(layout: Any, tile_px: int, width: int) -> int:
    """Label every k-th tile of a row, the smallest k whose labels fit their tiles."""
    label = _text_width(str(max(layout.channels - 1, 0)), _LABEL_SIZE) + 3
    pitch = max(tile_px, 1)
    return max(1, -(-label // pitch))


@lru_cache(maxsize=32)
def _grid_labels(
    layout: Any, frame: GridFrame, channel: int | None, vector: bool, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labelled pixels ``(ys, xs, coverage)`` of a grid's channel numbers.

    Cached: the layers of a network repeat a few shapes, and their labels are the same pixels.
    """
    coverage = np.zeros(shape, dtype=np.float32)
    scale, band, left = frame.scale, frame.band, frame.left
    if channel is not None:
        _stamp(coverage, f"channel {channel}", 1, left)
    elif vector:
        for r in range(frame.rows):
            y = frame.to_figure(r + 0.5, 0, r)[0] - _LABEL_SIZE / 2 - 1
            _stamp(coverage, str(layout.order[r * layout.cols]), y, 2)
    else:
        tile_px = layout.tile_w * scale
        every = _label_every(layout, (layout.tile_w + layout.gap) * scale, shape[1])
        for slot, ch in enumerate(layout.order):
            r, c = divmod(slot, layout.cols)
            if c % every:
                continue
            y, x = frame.to_figure(
                r * (layout.tile_h + layout.gap), c * (layout.tile_w + layout.gap), r
            )
            label = str(ch)
            shift = max(0, (tile_px - _text_width(label, _LABEL_SIZE)) // 2) if every == 1 else 0
            _stamp(coverage, label, y - band + 1, x + shift)
    ys, xs = np.nonzero(coverage)
    alpha = coverage[ys, xs][:, None]
    for arr in (ys, xs, alpha):
        arr.setflags(write=False)
    return ys, xs, alpha


def feature_grid_figure(
    mosaic: FeatureMosaic,
    *,
    caption: Sequence[str] = (),
    unit: tuple[int, int] | None = None,
    channel: int | None = None,
    target: int = 768,
    max_scale: int = 32,
    metadata: dict[str, str] | None = None,
    labels: bool = True,
    colorbar: bool = True,
) -> Figure:
    """A mosaic upscaled by a whole factor (pixels stay square and sharp), each tile labelled with its channel
    number, a colour bar under it, and unit ``(y, x)`` outlined in every tile (thicker in ``channel``).

    ``Figure.frame`` (a :class:`GridFrame`) maps mosaic pixels to figure pixels.
    """
    h, w = mosaic.rgba.shape[:2]
    layout = mosaic.layout
    single = mosaic.channel is not None
    scale = max(1, min(max_scale, target // max(h, w, 1)))
    image = np.repeat(np.repeat(mosaic.rgba, scale, axis=0), scale, axis=1)
    rows = 1 if single else layout.rows
    pitch = (layout.tile_h + layout.gap) * scale
    vector = not single and layout.tile_h * layout.tile_w == 1
    band = _LABEL_BAND if labels and rows and not vector else 0
    left = 0
    if labels and vector and rows:
        # Vectors tile 1x1 maps without gaps: the index of each row's first entry, in a margin on the left.
        left = _text_width(str(layout.order[(rows - 1) * layout.cols]), _LABEL_SIZE) + 6
    frame = GridFrame(scale, pitch, band, left, rows)
    grid_h = image.shape[0] + rows * band
    grid_w = image.shape[1] + left
    bar = _colorbar(mosaic, max(grid_w, 320)) if colorbar and mosaic.lo.size else None
    total_w = max(grid_w, bar.shape[1] if bar is not None else 0)
    total_h = grid_h + (bar.shape[0] if bar is not None else 0)
    canvas = np.full((total_h, total_w, 4), 255, dtype=np.uint8)
    for r in range(rows):
        top = r * pitch
        block = image[top : top + pitch] if r < rows - 1 else image[top:]
        canvas[
            top + (r + 1) * band : top + (r + 1) * band + block.shape[0],
            left : left + image.shape[1],
        ] = block
    if bar is not None:
        canvas[grid_h:, : bar.shape[1]] = bar
    if labels and rows:
        ys, xs, alpha = _grid_labels(layout, frame, mosaic.channel, vector, canvas.shape[:2])
        _ink(canvas, ys, xs, alpha, (60, 60, 60))
    shapes: list[Shape] = []

    def rect(ch: int, pad: float) -> tuple[float, float, float, float]:
        y0, x0, y1, x1 = layout.unit_rect(ch, *unit)  # type: ignore[misc]
        row = 0 if single else layout.slot(ch) // layout.cols
        fy0, fx0 = frame.to_figure(y0, x0, row)
        fy1, fx1 = frame.to_figure(y1, x1, row)
        return (fy0 - pad, fx0 - pad, fy1 + pad, fx1 + pad)

    if unit is not None:
        visible = [mosaic.channel] if mosaic.channel is not None else list(layout.order)
        thin = 1.0 if scale >= 3 else 0.0
        for ch in visible:
            if ch == channel or single or not thin:
                continue
            shapes.append(Shape("rect", rect(ch, 0), HIGHLIGHT, thin))
        chosen = mosaic.channel if single else channel
        if chosen is not None:
            shapes.append(
                Shape(
                    "rect",
                    rect(chosen, 2),
                    HIGHLIGHT,
                    2.0,
                    title=f"channel {chosen}, unit ({unit[0]}, {unit[1]})",
                )
            )
    return Figure(canvas, shapes, list(caption), dict(metadata or {}), frame)


def _axis_index(
    coords: np.ndarray, scale: Any, offset: Any, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Original-image coordinates -> pixel indices of an axis mapped by ``orig = u * scale + offset``."""
    idx = np.floor((coords - float(offset)) / float(scale)).astype(np.int64)
    valid = (idx >= 0) & (idx < n)
    return np.clip(idx, 0, max(n - 1, 0)), valid


def rf_overlay_figure(
    display: np.ndarray,
    display_geometry: Any,
    geometry: Any,
    unit_box: Any,
    *,
    heatmap: np.ndarray | None = None,
    cmap: str = "inferno",
    caption: Sequence[str] = (),
    target: int = 768,
    metadata: dict[str, str] | None = None,
) -> Figure:
    """The original picture with a unit's receptive field: the theoretical box (dashed, reaching into the padding,
    on flat grey outside the picture), its part inside the picture (solid and tinted), its centre, the
    model-input area (dotted) and, when given, the effective-RF ``heatmap`` (model-input pixels).

    ``display_geometry`` maps ``display`` pixels to original pixels; ``geometry`` maps model-input pixels to
    original pixels (both :class:`cnnviz.core.images.ImageGeometry`).
    """
    oh, ow = geometry.original_size
    ih, iw = geometry.input_size
    full = geometry.box_edges_to_original(tuple(unit_box.box))
    model_area = geometry.box_edges_to_original((0, 0, ih - 1, iw - 1))
    y_min = min(0.0, model_area[0], full[0])
    x_min = min(0.0, model_area[1], full[1])
    y_max = max(float(oh), model_area[2], full[2])
    x_max = max(float(ow), model_area[3], full[3])
    margin = 0.03 * max(y_max - y_min, x_max - x_min)
    y_min, x_min, y_max, x_max = y_min - margin, x_min - margin, y_max + margin, x_max + margin
    scale = target / max(y_max - y_min, x_max - x_min)
    ch = int(math.ceil((y_max - y_min) * scale))
    cw = int(math.ceil((x_max - x_min) * scale))
    ys = y_min + (np.arange(ch) + 0.5) / scale
    xs = x_min + (np.arange(cw) + 0.5) / scale

    img = display if display.ndim == 3 else np.repeat(display[:, :, None], 3, axis=2)
    dh, dw = img.shape[:2]
    dy, vy = _axis_index(ys, display_geometry.scale_y, display_geometry.offset_y, dh)
    dx, vx = _axis_index(xs, display_geometry.scale_x, display_geometry.offset_x, dw)
    # Outside the picture: one flat neutral grey, so padding reads as "no image here" without a pattern
    # that competes with the picture and the boxes.
    canvas = np.full((ch, cw, 3), _OUTSIDE, dtype=np.uint8)
    inside = vy[:, None] & vx[None, :]
    picture = img[dy][:, dx, :3]
    canvas = np.where(inside[:, :, None], picture, canvas).astype(np.float32)

    if heatmap is not None:
        heat_rgba = heatmap_rgba(heatmap, cmap)
        hy, hvy = _axis_index(ys, geometry.scale_y, geometry.offset_y, ih)
        hx, hvx = _axis_index(xs, geometry.scale_x, geometry.offset_x, iw)
        layer = heat_rgba[hy][:, hx]
        alpha = layer[..., 3:4].astype(np.float32) / 255.0
        alpha *= (hvy[:, None] & hvx[None, :])[:, :, None]
        canvas = canvas * (1 - alpha) + layer[..., :3].astype(np.float32) * alpha
    rgba = np.empty((ch, cw, 4), dtype=np.uint8)
    rgba[..., :3] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    rgba[..., 3] = 255

    def to_canvas(edges: Sequence[float]) -> tuple[float, float, float, float]:
        y0, x0, y1, x1 = edges
        return (
            (y0 - y_min) * scale,
            (x0 - x_min) * scale,
            (y1 - y_min) * scale,
            (x1 - x_min) * scale,
        )

    shapes = [
        Shape(
            "rect", to_canvas(model_area), (235, 235, 235, 220), 1.0, dash=True, title="model input"
        )
    ]
    inner = (
        max(full[0], model_area[0], 0.0),
        max(full[1], model_area[1], 0.0),
        min(full[2], model_area[2], float(oh)),
        min(full[3], model_area[3], float(ow)),
    )
    width = max(2.0, round(target / 300))
    outer = to_canvas(full)
    shapes.append(Shape("rect", outer, _SHADOW, width + 2, dash=False))
    shapes.append(
        Shape("rect", outer, RF_COLOR, width, dash=True, title="theoretical receptive field")
    )
    if inner[0] < inner[2] and inner[1] < inner[3]:
        fill = (RF_COLOR[0], RF_COLOR[1], RF_COLOR[2], 40)
        shapes.append(
            Shape(
                "rect",
                to_canvas(inner),
                RF_COLOR,
                width,
                fill=fill,
                title="part inside the picture",
            )
        )
    cy = (unit_box.box[0] + unit_box.box[2]) / 2
    cx = (unit_box.box[1] + unit_box.box[3]) / 2
    py, px = geometry.point_to_original(cy, cx)
    py, px = (py + 0.5 - y_min) * scale, (px + 0.5 - x_min) * scale
    arm = max(6.0, 0.02 * max(ch, cw))
    for seg in ((py - arm, px, py + arm, px), (py, px - arm, py, px + arm)):
        shapes.append(Shape("line", seg, _SHADOW, width + 2))
        shapes.append(Shape("line", seg, RF_COLOR, width, title="centre"))
    return Figure(rgba, shapes, list(caption), dict(metadata or {}))
