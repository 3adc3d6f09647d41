"""Feature-map mosaics: every channel of a layer tiled into one near-square image with 1-pixel gaps.

Normalised per channel or per layer, optionally sorted by mean activation. :class:`MosaicLayout` maps
mosaic pixels to (channel, y, x) and back again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.errors import CnnvizError
from cnnviz.core.present.colormaps import RGBA, apply_colormap
from cnnviz.core.present.view import DIVERGING, NORMALIZATIONS

__all__ = [
    "FeatureMosaic",
    "MosaicLayout",
    "channel_means",
    "feature_mosaic",
    "grid_shape",
    "mosaic_layout",
    "normalize",
    "tile",
    "to_maps",
    "value_ranges",
]


def to_maps(activation: Any) -> np.ndarray:
    """A layer output -> float32 ``(C, H, W)`` NumPy array (a copy or a view; never modify it).

    Accepts a torch tensor or array with a batch of one: ``1xCxHxW`` -> ``CxHxW``; a vector ``1xN`` ->
    ``N`` tiles of 1x1; a ``1xLxD`` sequence -> one ``LxD`` map; higher ranks fold the extra axes into channels.
    Tuples of outputs use the first.
    """
    if isinstance(activation, (tuple, list)):
        if not activation:
            raise CnnvizError("this layer has no output to show")
        activation = activation[0]
    if hasattr(activation, "detach"):
        activation = activation.detach()
        if getattr(activation, "dtype", None) is not None and not activation.is_floating_point():
            activation = activation.float()
        activation = activation.float().cpu().numpy()
    arr = np.asarray(activation)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if arr.ndim >= 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 0:
        return arr.reshape(1, 1, 1)
    if arr.ndim == 1:
        return arr.reshape(-1, 1, 1)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        return arr
    return arr.reshape(-1, arr.shape[-2], arr.shape[-1])


def value_ranges(
    maps: np.ndarray, mode: str = "channel", *, symmetric: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(lo, hi)`` arrays (float64, length C) used to normalise ``maps`` (C, H, W).

    ``mode="layer"`` gives every channel the range of the whole layer. ``symmetric`` makes each range
    ``(-m, m)`` with ``m`` the largest absolute value, for diverging colormaps. Non-finite values are ignored.
    """
    if mode not in NORMALIZATIONS:
        raise CnnvizError(
            f"unknown normalisation '{mode}'; choose one of {', '.join(NORMALIZATIONS)}"
        )
    c = maps.shape[0]
    flat = maps.reshape(c, -1)
    finite = np.isfinite(flat)
    if not finite.all():
        lo = np.where(finite, flat, np.inf).min(axis=1).astype(np.float64)
        hi = np.where(finite, flat, -np.inf).max(axis=1).astype(np.float64)
        empty = ~finite.any(axis=1)
        lo[empty], hi[empty] = 0.0, 0.0
    elif flat.shape[1] == 0:
        lo = hi = np.zeros(c)
    else:
        lo = flat.min(axis=1).astype(np.float64)
        hi = flat.max(axis=1).astype(np.float64)
    if mode == "layer" and c:
        lo = np.full(c, lo.min())
        hi = np.full(c, hi.max())
    if symmetric:
        m = np.maximum(np.abs(lo), np.abs(hi))
        lo, hi = -m, m
    return lo, hi


def normalize(
    maps: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, constant: float = 0.0
) -> np.ndarray:
    """``(maps - lo) / (hi - lo)`` per channel as float32 in [0, 1]; NaN stays NaN.

    A channel whose range is empty (a constant map, e.g. a dead ReLU) becomes ``constant`` (0 = the colormap's
    low end; 0.5 for diverging maps, where the constant is zero).
    """
    lo = np.asarray(lo, dtype=np.float64).reshape(-1, 1, 1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1, 1, 1)
    span = hi - lo
    flat_channel = span <= 0
    scale = np.where(flat_channel, 0.0, 1.0 / np.where(flat_channel, 1.0, span)).astype(np.float32)
    out = (maps - lo.astype(np.float32)) * scale
    if flat_channel.any():
        out[np.broadcast_to(flat_channel, out.shape) & ~np.isnan(out)] = constant
    np.clip(out, 0.0, 1.0, out=out)
    return out


# --------------------------------------------------------------------------------------------------------------
# Mosaic layout


def grid_shape(
    n: int, tile_h: int = 1, tile_w: int = 1, *, gap: int = 1, aspect: float = 1.0
) -> tuple[int, int]:
    """``(rows, cols)`` that tile ``n`` maps of ``tile_h x tile_w`` (with ``gap`` pixels between) into the
    rectangle closest to ``aspect`` (width / height); ties go to fewer empty slots."""
    if n <= 0:
        return (0, 0)
    cols = np.arange(1, n + 1)
    rows = -(-n // cols)
    width = cols * tile_w + (cols - 1) * gap
    height = rows * tile_h + (rows - 1) * gap
    score = np.abs(np.log((width / height) / aspect)) + 1e-3 * (rows * cols - n) / n
    best = int(np.argmin(score))
    c = int(cols[best])
    return (int(-(-n // c)), c)


@dataclass(frozen=True)
class MosaicLayout:
    """Where each channel of a layer sits in a mosaic: ``order[slot]`` is the channel drawn in slot ``slot``
    (slots run row by row). Pixel coordinates are mosaic pixels; pixel ``i`` spans ``[i, i + 1)``."""

    channels: int
    rows: int
    cols: int
    tile_h: int
    tile_w: int
    gap: int
    order: tuple[int, ...]
    _slots: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._slots.update({ch: slot for slot, ch in enumerate(self.order)})

    @property
    def height(self) -> int:
        return max(0, self.rows * (self.tile_h + self.gap) - self.gap)

    @property
    def width(self) -> int:
        return max(0, self.cols * (self.tile_w + self.gap) - self.gap)

    def slot(self, channel: int) -> int:
        """The slot (row-major position) where ``channel`` is drawn."""
        return self._slots[int(channel)]

    def tile_origin(self, channel: int) -> tuple[int, int]:
        """Top-left mosaic pixel of ``channel``'s tile."""
        s = self.slot(channel)
        r, c = divmod(s, self.cols)
        return (r * (self.tile_h + self.gap), c * (self.tile_w + self.gap))

    def locate(self, y: float, x: float) -> tuple[int, int, int] | None:
        """Mosaic point ``(y, x)`` -> ``(channel, unit_y, unit_x)``, or None on a gap, an empty slot or outside."""
        if not (0 <= y < self.height and 0 <= x < self.width):
            return None
        yi, xi = int(math.floor(y)), int(math.floor(x))
        r, uy = divmod(yi, self.tile_h + self.gap)
        c, ux = divmod(xi, self.tile_w + self.gap)
        if uy >= self.tile_h or ux >= self.tile_w:
            return None
        s = r * self.cols + c
        if s >= len(self.order):
            return None
        return (self.order[s], uy, ux)

    def unit_rect(self, channel: int, y: int, x: int) -> tuple[int, int, int, int]:
        """Pixel-edge rectangle ``(y0, x0, y1, x1)`` of unit ``(y, x)`` of ``channel`` in the mosaic."""
        oy, ox = self.tile_origin(channel)
        return (oy + y, ox + x, oy + y + 1, ox + x + 1)


def mosaic_layout(
    channels: int,
    tile_h: int,
    tile_w: int,
    *,
    gap: int = 1,
    order: Sequence[int] | None = None,
    aspect: float = 1.0,
) -> MosaicLayout:
    """A near-square :class:`MosaicLayout` for ``channels`` tiles (``order`` permutes them; default 0..C-1)."""
    if order is None:
        order = range(channels)
    order = tuple(int(v) for v in order)
    if sorted(order) != list(range(channels)):
        raise ValueError("order must be a permutation of the channel indices")
    rows, cols = grid_shape(channels, tile_h, tile_w, gap=gap, aspect=aspect)
    return MosaicLayout(channels, rows, cols, tile_h, tile_w, gap, order)


def tile(values: np.ndarray, layout: MosaicLayout, fill: float = np.nan) -> np.ndarray:
    """Arrange ``values`` (C, H, W) into one ``layout.height x layout.width`` float32 image; gaps get ``fill``."""
    c, h, w = values.shape
    if (c, h, w) != (layout.channels, layout.tile_h, layout.tile_w):
        raise ValueError(f"values of shape {values.shape} do not match the layout")
    g = layout.gap
    slots = layout.rows * layout.cols
    block = np.full((slots, h + g, w + g), fill, dtype=np.float32)
    block[: len(layout.order), :h, :w] = values[list(layout.order)] if c else 0
    grid = block.reshape(layout.rows, layout.cols, h + g, w + g).transpose(0, 2, 1, 3)
    big = grid.reshape(layout.rows * (h + g), layout.cols * (w + g))
    return np.ascontiguousarray(big[: layout.height, : layout.width])


# --------------------------------------------------------------------------------------------------------------
# Feature mosaics


@dataclass
class FeatureMosaic:
    """One layer drawn as a single image.

    ``rgba`` (uint8, layout.height x layout.width x 4) is what the app shows; ``maps`` the (C, H, W) values;
    ``lo``/``hi`` the per-channel range each colour scale spans; ``channel`` is set when only that channel is shown.
    """

    rgba: np.ndarray
    layout: MosaicLayout
    maps: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    cmap: str
    norm: str
    channel: int | None = None

    def value_at(self, y: float, x: float) -> tuple[int, int, int, float] | None:
        """Mosaic point -> ``(channel, unit_y, unit_x, value)`` or None."""
        hit = self.layout.locate(y, x)
        if hit is None:
            return None
        ch, uy, ux = hit
        return (ch, uy, ux, float(self.maps[ch, uy, ux]))


def channel_means(maps: np.ndarray) -> np.ndarray:
    """Mean activation of each channel (non-finite values ignored)."""
    flat = maps.reshape(maps.shape[0], -1)
    if np.isfinite(flat).all():
        return flat.mean(axis=1, dtype=np.float64) if flat.shape[1] else np.zeros(maps.shape[0])
    return np.nanmean(np.where(np.isfinite(flat), flat, np.nan), axis=1)


def feature_mosaic(
    activation: Any,
    *,
    cmap: str = "viridis",
    norm: str = "channel",
    sort: bool = False,
    channel: int | None = None,
    gap: int | None = None,
    background: RGBA = (255, 255, 255, 255),
    aspect: float = 1.0,
) -> FeatureMosaic:
    """Draw every channel of a layer output as one near-square mosaic (or only ``channel``, enlarged).

    ``norm`` is ``"channel"`` or ``"layer"`` (a vector, 1x1 maps, is always per layer); ``sort`` orders tiles by mean activation, highest first; diverging
    colormaps use ranges symmetric about zero. ``gap`` defaults to 1 pixel (0 for 1x1 tiles, i.e. vectors).
    """
    maps = to_maps(activation)
    c, h, w = maps.shape
    if h * w == 1 and norm == "channel" and c > 1:
        # A vector's "maps" are single values: scaled each to its own range, every one would get the same
        # colour. They are compared across the layer, and ``norm`` records that.
        norm = "layer"
    symmetric = cmap in DIVERGING
    lo, hi = value_ranges(maps, norm, symmetric=symmetric)
    if gap is None:
        gap = 0 if h * w == 1 else 1
    if channel is not None:
        if not 0 <= channel < c:
            raise CnnvizError(f"channel {channel} is outside this layer, which has {c} channels")
        shown = maps[channel : channel + 1]
        part = slice(channel, channel + 1)
        normed = normalize(shown, lo[part], hi[part], constant=0.5 if symmetric else 0.0)
        rgba = apply_colormap(normed[0], cmap, background=background)
        # One visible slot holding the real channel, so locate() answers with the real channel index.
        first = (channel,) + tuple(i for i in range(c) if i != channel)
        return FeatureMosaic(
            rgba, MosaicLayout(c, 1, 1, h, w, gap, first), maps, lo, hi, cmap, norm, channel
        )
    order: Sequence[int] | None = None
    if sort and c > 1:
        order = np.argsort(-channel_means(maps), kind="stable").tolist()
    layout = mosaic_layout(c, h, w, gap=gap, order=order, aspect=aspect)
    normed = normalize(maps, lo, hi, constant=0.5 if symmetric else 0.0)
    rgba = apply_colormap(tile(normed, layout), cmap, background=background)
    return FeatureMosaic(rgba, layout, maps, lo, hi, cmap, norm, None)
