"""A unit's receptive field and a feature grid in words: figure captions, the status line, the CLI.

Boxes read "rows a–b, columns c–d" on every surface, and every surface says when a unit is gated
(it also sees the whole picture) or when its box was measured by gradient instead of computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnviz.core.text import dims, pair

__all__ = [
    "box_text",
    "grid_caption",
    "layer_title",
    "unit_caption",
    "unit_lines",
    "unit_notes",
    "unit_status",
]

GATE_NOTE = "+gate: also sees the whole picture"
MEASURED_NOTE = "measured by gradient"


def box_text(box: Sequence[int] | None) -> str:
    """``(top, left, bottom, right)`` -> ``rows top–bottom, columns left–right``; ``None`` -> ``none``."""
    if box is None:
        return "none"
    top, left, bottom, right = box
    return f"rows {top}–{bottom}, columns {left}–{right}"


def layer_title(layer: str) -> str:
    """A layer's name as a title: ``layer3`` says what it is; a bare index reads ``layer 3`` (or ``layer 0.1``)."""
    return layer if layer[:1].isalpha() else f"layer {layer}"


def _rsp(unit_box: Any) -> str:
    return f"r = {pair(unit_box.size)}   S = {pair(unit_box.stride)}   P = {pair(unit_box.padding)}"


def unit_notes(unit_box: Any) -> list[str]:
    """The notes every surface adds to a unit's box: the gate, and a box measured by gradient."""
    notes = []
    if getattr(unit_box, "gated", False):
        notes.append(GATE_NOTE)
    if getattr(unit_box, "measured", False):
        notes.append(MEASURED_NOTE)
    return notes


def unit_lines(unit_box: Any, *, picture: bool = False) -> list[str]:
    """A unit's receptive field as lines: the unit with r, S, P; its box on the model input (with the share in
    padding); its box in the original picture; then the notes.

    ``picture`` says a picture's geometry was given, so a unit without an ``image_box`` is entirely in padding.
    """
    y, x = unit_box.unit
    if unit_box.global_:
        lines = [f"unit (y={y}, x={x}) sees the whole input (global receptive field)"]
    else:
        lines = [f"unit (y={y}, x={x})   {_rsp(unit_box)}"]
    text = f"box on model input: {box_text(unit_box.box)}"
    if unit_box.padding_fraction > 0:
        text += f", {unit_box.padding_fraction:.0%} in padding"
    lines.append(text)
    if unit_box.image_box is not None:
        lines.append(f"box in original-image pixels: {box_text(unit_box.image_box)}")
    elif picture:
        lines.append("box entirely in padding")
    return lines + unit_notes(unit_box)


def unit_caption(unit_box: Any) -> list[str]:
    """Caption lines for a figure that shows a unit's receptive field."""
    return unit_lines(unit_box)


def unit_status(
    layer: str,
    unit: tuple[int, int],
    unit_box: Any | None,
    *,
    channel: int | None = None,
    note: str | None = None,
    picture: bool = True,
) -> str:
    """The one status line for a selected unit: layer, unit, r, S, P, the box in the picture and the notes.

    ``unit_box`` is ``None`` while the box is unknown; ``note`` then says why.
    """
    y, x = unit
    where = f", channel {channel}" if channel is not None else ""
    head = f"{layer}   unit (y {y}, x {x}{where})"
    if unit_box is None:
        return f"{head}   {note or ''}".rstrip()
    if unit_box.global_:
        return f"{head}   sees the whole input (global)"
    text = f"{head}   {_rsp(unit_box)}"
    if unit_box.image_box is not None:
        text += f"   box in picture: {box_text(unit_box.image_box)}"
    elif picture:
        text += "   box entirely in padding"
    if unit_box.padding_fraction > 0:
        text += f"   ({unit_box.padding_fraction:.0%} in padding)"
    for extra in unit_notes(unit_box):
        text += f"   {extra}" if extra == GATE_NOTE else f"   ({extra})"
    return text


def grid_caption(
    model_name: str,
    layer: str,
    layer_type: str | None,
    mosaic: Any,
    unit_box: Any | None = None,
    *,
    shape: Sequence[int] | None = None,
) -> list[str]:
    """Caption lines of an exported feature-map grid; with ``unit_box`` (the grid marks a unit) its r, S, P.

    ``shape`` is the layer's output shape without the batch (as the table shows it; a vector stays ``576``),
    by default the shape of the maps drawn.
    """
    c = mosaic.maps.shape[0]
    kind = f" ({layer_type})" if layer_type else ""
    what = f"channel {mosaic.channel} of {c}" if mosaic.channel is not None else f"{c} channels"
    lo = float(mosaic.lo.min()) if mosaic.lo.size else 0.0
    hi = float(mosaic.hi.max()) if mosaic.hi.size else 0.0
    norm = "per channel" if mosaic.norm == "channel" else "per layer"
    shown = dims(shape if shape is not None else mosaic.maps.shape)
    lines = [
        f"{model_name}   {layer_title(layer)}{kind}   output {shown}",
        f"{what}, colormap {mosaic.cmap}, normalised {norm}, values {lo:.4g} .. {hi:.4g}",
    ]
    if unit_box is not None:
        lines.append(unit_lines(unit_box)[0])
    return lines
