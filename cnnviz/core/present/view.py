"""What a view shows: the colormap and normalisation choices, one checked ViewState, how a layer is named to
people, and the part of a receptive-field box that lies in padding.

Standard library only, so the command line can offer the same choices as the app without numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnnviz.core import text
from cnnviz.core.errors import InvalidArgumentError

__all__ = [
    "COLORMAPS",
    "DIVERGING",
    "NORMALIZATIONS",
    "Edges",
    "ViewState",
    "layer_caption",
    "layer_label",
    "padding_region",
]

Edges = tuple[float, float, float, float]
"""A rectangle as (top, left, bottom, right) edges."""

COLORMAPS: tuple[str, ...] = ("viridis", "magma", "inferno", "plasma", "gray", "coolwarm")
"""Colormap names, in the order menus list them."""

DIVERGING: frozenset[str] = frozenset({"coolwarm"})
"""Colormaps centred on zero: ranges become symmetric (-m..m) so zero is the neutral middle colour."""

NORMALIZATIONS: tuple[str, ...] = ("channel", "layer")
"""``channel``: each channel spans the full colour range; ``layer``: one range for the whole layer."""


@dataclass(frozen=True)
class ViewState:
    """The layer, channel (``None``: all channels as a mosaic), colormap, normalisation, channel
    order (``sort``: strongest first) and selected unit ``(y, x)`` of a feature-map view.

    Checked on creation: an unknown colormap or normalisation, a negative channel or a malformed unit
    raises :class:`InvalidArgumentError`.
    """

    layer: str | None = None
    channel: int | None = None
    cmap: str = "viridis"
    norm: str = "channel"
    sort: bool = False
    unit: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.cmap not in COLORMAPS:
            raise InvalidArgumentError(
                f"unknown colormap '{self.cmap}'; choose one of {', '.join(COLORMAPS)}"
            )
        if self.norm not in NORMALIZATIONS:
            raise InvalidArgumentError(
                f"unknown normalisation '{self.norm}'; choose one of {', '.join(NORMALIZATIONS)}"
            )
        if self.channel is not None and (
            isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0
        ):
            raise InvalidArgumentError(
                f"the channel must be a whole number from 0, not {self.channel!r}"
            )
        if self.unit is not None:
            unit = tuple(self.unit)
            if len(unit) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in unit
            ):
                raise InvalidArgumentError(
                    f"a unit is a (row, column) pair of whole numbers from 0, not {self.unit!r}"
                )
            object.__setattr__(self, "unit", (int(unit[0]), int(unit[1])))

    @property
    def symmetric(self) -> bool:
        """True when the colormap is diverging, so value ranges are centred on zero."""
        return self.cmap in DIVERGING

    def replace(self, **changes: Any) -> ViewState:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


def layer_caption(row: Any) -> str:
    """A layer's type with its main settings, e.g. ``Conv2d 3×3, 32``, ``Linear 120 → 10``, ``MaxPool2d 2×2``.

    ``row`` is a :class:`cnnviz.core.analysis.types.LayerRow` (only ``type``, ``kernel_size``, ``in_channels``
    and ``out_channels`` are read); an unknown row gives ``""``.
    """
    if row is None:
        return ""
    kind = str(getattr(row, "type", "") or "")
    kernel = getattr(row, "kernel_size", None)
    c_in, c_out = getattr(row, "in_channels", None), getattr(row, "out_channels", None)
    parts: list[str] = []
    if kernel is not None:
        k = tuple(kernel)
        parts.append(text.dims(k) if len(k) > 1 else text.num(k[0]))
    if kernel is not None and c_out is not None:
        return f"{kind} {parts[0]}, {c_out}"
    if kernel is None and c_in is not None and c_out is not None:
        return f"{kind} {c_in} → {c_out}"
    return " ".join([kind, *parts]).strip()


def layer_label(name: str, row: Any = None) -> str:
    """How a layer is named to people: bare indices of a Sequential (``4``) carry their type
    (``4 · Conv2d 3×3, 32``); named layers (``layer1.0.conv1``) read as they are."""
    last = name.split("@", 1)[0].rsplit(".", 1)[-1]
    if not last.isdigit():
        return name
    caption = layer_caption(row)
    return f"{name} · {caption}" if caption else name


def _subtract(rect: Edges, hole: Edges) -> list[Edges]:
    """``rect`` minus ``hole`` as at most four disjoint rectangles (top and bottom bands, then the sides)."""
    t, le, b, r = rect
    ht, hl, hb, hr = max(hole[0], t), max(hole[1], le), min(hole[2], b), min(hole[3], r)
    if ht >= hb or hl >= hr:
        return [rect] if t < b and le < r else []
    out = [(t, le, ht, r), (hb, le, b, r), (ht, le, hb, hl), (ht, hr, hb, r)]
    return [e for e in out if e[0] < e[2] and e[1] < e[3]]


def _intersect(a: Edges, b: Edges) -> Edges | None:
    t, le, bo, r = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (t, le, bo, r) if t < bo and le < r else None


def padding_region(box: Edges, content: Edges, clip: Edges | None = None) -> list[Edges]:
    """The part of a receptive-field ``box`` that lies in padding, as disjoint rectangles.

    ``content`` is where the model input holds picture pixels (the input tensor, less any letterbox border);
    everything of ``box`` outside it is zero padding or fill. ``clip`` (e.g. the visible view) cuts the result.
    """
    pieces = _subtract(box, content)
    if clip is None:
        return pieces
    return [p for p in (_intersect(piece, clip) for piece in pieces) if p is not None]
