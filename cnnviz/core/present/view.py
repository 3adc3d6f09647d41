"""What a feature-map view shows: the colormap and normalisation choices and one checked ViewState.

Standard library only, so the command line can offer the same choices as the app without numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnnviz.core.errors import InvalidArgumentError

__all__ = ["COLORMAPS", "DIVERGING", "NORMALIZATIONS", "ViewState"]

COLORMAPS: tuple[str, ...] = ("viridis", "magma", "inferno", "plasma", "gray", "coolwarm")
"""Colormap names, in the order menus list them."""

DIVERGING: frozenset[str] = frozenset({"coolwarm"})
"""Colormaps centred on zero: ranges become symmetric (-m..m) so zero is the neutral middle colour."""

NORMALIZATIONS: tuple[str, ...] = ("channel", "layer")
"""``channel``: each channel spans the full colour range; ``layer``: one range for the whole layer."""

# The layer a fresh view opens on: the first output of one of these, when it is a spatial map.


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
