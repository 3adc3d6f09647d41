"""The exact per-axis map from model-input pixels back to original-picture pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL import Image

ORIGINAL_SIZE_KEY = "cnnviz.original_size"
"""``Image.info`` key set by :func:`open_image`: the original ``(H, W)`` after EXIF rotation."""

TO_ORIGINAL_KEY = "cnnviz.to_original"
"""``Image.info`` key set by :func:`open_image`: ``(factor, offset_y, offset_x)`` such that a
loaded pixel edge ``u`` lies at original edge ``u * factor + offset``."""


def _frac(value: Any) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


@dataclass(frozen=True)
class ImageGeometry:
    """Per-axis affine map from model-input pixel edges to original-image pixel edges.

    A model edge coordinate ``u`` (pixel ``i`` spans ``[i, i + 1)``) lies at original edge
    ``u * scale + offset``. ``input_size`` is the model input ``(H, W)``;
    ``original_size`` the picture's ``(H, W)`` after EXIF rotation, before any downscaling.
    Point methods use pixel-index coordinates (``(i, j)`` is the centre of pixel ``i, j``).
    """

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    scale_y: Fraction
    offset_y: Fraction
    scale_x: Fraction
    offset_x: Fraction

    def __post_init__(self) -> None:
        for name in ("scale_y", "offset_y", "scale_x", "offset_x"):
            object.__setattr__(self, name, _frac(getattr(self, name)))
        if self.scale_y <= 0 or self.scale_x <= 0:
            raise ValueError("ImageGeometry scales must be positive.")
        object.__setattr__(self, "original_size", tuple(int(v) for v in self.original_size))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @classmethod
    def identity(cls, height: int, width: int) -> ImageGeometry:
        """The geometry of a picture fed to the model as it is."""
        return cls(
            (height, width), (height, width), Fraction(1), Fraction(0), Fraction(1), Fraction(0)
        )

    def then(self, outer: ImageGeometry) -> ImageGeometry:
        """Compose: this map (into ``outer``'s input space), then ``outer``'s map."""
        return ImageGeometry(
            outer.original_size,
            self.input_size,
            self.scale_y * outer.scale_y,
            self.offset_y * outer.scale_y + outer.offset_y,
            self.scale_x * outer.scale_x,
            self.offset_x * outer.scale_x + outer.offset_x,
        )

    def _edges(
        self, box: tuple[int, int, int, int]
    ) -> tuple[Fraction, Fraction, Fraction, Fraction]:
        top, left, bottom, right = (int(v) for v in box)
        if bottom < top or right < left:
            raise ValueError(f"Box {tuple(box)} has bottom < top or right < left.")
        return (
            top * self.scale_y + self.offset_y,
            left * self.scale_x + self.offset_x,
            (bottom + 1) * self.scale_y + self.offset_y,
            (right + 1) * self.scale_x + self.offset_x,
        )

    def box_edges_to_original(
        self, box: tuple[int, int, int, int]
    ) -> tuple[float, float, float, float]:
        """Inclusive model box ``(top, left, bottom, right)`` -> unclipped original edges.

        Returns ``(y0, x0, y1, x1)`` in original pixel-edge coordinates, for drawing; a box
        reaching into padding reaches outside the picture.
        """
        y0, x0, y1, x1 = self._edges(box)
        return (float(y0), float(x0), float(y1), float(x1))

    def box_to_original(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        """Inclusive model box -> inclusive original pixel box, clipped to the picture.

        Every original pixel that overlaps the box (with positive area) is included. Returns
        None when nothing of the box lies on the picture (e.g. all of it is padding).
        """
        y0, x0, y1, x1 = self._edges(box)
        height, width = self.original_size
        top, left = max(math.floor(y0), 0), max(math.floor(x0), 0)
        bottom, right = min(math.ceil(y1) - 1, height - 1), min(math.ceil(x1) - 1, width - 1)
        if top > bottom or left > right:
            return None
        return (top, left, bottom, right)

    def box_edges_from_original(
        self, edges: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """Original edges ``(y0, x0, y1, x1)`` -> model-input edges (inverse of the edge map)."""
        y0, x0, y1, x1 = edges
        return (
            float((_frac(y0) - self.offset_y) / self.scale_y),
            float((_frac(x0) - self.offset_x) / self.scale_x),
            float((_frac(y1) - self.offset_y) / self.scale_y),
            float((_frac(x1) - self.offset_x) / self.scale_x),
        )

    def point_to_original(self, y: float, x: float) -> tuple[float, float]:
        """Model pixel-index point (``(i, j)`` = centre of pixel i, j) -> original pixel-index point."""
        half = Fraction(1, 2)
        return (
            float((_frac(y) + half) * self.scale_y + self.offset_y - half),
            float((_frac(x) + half) * self.scale_x + self.offset_x - half),
        )

    def point_from_original(self, y: float, x: float) -> tuple[float, float]:
        """Original pixel-index point -> model pixel-index point (inverse of point_to_original)."""
        half = Fraction(1, 2)
        return (
            float((_frac(y) + half - self.offset_y) / self.scale_y - half),
            float((_frac(x) + half - self.offset_x) / self.scale_x - half),
        )

    def pixel_from_original(self, y: float, x: float) -> tuple[int, int] | None:
        """The model pixel whose area holds original pixel-index point ``(y, x)``, or None."""
        half = Fraction(1, 2)
        i = math.floor((_frac(y) + half - self.offset_y) / self.scale_y)
        j = math.floor((_frac(x) + half - self.offset_x) / self.scale_x)
        if 0 <= i < self.input_size[0] and 0 <= j < self.input_size[1]:
            return (i, j)
        return None


def _geometry_of(image: Image.Image) -> ImageGeometry:
    """Loaded-picture pixels -> original pixels, from open_image's info keys (else identity)."""
    width, height = image.size
    original = image.info.get(ORIGINAL_SIZE_KEY)
    to_original = image.info.get(TO_ORIGINAL_KEY)
    if original is None or to_original is None:
        return ImageGeometry.identity(height, width)
    factor, offset_y, offset_x = to_original
    return ImageGeometry(
        tuple(original),
        (height, width),
        Fraction(factor),
        Fraction(offset_y),
        Fraction(factor),
        Fraction(offset_x),
    )
