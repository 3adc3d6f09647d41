"""Parameter and multiply-accumulate counts with their formulas: one layer, a bottleneck, several
filters, a convolution against the dense layer it replaces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.core import text
from cnnviz.core.analysis.types import LayerRow, Summary
from cnnviz.core.errors import CnnvizError
from cnnviz.core.lab.convolution import IntPair, _as_image, _from_nchw, _pair, _to_nchw, output_size


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
    """Parameters of a Conv2d: ``K_h × K_w × C_in/groups × C_out (+ C_out bias)``."""
    _check_groups(c_in, c_out, groups)
    if k_h < 1 or k_w < 1:
        raise CnnvizError(f"The kernel size must be at least 1, not {k_h}×{k_w}.")
    value = k_h * k_w * (c_in // groups) * c_out + (c_out if bias else 0)
    return Count(value, text.conv_param_formula((k_h, k_w), c_in, c_out, groups=groups, bias=bias))


def dense_param_count(d_in: int, d_out: int, bias: bool = True) -> Count:
    """Parameters of a Linear layer: ``D_in × D_out (+ D_out bias)``."""
    if d_in < 1 or d_out < 1:
        raise CnnvizError(
            f"A dense layer needs at least one input and one output, not {d_in} -> {d_out}."
        )
    value = d_in * d_out + (d_out if bias else 0)
    return Count(value, text.dense_param_formula(d_in, d_out, bias=bias))


def macs_conv(
    k_h: int, k_w: int, c_in: int, c_out: int, h_out: int, w_out: int, groups: int = 1
) -> Count:
    """Multiply-accumulates of a Conv2d (bias additions are not multiplies and are not counted).

    ``H_out × W_out × C_out × C_in/groups × K_h × K_w``; this is half the FLOPs torch's ``FlopCounterMode`` reports.
    """
    _check_groups(c_in, c_out, groups)
    if min(k_h, k_w, h_out, w_out) < 1:
        raise CnnvizError("Kernel and output sizes must be at least 1.")
    value = h_out * w_out * c_out * (c_in // groups) * k_h * k_w
    return Count(
        value, text.conv_macs_formula((k_h, k_w), c_in, c_out, (h_out, w_out), groups=groups)
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


@dataclass(frozen=True)
class MultiFilter:
    """N filters over a C-channel image, as one Conv2d(C, N, K, padding=K//2) computes them.

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
    image_rgb: np.ndarray,
    n_filters: int,
    seed: int = 0,
    kernel_size: int = 3,
    bias: bool = True,
    *,
    weights: np.ndarray | None = None,
) -> MultiFilter:
    """Apply ``n_filters`` C-channel kernels to an H x W x C image; see ``MultiFilter``.

    Without ``weights`` the filters are random (seeded, in torch's default Conv2d range, with a random bias);
    with ``weights`` (N x C x K x K, e.g. from ``RGB_FILTERS``) those filters are used with bias 0 and
    ``n_filters``, ``seed``, ``kernel_size`` and ``bias`` are ignored.
    """
    img = _as_image(image_rgb)
    if img.ndim != 3:
        raise CnnvizError("This lesson needs a colour (H x W x C) image.")
    c = img.shape[2]
    if weights is not None:
        w_arr = np.asarray(weights, dtype=np.float64)
        if w_arr.ndim != 4 or w_arr.shape[1] != c or w_arr.shape[2] != w_arr.shape[3]:
            raise CnnvizError(
                f"The filters must be N x {c} x K x K weights for this {c}-channel image, not {w_arr.shape}."
            )
        n_filters, k = w_arr.shape[0], w_arr.shape[2]
        bias = False
    elif n_filters < 1:
        raise CnnvizError(f"The number of filters must be at least 1, not {n_filters}.")
    else:
        k = kernel_size
    pad = k // 2
    output_size(img.shape[0], k, 1, pad)
    output_size(img.shape[1], k, 1, pad)
    if weights is not None:
        w = torch.from_numpy(np.ascontiguousarray(w_arr))
        b = torch.zeros(n_filters, dtype=torch.float64)
    else:
        gen = torch.Generator().manual_seed(int(seed))
        bound = 1.0 / math.sqrt(c * k * k)  # torch's default Conv2d init range
        w = (torch.rand(n_filters, c, k, k, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        b = (
            (torch.rand(n_filters, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            if bias
            else torch.zeros(n_filters, dtype=torch.float64)
        )
    x = _to_nchw(img)
    # groups=C gives each (channel, filter) slice its own output: channel-major order o = c*N + f.
    w_grouped = w.permute(1, 0, 2, 3).reshape(c * n_filters, 1, k, k)
    part = F.conv2d(x, w_grouped, padding=pad, groups=c)[0]
    partials = part.reshape(c, n_filters, *part.shape[1:]).permute(1, 0, 2, 3).contiguous()
    full = F.conv2d(x, w, b if bias else None, padding=pad)
    return MultiFilter(
        weights=w.numpy(),
        bias=b.numpy(),
        partials=partials.numpy(),
        outputs=_from_nchw(full, False),
        params=conv_param_count(k, k, c, n_filters, bias=bias),
    )


@dataclass(frozen=True)
class ChannelMix:
    """A 1x1 convolution of an H x W x C_in image: ``outputs[..., o] = sum_c weights[o, c] * image[..., c]``.

    ``weights`` is C_out x C_in (the 1x1 kernels of Conv2d(C_in, C_out, 1) without their 1x1 tail), ``outputs``
    is H x W x C_out: the same height and width as the input, only the channels change.
    """

    weights: np.ndarray
    bias: np.ndarray
    outputs: np.ndarray
    params: Count


def mix_channels(
    image: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None
) -> ChannelMix:
    """Mix the channels of every pixel by a C_out x C_in matrix with ``F.conv2d`` and 1x1 kernels."""
    img = _as_image(image)
    if img.ndim == 2:
        img = img[..., None]
    w = np.array(weights, dtype=np.float64)
    c = img.shape[2]
    if w.ndim != 2 or w.shape[1] != c or w.shape[0] < 1:
        raise CnnvizError(
            f"The 1x1 weights must be a C_out x {c} matrix for this {c}-channel image, not {w.shape}."
        )
    if not np.all(np.isfinite(w)):
        raise CnnvizError("The 1x1 weights must be ordinary finite numbers.")
    b = np.zeros(w.shape[0]) if bias is None else np.array(bias, dtype=np.float64).reshape(-1)
    if b.shape != (w.shape[0],):
        raise CnnvizError(f"The bias must have one value per output channel ({w.shape[0]}).")
    out = F.conv2d(
        _to_nchw(img), torch.from_numpy(w[:, :, None, None].copy()), torch.from_numpy(b.copy())
    )
    return ChannelMix(
        weights=w,
        bias=b,
        outputs=_from_nchw(out, False),
        params=conv_param_count(1, 1, c, w.shape[0], bias=bias is not None),
    )


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
