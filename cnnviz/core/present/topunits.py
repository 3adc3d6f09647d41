"""Top units as pictures: per channel, a mosaic of the picture crops its top units see, and the JSON beside it.

Each crop is the unit's theoretical receptive field in the original picture (``TopUnit.edges``), scaled to a
common tile size with its aspect kept. The part of the field that lies outside the picture -- the padding the
convolutions add, letterbox bars -- is drawn as a grey hatched margin, so a crop at the border is never mistaken
for one of the picture's own grey areas. Optionally the unit's effective receptive field (the input gradient, see
:mod:`cnnviz.core.analysis.receptive.effective`) is laid over its crop as a heatmap.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cnnviz.core.analysis.dataset.topunits import TopUnit, TopUnits
from cnnviz.core.errors import CnnvizError, one_line
from cnnviz.core.fileio import atomic_write_bytes, write_json
from cnnviz.core.images.decode import open_image
from cnnviz.core.images.geometry import ImageGeometry, _geometry_of
from cnnviz.core.present.captions import layer_title
from cnnviz.core.present.colormaps import heatmap_rgba
from cnnviz.core.present.figures import Figure, _font, encode_png, render_figure
from cnnviz.core.text import num

__all__ = [
    "DEFAULT_TILE",
    "JSON_NAME",
    "channel_mosaic",
    "mosaic_name",
    "picture_crop",
    "top_units_lines",
    "write_top_units",
]

DEFAULT_TILE = 96
JSON_NAME = "top_units.json"

_GAP = 10
_LABEL = 11
_LINE = 14
_MARGIN = 8
_PAD_LIGHT = (176, 176, 176, 255)
_PAD_DARK = (128, 128, 128, 255)
_BACKGROUND = (255, 255, 255, 255)
_INK = (34, 34, 34, 255)
_PICTURE_CACHE = 16


class _Pictures:
    """The pictures the crops come from, decoded (bounded) once each while they are in use."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, tuple[Image.Image, ImageGeometry] | str] = OrderedDict()

    def get(self, path: str) -> tuple[Image.Image, ImageGeometry] | str:
        hit = self._cache.get(path)
        if hit is None:
            try:
                image = open_image(path)
                hit = (image.convert("RGB"), _geometry_of(image))
            except CnnvizError as exc:  # changed or removed since the run
                hit = one_line(exc)
            self._cache[path] = hit
            if len(self._cache) > _PICTURE_CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(path)
        return hit


def _tile_size(edges: Sequence[float], tile: int) -> tuple[int, int]:
    height, width = max(edges[2] - edges[0], 1e-9), max(edges[3] - edges[1], 1e-9)
    if height >= width:
        return tile, max(1, round(tile * width / height))
    return max(1, round(tile * height / width)), tile


def _hatch(shape: tuple[int, int]) -> np.ndarray:
    ys, xs = np.indices(shape)
    stripes = ((ys + xs) // 4) % 2 == 0
    out = np.empty((*shape, 4), dtype=np.uint8)
    out[...] = _PAD_LIGHT
    out[stripes] = _PAD_DARK
    return out


def picture_crop(
    entry: TopUnit,
    tile: int = DEFAULT_TILE,
    *,
    picture: tuple[Image.Image, ImageGeometry] | None = None,
    heatmap: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The crop of ``entry``'s field as uint8 RGBA (its longer side ``tile`` pixels) and its on-picture mask.

    ``picture``: the decoded picture and its map to original pixels (default: read from ``entry.image``).
    Pixels whose centre falls outside the picture are hatched grey (``mask`` False there). ``heatmap``: an
    effective-RF map over the model input (H x W), laid over the crop through ``entry.input_box``.
    """
    if picture is None:
        found = _Pictures().get(entry.image)
        if isinstance(found, str):
            raise CnnvizError(found)
        picture = found
    image, geometry = picture
    th, tw = _tile_size(entry.edges, tile)
    y0, x0, y1, x1 = entry.edges
    # original edges -> edges of the decoded (possibly reduced) picture
    dy0, dx0, dy1, dx1 = geometry.box_edges_from_original((y0, x0, y1, x1))
    upscale = th / max(dy1 - dy0, 1e-9)
    resample = Image.Resampling.NEAREST if upscale >= 3 else Image.Resampling.BILINEAR
    crop = image.transform(
        (tw, th), Image.Transform.EXTENT, (dx0, dy0, dx1, dy1), resample, fillcolor=(0, 0, 0)
    )
    rgba = np.dstack([np.asarray(crop), np.full((th, tw), 255, np.uint8)])
    # which tile pixels lie on the picture: their centres mapped back to original pixels
    height, width = entry.size
    ys = y0 + (np.arange(th) + 0.5) * (y1 - y0) / th
    xs = x0 + (np.arange(tw) + 0.5) * (x1 - x0) / tw
    mask = ((ys >= 0) & (ys < height))[:, None] & ((xs >= 0) & (xs < width))[None, :]
    if not mask.all():
        rgba[~mask] = _hatch((th, tw))[~mask]
    if heatmap is not None:
        top, left, bottom, right = entry.input_box
        heat = Image.fromarray(heatmap_rgba(heatmap), "RGBA").transform(
            (tw, th),
            Image.Transform.EXTENT,
            (left, top, right + 1, bottom + 1),
            Image.Resampling.NEAREST,
            fillcolor=(0, 0, 0, 0),
        )
        rgba = np.asarray(Image.alpha_composite(Image.fromarray(rgba, "RGBA"), heat)).copy()
    return rgba, mask


def _fit(text: str, width: int) -> str:
    font = _font(_LABEL)
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _unit_text(entry: TopUnit) -> str:
    return f"({entry.unit[0]}, {entry.unit[1]})" if len(entry.unit) == 2 else ""


def channel_mosaic(
    result: TopUnits,
    channel: int,
    *,
    tile: int = DEFAULT_TILE,
    heatmaps: Sequence[np.ndarray | None] | None = None,
    pictures: _Pictures | None = None,
) -> Figure:
    """The figure of one channel: its top units' crops in a grid, each captioned with value and picture.

    The caption band below names the layer, channel and run, and what the hatching and the field mean.
    """
    entries = result.channels[channel]
    pictures = pictures or _Pictures()
    n = max(1, len(entries))
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    cell_w, cell_h = tile, tile + 2 * _LINE + 2
    width = _MARGIN * 2 + cols * cell_w + (cols - 1) * _GAP
    height = _MARGIN * 2 + rows * cell_h + (rows - 1) * _GAP
    canvas = Image.new("RGBA", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(_LABEL)
    padded = False
    for i, entry in enumerate(entries):
        r, c = divmod(i, cols)
        oy, ox = _MARGIN + r * (cell_h + _GAP), _MARGIN + c * (cell_w + _GAP)
        found = pictures.get(entry.image)
        if isinstance(found, str):
            draw.rectangle([ox, oy, ox + tile - 1, oy + tile - 1], outline=_PAD_DARK)
            draw.text((ox + 4, oy + 4), _fit("unreadable now", tile - 8), fill=_INK, font=font)
        else:
            heat = heatmaps[i] if heatmaps is not None else None
            rgba, mask = picture_crop(entry, tile, picture=found, heatmap=heat)
            padded |= not bool(mask.all())
            th, tw = rgba.shape[:2]
            canvas.paste(
                Image.fromarray(rgba, "RGBA"), (ox + (tile - tw) // 2, oy + (tile - th) // 2)
            )
        value = f"{num(entry.value)}  {_unit_text(entry)}".rstrip()
        draw.text((ox, oy + tile + 2), _fit(value, tile), fill=_INK, font=font)
        name = os.path.basename(entry.image)
        draw.text((ox, oy + tile + 2 + _LINE), _fit(name, tile), fill=_INK, font=font)
    caption = [
        f"{layer_title(result.layer)}, channel {channel}: top {len(entries)} of "
        f"{result.images:,} picture(s){' (stopped early)' if result.cancelled else ''}",
    ]
    if result.field in ("global", "unknown"):
        caption.append(
            "each unit sees the whole picture: crops are whole pictures"
            if result.field == "global"
            else "receptive field not known: crops are whole pictures"
        )
    else:
        caption.append("crops: each unit's receptive field in its picture")
    if padded:
        caption.append("hatched grey: the field reaches outside the picture (padding)")
    if heatmaps is not None:
        caption.append("heatmap: effective receptive field |d unit / d input|")
    metadata = {
        "Software": "cnnviz",
        "cnnviz.model": result.model,
        "cnnviz.layer": result.layer,
        "cnnviz.channel": str(channel),
    }
    return Figure(image=np.asarray(canvas), caption=caption, metadata=metadata)


def mosaic_name(result: TopUnits, channel: int) -> str:
    """``channel_007.png``: zero-padded to the layer's channel count, so the files sort by channel."""
    digits = len(str(max(0, result.map_shape[0] - 1)))
    return f"channel_{channel:0{digits}d}.png"


def _erf_maps(
    model: Any, result: TopUnits, channel: int, preprocess: Any
) -> list[np.ndarray | None]:
    from cnnviz.core.analysis.receptive.effective import effective_receptive_field
    from cnnviz.core.images.load import load_image

    maps: list[np.ndarray | None] = []
    for entry in result.channels[channel]:
        if len(entry.unit) != 2:
            maps.append(None)
            continue
        try:
            loaded = load_image(entry.image, preprocess)
        except CnnvizError:
            maps.append(None)
            continue
        unit = (entry.unit[0], entry.unit[1])
        maps.append(effective_receptive_field(model, loaded, result.layer, unit, channel).heatmap)
    return maps


def write_top_units(
    result: TopUnits,
    out: str | os.PathLike[str],
    *,
    tile: int = DEFAULT_TILE,
    erf_model: Any = None,
    progress: Callable[[int, int], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Path]:
    """Write a PNG mosaic per channel and ``top_units.json`` into ``out`` (created); return the files.

    ``erf_model`` (the model the run used, from :func:`cnnviz.load_model`) lays each unit's effective receptive
    field over its crop. Every file is written atomically; when ``should_stop`` says stop, or a write fails,
    the files this call wrote are removed again and :class:`InterruptedError` (or the error) is raised, so a
    folder never holds half a result.
    """
    if isinstance(tile, bool) or not isinstance(tile, int) or not 8 <= tile <= 1024:
        raise CnnvizError(
            f"The tile size must be a whole number of pixels from 8 to 1024, not {tile!r}."
        )
    folder = Path(out).expanduser()
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pictures = _Pictures()
    preprocess = getattr(erf_model, "preprocess", None)
    if erf_model is not None and preprocess is None:
        raise CnnvizError(
            "The effective receptive field needs a model from cnnviz.load_model (its preprocessing)."
        )
    try:
        total = len(result.channels)
        for done, channel in enumerate(result.channels, 1):
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped before the mosaics were all written")
            heat = (
                _erf_maps(erf_model, result, channel, preprocess) if erf_model is not None else None
            )
            figure = channel_mosaic(result, channel, tile=tile, heatmaps=heat, pictures=pictures)
            path = folder / mosaic_name(result, channel)
            written.append(
                atomic_write_bytes(path, encode_png(render_figure(figure), figure.metadata))
            )
            if progress is not None:
                progress(done, total)
        written.append(write_json(folder / JSON_NAME, result.to_json()))
    except BaseException:
        for path in written:
            try:
                path.unlink()
            except OSError:
                pass
        if created:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    return written


def top_units_lines(result: TopUnits, *, per_channel: int = 3) -> list[str]:
    """The run in words for the command line: what was read, then each channel's best units."""
    shape = "×".join(str(s) for s in result.map_shape)
    lines = [
        f"{result.model}, {layer_title(result.layer)} ({shape}): top {result.k} unit(s) per channel over "
        f"{result.images:,} picture(s) in {result.seconds:.1f} s on {result.device}"
    ]
    if result.skipped:
        lines.append(
            f"  skipped {len(result.skipped)} unreadable file(s), e.g. {result.skipped[0][1]}"
        )
    lines.extend(f"  note: {note}" for note in result.notes)
    for channel, entries in result.channels.items():
        best = ", ".join(
            f"{num(e.value)} {os.path.basename(e.image)}{' ' + _unit_text(e) if e.unit else ''}"
            for e in entries[:per_channel]
        )
        more = " …" if len(entries) > per_channel else ""
        lines.append(f"  channel {channel}: {best}{more}")
    return lines
