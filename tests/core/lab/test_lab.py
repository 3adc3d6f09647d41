"""The convolution lab's core: every figure is checked against torch's own operators and layers."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnviz.core import lab
from cnnviz.core.analysis.types import LayerRow, ReceptiveField, Summary
from cnnviz.core.errors import CnnvizError

RNG = np.random.default_rng(7)


def torch_conv(img: np.ndarray, kernel: np.ndarray, **kw) -> np.ndarray:
    """Per-channel cross-correlation computed directly with F.conv2d (the truth for these tests)."""
    x = torch.tensor(img, dtype=torch.float64)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    c = x.shape[1]
    w = torch.tensor(kernel, dtype=torch.float64)[None, None].repeat(c, 1, 1, 1)
    y = F.conv2d(x, w, groups=c, **kw)[0]
    return y[0].numpy() if img.ndim == 2 else y.permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------------------------- presets, files


def test_presets_are_documented_and_well_formed():
    assert {
        "identity",
        "box_blur",
        "gaussian_3x3",
        "gaussian_5x5",
        "sharpen",
        "emboss",
        "outline",
    } <= set(lab.KERNEL_PRESETS)
    assert {"laplacian", "sobel_x", "sobel_y"} <= set(lab.KERNEL_PRESETS)
    for preset in lab.KERNEL_PRESETS.values():
        assert preset.kernel.ndim == 2 and preset.kernel.shape[0] % 2 == 1
        assert preset.description.endswith(".") and len(preset.description) > 20
    # Blurs keep brightness: their weights sum to one.
    for name in ("box_blur", "gaussian_3x3", "gaussian_5x5", "identity", "sharpen", "emboss"):
        assert lab.KERNEL_PRESETS[name].kernel.sum() == pytest.approx(1.0)
    assert lab.KERNEL_PRESETS["gaussian_5x5"].kernel.shape == (5, 5)


def test_resolve_kernel_names_aliases_and_unknown():
    name, k = lab.resolve_kernel("Sobel-X")
    assert name == "sobel_x" and np.array_equal(k, lab.KERNEL_PRESETS["sobel_x"].kernel)
    assert lab.resolve_kernel("blur")[0] == "box_blur"
    with pytest.raises(CnnvizError, match="box_blur.*sobel_y"):
        lab.resolve_kernel("wobble")


def test_kernel_from_json_reads_rows_including_even_sizes(tmp_path):
    f = tmp_path / "k.json"
    f.write_text(json.dumps([[1, 2], [3, 4.5]]))
    k = lab.kernel_from_json(f)
    assert k.dtype == np.float64 and k.tolist() == [[1, 2], [3, 4.5]]
    assert lab.kernel_centre(k) == (1, 1)
    assert lab.kernel_centre(np.ones((3, 5))) == (1, 2)
    assert lab.resolve_kernel(str(f))[0] == "k"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[1, 2], [3]]", "row 2 has 1 number but row 1 has 2"),
        ('[[1, "a"]]', r'row 1, column 2 \("a"\) is not a number'),
        ("[[1, true]]", "is not a number"),
        ("[]", "non-empty list"),
        ("[[]]", "row 1 is not a non-empty list"),
        ('{"k": 1}', "non-empty list"),
        ("[[1, NaN]]", "not finite"),
        ("[[1, 2]", "not valid JSON"),
        ("[1, 2, 3]", "row 1 is not"),
    ],
)
def test_kernel_from_json_errors_are_one_line(tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(CnnvizError, match=message) as info:
        lab.kernel_from_json(f)
    assert "\n" not in str(info.value)


def test_kernel_from_json_missing_file(tmp_path):
    with pytest.raises(CnnvizError, match="does not exist"):
        lab.kernel_from_json(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------- convolution


def test_box_blur_of_constant_image_and_zero_padding_darkens_border():
    c = 0.8
    out = lab.convolve(np.full((6, 7), c), lab.KERNEL_PRESETS["box_blur"].kernel, padding=1)
    assert out.shape == (6, 7)
    np.testing.assert_allclose(out[1:-1, 1:-1], c)
    # A corner window holds 4 of 9 image pixels, an edge window 6 of 9; the rest is zero padding.
    for y, x in ((0, 0), (0, 6), (5, 0), (5, 6)):
        assert out[y, x] == pytest.approx(c * 4 / 9)
    np.testing.assert_allclose(out[0, 1:-1], c * 6 / 9)
    np.testing.assert_allclose(out[1:-1, 0], c * 6 / 9)


def test_reflect_padding_keeps_a_constant_image_constant():
    out = lab.convolve(
        np.full((5, 5), 0.3),
        lab.KERNEL_PRESETS["box_blur"].kernel,
        padding=1,
        padding_mode="reflect",
    )
    np.testing.assert_allclose(out, 0.3)


def test_flip_of_symmetric_kernel_changes_nothing_and_flip_of_sobel_negates():
    img = RNG.random((9, 8, 3))
    for name in ("box_blur", "gaussian_5x5", "outline", "laplacian"):
        k = lab.KERNEL_PRESETS[name].kernel
        np.testing.assert_allclose(
            lab.convolve(img, k, padding=1, flip=True), lab.convolve(img, k, padding=1)
        )
    sobel = lab.KERNEL_PRESETS["sobel_x"].kernel
    np.testing.assert_allclose(lab.convolve(img, sobel, flip=True), -lab.convolve(img, sobel))
    emboss = lab.KERNEL_PRESETS["emboss"].kernel
    assert not np.allclose(lab.convolve(img, emboss, flip=True), lab.convolve(img, emboss))


def test_flip_is_true_convolution_against_an_explicit_sum():
    img = RNG.random((5, 6))
    k = RNG.random((3, 2))
    out = lab.convolve(img, k, flip=True)
    # Mathematical convolution: out[i, j] = sum_uv img[i + (kh-1) - u, j + (kw-1) - v] * k[u, v].
    kh, kw = k.shape
    want = np.zeros(out.shape)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            want[i, j] = sum(
                img[i + kh - 1 - u, j + kw - 1 - v] * k[u, v] for u in range(kh) for v in range(kw)
            )
    np.testing.assert_allclose(out, want)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    c=st.sampled_from([0, 1, 3]),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    seed=st.integers(0, 1000),
)
def test_convolve_matches_conv2d(h, w, c, kh, kw, s, p, d, seed):
    gen = np.random.default_rng(seed)
    img = gen.random((h, w) if c == 0 else (h, w, c))
    k = gen.standard_normal((kh, kw))
    try:
        want = torch_conv(img, k, stride=s, padding=p, dilation=d)
    except RuntimeError:
        with pytest.raises(CnnvizError, match="spans"):
            lab.convolve(img, k, stride=s, padding=p, dilation=d)
        return
    got = lab.convolve(img, k, stride=s, padding=p, dilation=d)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_float32_precision_is_conv2d_in_float32():
    img = RNG.random((9, 7, 3)) * 255
    k = lab.KERNEL_PRESETS["gaussian_5x5"].kernel
    got = lab.convolve(img, k, padding=2, precision="float32")
    x = torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)[None]
    w = torch.tensor(k, dtype=torch.float32)[None, None].repeat(3, 1, 1, 1)
    want = F.conv2d(x, w, padding=2, groups=3)[0].permute(1, 2, 0).numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    with pytest.raises(CnnvizError, match="precision"):
        lab.convolve(img, k, precision="float16")  # type: ignore[arg-type]


def test_rgb_kernel_sums_over_channels_into_one_map():
    img = RNG.random((7, 6, 3))
    k3 = RNG.standard_normal((3, 3, 3))
    got = lab.convolve(img, k3, per_channel=False, padding=1)
    x = torch.tensor(img).permute(2, 0, 1)[None]
    want = F.conv2d(x, torch.tensor(k3)[None], padding=1)[0, 0].numpy()
    assert got.shape == (7, 6)
    np.testing.assert_allclose(got, want)
    with pytest.raises(CnnvizError, match="channel slices"):
        lab.convolve(img, np.ones((2, 3, 3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stride": 0}, "stride must be at least 1"),
        ({"padding": -1}, "padding must be at least 0"),
        ({"dilation": (1, 0)}, "dilation must be at least 1"),
        ({"stride": 1.5}, "whole number"),
        ({"padding_mode": "mirror"}, "Unknown padding mode"),
    ],
)
def test_convolve_rejects_bad_settings(kwargs, message):
    with pytest.raises(CnnvizError, match=message):
        lab.convolve(np.ones((4, 4)), np.ones((3, 3)), **kwargs)


def test_convolve_rejects_bad_arrays():
    with pytest.raises(CnnvizError, match="H x W"):
        lab.convolve(np.ones((2, 2, 2, 2)), np.ones((1, 1)))
    with pytest.raises(CnnvizError, match="kernel"):
        lab.convolve(np.ones((4, 4)), np.ones(3))


# ---------------------------------------------------------------------------------------------- output size


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 14),
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    p=st.integers(0, 3),
    d=st.integers(1, 3),
)
def test_output_size_equals_torch(n, k, s, p, d):
    x = torch.zeros(1, 1, n, 3)
    weight = torch.zeros(1, 1, k, 1)
    try:
        want = F.conv2d(x, weight, stride=(s, 1), padding=(p, 0), dilation=(d, 1)).shape[2]
    except RuntimeError:
        with pytest.raises(CnnvizError, match="spans"):
            lab.output_size(n, k, s, p, d)
        return
    assert lab.output_size(n, k, s, p, d) == want
    line = lab.axis_formula("H", n, k, s, p, d)
    assert line == f"H_out = floor(({n} + 2*{p} - {d}*({k}-1) - 1)/{s}) + 1 = {want}"


def test_output_size_formula_both_axes():
    text = lab.output_size_formula((28, 20), 3, stride=(1, 2), padding=1)
    want_h, want_w = F.conv2d(
        torch.zeros(1, 1, 28, 20), torch.zeros(1, 1, 3, 3), stride=(1, 2), padding=1
    ).shape[2:]
    assert text.splitlines() == [
        f"H_out = floor((28 + 2*1 - 1*(3-1) - 1)/1) + 1 = {want_h}",
        f"W_out = floor((20 + 2*1 - 1*(3-1) - 1)/2) + 1 = {want_w}",
    ]


def test_output_size_explains_invalid_combinations():
    with pytest.raises(CnnvizError, match=r"spans 5 pixels, more than the 4 pixels"):
        lab.output_size(2, 3, 1, 1, 2)
    with pytest.raises(CnnvizError, match="stride must be at least 1"):
        lab.output_size(5, 3, 0)


# ---------------------------------------------------------------------------------------------- step-through


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "flip"), [(1, 0, 1, False), (2, 1, 1, True), (1, 2, 2, False)]
)
def test_step_windows_sums_equal_conv2d(stride, padding, dilation, flip):
    img = RNG.integers(0, 10, (6, 7)).astype(float)
    k = lab.KERNEL_PRESETS["sobel_x"].kernel
    result = lab.step_windows(img, k, stride=stride, padding=padding, dilation=dilation, flip=flip)
    kernel_used = np.flip(k).copy() if flip else k
    want = torch_conv(img, kernel_used, stride=stride, padding=padding, dilation=dilation)
    assert len(result.steps) == want.size
    assert result.output.shape == want.shape
    for step in result.steps:
        assert step.total == want[step.out_row, step.out_col]  # integers: exact
        np.testing.assert_array_equal(step.products, step.window * kernel_used)
        np.testing.assert_array_equal(step.window, result.padded[np.ix_(step.rows, step.cols)])
    # Reading order, and the window of cell (i, j) starts at (i*s, j*s) of the padded input.
    last = result.steps[-1]
    assert (last.out_row, last.out_col) == (want.shape[0] - 1, want.shape[1] - 1)
    assert last.rows[0] == last.out_row * stride and last.cols[0] == last.out_col * stride
    assert result.padded.shape == (6 + 2 * padding, 7 + 2 * padding)


def test_step_windows_needs_one_channel():
    with pytest.raises(CnnvizError, match="one channel"):
        lab.step_windows(np.ones((4, 4, 3)), np.ones((3, 3)))


# ---------------------------------------------------------------------------------------------- pooling


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))]
)
def test_max_pool_keeps_channels_and_marks_the_chosen_cells(kernel, stride, padding):
    fmap = RNG.random((7, 8, 4))
    out, mask = lab.pool(fmap, "max", kernel, stride, padding)
    x = torch.tensor(fmap).permute(2, 0, 1)[None]
    want, idx = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
    assert out.shape[2] == fmap.shape[2] == want.shape[1]
    np.testing.assert_array_equal(out, want[0].permute(1, 2, 0).numpy())
    assert mask.shape == fmap.shape and mask.dtype == bool
    for ch in range(4):
        chosen = set(idx[0, ch].flatten().tolist())
        assert set(np.flatnonzero(mask[..., ch]).tolist()) == chosen
        # Every output is the value of a chosen cell.
        assert set(out[..., ch].flatten().tolist()) <= set(fmap[..., ch][mask[..., ch]].tolist())


def test_avg_pool_matches_torch_and_marks_covered_cells():
    fmap = RNG.random((5, 5, 2))
    out, mask = lab.pool(fmap, "avg", 2)
    want = F.avg_pool2d(torch.tensor(fmap).permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, want)
    assert out.shape == (2, 2, 2)
    # With a 2x2 window and stride 2, the fifth row and column of a 5x5 map are never read.
    assert mask[:4, :4].all() and not mask[4].any() and not mask[:, 4].any()


def test_pool_errors():
    with pytest.raises(CnnvizError, match="more than half"):
        lab.pool(np.ones((4, 4)), "max", 2, padding=2)
    with pytest.raises(CnnvizError, match="Unknown pooling"):
        lab.pool(np.ones((4, 4)), "median")  # type: ignore[arg-type]
    with pytest.raises(CnnvizError, match="map height"):
        lab.pool(np.ones((1, 4)), "max", 2)


# ---------------------------------------------------------------------------------------------- counting


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter:
        module(torch.zeros(shape))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(
    ("kh", "kw", "cin", "cout", "groups", "bias"),
    [
        (3, 3, 3, 16, 1, True),
        (5, 3, 8, 4, 2, False),
        (1, 1, 64, 32, 1, True),
        (3, 3, 12, 12, 12, True),
    ],
)
def test_conv_param_count_and_macs_equal_torch(kh, kw, cin, cout, groups, bias):
    layer = nn.Conv2d(cin, cout, (kh, kw), groups=groups, bias=bias, padding=1)
    count = lab.conv_param_count(kh, kw, cin, cout, groups, bias)
    assert count.value == numel(layer)
    assert count.formula.endswith(f"= {numel(layer):,}")
    out = layer(torch.zeros(1, cin, 9, 10))
    macs = lab.macs_conv(kh, kw, cin, cout, out.shape[2], out.shape[3], groups)
    assert macs.value == flops_macs(layer, (1, cin, 9, 10))


def test_param_formula_text():
    assert (
        lab.conv_param_count(3, 3, 16, 32).formula
        == "K_h × K_w × C_in × C_out + C_out = 3 × 3 × 16 × 32 + 32 = 4,640"
    )
    assert (
        lab.dense_param_count(3072, 10).formula == "D_in × D_out + D_out = 3072 × 10 + 10 = 30,730"
    )
    assert lab.dense_param_count(4, 2, bias=False).formula == "D_in × D_out = 4 × 2 = 8"
    assert (
        lab.macs_conv(3, 3, 16, 32, 28, 28, groups=2).formula
        == "H_out × W_out × C_out × C_in/groups × K_h × K_w = 28 × 28 × 32 × 16/2 × 3 × 3 = 1,806,336"
    )


@pytest.mark.parametrize("bias", [True, False])
def test_dense_param_count_equals_linear(bias):
    assert lab.dense_param_count(48, 20, bias).value == numel(nn.Linear(48, 20, bias=bias))


def test_bad_groups_are_explained():
    with pytest.raises(CnnvizError, match="must divide"):
        lab.conv_param_count(3, 3, 6, 4, groups=4)


@pytest.mark.parametrize(
    ("cin", "cmid", "cout", "k", "h", "w"), [(64, 16, 64, 3, 14, 12), (32, 8, 16, 5, 9, 9)]
)
def test_bottleneck_comparison_equals_real_layers(cin, cmid, cout, k, h, w):
    direct = nn.Conv2d(cin, cout, k, padding=k // 2)
    bottleneck = nn.Sequential(nn.Conv2d(cin, cmid, 1), nn.Conv2d(cmid, cout, k, padding=k // 2))
    cmp = lab.bottleneck_comparison(cin, cmid, cout, k, h, w)
    assert cmp.before_params == numel(direct)
    assert cmp.after_params == numel(bottleneck)
    assert cmp.before_macs == flops_macs(direct, (1, cin, h, w))
    assert cmp.after_macs == flops_macs(bottleneck, (1, cin, h, w))
    assert cmp.params_ratio == pytest.approx(numel(direct) / numel(bottleneck))
    assert cmp.macs_ratio > 1


def test_multi_filter_is_one_conv2d_layer():
    img = RNG.random((10, 9, 3))
    result = lab.multi_filter(img, n_filters=5, seed=3)
    layer = nn.Conv2d(3, 5, 3, padding=1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(result.weights))
        layer.bias.copy_(torch.tensor(result.bias))
        want = layer(torch.tensor(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert result.weights.shape == (5, 3, 3, 3)
    assert result.outputs.shape == (10, 9, 5)
    np.testing.assert_allclose(result.outputs, want, atol=1e-12)
    assert result.params.value == numel(layer)
    # Each output channel is the sum of one slice per input channel, plus the bias.
    np.testing.assert_allclose(
        result.partials.sum(axis=1).transpose(1, 2, 0) + result.bias, want, atol=1e-12
    )
    for ch in range(3):
        np.testing.assert_allclose(
            result.partials[2, ch],
            torch_conv(img[..., ch], result.weights[2, ch], padding=1),
            atol=1e-12,
        )
    again = lab.multi_filter(img, n_filters=5, seed=3)
    np.testing.assert_array_equal(again.weights, result.weights)
    assert not np.array_equal(lab.multi_filter(img, 5, seed=4).weights, result.weights)


# ---------------------------------------------------------------------------------------------- conv vs dense


def summary_of(model: nn.Sequential, input_shape: tuple[int, int, int]) -> Summary:
    """A Summary built from a real forward pass (shapes) and sum(p.numel()) (params)."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))
        )
        for name, m in model.named_children()
    ]
    try:
        model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, m in model.named_children():
        conv = isinstance(m, nn.Conv2d)
        rows.append(
            LayerRow(
                name=name,
                type=type(m).__name__,
                kind="module",
                depth=1,
                output_shape=shapes[name],
                params=numel(m),
                kernel_size=m.kernel_size if conv else None,
                stride=m.stride if conv else None,
                groups=m.groups if conv else None,
                in_channels=m.in_channels if conv else None,
                out_channels=m.out_channels if conv else None,
            )
        )
    total = numel(model)
    return Summary("test", input_shape, rows, total, total, 0)


def test_conv_vs_dense_for_a_layer_of_a_model():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, bias=False)
    )
    summary = summary_of(model, (3, 8, 8))
    assert [r.name for r in lab.conv_rows(summary)] == ["0", "2"]
    first = lab.conv_vs_dense(summary, "0")
    assert first.in_shape == (3, 8, 8) and first.out_shape == (4, 8, 8)
    assert first.conv.value == numel(model[0])
    assert first.dense.value == numel(nn.Linear(3 * 8 * 8, 4 * 8 * 8))
    second = lab.conv_vs_dense(summary, "2")
    assert second.in_shape == (4, 8, 8) and second.out_shape == (6, 3, 3)
    assert second.conv.value == numel(model[2])
    assert second.dense.value == numel(nn.Linear(4 * 8 * 8, 6 * 3 * 3, bias=False))
    assert second.ratio == pytest.approx(second.dense.value / second.conv.value)
    with pytest.raises(CnnvizError, match="not a 2-D convolution"):
        lab.conv_vs_dense(summary, "1")
    with pytest.raises(CnnvizError, match="no layer named"):
        lab.conv_vs_dense(summary, "zzz")


def test_conv_vs_dense_shapes_equals_torch():
    cmp = lab.conv_vs_dense_shapes((3, 10, 9), 5, 3, stride=2, padding=1)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    out = conv(torch.zeros(1, 3, 10, 9)).shape
    assert cmp.out_shape == tuple(out[1:])
    assert cmp.conv.value == numel(conv)
    assert cmp.dense.value == numel(nn.Linear(3 * 10 * 9, out[1] * out[2] * out[3]))


# ---------------------------------------------------------------------------------------------- receptive fields


def gradient_rf(layers: list[lab.StackLayer], n: int = 96) -> tuple[int, int]:
    """Receptive field size and stride of the centre units, from the gradient support of a real network."""
    mods: list[nn.Module] = []
    for layer in layers:
        if layer.type == "Conv2d":
            conv = nn.Conv2d(
                1, 1, layer.kernel, layer.stride, layer.padding, layer.dilation, bias=False
            )
            nn.init.constant_(
                conv.weight, 1.0
            )  # all-positive weights: no cancellation inside the support
            mods.append(conv)
        else:  # max pooling replaced by average pooling, whose gradient reaches every cell of its window
            mods.append(nn.AvgPool2d(layer.kernel, layer.stride, layer.padding))
    net = nn.Sequential(*mods).double()
    x = torch.zeros(1, 1, n, 1, dtype=torch.float64, requires_grad=True)
    x2 = x.expand(1, 1, n, n)
    y = net(x2)
    mid = y.shape[2] // 2
    starts = []
    size = 0
    for unit in (mid, mid + 1):
        (g,) = torch.autograd.grad(y[0, 0, unit, y.shape[3] // 2], x, retain_graph=True)
        rows = torch.nonzero(g[0, 0, :, 0]).flatten()
        starts.append(int(rows[0]))
        size = int(rows[-1] - rows[0] + 1)
    return size, starts[1] - starts[0]


@pytest.mark.parametrize("name", list(lab.DEMO_STACKS))
def test_rf_stack_equals_gradient_support(name):
    layers = lab.DEMO_STACKS[name]
    points = lab.rf_stack(layers)
    assert points[0].size == (1, 1) and len(points) == len(layers) + 1
    size, stride = gradient_rf(layers)
    assert points[-1].size == (size, size)
    assert points[-1].stride == (Fraction(stride), Fraction(stride))
    assert [p.jump for p in points[1:]] == [layer.stride > 1 for layer in layers]


def test_rf_growth_from_summary_rows():
    def row(name, typ, r, s, stride=None, global_=False):
        rf = (
            ReceptiveField(None, None, None, global_=True)
            if global_
            else ReceptiveField((r, r), (Fraction(s), Fraction(s)), (Fraction(0), Fraction(0)))
        )
        return LayerRow(name, typ, "module", 1, (1, 1, 4, 4), stride=stride, rf=rf)

    rows = [
        LayerRow("features", "Sequential", "container", 0, (1, 1, 4, 4)),
        row("conv1", "Conv2d", 3, 1, (1, 1)),
        row("pool", "MaxPool2d", 4, 2, (2, 2)),
        row("conv2", "Conv2d", 8, 2, (1, 1)),
        row("gap", "AdaptiveAvgPool2d", 0, 0, global_=True),
        row("fc", "Linear", 0, 0, global_=True),
    ]
    points = lab.rf_growth(Summary("m", (1, 16, 16), rows, 0, 0, 0))
    assert [p.name for p in points] == ["input", "conv1", "pool", "conv2", "gap", "fc"]
    assert [p.jump for p in points] == [False, False, True, False, True, False]
    assert points[2].reason == "stride 2: S becomes 2"
    assert points[3].size == (8, 8) and points[4].global_ and points[4].size is None


# ---------------------------------------------------------------------------------------------- display, files


def test_display_rules():
    assert lab.display_rule(lab.KERNEL_PRESETS["sobel_x"].kernel) == "abs"
    assert lab.display_rule(lab.KERNEL_PRESETS["outline"].kernel) == "abs"
    assert lab.display_rule(lab.KERNEL_PRESETS["emboss"].kernel) == "clip"
    assert lab.display_rule(lab.KERNEL_PRESETS["box_blur"].kernel, "signed") == "signed"
    v = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    assert lab.to_uint8(v, "clip").tolist() == [0, 0, 0, 128, 255, 255]
    assert lab.to_uint8(v, "abs").tolist() == [255, 255, 0, 128, 255, 255]
    assert lab.to_uint8(v, "signed").tolist() == [0, 0, 128, 191, 255, 255]
    assert lab.to_uint8(v, "stretch").tolist() == [0, 51, 102, 128, 153, 255]
    assert lab.to_uint8(v * 255, "clip", full_scale=255).tolist() == [0, 0, 0, 128, 255, 255]
    with pytest.raises(CnnvizError):
        lab.display_rule(np.ones((3, 3)), "fancy")


def test_image_to_float_and_sample_image():
    img = lab.sample_image(48)
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    f = lab.image_to_float(img)
    np.testing.assert_allclose(f, img / 255.0)
    small = lab.image_to_float(np.dstack([img, np.full((48, 48), 255, np.uint8)]), max_side=24)
    assert small.shape == (24, 24, 3)


def test_core_lab_imports_no_qt():
    code = "import sys, cnnviz.core.lab; print(any(m.split('.')[0] in ('PySide6', 'pyqtgraph') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mix_channels_is_a_1x1_conv2d():
    rng = np.random.default_rng(1)
    img = rng.random((7, 5, 3))
    w = rng.normal(size=(4, 3))
    b = rng.normal(size=4)
    layer = torch.nn.Conv2d(3, 4, 1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w)[:, :, None, None])
        layer.bias.copy_(torch.tensor(b))
        want = layer(torch.tensor(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    mix = lab.mix_channels(img, w, b)
    np.testing.assert_allclose(mix.outputs, want, atol=1e-12)
    assert mix.outputs.shape == (7, 5, 4)
    assert mix.params.value == sum(p.numel() for p in layer.parameters())
    with pytest.raises(CnnvizError, match="C_out x 3 matrix"):
        lab.mix_channels(img, np.ones((2, 4)))
    with pytest.raises(CnnvizError, match="finite"):
        lab.mix_channels(img, np.array([[1.0, np.nan, 0.0]]))


def test_named_rgb_filters_are_used_as_given():
    img = np.random.default_rng(2).random((6, 6, 3))
    weights = np.stack([f.weights for f in lab.RGB_FILTERS.values()])
    res = lab.multi_filter(img, 0, weights=weights)
    x = torch.tensor(img).permute(2, 0, 1)[None]
    want = torch.nn.functional.conv2d(x, torch.tensor(weights), padding=1)[0].permute(1, 2, 0)
    np.testing.assert_allclose(res.outputs, want.numpy(), atol=1e-12)
    np.testing.assert_allclose(res.partials.sum(axis=1), np.moveaxis(res.outputs, 2, 0), atol=1e-12)
    assert not res.bias.any() and res.params.value == weights.size
    with pytest.raises(CnnvizError, match="N x 3 x K x K"):
        lab.multi_filter(img, 1, weights=np.ones((1, 2, 3, 3)))


def test_display_rule_for_zero_sum_kernels_can_be_signed():
    sobel = lab.KERNEL_PRESETS["sobel_x"].kernel
    assert lab.display_rule(sobel, zero_sum="signed") == "signed"
    assert lab.display_rule(lab.KERNEL_PRESETS["box_blur"].kernel, zero_sum="signed") == "clip"
