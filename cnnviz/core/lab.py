"""The convolution lab: small, exact computations behind the lessons on convolution.

Every number here comes from torch's own operators (``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d``) or from
the closed formulas that describe them, so a lesson never shows something a real layer would not do.

Conventions
-----------
* Images and maps are NumPy arrays ``H x W`` (one channel) or ``H x W x C`` (channels last, as pictures are
  stored); computations run in float64 on the values as given. The GUI scales uint8 pictures to 0..1 first; the CLI
  works on 0..255.
* ``kernel[u, v]`` is row ``u``, column ``v``. Deep-learning layers compute *cross-correlation*:
  ``out[i, j] = sum_uv in[i*s + u*d - p, j*s + v*d - p] * kernel[u, v]``; ``flip=True`` turns it into the true
  (mathematical) convolution by rotating the kernel 180 degrees first (``torch.flip``).
* The centre of a kernel is cell ``(k_h // 2, k_w // 2)``: with padding ``k // 2`` that cell lies on the input
  pixel with the output pixel's index. Even sizes are allowed; they have no middle cell, so this "centre" is the
  cell just below and right of the geometric middle, and padding ``k // 2`` makes the output one pixel larger.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.core.errors import CnnvizError
from cnnviz.core.summary_types import LayerRow, Summary

IntPair = int | tuple[int, int]
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
DISPLAY_RULES = ("auto", "clip", "abs", "signed", "stretch")

# --------------------------------------------------------------------------------------------------------------
# Kernel presets


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

_ALIASES = {"blur": "box_blur", "box": "box_blur", "gaussian": "gaussian_3x3", "edge": "outline"}


def preset_names() -> list[str]:
    """The preset names in display order."""
    return list(KERNEL_PRESETS)


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


# --------------------------------------------------------------------------------------------------------------
# Validation helpers


def _pair(value: IntPair, what: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise CnnvizError(
            f"The {what} must be a whole number or a (height, width) pair, not {value!r}."
        )
    if min(pair) < minimum:
        raise CnnvizError(f"The {what} must be at least {minimum}, not {value!r}.")
    return pair


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _as_image(image: Any, dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise CnnvizError(f"The image must be an array of numbers, not {arr.dtype}.")
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise CnnvizError(
            f"The image must be a non-empty H x W or H x W x C array; this one has shape {arr.shape}."
        )
    return arr.astype(dtype, copy=False)


def _as_kernel(kernel: Any, allow_3d: bool = False) -> np.ndarray:
    # A copy: presets are read-only and torch wants writable memory.
    k = np.array(kernel, dtype=np.float64)
    ok_dims = (2, 3) if allow_3d else (2,)
    if k.ndim not in ok_dims or k.size == 0:
        want = "K_h x K_w (or C x K_h x K_w)" if allow_3d else "K_h x K_w"
        raise CnnvizError(
            f"The kernel must be a non-empty {want} array; this one has shape {k.shape}."
        )
    return k


def _to_nchw(img: np.ndarray) -> torch.Tensor:
    dtype = np.float32 if img.dtype == np.float32 else np.float64
    t = torch.from_numpy(np.array(img, dtype=dtype, order="C"))
    if t.ndim == 2:
        return t[None, None]
    return t.permute(2, 0, 1)[None].contiguous()


def _from_nchw(t: torch.Tensor, two_d: bool) -> np.ndarray:
    if two_d:
        return t[0, 0].numpy()
    return t[0].permute(1, 2, 0).contiguous().numpy()


# --------------------------------------------------------------------------------------------------------------
# Output size


def output_size(n: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - d(k-1) - 1) / s) + 1``.

    Raises CnnvizError when the numbers are out of range or the (dilated) kernel does not fit the padded input.
    """
    for value, what, low in (
        (n, "input size", 1),
        (k, "kernel size", 1),
        (s, "stride", 1),
        (d, "dilation", 1),
    ):
        if value < low:
            raise CnnvizError(f"The {what} must be at least {low}, not {value}.")
    if p < 0:
        raise CnnvizError(f"The padding must be 0 or more, not {p}.")
    span = d * (k - 1) + 1
    if n + 2 * p < span:
        raise CnnvizError(
            f"A kernel of size {k} with dilation {d} spans {span} pixels, more than the {n + 2 * p} pixels of "
            f"the padded input ({n} + 2*{p}); use a smaller kernel or dilation, or more padding."
        )
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def axis_formula(axis: str, n: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> str:
    """One axis of the output-size formula with the numbers filled in, e.g. ``H_out = floor(...) + 1 = 28``."""
    out = output_size(n, k, s, p, d)
    return f"{axis}_out = floor(({n} + 2*{p} - {d}*({k}-1) - 1)/{s}) + 1 = {out}"


def output_size_formula(
    size: IntPair, kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1
) -> str:
    """The output-size formula for both axes (two lines, H then W) with the numbers filled in."""
    (h, w) = _pair(size, "input size", 1)
    (kh, kw) = _pair(kernel, "kernel size", 1)
    (sh, sw) = _pair(stride, "stride", 1)
    (ph, pw) = _pair(padding, "padding", 0)
    (dh, dw) = _pair(dilation, "dilation", 1)
    return axis_formula("H", h, kh, sh, ph, dh) + "\n" + axis_formula("W", w, kw, sw, pw, dw)


# --------------------------------------------------------------------------------------------------------------
# Convolution


def convolve(
    image: np.ndarray,
    kernel: np.ndarray,
    *,
    flip: bool = False,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    per_channel: bool = True,
    padding_mode: str = "zeros",
    precision: Literal["float64", "float32"] = "float64",
) -> np.ndarray:
    """Slide ``kernel`` over ``image`` with ``F.conv2d`` and return the result (float64 by default).

    ``image`` is H x W or H x W x C. With ``per_channel`` (the default) each channel is filtered on its own by the
    same 2-D kernel (or by its own slice of a C x K_h x K_w kernel) and the result keeps C channels. With
    ``per_channel=False`` the kernel spans all channels (a 2-D kernel is repeated over them, a C x K_h x K_w one is
    used as is) and the products are summed into ONE output map, as one filter of a Conv2d layer does.
    ``flip=True`` rotates the kernel by 180 degrees first (true convolution). ``padding_mode`` is one of
    Conv2d's: zeros, reflect, replicate, circular. ``precision="float32"`` computes as Conv2d layers do by
    default, about ten times faster on CPU than float64 (worth it for large pictures).
    """
    if precision not in ("float64", "float32"):
        raise CnnvizError(f"Unknown precision '{precision}'; use float64 or float32.")
    img = _as_image(image, np.float32 if precision == "float32" else np.float64)
    k = _as_kernel(kernel, allow_3d=True)
    two_d = img.ndim == 2
    c = 1 if two_d else img.shape[2]
    s = _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    d = _pair(dilation, "dilation", 1)
    if padding_mode not in PADDING_MODES:
        raise CnnvizError(
            f"Unknown padding mode '{padding_mode}'; use one of {', '.join(PADDING_MODES)}."
        )
    kh, kw = k.shape[-2:]
    for axis, n, kk, ss, pp, dd in (
        ("height", img.shape[0], kh, s[0], p[0], d[0]),
        ("width", img.shape[1], kw, s[1], p[1], d[1]),
    ):
        try:
            output_size(n, kk, ss, pp, dd)
        except CnnvizError as exc:
            raise CnnvizError(f"Along the image {axis}, {_lower_first(str(exc))}") from None
    w = torch.from_numpy(np.ascontiguousarray(k, dtype=img.dtype))
    if k.ndim == 3 and k.shape[0] != c:
        raise CnnvizError(
            f"The kernel has {k.shape[0]} channel slices but the image has {c} channels; they must match."
        )
    if per_channel:
        weight = (w[:, None] if k.ndim == 3 else w[None, None].expand(c, 1, kh, kw)).contiguous()
        groups = c
    else:
        weight = (w[None] if k.ndim == 3 else w[None, None].expand(1, c, kh, kw)).contiguous()
        groups = 1
    if flip:
        weight = torch.flip(weight, dims=(-2, -1))
    _check_convolution_memory(img, (kh, kw), s, p, d, groups, weight.shape[0])
    if padding_mode == "circular" and (p[0] > img.shape[0] or p[1] > img.shape[1]):
        raise CnnvizError(
            f"Circular padding wraps the image around once at most, so it can be at most the image size "
            f"({img.shape[0]} rows, {img.shape[1]} columns), not {_fmt_pair(p)}; use less padding or "
            "another padding mode."
        )
    x = _to_nchw(img)
    if padding_mode != "zeros" and (p[0] or p[1]):
        if padding_mode == "reflect" and (p[0] >= img.shape[0] or p[1] >= img.shape[1]):
            raise CnnvizError(
                "Reflect padding must be smaller than the image; use less padding or another padding mode."
            )
        x = F.pad(x, (p[1], p[1], p[0], p[0]), mode=padding_mode)
        p = (0, 0)
    y = F.conv2d(x, weight, stride=s, padding=p, dilation=d, groups=groups)
    if two_d or not per_channel:
        return y[0, 0].numpy()
    return _from_nchw(y, False)


def _fmt_pair(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]},{pair[1]}"


def _check_convolution_memory(
    img: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    c_out: int,
) -> None:
    """Refuse, from the output-size formula, a convolution whose tensors would not fit the memory budget.

    Counted: the padded input, the output (twice: torch's and the NumPy copy handed back) and one group's
    unfolded windows (K_h*K_w values per output pixel), which torch's CPU convolution may build.
    """
    from cnnviz.core.budget import check_fits

    h, w = img.shape[:2]
    c = 1 if img.ndim == 2 else img.shape[2]
    ho, wo = (
        output_size(n, k, s, p, d)
        for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    item = img.itemsize
    padded = c * (h + 2 * padding[0]) * (w + 2 * padding[1]) * item
    out = c_out * ho * wo * item
    columns = (c // groups) * kernel[0] * kernel[1] * ho * wo * item
    check_fits(
        padded + 2 * out + columns,
        f"a convolution of the {w}x{h} picture with padding {_fmt_pair(padding)} "
        f"(a {wo}x{ho} output of {c_out} channel{'s' if c_out != 1 else ''})",
        advice="use less padding, a larger stride or a smaller picture",
    )


def pad_image(image: np.ndarray, padding: IntPair) -> np.ndarray:
    """Zero-pad an H x W (or H x W x C) array by ``padding`` rows/columns on every side."""
    from cnnviz.core.budget import check_fits

    img = _as_image(image)
    ph, pw = _pair(padding, "padding", 0)
    channels = 1 if img.ndim == 2 else img.shape[2]
    check_fits(
        (img.shape[0] + 2 * ph) * (img.shape[1] + 2 * pw) * channels * img.itemsize,
        f"padding the {img.shape[1]}x{img.shape[0]} picture by {_fmt_pair((ph, pw))}",
        advice="use less padding or a smaller picture",
    )
    widths = [(ph, ph), (pw, pw)] + ([(0, 0)] if img.ndim == 3 else [])
    return np.pad(img, widths)


@dataclass(frozen=True)
class Step:
    """One kernel position: output cell, the padded-input rows/columns it reads, products and their sum."""

    out_row: int
    out_col: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    products: np.ndarray
    total: float


@dataclass(frozen=True)
class StepThrough:
    """The step-by-step view of a convolution of a small 2-D input.

    ``padded`` is the zero-padded input the kernel slides over (indices in ``Step.rows/cols`` refer to it),
    ``kernel`` the kernel as applied (already flipped for true convolution), ``output`` the result of
    ``F.conv2d`` and ``steps`` the output cells in reading order; ``steps[i].total`` equals the output cell.
    """

    padded: np.ndarray
    kernel: np.ndarray
    output: np.ndarray
    padding: tuple[int, int]
    steps: list[Step] = field(default_factory=list)


MAX_STEPS = 65536


def step_windows(
    image: np.ndarray,
    kernel: np.ndarray,
    *,
    flip: bool = False,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> StepThrough:
    """Every kernel position of a 2-D convolution with its window, products and sum (for a step-through).

    Meant for small inputs; more than 65536 positions raise CnnvizError.
    """
    img = _as_image(image)
    if img.ndim != 2:
        raise CnnvizError("The step-through works on one channel; give an H x W array.")
    k = _as_kernel(kernel)
    s = _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    d = _pair(dilation, "dilation", 1)
    output = convolve(img, k, flip=flip, stride=s, padding=p, dilation=d)
    if output.size > MAX_STEPS:
        raise CnnvizError(
            f"The step-through is for small inputs; this one has {output.size} output cells (at most {MAX_STEPS})."
        )
    used = np.ascontiguousarray(k[::-1, ::-1]) if flip else k.copy()
    padded = pad_image(img, p)
    kh, kw = k.shape
    steps: list[Step] = []
    for i in range(output.shape[0]):
        rows = tuple(i * s[0] + u * d[0] for u in range(kh))
        for j in range(output.shape[1]):
            cols = tuple(j * s[1] + v * d[1] for v in range(kw))
            window = padded[np.ix_(rows, cols)]
            products = window * used
            steps.append(Step(i, j, rows, cols, window, products, float(products.sum())))
    return StepThrough(padded=padded, kernel=used, output=output, padding=p, steps=steps)


# --------------------------------------------------------------------------------------------------------------
# Pooling


def pool(
    fmap: np.ndarray,
    kind: Literal["max", "avg"] = "max",
    kernel: IntPair = 2,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    *,
    count_include_pad: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Max or average pooling of an H x W (x C) map with torch; returns ``(output, chosen_mask)``.

    ``stride`` defaults to the kernel size, as in torch. Each channel is pooled on its own, so the output keeps
    the channels. ``chosen_mask`` has the input's shape: for max pooling it marks the cells whose value was
    picked (torch's ``return_indices``), for average pooling every cell that lies in at least one window (cells
    left out by the stride are False).
    """
    img = _as_image(fmap)
    if kind not in ("max", "avg"):
        raise CnnvizError(f"Unknown pooling '{kind}'; use 'max' or 'avg'.")
    k = _pair(kernel, "pooling kernel size", 1)
    s = k if stride is None else _pair(stride, "pooling stride", 1)
    p = _pair(padding, "pooling padding", 0)
    for pp, kk in zip(p, k, strict=True):
        if 2 * pp > kk:
            raise CnnvizError(
                f"Pooling padding {pp} is more than half the pooling kernel {kk}; torch allows at most {kk // 2}."
            )
    for axis, n, kk, ss, pp in (
        ("height", img.shape[0], k[0], s[0], p[0]),
        ("width", img.shape[1], k[1], s[1], p[1]),
    ):
        try:
            output_size(n, kk, ss, pp)
        except CnnvizError as exc:
            raise CnnvizError(f"Along the map {axis}, {_lower_first(str(exc))}") from None
    two_d = img.ndim == 2
    x = _to_nchw(img)
    if kind == "max":
        out, idx = F.max_pool2d(x, k, s, p, return_indices=True)
        c, h, w = x.shape[1:]
        flat = torch.zeros(c, h * w, dtype=torch.bool)
        flat.scatter_(1, idx[0].reshape(c, -1), True)
        mask_t = flat.reshape(1, c, h, w)
    else:
        out = F.avg_pool2d(x, k, s, p, count_include_pad=count_include_pad)
        # The gradient of the summed output is non-zero exactly on the cells some window reads.
        probe = torch.ones_like(x, requires_grad=True)
        F.avg_pool2d(probe, k, s, p, count_include_pad=count_include_pad).sum().backward()
        assert probe.grad is not None
        mask_t = probe.grad > 0
    if two_d:
        return out[0, 0].numpy(), mask_t[0, 0].numpy()
    return _from_nchw(out, False), mask_t[0].permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------------------------------------------
# Counting parameters and multiply-accumulates


class Count(NamedTuple):
    """A count with the formula that produced it, numbers filled in (``int(count.value)`` is the number)."""

    value: int
    formula: str


def _check_groups(c_in: int, c_out: int, groups: int) -> None:
    for v, what in ((c_in, "input channels"), (c_out, "output channels"), (groups, "groups")):
        if v < 1:
            raise CnnvizError(f"The number of {what} must be at least 1, not {v}.")
    if c_in % groups or c_out % groups:
        raise CnnvizError(
            f"Groups ({groups}) must divide both the input channels ({c_in}) and the output channels ({c_out})."
        )


def conv_param_count(
    k_h: int, k_w: int, c_in: int, c_out: int, groups: int = 1, bias: bool = True
) -> Count:
    """Parameters of a Conv2d: ``K_h*K_w*(C_in/groups)*C_out (+ C_out bias)``."""
    _check_groups(c_in, c_out, groups)
    if k_h < 1 or k_w < 1:
        raise CnnvizError(f"The kernel size must be at least 1, not {k_h}x{k_w}.")
    value = k_h * k_w * (c_in // groups) * c_out + (c_out if bias else 0)
    name = "(C_in/groups)" if groups != 1 else "C_in"
    cin = f"({c_in}/{groups})" if groups != 1 else f"{c_in}"
    symbols = f"K_h*K_w*{name}*C_out" + (" + C_out" if bias else "")
    numbers = f"{k_h}*{k_w}*{cin}*{c_out}" + (f" + {c_out}" if bias else "")
    return Count(value, f"{symbols} = {numbers} = {value}")


def dense_param_count(d_in: int, d_out: int, bias: bool = True) -> Count:
    """Parameters of a Linear layer: ``D_in*D_out (+ D_out bias)``."""
    if d_in < 1 or d_out < 1:
        raise CnnvizError(
            f"A dense layer needs at least one input and one output, not {d_in} -> {d_out}."
        )
    value = d_in * d_out + (d_out if bias else 0)
    if bias:
        return Count(value, f"D_in*D_out + D_out = {d_in}*{d_out} + {d_out} = {value}")
    return Count(value, f"D_in*D_out = {d_in}*{d_out} = {value}")


def macs_conv(
    k_h: int, k_w: int, c_in: int, c_out: int, h_out: int, w_out: int, groups: int = 1
) -> Count:
    """Multiply-accumulates of a Conv2d (bias additions are not multiplies and are not counted).

    ``H_out*W_out*C_out*(C_in/groups)*K_h*K_w``; this is half the FLOPs torch's ``FlopCounterMode`` reports.
    """
    _check_groups(c_in, c_out, groups)
    if min(k_h, k_w, h_out, w_out) < 1:
        raise CnnvizError("Kernel and output sizes must be at least 1.")
    value = h_out * w_out * c_out * (c_in // groups) * k_h * k_w
    cin = f"({c_in}/{groups})" if groups != 1 else f"{c_in}"
    name = "(C_in/groups)" if groups != 1 else "C_in"
    return Count(
        value,
        f"H_out*W_out*C_out*{name}*K_h*K_w = {h_out}*{w_out}*{c_out}*{cin}*{k_h}*{k_w} = {value}",
    )


@dataclass(frozen=True)
class BottleneckComparison:
    """A K x K conv C_in -> C_out versus a 1x1 conv C_in -> C_mid followed by a K x K conv C_mid -> C_out.

    Both use stride 1 and padding K // 2 on an H x W input (so odd K keep the size).
    """

    direct_params: Count
    direct_macs: Count
    reduce_params: Count
    reduce_macs: Count
    conv_params: Count
    conv_macs: Count

    @property
    def before_params(self) -> int:
        return self.direct_params.value

    @property
    def before_macs(self) -> int:
        return self.direct_macs.value

    @property
    def after_params(self) -> int:
        return self.reduce_params.value + self.conv_params.value

    @property
    def after_macs(self) -> int:
        return self.reduce_macs.value + self.conv_macs.value

    @property
    def params_ratio(self) -> float:
        """How many times fewer parameters the bottleneck needs (before / after)."""
        return self.before_params / self.after_params

    @property
    def macs_ratio(self) -> float:
        """How many times fewer multiply-accumulates the bottleneck needs (before / after)."""
        return self.before_macs / self.after_macs


def bottleneck_comparison(
    c_in: int, c_mid: int, c_out: int, k: int, h: int, w: int, bias: bool = True
) -> BottleneckComparison:
    """Parameters and MACs of a direct K x K conv versus a 1x1 reduction to ``c_mid`` then the K x K conv."""
    ho = output_size(h, k, 1, k // 2)
    wo = output_size(w, k, 1, k // 2)
    return BottleneckComparison(
        direct_params=conv_param_count(k, k, c_in, c_out, bias=bias),
        direct_macs=macs_conv(k, k, c_in, c_out, ho, wo),
        reduce_params=conv_param_count(1, 1, c_in, c_mid, bias=bias),
        reduce_macs=macs_conv(1, 1, c_in, c_mid, h, w),
        conv_params=conv_param_count(k, k, c_mid, c_out, bias=bias),
        conv_macs=macs_conv(k, k, c_mid, c_out, ho, wo),
    )


# --------------------------------------------------------------------------------------------------------------
# RGB kernels and many filters


@dataclass(frozen=True)
class MultiFilter:
    """N random filters over a C-channel image, as one Conv2d(C, N, K, padding=K//2) computes them.

    ``weights`` is N x C x K x K (torch's layout): filter f has one K x K slice per input channel.
    ``partials[f, c]`` is slice ``weights[f, c]`` slid over channel c alone; summing the C partials and adding
    ``bias[f]`` gives output channel f, so ``outputs`` (H x W x N) has one channel per filter.
    """

    weights: np.ndarray
    bias: np.ndarray
    partials: np.ndarray
    outputs: np.ndarray
    params: Count


def multi_filter(
    image_rgb: np.ndarray, n_filters: int, seed: int = 0, kernel_size: int = 3, bias: bool = True
) -> MultiFilter:
    """Apply ``n_filters`` random C-channel kernels (seeded) to an H x W x C image; see ``MultiFilter``."""
    img = _as_image(image_rgb)
    if img.ndim != 3:
        raise CnnvizError("This lesson needs a colour (H x W x C) image.")
    if n_filters < 1:
        raise CnnvizError(f"The number of filters must be at least 1, not {n_filters}.")
    k = kernel_size
    c = img.shape[2]
    pad = k // 2
    output_size(img.shape[0], k, 1, pad)
    output_size(img.shape[1], k, 1, pad)
    gen = torch.Generator().manual_seed(int(seed))
    bound = 1.0 / math.sqrt(c * k * k)  # torch's default Conv2d init range
    weights = (torch.rand(n_filters, c, k, k, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    b = (
        (torch.rand(n_filters, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        if bias
        else torch.zeros(n_filters, dtype=torch.float64)
    )
    x = _to_nchw(img)
    # groups=C gives each (channel, filter) slice its own output: channel-major order o = c*N + f.
    w_grouped = weights.permute(1, 0, 2, 3).reshape(c * n_filters, 1, k, k)
    part = F.conv2d(x, w_grouped, padding=pad, groups=c)[0]
    partials = part.reshape(c, n_filters, *part.shape[1:]).permute(1, 0, 2, 3).contiguous()
    full = F.conv2d(x, weights, b if bias else None, padding=pad)
    return MultiFilter(
        weights=weights.numpy(),
        bias=b.numpy(),
        partials=partials.numpy(),
        outputs=_from_nchw(full, False),
        params=conv_param_count(k, k, c, n_filters, bias=bias),
    )


# --------------------------------------------------------------------------------------------------------------
# Conv versus dense, receptive-field growth


@dataclass(frozen=True)
class ConvVsDense:
    """A conv layer's parameters next to a dense layer mapping the same input size to the same output size."""

    name: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    conv: Count
    dense: Count

    @property
    def ratio(self) -> float:
        """How many times more parameters the dense layer needs."""
        return self.dense.value / max(self.conv.value, 1)


def conv_vs_dense_shapes(
    in_shape: tuple[int, int, int],
    out_channels: int,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    bias: bool = True,
    name: str = "conv",
) -> ConvVsDense:
    """Compare a Conv2d on a C x H x W input with the dense layer between the same input and output sizes."""
    c, h, w = in_shape
    kh, kw = _pair(kernel, "kernel size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    out = (out_channels, output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw))
    conv = conv_param_count(kh, kw, c, out_channels, groups, bias)
    dense = dense_param_count(c * h * w, out[0] * out[1] * out[2], bias)
    return ConvVsDense(name, (c, h, w), out, conv, dense)


def conv_rows(summary: Summary) -> list[LayerRow]:
    """Rows of 2-D convolutions with a spatial output (candidates for the conv-versus-dense lesson)."""
    return [
        r
        for r in summary.rows
        if r.kind == "module"
        and "conv" in r.type.lower()
        and r.kernel_size is not None
        and r.in_channels is not None
        and r.out_channels is not None
        and r.spatial_shape is not None
    ]


def _input_shape_of(summary: Summary, row: LayerRow) -> tuple[int, int, int]:
    by_name = {r.name: r for r in summary.rows}
    for name in row.inputs:
        src = by_name.get(name)
        if src is not None and isinstance(src.output_shape, tuple) and len(src.output_shape) == 4:
            _, c, h, w = src.output_shape
            return (int(c), int(h), int(w))
    # Without recorded inputs, the nearest earlier 4-D output with the right channel count is the input.
    idx = summary.rows.index(row)
    for prev in reversed(summary.rows[:idx]):
        shape = prev.output_shape
        if prev.kind != "container" and isinstance(shape, tuple) and len(shape) == 4:
            if shape[1] == row.in_channels:
                return (int(shape[1]), int(shape[2]), int(shape[3]))
    if len(summary.input_shape) == 3 and summary.input_shape[0] == row.in_channels:
        c, h, w = summary.input_shape
        return (c, h, w)
    raise CnnvizError(f"The input shape of layer '{row.name}' is not known from the summary.")


def conv_vs_dense(summary: Summary, name: str) -> ConvVsDense:
    """Compare conv layer ``name`` of a summary with a dense layer between its input and output sizes."""
    try:
        row = summary.row(name)
    except KeyError:
        raise CnnvizError(f"The model has no layer named '{name}'.") from None
    if row not in conv_rows(summary):
        raise CnnvizError(
            f"Layer '{name}' ({row.type}) is not a 2-D convolution with a spatial output."
        )
    assert (
        row.kernel_size is not None and row.in_channels is not None and row.out_channels is not None
    )
    in_shape = _input_shape_of(summary, row)
    out_shape = row.output_shape
    assert isinstance(out_shape, tuple)
    out = (int(out_shape[1]), int(out_shape[2]), int(out_shape[3]))
    g = row.groups or 1
    kh, kw = row.kernel_size
    weight = conv_param_count(kh, kw, row.in_channels, row.out_channels, g, bias=False).value
    if row.params == weight + row.out_channels:
        conv = conv_param_count(kh, kw, row.in_channels, row.out_channels, g, bias=True)
    elif row.params == weight:
        conv = conv_param_count(kh, kw, row.in_channels, row.out_channels, g, bias=False)
    else:
        conv = Count(row.params, f"{row.params} (as counted in the model)")
    has_bias = row.params != weight
    dense = dense_param_count(
        in_shape[0] * in_shape[1] * in_shape[2], out[0] * out[1] * out[2], has_bias
    )
    return ConvVsDense(name, in_shape, out, conv, dense)


@dataclass(frozen=True)
class RFPoint:
    """Receptive field after one layer: size r and effective stride S per axis (height, width).

    ``jump`` marks layers whose stride (or pooling) multiplies S, so every later kernel widens r faster.
    ``global_`` marks layers whose units see the whole input (size/stride are then None).
    """

    name: str
    type: str
    size: tuple[int, int] | None
    stride: tuple[Fraction, Fraction] | None
    jump: bool = False
    reason: str = ""
    global_: bool = False


@dataclass(frozen=True)
class StackLayer:
    """A square layer of a demo stack: kernel, stride, padding, dilation (pooling is a layer with a stride)."""

    name: str
    type: str
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


def _conv(k: int, n: int) -> list[StackLayer]:
    return [StackLayer(f"conv{i + 1}", "Conv2d", k, 1, k // 2) for i in range(n)]


DEMO_STACKS: dict[str, list[StackLayer]] = {
    "Six 3x3 convolutions": _conv(3, 6),
    "Six 5x5 convolutions": _conv(5, 6),
    "3x3 convolutions with 2x2 max pooling": [
        StackLayer("conv1", "Conv2d", 3, 1, 1),
        StackLayer("conv2", "Conv2d", 3, 1, 1),
        StackLayer("pool1", "MaxPool2d", 2, 2),
        StackLayer("conv3", "Conv2d", 3, 1, 1),
        StackLayer("conv4", "Conv2d", 3, 1, 1),
        StackLayer("pool2", "MaxPool2d", 2, 2),
        StackLayer("conv5", "Conv2d", 3, 1, 1),
        StackLayer("conv6", "Conv2d", 3, 1, 1),
    ],
    "3x3 convolutions with stride 2": [
        StackLayer("conv1", "Conv2d", 3, 2, 1),
        StackLayer("conv2", "Conv2d", 3, 1, 1),
        StackLayer("conv3", "Conv2d", 3, 2, 1),
        StackLayer("conv4", "Conv2d", 3, 1, 1),
        StackLayer("conv5", "Conv2d", 3, 2, 1),
        StackLayer("conv6", "Conv2d", 3, 1, 1),
    ],
}


def rf_stack(layers: Sequence[StackLayer]) -> list[RFPoint]:
    """Receptive field size r and effective stride S after each layer of a plain stack (input first).

    ``r_l = r_(l-1) + d_l*(k_l - 1)*S_(l-1)`` and ``S_l = S_(l-1)*s_l`` (Araujo, Norris & Sim, 2019).
    """
    r, s = 1, 1
    points = [RFPoint("input", "input", (1, 1), (Fraction(1), Fraction(1)))]
    for layer in layers:
        r += layer.dilation * (layer.kernel - 1) * s
        jump = layer.stride > 1
        s *= layer.stride
        reason = f"stride {layer.stride}: S becomes {s}" if jump else ""
        points.append(
            RFPoint(layer.name, layer.type, (r, r), (Fraction(s), Fraction(s)), jump, reason)
        )
    return points


def rf_growth(summary: Summary) -> list[RFPoint]:
    """The receptive field of each layer of a summary that has one, in execution order, input first.

    Layers where the effective stride grows are marked as jumps with the reason (their stride or pooling).
    """
    points: list[RFPoint] = []
    if not any(r.kind == "input" for r in summary.rows):
        points.append(RFPoint("input", "input", (1, 1), (Fraction(1), Fraction(1))))
    prev_stride: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))
    seen_global = False
    for row in summary.rows:
        rf = row.rf
        if rf is None or row.kind == "container":
            continue
        if rf.global_ or rf.size is None or rf.stride is None:
            points.append(
                RFPoint(
                    row.name, row.type, None, None, not seen_global, "sees the whole input", True
                )
            )
            seen_global = True
            continue
        stride = (Fraction(rf.stride[0]), Fraction(rf.stride[1]))
        jump = stride[0] > prev_stride[0] or stride[1] > prev_stride[1]
        reason = ""
        if jump:
            s_txt = "x".join(str(v) for v in stride) if stride[0] != stride[1] else str(stride[0])
            own = f"stride {row.stride[0] if row.stride and row.stride[0] == row.stride[1] else row.stride}"
            reason = f"{own}: S becomes {s_txt}" if row.stride else f"S becomes {s_txt}"
        points.append(
            RFPoint(row.name, row.type, (int(rf.size[0]), int(rf.size[1])), stride, jump, reason)
        )
        prev_stride = stride
    return points


# --------------------------------------------------------------------------------------------------------------
# Turning results into pictures


def display_rule(kernel: np.ndarray, rule: str = "auto") -> str:
    """Resolve the ``auto`` display rule: kernels whose weights sum to 0 (edge detectors) -> ``abs``, else ``clip``.

    A zero-sum kernel answers 0 on flat areas and signed values at edges, so its magnitude is what to show;
    kernels that sum to 1 (identity, blurs, sharpen, emboss) keep the brightness scale, so clipping suffices.
    """
    if rule not in DISPLAY_RULES:
        raise CnnvizError(f"Unknown display rule '{rule}'; use one of {', '.join(DISPLAY_RULES)}.")
    if rule != "auto":
        return rule
    k = np.asarray(kernel, dtype=np.float64)
    scale = max(float(np.abs(k).sum()), 1e-300)
    return "abs" if abs(float(k.sum())) <= 1e-9 * scale else "clip"


def to_uint8(values: np.ndarray, rule: str, full_scale: float = 1.0) -> np.ndarray:
    """Map convolution results to 0..255 by a named rule (``full_scale`` is the value shown as white).

    * ``clip``: ``v / full_scale`` clipped to 0..1 (negatives black, overshoots white);
    * ``abs``: ``|v| / full_scale`` clipped to 0..1 (edges of either sign bright);
    * ``signed``: ``0.5 + v / (2*full_scale)`` clipped (mid grey is 0, darker negative, brighter positive);
    * ``stretch``: the smallest value black and the largest white (a constant map is mid grey).

    The result is ``rint(255 * t)`` as uint8.
    """
    v = np.asarray(values, dtype=np.float64)
    if rule == "clip":
        t = v / full_scale
    elif rule == "abs":
        t = np.abs(v) / full_scale
    elif rule == "signed":
        t = 0.5 + v / (2 * full_scale)
    elif rule == "stretch":
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        t = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
    else:
        raise CnnvizError(
            f"Unknown display rule '{rule}'; use one of {', '.join(DISPLAY_RULES[1:])}."
        )
    return np.rint(np.clip(np.nan_to_num(t), 0.0, 1.0) * 255).astype(np.uint8)


def image_to_float(image: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """A uint8 picture (H x W, H x W x 3 or x 4; alpha dropped) as float64 in 0..1, shrunk to ``max_side``.

    Shrinking (area-averaging with Pillow) keeps the lab responsive on large photos.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        raise CnnvizError(f"Expected an H x W or H x W x 3 picture, got shape {arr.shape}.")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if max_side is not None and max(arr.shape[:2]) > max_side:
        from PIL import Image

        h, w = arr.shape[:2]
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BOX))
    return arr.astype(np.float64) / 255.0


def sample_image(size: int = 64) -> np.ndarray:
    """A synthetic RGB picture (uint8) with edges in every direction: a disc, a bar, a ramp and a checker."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = np.zeros((size, size, 3))
    img[..., 0] = 0.15 + 0.5 * x  # ramp: flat for edge detectors, shows blur keeps gradients
    img[..., 1] = 0.2 + 0.3 * y
    img[..., 2] = 0.35
    disc = (x - 0.3) ** 2 + (y - 0.32) ** 2 < 0.18**2
    img[disc] = (0.95, 0.85, 0.2)
    bar = (np.abs(x - y - 0.15) < 0.05) & (x > 0.5)
    img[bar] = (0.1, 0.1, 0.5)
    checker = (x >= 2 / 16) & (x < 7 / 16) & (y >= 10 / 16) & (y < 15 / 16)
    cells = ((np.floor(x * 16) + np.floor(y * 16)) % 2).astype(bool)
    img[checker & cells] = (1.0, 1.0, 1.0)
    img[checker & ~cells] = (0.0, 0.0, 0.0)
    return np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
