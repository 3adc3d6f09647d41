"""Pictures of the data-set effective receptive field: the heatmap with its boxes, and the growth with depth.

:func:`erf_heatmap_figure` shows the averaged gradient magnitude of one unit (square-root colour scale, so the
weak tails stay visible), the theoretical receptive field (dashed, reaching into the padding on flat grey), and the
smallest centred squares holding 50% and 99% of the contribution. :func:`erf_growth_figure` plots, for every layer
with a spatial map in depth order, the area ratio of the theoretical field (its part inside the input) next to the
high-contribution area ratios of the effective field, on a logarithmic axis: the field grows with depth, and the
effective one stays well inside the theoretical one. Both return a :class:`~cnnviz.core.present.figures.Figure`,
written as PNG or SVG by :func:`~cnnviz.core.present.export.write_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cnnviz.core import text
from cnnviz.core.present.captions import box_text, layer_title
from cnnviz.core.present.colormaps import RGBA, apply_colormap, colormap_lut
from cnnviz.core.present.figures import RF_COLOR, Figure, Shape, _font

__all__ = ["SERIES_COLORS", "erf_growth_figure", "erf_heatmap_figure", "ratio_text"]

_OUTSIDE = (128, 128, 128)
_SHADOW: RGBA = (0, 0, 0, 150)
_SQUARE: RGBA = (255, 255, 255, 255)
_INK = (34, 34, 34, 255)
_GRID = (225, 225, 225, 255)
_AXIS = (120, 120, 120, 255)


def ratio_text(value: float | None) -> str:
    """An area ratio as a percentage with three significant digits (``1.15%``, ``46.0%``, ``100%``)."""
    if value is None:
        return "–"
    pct = 100.0 * value
    if pct >= 99.95:
        return "100%"
    return f"{pct:#.3g}%" if pct >= 0.01 else f"{pct:#.2g}%"


def _shares(result: Any) -> str:
    return ", ".join(f"{round(100 * t):d}% → {ratio_text(r)}" for t, r in result.area_ratio.items())


def erf_heatmap_figure(
    result: Any,
    *,
    cmap: str = "inferno",
    target: int = 512,
    model_name: str | None = None,
) -> Figure:
    """The averaged contribution map of a :class:`~cnnviz.core.analysis.dataset.erf.DatasetERF`, upscaled by a
    whole factor to about ``target`` pixels, with the theoretical box, the 50% and 99% squares and the centre."""
    heat = np.asarray(result.heatmap, dtype=np.float64)
    h, w = heat.shape
    box = result.theoretical_box
    y0, x0, y1, x1 = 0, 0, h, w  # the extent shown, in input pixel edges
    if box is not None:
        y0, x0 = min(y0, box[0]), min(x0, box[1])
        y1, x1 = max(y1, box[2] + 1), max(x1, box[3] + 1)
    margin = max(1, round(0.03 * max(y1 - y0, x1 - x0)))
    y0, x0, y1, x1 = y0 - margin, x0 - margin, y1 + margin, x1 + margin
    scale = max(1, min(64, target // max(y1 - y0, x1 - x0)))
    peak = float(heat.max())
    colours = apply_colormap(np.sqrt(heat / peak) if peak > 0 else heat, cmap)
    canvas = np.empty((y1 - y0, x1 - x0, 4), dtype=np.uint8)
    canvas[..., :3] = _OUTSIDE
    canvas[..., 3] = 255
    canvas[-y0 : -y0 + h, -x0 : -x0 + w] = colours
    canvas[..., 3] = 255
    image = np.repeat(np.repeat(canvas, scale, axis=0), scale, axis=1)

    def edges(
        top: float, left: float, bottom: float, right: float
    ) -> tuple[float, float, float, float]:
        """Inclusive input pixels -> figure pixel edges."""
        return (
            (top - y0) * scale,
            (left - x0) * scale,
            (bottom + 1 - y0) * scale,
            (right + 1 - x0) * scale,
        )

    width = max(2.0, round(scale * max(y1 - y0, x1 - x0) / 300))
    shapes = [
        Shape(
            "rect", edges(0, 0, h - 1, w - 1), (235, 235, 235, 220), 1.0, dash=True, title="input"
        )
    ]
    cy, cx = result.centre
    for t, style in ((0.99, True), (0.5, False)):
        side = result.side.get(t)
        if side is None:
            continue
        r = (side - 1) // 2
        sq = edges(max(cy - r, 0), max(cx - r, 0), min(cy + r, h - 1), min(cx + r, w - 1))
        shapes.append(Shape("rect", sq, _SHADOW, width + 2))
        shapes.append(
            Shape(
                "rect",
                sq,
                _SQUARE,
                width,
                dash=style,
                title=f"{round(100 * t)}% of the contribution",
            )
        )
    if box is not None:
        outer = edges(*box)
        shapes.append(Shape("rect", outer, _SHADOW, width + 2))
        shapes.append(
            Shape("rect", outer, RF_COLOR, width, dash=True, title="theoretical receptive field")
        )
    py, px = (cy - y0 + 0.5) * scale, (cx - x0 + 0.5) * scale
    arm = max(5.0, 0.02 * image.shape[0])
    for seg in ((py - arm, px, py + arm, px), (py, px - arm, py, px + arm)):
        shapes.append(Shape("line", seg, _SHADOW, width + 2))
        shapes.append(Shape("line", seg, RF_COLOR, width, title="centre"))

    name = f"{model_name}, " if model_name else ""
    kind = (
        f" ({result.layer_type})" if result.layer_type and result.layer_type != result.layer else ""
    )
    theory = (
        f"theoretical field (orange, dashed): {box_text(box)}, {ratio_text(result.theoretical_ratio)} of the input"
        if box is not None
        else "theoretical field: not derived for this layer"
    )
    caption = [
        f"{name}{layer_title(result.layer)}{kind}, unit (y={result.unit[0]}, x={result.unit[1]}) of its "
        f"{text.dims(result.map_size)} map, averaged over {result.images} picture{'s' * (result.images != 1)}",
        f"high-contribution area ratio: {_shares(result)}",
        f"white squares: 50% (solid) and 99% (dashed) of the contribution; {theory}",
        f"colour: mean |d unit / d input| summed over colour channels, square-root scale, 0 to {peak:.3g}",
    ]
    meta = {
        "Title": f"effective receptive field of {result.layer}",
        "cnnviz.layer": result.layer,
        "cnnviz.unit": f"{result.unit[0]},{result.unit[1]}",
        "cnnviz.images": str(result.images),
        "cnnviz.area_ratio": ", ".join(f"{t:g}: {r:.6f}" for t, r in result.area_ratio.items()),
    }
    if box is not None:
        meta["cnnviz.box"] = str(list(box))
    return Figure(image, shapes, caption, meta)


def _series_colors() -> dict[str, tuple[int, int, int, int]]:
    lut = colormap_lut("viridis")
    picks = {"0.99": 20, "0.5": 110, "0.3": 165, "0.2": 215}
    out = {k: (int(lut[i][0]), int(lut[i][1]), int(lut[i][2]), 255) for k, i in picks.items()}
    out["theoretical"] = RF_COLOR
    return out


SERIES_COLORS = _series_colors()
"""Line colours of the growth plot: the theoretical field in the receptive-field orange, the shares in viridis."""


def _rotated_label(label: str, size: int = 11) -> Image.Image:
    font = _font(size)
    w = int(math.ceil(font.getlength(label))) + 2
    im = Image.new("RGBA", (w, size + 5), (255, 255, 255, 0))
    ImageDraw.Draw(im).text((0, 0), label, fill=_INK, font=font)
    return im.rotate(90, expand=True)


def _marker(draw: ImageDraw.ImageDraw, x: float, y: float, colour: RGBA, square: bool) -> None:
    r = 3.5
    if (
        square
    ):  # hollow and larger: the theoretical points stay visible where an effective line meets them
        draw.rectangle([x - 5, y - 5, x + 5, y + 5], outline=colour, width=2)
    else:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(255, 255, 255, 255))


def _segment(
    draw: ImageDraw.ImageDraw,
    xa: float,
    ya: float,
    xb: float,
    yb: float,
    colour: RGBA,
    *,
    dashed: bool,
) -> None:
    length = math.hypot(xb - xa, yb - ya)
    if not dashed or length == 0:
        draw.line([(xa, ya), (xb, yb)], fill=colour, width=2)
        return
    dx, dy = (xb - xa) / length, (yb - ya) / length
    pos = 0.0
    while pos < length:
        end = min(pos + 6.0, length)
        draw.line(
            [(xa + dx * pos, ya + dy * pos), (xa + dx * end, ya + dy * end)], fill=colour, width=2
        )
        pos = end + 4.0


def erf_growth_figure(
    growth: Any,
    *,
    model_name: str | None = None,
    size: tuple[int, int] = (1000, 560),
    shares: Sequence[float] = (0.99, 0.5, 0.2),
) -> Figure:
    """The area ratio against depth: the theoretical field and the effective field at ``shares`` of the
    contribution, one point per layer with a spatial map (an :class:`~cnnviz.core.analysis.dataset.erf.ERFGrowth`)."""
    points = list(growth.points)
    width, height = size
    labels = [layer_title(p.layer) + (f" {p.layer_type}" if p.layer_type else "") for p in points]
    label_h = max([_rotated_label(lb).height for lb in labels] or [0])
    left, right, top = 72, 24, 40
    bottom = min(label_h, 170) + 40
    plot_w, plot_h = width - left - right, height - top - bottom
    im = Image.new("RGBA", (width, height), (255, 255, 255, 255))
    draw = ImageDraw.Draw(im)
    font, small = _font(13), _font(11)

    theory = [p.theoretical_square[1] if p.theoretical_square else None for p in points]
    values = [v for v in theory if v]
    values += [p.area_ratio[t] for p in points for t in shares if p.area_ratio.get(t)]
    lo_exp = math.floor(math.log10(min(values))) if values else -3
    lo_exp = min(lo_exp, -1)

    def ypos(v: float) -> float:
        return top + plot_h * (0 - math.log10(max(v, 10.0**lo_exp))) / (0 - lo_exp)

    n = len(points)

    def xpos(i: int) -> float:
        return left + plot_w * ((i + 0.5) / n if n else 0.5)

    for e in range(lo_exp, 1):
        for m in (1, 2, 5) if e < 0 else (1,):
            v = m * 10.0**e
            if v > 1:
                continue
            y = ypos(v)
            draw.line(
                [(left, y), (left + plot_w, y)], fill=_GRID if m == 1 else (242, 242, 242, 255)
            )
            if m == 1 or plot_h / (-lo_exp) > 90:
                tick = ratio_text(v)
                draw.text((left - 6 - font.getlength(tick), y - 8), tick, fill=_INK, font=small)
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=_AXIS)
    every = max(1, math.ceil(n * 14 / max(plot_w, 1)))
    for i, lb in enumerate(labels):
        if i % every and i != n - 1:
            continue
        x = xpos(i)
        draw.line([(x, top + plot_h), (x, top + plot_h + 4)], fill=_AXIS)
        rot = _rotated_label(lb)
        crop = rot.crop((0, 0, rot.width, min(rot.height, 170)))
        im.alpha_composite(crop, (int(round(x - crop.width / 2)), top + plot_h + 6))
    colours = SERIES_COLORS
    series: list[tuple[str, str, list[float | None], bool]] = [
        ("theoretical", "theoretical field (its centred square, inside the input)", theory, True)
    ]
    for t in shares:
        series.append((f"{t:g}", f"effective, {round(100 * t)}% of the contribution",
                       [p.area_ratio.get(t) for p in points], False))  # fmt: skip
    for key, _label, vals, square in [*series[1:], series[0]]:  # the theoretical field on top
        colour = colours.get(key, _INK)
        xy = [(xpos(i), ypos(v)) for i, v in enumerate(vals) if v]
        for (xa, ya), (xb, yb) in zip(xy, xy[1:], strict=False):
            _segment(draw, xa, ya, xb, yb, colour, dashed=square)
        for x, y in xy:
            _marker(draw, x, y, colour, square)
    # legend, top left inside the plot (the ratios start small there)
    lx, ly = left + 12, top + 10
    legend_w = max(font.getlength(s[1]) for s in series) + 40
    draw.rectangle(
        [lx - 6, ly - 6, lx + legend_w, ly + 20 * len(series)],
        fill=(255, 255, 255, 235),
        outline=_GRID,
    )
    for j, (key, label, _vals, square) in enumerate(series):
        colour = colours.get(key, _INK)
        y = ly + 20 * j + 7
        _segment(draw, lx, y, lx + 22, y, colour, dashed=square)
        _marker(draw, lx + 11, y, colour, square)
        draw.text((lx + 30, y - 8), label, fill=_INK, font=font)
    title = "How the receptive field grows with depth" + (f": {model_name}" if model_name else "")
    draw.text((left, 12), title, fill=_INK, font=_font(15))
    axis = "area ratio (share of the input)"
    rot = _rotated_label(axis, 12)
    im.alpha_composite(rot, (8, int(top + plot_h / 2 - rot.height / 2)))
    shape = text.dims(growth.input_shape[1:])
    caption = [
        f"the centre unit of each layer with a spatial map, averaged over {growth.images} "
        f"picture{'s' * (growth.images != 1)} ({shape} input); logarithmic axis",
        "effective: the smallest centred square (odd side, clipped to the input) holding that share of the "
        "input-gradient magnitude;",
        "theoretical: the smallest such square holding the whole theoretical field",
    ]
    if growth.silent:
        caption.append(
            f"not shown (zero gradient on every picture): {', '.join(growth.silent[:6])}"
            + (f" and {len(growth.silent) - 6} more" if len(growth.silent) > 6 else "")
        )
    meta = {"Title": title, "cnnviz.images": str(growth.images), "cnnviz.layers": str(n)}
    return Figure(np.asarray(im).copy(), [], caption, meta)
