"""Kernel presets (blur, sharpen, edges …) and kernels read from JSON or typed rows."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.core.errors import CnnvizError


@dataclass(frozen=True)
class KernelPreset:
    """A named kernel with a one-line description of what it does to a picture."""

    name: str
    title: str
    kernel: np.ndarray
    description: str


def _preset(name: str, title: str, rows: Any, description: str, scale: float = 1.0) -> KernelPreset:
    k = np.asarray(rows, dtype=np.float64) * scale
    k.setflags(write=False)
    return KernelPreset(name, title, k, description)


_GAUSS5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])

KERNEL_PRESETS: dict[str, KernelPreset] = {
    p.name: p
    for p in (
        _preset(
            "identity",
            "Identity",
            [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
            "Only the centre weight is 1, so every output pixel copies its input pixel.",
        ),
        _preset(
            "box_blur",
            "Box blur 3x3",
            np.ones((3, 3)),
            "Every weight is 1/9: each output pixel is the plain average of its 3x3 neighbourhood.",
            scale=1 / 9,
        ),
        _preset(
            "gaussian_3x3",
            "Gaussian blur 3x3",
            [[1, 2, 1], [2, 4, 2], [1, 2, 1]],
            "A weighted average (weights/16) that trusts near pixels more: a softer, rounder blur.",
            scale=1 / 16,
        ),
        _preset(
            "gaussian_5x5",
            "Gaussian blur 5x5",
            _GAUSS5,
            "The 5x5 binomial approximation of a Gaussian (weights/256): a stronger, smooth blur.",
            scale=1 / 256,
        ),
        _preset(
            "sharpen",
            "Sharpen",
            [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
            "The pixel plus its difference from its four neighbours: edges get more contrast.",
        ),
        _preset(
            "emboss",
            "Emboss",
            [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
            "Brightens edges facing the lower right and darkens those facing the upper left: a relief look.",
        ),
        _preset(
            "outline",
            "Outline",
            [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
            "The pixel minus its eight neighbours: zero on flat areas, strong on every outline.",
        ),
        _preset(
            "laplacian",
            "Laplacian",
            [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
            "The discrete second derivative: zero on flat areas and smooth ramps, large at edges and spots.",
        ),
        _preset(
            "sobel_x",
            "Sobel x",
            [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
            "Right minus left: positive where brightness rises to the right, so it finds vertical edges.",
        ),
        _preset(
            "sobel_y",
            "Sobel y",
            [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
            "Below minus above: positive where brightness rises downwards, so it finds horizontal edges.",
        ),
    )
}


@dataclass(frozen=True)
class RGBFilter:
    """A named C x K x K filter for colour pictures (slices R, G, B) whose effect can be predicted."""

    name: str
    title: str
    weights: np.ndarray
    description: str


def _rgb(name: str, title: str, r: Any, g: Any, b: Any, description: str) -> RGBFilter:
    w = np.stack([np.asarray(v, dtype=np.float64) for v in (r, g, b)])
    w.setflags(write=False)
    return RGBFilter(name, title, w, description)


def _centre(value: float) -> np.ndarray:
    k = np.zeros((3, 3))
    k[1, 1] = value
    return k


_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
_ZERO = np.zeros((3, 3))

RGB_FILTERS: dict[str, RGBFilter] = {
    f.name: f
    for f in (
        _rgb(
            "luminance",
            "Brightness",
            _centre(0.299),
            _centre(0.587),
            _centre(0.114),
            "Only the centre weights: 0.299 R + 0.587 G + 0.114 B, the brightness of each pixel.",
        ),
        _rgb(
            "red_minus_green",
            "Red minus green",
            _centre(1.0),
            _centre(-1.0),
            _ZERO,
            "Red minus green at the centre: positive on red, negative on green, zero on grey and blue.",
        ),
        _rgb(
            "blue_minus_yellow",
            "Blue minus yellow",
            _centre(-0.5),
            _centre(-0.5),
            _centre(1.0),
            "Blue minus the mean of red and green: positive on blue, negative on yellow, zero on grey.",
        ),
        _rgb(
            "brightness_edges",
            "Vertical edges (all channels)",
            _SOBEL_X / 3,
            _SOBEL_X / 3,
            _SOBEL_X / 3,
            "Sobel x / 3 on every channel: vertical edges of the brightness, whatever their colour.",
        ),
        _rgb(
            "red_edges",
            "Vertical edges of red only",
            _SOBEL_X,
            _ZERO,
            _ZERO,
            "Sobel x on the red slice, zeros elsewhere: edges where red changes; green and blue are ignored.",
        ),
        _rgb(
            "green_blur",
            "Green blur",
            _ZERO,
            np.ones((3, 3)) / 9,
            _ZERO,
            "A 3x3 average of the green channel alone: a blurred green picture; red and blue are ignored.",
        ),
    )
}

_ALIASES = {"blur": "box_blur", "box": "box_blur", "gaussian": "gaussian_3x3", "edge": "outline"}


def kernel_from_json(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a kernel from a JSON file holding a list of rows of numbers, e.g. ``[[0, -1, 0], [-1, 5, -1], ...]``.

    Any size from 1x1 up is accepted, even sizes included (see the module docstring for what "centre" means
    then). Raises CnnvizError for a missing file, invalid JSON, ragged rows, non-numbers or non-finite values.
    """
    from cnnviz.core.jsonio import read_json

    p = Path(path)
    data = read_json(
        p,
        f"Kernel file '{p}'",
        hint="write the kernel as a list of rows, e.g. [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]",
    )
    return kernel_from_rows(data, source=f"Kernel file '{p}'")


def kernel_from_rows(data: Any, source: str = "The kernel") -> np.ndarray:
    """Validate a list of rows of numbers and return it as a float64 array (see ``kernel_from_json``)."""
    example = "e.g. [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]"
    if not isinstance(data, list) or not data:
        raise CnnvizError(f"{source} must be a non-empty list of rows of numbers, {example}.")
    width = None
    for i, row in enumerate(data):
        if not isinstance(row, list) or not row:
            raise CnnvizError(
                f"{source}: row {i + 1} is not a non-empty list of numbers; {example}."
            )
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise CnnvizError(
                f"{source}: row {i + 1} has {len(row)} number{'s' if len(row) != 1 else ''} but row 1 has "
                f"{width}; "
                "all rows must have the same length."
            )
        for j, v in enumerate(row):
            # bool is an int subclass in Python, but `true` in a kernel is surely a mistake.
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise CnnvizError(
                    f"{source}: the value at row {i + 1}, column {j + 1} ({json.dumps(v)}) is not a number."
                )
            if not math.isfinite(v):
                raise CnnvizError(
                    f"{source}: the value at row {i + 1}, column {j + 1} is not finite; use ordinary numbers."
                )
    return np.asarray(data, dtype=np.float64)


def resolve_kernel(spec: str) -> tuple[str, np.ndarray]:
    """Turn a preset name or a ``.json`` path into ``(name, kernel)``; unknown names list the presets."""
    key = spec.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key in KERNEL_PRESETS:
        return key, KERNEL_PRESETS[key].kernel.copy()
    if spec.lower().endswith(".json") or Path(spec).is_file():
        return Path(spec).stem, kernel_from_json(spec)
    raise CnnvizError(
        f"Unknown kernel '{spec}'; use one of the presets ({', '.join(KERNEL_PRESETS)}) "
        "or a .json file holding a list of rows of numbers."
    )


def kernel_centre(kernel: np.ndarray) -> tuple[int, int]:
    """The cell ``(k_h // 2, k_w // 2)`` that lies on the output pixel's input pixel with padding ``k // 2``."""
    kh, kw = np.asarray(kernel).shape[-2:]
    return kh // 2, kw // 2
