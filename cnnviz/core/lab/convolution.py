"""Convolution, padding, pooling and the step-through of one output pixel, all by torch's own operators,
and the output-size formula that describes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.core import text
from cnnviz.core.errors import CnnvizError

IntPair = int | tuple[int, int]
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


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
            f"({img.shape[0]} rows, {img.shape[1]} columns), not {text.pair(p)}; use less padding or "
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
        f"a convolution of the {w}×{h} picture with padding {text.pair(padding)} "
        f"(a {wo}×{ho} output of {c_out} channel{'s' if c_out != 1 else ''})",
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
        f"padding the {img.shape[1]}×{img.shape[0]} picture by {text.pair((ph, pw))}",
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
