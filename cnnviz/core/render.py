"""Temporary: the old path of the drawing code; imports move to :mod:`cnnviz.core.present`
(``colormaps``, ``mosaic``, ``figures``, ``captions``, ``view``) and :mod:`cnnviz.core.text`."""

from __future__ import annotations

from cnnviz.core.present.captions import unit_caption
from cnnviz.core.present.colormaps import RGBA, apply_colormap, colormap_lut, heatmap_rgba
from cnnviz.core.present.figures import (
    HIGHLIGHT,
    RF_COLOR,
    Figure,
    Shape,
    encode_png,
    feature_grid_figure,
    figure_to_svg,
    render_figure,
    rf_overlay_figure,
)
from cnnviz.core.present.mosaic import (
    FeatureMosaic,
    MosaicLayout,
    channel_means,
    feature_mosaic,
    grid_shape,
    mosaic_layout,
    normalize,
    tile,
    to_maps,
    value_ranges,
)
from cnnviz.core.present.view import COLORMAPS, DIVERGING, NORMALIZATIONS
from cnnviz.core.text import num as _fmt_num
from cnnviz.core.text import shape as shape_text

__all__ = [
    "COLORMAPS",
    "DIVERGING",
    "HIGHLIGHT",
    "NORMALIZATIONS",
    "RF_COLOR",
    "RGBA",
    "FeatureMosaic",
    "Figure",
    "MosaicLayout",
    "Shape",
    "_fmt_num",
    "apply_colormap",
    "channel_means",
    "colormap_lut",
    "encode_png",
    "feature_grid_figure",
    "feature_mosaic",
    "figure_to_svg",
    "grid_shape",
    "heatmap_rgba",
    "mosaic_layout",
    "normalize",
    "render_figure",
    "rf_overlay_figure",
    "shape_text",
    "tile",
    "to_maps",
    "unit_caption",
    "value_ranges",
]
