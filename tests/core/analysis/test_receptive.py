"""Receptive fields against torch's own gradients.

Truth is the support of the input gradient of one unit, measured on a *structural* copy of the network: all
weights positive, max-pooling replaced by average pooling of the same geometry, no ReLU gating -- then every
input pixel the unit can depend on gets a strictly positive gradient.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracles import gradient_bbox, module_output, structural_copy
from torch import nn

from cnnviz.core.analysis.receptive import (
    ReceptiveFieldIndex,
    effective_receptive_field,
    receptive_field,
)
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import LayerError

# ----------------------------------------------------------------------------------------------------------------
# Random architectures


@dataclass
class ConvSpec:
    k: tuple[int, int]
    s: tuple[int, int]
    p: tuple[int, int]
    d: tuple[int, int]


@dataclass
class PoolSpec:
    kind: str
    k: int
    s: int
    p: int
    ceil: bool


@dataclass
class ResidualSpec:
    k: int
    stride: int


@dataclass
class ConcatSpec:
    kernels: tuple[int, ...]


class Residual(nn.Module):
    def __init__(self, ch: int, k: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, k, stride, k // 2)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(ch, ch, 1, stride) if stride != 1 else nn.Identity()

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv(x))) + self.shortcut(x))


class Concat(nn.Module):
    def __init__(self, ch: int, kernels: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(ch, ch, k, 1, k // 2) for k in kernels)
        self.merge = nn.Conv2d(ch * len(kernels), ch, 1)

    def forward(self, x):
        return self.merge(torch.cat([b(x) for b in self.branches], dim=1))


def build(stages: list, ch: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(1, ch, 1)]
    for st_ in stages:
        if isinstance(st_, ConvSpec):
            layers += [nn.Conv2d(ch, ch, st_.k, st_.s, st_.p, st_.d), nn.ReLU(inplace=True)]
        elif isinstance(st_, PoolSpec):
            cls = nn.MaxPool2d if st_.kind == "max" else nn.AvgPool2d
            layers.append(cls(st_.k, st_.s, st_.p, ceil_mode=st_.ceil))
        elif isinstance(st_, ResidualSpec):
            layers.append(Residual(ch, st_.k, st_.stride))
        else:
            layers.append(Concat(ch, st_.kernels))
    return nn.Sequential(*layers)


def conv_specs():
    small = st.integers(1, 4)
    return st.builds(
        lambda kh, kw, sh, sw, ph, pw, dh, dw: ConvSpec((kh, kw), (sh, sw), (min(ph, kh // 2), min(pw, kw // 2)),
                                                        (dh, dw)),  # fmt: skip
        small, small, st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(0, 2),
        st.integers(1, 2), st.integers(1, 2),
    )  # fmt: skip


def pool_specs():
    return st.integers(2, 3).flatmap(
        lambda k: st.builds(
            PoolSpec,
            st.sampled_from(["max", "avg"]),
            st.just(k),
            st.integers(1, 3),
            st.integers(0, k // 2),
            st.booleans(),
        )  # fmt: skip
    )


stages_strategy = st.lists(
    st.one_of(
        conv_specs(),
        pool_specs(),
        st.builds(ResidualSpec, st.sampled_from([1, 3, 5]), st.integers(1, 2)),
        st.builds(
            ConcatSpec, st.lists(st.sampled_from([1, 3, 5]), min_size=2, max_size=3).map(tuple)
        ),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stages=stages_strategy, h=st.integers(9, 40), w=st.integers(9, 40), data=st.data())
def test_support_box_equals_gradient_support(stages, h, w, data):
    model = build(stages).eval()
    shape = (1, h, w)
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *shape))
    except RuntimeError:
        return  # an impossible architecture for this input size: nothing to check
    if out.shape[2] < 1 or out.shape[3] < 1:
        return
    index = ReceptiveFieldIndex(model, shape)
    last = str(len(model) - 1)
    oh, ow = out.shape[2], out.shape[3]
    structural = structural_copy(model)
    units = {(0, 0), (oh - 1, ow - 1), (oh // 2, ow // 2)}
    units.add((data.draw(st.integers(0, oh - 1)), data.draw(st.integers(0, ow - 1))))
    for unit in units:
        box = index.box(last, unit)
        truth = gradient_bbox(structural, lambda m, x: m(x), shape, unit)
        assert box.support_box == truth, (stages, shape, unit, box)
        if truth is not None:
            clipped = box.clipped_box
            assert clipped is not None
            # the formula's box, clipped, always contains every pixel the unit depends on
            assert clipped[0] <= truth[0] and clipped[1] <= truth[1]
            assert clipped[2] >= truth[2] and clipped[3] >= truth[3]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stages=stages_strategy)
def test_interior_unit_box_equals_gradient_support(stages):
    """Where the whole field fits inside the input, the formula box is exactly the gradient's support."""
    model = build(stages).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 64, 64))
    except RuntimeError:
        assume(False)  # an impossible architecture for this input size: nothing to check
    summary = summarize(model, (1, 64, 64))
    rf = summary.row(str(len(model) - 1)).rf
    assert rf is not None and not rf.global_
    size = int(max(rf.size)) + 2 * int(max(rf.stride)) * 2 + 8
    shape = (1, size, size)
    index = ReceptiveFieldIndex(model, shape)
    last = str(len(model) - 1)
    oh, ow = index.map_size(last)
    unit = (oh // 2, ow // 2)
    box = index.box(last, unit)
    truth = gradient_bbox(structural_copy(model), lambda m, x: m(x), shape, unit)
    if box.padding_fraction == 0:
        assert box.box == truth, (stages, box)
        assert box.size == (truth[2] - truth[0] + 1, truth[3] - truth[1] + 1)


def test_vgg16_pool5_matches_published_figures():
    model = torchvision.models.vgg16(weights=None).eval()
    rf = summarize(model, (3, 224, 224)).row("features").rf
    assert rf.size == (212, 212)
    assert rf.stride == (32, 32)
    assert rf.padding == (90, 90)


def test_resnet18_layer4_field_measured_by_gradient():
    """ResNet-18's residual paths: the field of layer4 (435 px) checked on an input that holds it whole."""
    model = torchvision.models.resnet18(weights=None).eval()
    shape = (3, 448, 448)
    index = ReceptiveFieldIndex(model, shape)
    oh, ow = index.map_size("layer4")
    unit = (oh // 2, ow // 2)
    box = index.box("layer4", unit)
    assert box.size == (435, 435)
    truth = gradient_bbox(structural_copy(model), module_output("layer4"), shape, unit)
    assert box.support_box == truth
    assert box.clipped_box == truth


def test_inception_v3_branches_measured_by_gradient():
    """Inception's concatenated branches with different kernels (1x7, 7x1 ...), merged by their extreme edges."""
    model = torchvision.models.inception_v3(
        weights=None, init_weights=False, aux_logits=False
    ).eval()
    shape = (3, 171, 171)
    index = ReceptiveFieldIndex(model, shape)
    layer = "Mixed_6b"  # after the 1x7 / 7x1 factorised branches
    oh, ow = index.map_size(layer)
    structural = structural_copy(model)
    for unit in [(oh // 2, ow // 2), (0, ow - 1)]:
        box = index.box(layer, unit)
        truth = gradient_bbox(structural, module_output(layer), shape, unit)
        assert box.support_box == truth, (layer, unit)


def test_non_square_kernels_per_axis():
    model = nn.Sequential(
        nn.Conv2d(1, 1, (1, 7), padding=(0, 3)), nn.Conv2d(1, 1, (7, 1), stride=(2, 1))
    ).eval()
    rf = summarize(model, (1, 32, 32)).row("1").rf
    assert rf.size == (7, 7)
    assert rf.stride == (2, 1)
    assert rf.padding == (0, 3)


def test_global_after_pooling_and_linear():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)
    ).eval()
    summary = summarize(model, (1, 16, 16))
    assert summary.row("0").rf.size == (3, 3)
    for name in ("1", "2", "3"):
        assert summary.row(name).rf.global_
    with pytest.raises(LayerError, match="no spatial map"):
        receptive_field(model, "3", (0, 0), (1, 16, 16))


def test_adaptive_pool_non_divisible_windows_are_exact():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AdaptiveAvgPool2d((3, 3))).eval()
    shape = (1, 10, 10)
    index = ReceptiveFieldIndex(model, shape)
    structural = structural_copy(model)
    for unit in [(0, 0), (1, 1), (2, 2), (1, 2)]:
        truth = gradient_bbox(structural, lambda m, x: m(x), shape, unit)
        assert index.box("1", unit).support_box == truth


def test_upsampling_and_transposed_convolution_supports():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1),
    ).eval()
    shape = (1, 12, 12)
    index = ReceptiveFieldIndex(model, shape)
    structural = structural_copy(model)
    oh, ow = index.map_size("2")
    for unit in [(0, 0), (oh // 2, ow // 2), (oh - 1, ow - 1), (3, 4)]:
        truth = gradient_bbox(structural, lambda m, x: m(x), shape, unit)
        assert index.box("2", unit).support_box == truth, unit


def test_unit_errors_state_valid_range_and_close_names():
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), relu=nn.ReLU())).eval()
    with pytest.raises(LayerError, match=r"y must be 0\.\.5"):
        receptive_field(model, "conv", (6, 0), (1, 8, 8))
    with pytest.raises(LayerError, match="closest: conv"):
        receptive_field(model, "cnv", (0, 0), (1, 8, 8))


def test_effective_receptive_field_matches_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2)
    ).eval()
    x = torch.randn(1, 3, 16, 16)
    erf = effective_receptive_field(model, x, "2", (3, 4), channel=1)
    # only the input gradient is computed: nothing accumulates on the weights
    assert all(p.grad is None for p in model.parameters())
    xr = x.clone().requires_grad_(True)
    model(xr)[0, 1, 3, 4].backward()
    np.testing.assert_allclose(erf.heatmap, xr.grad[0].abs().sum(0).numpy(), rtol=1e-5, atol=1e-7)
    rows = np.flatnonzero(xr.grad[0].abs().sum(0).any(1).numpy())
    assert erf.support_box[0] == rows[0] and erf.support_box[2] == rows[-1]


class Untraceable(nn.Module):
    """Python control flow on tensor values: torch.fx cannot trace it, so its fields are measured."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = self.pool(self.conv(x))
        if y.sum() > -1e9:
            y = self.conv2(y)
        return y


def test_untraceable_model_is_measured_by_gradient_and_labelled():
    model = Untraceable().eval()
    traced_twin = nn.Sequential(model.conv, model.pool, model.conv2).eval()
    shape = (1, 32, 32)
    index = ReceptiveFieldIndex(model, shape)
    assert index.measured
    twin = ReceptiveFieldIndex(traced_twin, shape)
    for unit in [(0, 0), (4, 4), (7, 7)]:
        measured = index.box("conv2", unit)
        exact = twin.box("2", unit)
        assert measured.measured and measured.to_json()["measured"] is True
        assert measured.support_box == exact.support_box


def test_squeeze_excitation_gate_is_marked_and_support_is_whole_input():
    """The convolution path's field is reported, marked gated; the exact support shows the gate's global reach."""
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    shape = (3, 96, 96)
    index = ReceptiveFieldIndex(model, shape)
    box = index.box("features.2", (1, 1))
    assert box.gated and box.to_json()["gated"] is True
    truth = gradient_bbox(structural_copy(model), module_output("features.2"), shape, (1, 1))
    assert box.support_box == truth == (0, 0, 95, 95)
    assert box.size[0] < 96  # the local field of the convolution path, not the whole input
    before_gate = index.box("features.1.block.0", (1, 1))
    assert not before_gate.gated
