"""Measured receptive fields of models torch.fx cannot trace, checked against the gradient on the model itself.

timm's TensorFlow ports pad at run time ("same" convolutions and max pools), fuse batch norm and activation in
one module and gate every block by squeeze-and-excitation; timm's hybrid and nested transformers fall back to
hooks too. The truth is the support of one unit's input gradient on the original model (its own random weights,
float64, a union over random inputs), computed with torch alone.
"""

from __future__ import annotations

import pytest
import timm
import torch
from oracles import module_output, original_support
from timm.layers import Conv2dSame
from timm.layers.pool2d_same import MaxPool2dSame
from torch import nn

from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
from cnnviz.core.analysis.receptive.measured import spatial_axes
from cnnviz.core.errors import LayerError


def _check(model: nn.Module, shape: tuple[int, int, int], layers: list[str]) -> dict[str, int]:
    """Measured boxes equal the gradient support of the centre and a corner unit of each layer."""
    index = ReceptiveFieldIndex(model, shape)
    assert index.measured  # the model falls back to hooks: every box here is measured
    kinds = {"local": 0, "whole": 0}
    whole = (0, 0, shape[1] - 1, shape[2] - 1)
    for layer in layers:
        size = index.map_size(layer)
        assert size is not None, layer
        for unit in ((size[0] // 2, size[1] // 2), (0, size[1] - 1)):
            box = index.box(layer, unit)
            truth = original_support(model, module_output(layer), shape, unit)
            assert box.measured and box.to_json()["measured"] is True
            assert box.support_box == truth, (layer, unit, box.support_box, truth)
            kinds["whole" if truth == whole else "local"] += 1
    return kinds


@pytest.mark.slow
def test_tf_efficientnetv2_same_padding_norm_act_and_gates_are_measured_right():
    model = timm.create_model("tf_efficientnetv2_b0", pretrained=False).eval()
    # deep layers overflowed a copy with unbounded positive weights ("does not depend on the input")
    kinds = _check(
        model,
        (3, 128, 128),
        ["bn1", "blocks.1.1", "blocks.3.0.se", "blocks.5.7"],
    )
    assert (
        kinds["local"] >= 4 and kinds["whole"] >= 4
    )  # before the first gate local, after it the whole input


class _SamePadded(nn.Module):
    """TensorFlow-style "same" convolution and max pool (padding computed at run time) with data-dependent flow."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = Conv2dSame(3, 16, 3, stride=2)
        self.pool = MaxPool2dSame(3, stride=2)
        self.act = nn.ReLU()
        self.conv2 = Conv2dSame(16, 16, 5, stride=1, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.act(self.conv(x)))
        if y.sum() > -1e30:  # a Python branch on a value: torch.fx cannot trace it
            y = self.conv2(y)
        return y


def test_same_padding_and_max_pools_are_reproduced_exactly():
    model = _SamePadded().eval()
    for shape in ((3, 37, 30), (3, 40, 41)):  # odd and even sizes: the dynamic padding differs
        kinds = _check(model, shape, ["conv", "pool", "conv2"])
        assert kinds["local"] == 6


@pytest.mark.slow
def test_hybrid_vit_and_nested_transformer_fields_are_measured_or_absent():
    for name, shape, layers in (
        ("vit_small_r26_s32_224", (3, 224, 224), ["patch_embed.backbone.stem", "patch_embed.backbone.stages.1"]),
        ("nest_tiny", (3, 224, 224), ["patch_embed", "levels.0.pool"]),
    ):  # fmt: skip
        model = timm.create_model(name, pretrained=False).eval()
        _check(model, shape, layers)


def test_layers_without_an_image_layout_have_no_measured_map():
    model = timm.create_model("nest_tiny", pretrained=False).eval()
    index = ReceptiveFieldIndex(model, (3, 224, 224))
    # NesT's transformer levels hold (batch, blocks, tokens, channels): no image axes to pick a unit from
    assert index.map_size("levels.0.transformer_encoder.0") is None
    try:
        index.box("levels.0.transformer_encoder.0", (0, 0))
    except LayerError as exc:
        assert "spatial map" in str(exc)
    else:
        raise AssertionError("a unit was measured on a layer without image axes")


def test_spatial_axes_reads_the_layout_from_the_shape():
    assert spatial_axes((1, 96, 56, 56), (224, 224)) == (2, 3)
    assert spatial_axes((1, 56, 56, 96), (224, 224)) == (1, 2)  # channel-last (Swin)
    assert spatial_axes((1, 16, 196, 128), (224, 224)) is None
    assert spatial_axes((1, 8, 7, 10), (56, 80)) == (2, 3)
    assert spatial_axes((1, 8, 10), (56, 80)) is None


class _PositionalMap(nn.Module):
    """A map computed from a parameter alone (as ConViT's positional attention), next to one of the image."""

    def __init__(self) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.rand(1, 2, 8, 8))
        self.pos = nn.Conv2d(2, 2, 3, padding=1)
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > -1e30:  # a Python branch on a value: torch.fx cannot trace it
            y = y + self.pos(self.grid)
        return y


def test_a_map_made_of_parameters_does_not_depend_on_the_input():
    model = _PositionalMap().eval()
    index = ReceptiveFieldIndex(model, (3, 8, 8))
    try:
        index.box("pos", (4, 4))
    except LayerError as exc:
        assert "does not depend on the input" in str(exc)
    else:
        raise AssertionError("a map of parameters was given a field")
    assert original_support(model, module_output("pos"), (3, 8, 8), (4, 4)) is None
    assert index.box("conv", (4, 4)).support_box == (3, 3, 5, 5)
