"""Traced models with layers whose field cannot be derived: their units are measured, checked against the gradient.

torchvision's Swin partitions windows and shifts them inside one wrapped function, which the graph walk cannot see
through; every layer after it used to be unknown. The truth is the support of one unit's input gradient on the
original model (its own random weights, float64, a union over random inputs), computed with torch alone.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from oracles import module_output, original_support
from torch import nn

from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
from cnnviz.core.errors import LayerError


@torch.fx.wrap
def _shuffle_rows(x: torch.Tensor) -> torch.Tensor:
    # a leaf of the trace: its spatial dependence (rows reversed in pairs of blocks) is not known to the analysis
    h = x.shape[2]
    return torch.cat([x[:, :, h // 2 :], x[:, :, : h // 2]], dim=2).flip(3)


class _Opaque(nn.Module):
    """conv -> an operation the analysis does not understand -> conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(_shuffle_rows(self.conv1(x))))


def test_an_underived_layer_of_a_traced_model_is_measured() -> None:
    torch.manual_seed(0)
    model = _Opaque().eval()
    shape = (2, 12, 10)
    index = ReceptiveFieldIndex(model, shape)
    assert not index.measured  # traced: the first convolution is derived exactly
    first = index.box("conv1", (5, 5))
    assert not first.measured and first.support_box == original_support(
        model, module_output("conv1"), shape, (5, 5)
    )
    size = index.map_size("conv2")
    assert size is not None
    seen = set()
    for unit in ((0, 0), (size[0] // 2, size[1] // 2), (size[0] - 1, size[1] - 1)):
        box = index.box("conv2", unit)
        truth = original_support(model, module_output("conv2"), shape, unit)
        assert box.measured and box.to_json()["measured"] is True
        assert box.support_box == box.clipped_box == box.box == truth, (
            unit,
            box.support_box,
            truth,
        )
        seen.add(truth)
    assert len(seen) == 3  # different units, different fields: not the whole input every time
    with pytest.raises(LayerError, match=r"outside layer 'conv2'"):
        index.box("conv2", (size[0], 0))


@pytest.mark.slow
def test_swin_units_are_measured_where_windows_split_the_map() -> None:
    torch.manual_seed(0)
    model = torchvision.models.swin_t(weights=None).eval()
    shape = (3, 64, 64)
    index = ReceptiveFieldIndex(model, shape)
    assert not index.measured
    patch = index.box("features.0.0", (3, 5))
    assert not patch.measured  # the patch embedding is derived: a 4x4 patch
    assert patch.support_box == original_support(
        model, module_output("features.0.0"), shape, (3, 5)
    )
    whole = (0, 0, shape[1] - 1, shape[2] - 1)
    local = 0
    for layer in (
        "features.1.0",
        "features.1.1",
        "features.2.reduction",
        "features.3.1",
        "features.5.0",
    ):
        size = index.map_size(layer)
        assert size is not None, layer
        for unit in ((size[0] // 2, size[1] // 2), (0, size[1] - 1)):
            box = index.box(layer, unit)
            truth = original_support(model, module_output(layer), shape, unit, channel_last=True)
            if layer == "features.5.0":
                # a 4x4 map under a 7x7 window: one window, every position attends to every other (derived)
                assert box.global_ and not box.measured, (layer, unit)
                assert truth == whole, (layer, unit, truth)
                continue
            assert box.measured, (layer, unit)
            assert box.support_box == truth, (layer, unit, box.support_box, truth)
            local += truth != whole
    assert local >= 4  # the first stages see their windows, not the whole input
