"""The notebook API: :func:`summarize` returns a table that renders itself, :func:`show` a picture.

Both are what ``cnnviz.summarize`` and ``cnnviz.show`` are. A :class:`SummaryTable` *is* the
:class:`~cnnviz.core.analysis.types.Summary` of :mod:`cnnviz.core.analysis.summary` (a subclass with no
new data), adding the renderings Jupyter asks for: ``_repr_html_`` (the command line's table as HTML) and
``to_pandas()``. The renderings live here, above the analysis, so that the analysis keeps knowing nothing
of how it is shown. A :class:`ShownFigure` holds the very figure ``File > Export`` and
:func:`~cnnviz.core.present.export.export_view` write (:func:`~cnnviz.core.present.export.view_figure`),
so a notebook, the app and an exported file show the same pixels.
"""

from __future__ import annotations

import dataclasses
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cnnviz.core import text
from cnnviz.core.analysis.capture import capture
from cnnviz.core.analysis.receptive import ReceptiveFieldIndex, effective_receptive_field
from cnnviz.core.analysis.summary import summarize as analyse
from cnnviz.core.analysis.types import Summary
from cnnviz.core.errors import CnnvizError, InvalidArgumentError, LayerError
from cnnviz.core.images import ImageGeometry, LoadedImage, load_image
from cnnviz.core.models.loaded import check_loaded_model
from cnnviz.core.present import tables
from cnnviz.core.present.export import ExportSnapshot, view_figure, write_figure
from cnnviz.core.present.figures import Figure, encode_png, render_figure
from cnnviz.core.present.html import summary_html
from cnnviz.core.present.mosaic import to_maps
from cnnviz.core.present.view import ViewState
from cnnviz.core.validate import (
    check_channel,
    check_flag,
    check_input,
    check_layer_name,
    check_unit,
)

if TYPE_CHECKING:
    import pandas

__all__ = ["ShownFigure", "SummaryTable", "show", "summarize"]


class SummaryTable(Summary):
    """A :class:`~cnnviz.core.analysis.types.Summary` that shows itself in a notebook.

    ``_repr_html_`` is the table of ``cnnviz summary`` (same columns and cells, a totals row, the note
    when the analysis fell back); ``str()`` is the command line's text table; ``to_pandas()`` one row per
    layer with the CSV export's columns.
    """

    @classmethod
    def of(cls, summary: Summary) -> SummaryTable:
        """The same table (the rows are shared, not copied)."""
        values = {f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)}
        return cls(**values)

    def __repr__(self) -> str:
        return (
            f"<SummaryTable {self.model_name}: {text.count(len(self.rows))} layers, "
            f"input {text.dims(self.input_shape)}, {text.count(self.total_params)} parameters, "
            f"{text.count(self.total_macs)} MACs>"
        )

    def __str__(self) -> str:
        return tables.to_text(self)

    def to_html(self) -> str:
        """The table as an HTML fragment (what a notebook shows)."""
        return summary_html(self)

    def _repr_html_(self) -> str:
        return summary_html(self)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per layer, columns as in the CSV export.

        ``params``, ``trainable_params``, ``macs`` and ``depth`` are integers; shapes and layer geometry
        are the table's text (``64×56×56``, ``3``, ``7×1``), missing where a layer has none. Needs pandas.
        """
        try:
            import pandas as pd
        except ImportError:
            raise CnnvizError(
                "to_pandas needs pandas, which is not installed; install it with "
                "`pip install pandas` (or `pip install cnnviz[notebook]`)"
            ) from None
        records = [
            (
                r.name,
                r.type,
                r.output_shape or None,
                r.params,
                r.trainable,
                r.macs,
                r.kernel or None,
                r.stride or None,
                r.padding or None,
                r.rf_size or None,
                r.rf_stride or None,
                r.rf_padding or None,
                r.depth,
            )
            for r in tables.table_rows(self)
        ]
        frame = pd.DataFrame.from_records(records, columns=list(tables.CSV_HEADERS))
        for column in ("params", "trainable_params", "macs", "depth"):
            frame[column] = frame[column].astype("int64")
        return frame


def summarize(
    model: Any,
    input_shape: tuple[int, ...] | list[int] | None = None,
    *,
    receptive_fields: bool = True,
    name: str | None = None,
) -> SummaryTable:
    """The per-layer table of ``model`` (see :func:`cnnviz.core.analysis.summary.summarize`), which
    renders as HTML in a notebook and converts with ``to_pandas()``."""
    return SummaryTable.of(
        analyse(model, input_shape, receptive_fields=receptive_fields, name=name)
    )


class ShownFigure:
    """A picture of one layer, as the app exports it: ``_repr_png_`` for notebooks, ``save`` for files.

    ``figure`` is the :class:`~cnnviz.core.present.figures.Figure` (raster, marks, caption); ``layer``,
    ``channel`` and ``unit`` what it shows; ``box`` the unit's receptive field
    (:class:`~cnnviz.core.analysis.receptive.UnitBox`) when a unit is shown.
    """

    def __init__(
        self,
        figure: Figure,
        *,
        layer: str,
        channel: int | None = None,
        unit: tuple[int, int] | None = None,
        box: Any = None,
    ) -> None:
        self.figure = figure
        self.layer = layer
        self.channel = channel
        self.unit = unit
        self.box = box

    @cached_property
    def rgba(self) -> np.ndarray:
        """The rendered picture, uint8 height × width × 4, caption included."""
        return render_figure(self.figure)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels of the rendered picture, as PIL gives sizes."""
        h, w = self.rgba.shape[:2]
        return (int(w), int(h))

    def to_png(self) -> bytes:
        """The picture as PNG bytes (with the export's text chunks: model, layer, shape, unit)."""
        return encode_png(self.rgba, dict(self.figure.metadata))

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the picture as ``.png`` or ``.svg`` (by the suffix), atomically; returns the path."""
        return write_figure(path, self.figure)

    def __repr__(self) -> str:
        what = f"channel {self.channel}" if self.channel is not None else "all channels"
        if self.unit is not None:
            what = f"receptive field of unit ({self.unit[0]}, {self.unit[1]})"
        w, h = self.size
        return f"<ShownFigure {self.layer}: {what}, {w}×{h} pixels>"


def _picture(model: Any, image: Any) -> Any:
    """``image`` as a LoadedImage for ``model``: loaded ones pass, files and PIL pictures are read with the
    model's preprocessing, a tensor is taken as the model input itself (its own original picture)."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, torch.Tensor):
        tensor = check_input(image, "The picture", floating=True)
        if tensor.dim() == 4:
            if tensor.shape[0] != 1:
                raise InvalidArgumentError(
                    f"show draws one picture, not a batch of {tensor.shape[0]}; pass x[0:1]"
                )
            tensor = tensor[0]
        tensor = tensor.detach().to("cpu", torch.float32)
        pre = model.preprocess
        c, h, w = (int(v) for v in tensor.shape)
        mean = torch.as_tensor(pre.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.as_tensor(pre.std, dtype=torch.float32).view(-1, 1, 1)
        if mean.shape[0] not in (1, c) or std.shape[0] not in (1, c):
            mean, std = torch.zeros(1, 1, 1), torch.ones(1, 1, 1)
        # undo the model's normalisation, so the picture reads as the model was given it
        pixels = ((tensor * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
        arr = pixels.permute(1, 2, 0).numpy()
        # colour for RGB inputs; any other channel count reads as the mean, in gray
        display = arr if c == 3 else arr.mean(axis=2).round().astype(np.uint8)
        identity = ImageGeometry.identity(h, w)
        return LoadedImage(
            None, np.ascontiguousarray(display), 1.0, tensor.unsqueeze(0), arr, identity,
            False, pre, identity,
        )  # fmt: skip
    return load_image(image, model.preprocess)


def show(
    model: Any,
    image: Any,
    layer: str,
    channel: int | None = None,
    unit: tuple[int, int] | None = None,
    *,
    erf: bool = False,
    cmap: str = "viridis",
    norm: str = "channel",
    sort: bool = False,
) -> ShownFigure:
    """A picture of ``layer`` for ``image``, as the app shows and exports it.

    ``model`` comes from :func:`cnnviz.load_model`; ``image`` is a file path, bytes, a PIL picture, a
    loaded image or a model-input tensor (C×H×W). Without ``unit``: the mosaic of the layer's channels
    (only ``channel`` when given). With ``unit`` ``(y, x)``: that unit's receptive field drawn on the
    original picture, plus with ``erf=True`` its effective receptive field as a heat map (the gradient of
    ``channel``, or of all channels summed). ``cmap``, ``norm`` and ``sort`` are the view's choices.

    Raises :class:`~cnnviz.core.errors.LayerError` for an unknown layer (naming the closest), a channel
    or unit outside the layer, and :class:`~cnnviz.core.errors.InvalidArgumentError` for bad choices.
    """
    model = check_loaded_model(model)
    layer = check_layer_name(layer)
    channel = check_channel(channel)
    shown_unit = check_unit(unit) if unit is not None else None
    erf = check_flag(erf, "erf")
    sort = check_flag(sort, "sort")
    view = ViewState(layer=layer, channel=channel, cmap=cmap, norm=norm, sort=sort, unit=shown_unit)
    if erf and shown_unit is None:
        raise InvalidArgumentError(
            "the effective receptive field belongs to one unit; give unit=(y, x) with erf=True"
        )
    picture = _picture(model, image)
    activation = capture(model, picture, layers=[layer])[layer]
    channels = int(to_maps(activation).shape[0])
    if channel is not None and channel >= channels:
        raise LayerError(
            f"channel {channel} is outside layer '{layer}', which has {channels} "
            f"channel{'s' if channels != 1 else ''} (0 to {channels - 1})"
        )
    box = heatmap = None
    if shown_unit is not None:
        c, h, w = (int(v) for v in picture.tensor.shape[1:])
        box = ReceptiveFieldIndex(model, (c, h, w)).box(layer, shown_unit, picture.geometry)
        if erf:
            heatmap = effective_receptive_field(
                model, picture, layer, shown_unit, channel=channel
            ).heatmap
    snapshot = ExportSnapshot(
        model_name=model.name,
        layer=layer,
        view=view,
        layer_type=_layer_type(model, layer),
        activation=activation,
        box=box,
        unit_channel=channel if shown_unit is not None else None,
        erf_heatmap=heatmap,
        image=picture,
    )
    kind = "rf_png" if box is not None else ("channel_png" if channel is not None else "grid_png")
    return ShownFigure(
        view_figure(kind, snapshot), layer=layer, channel=channel, unit=shown_unit, box=box
    )


def _layer_type(model: Any, layer: str) -> str | None:
    """The layer's type for the caption (``Conv2d``), or None when the table cannot be made."""
    try:
        return analyse(model, receptive_fields=False).row(layer).type
    except (CnnvizError, KeyError):
        return None
