"""Receptive fields through squeeze/unsqueeze, and tables of inputs that are not (C, H, W)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import LayerError
from cnnviz.core.present import tables


class _SqueezeNet(nn.Module):
    """A batch axis added and removed again between two convolutions: the field passes straight through."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.conv2 = nn.Conv2d(2, 2, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        y = y.unsqueeze(0).squeeze(0)
        return self.conv2(y)


def _gradient_bbox(model: nn.Module, shape: tuple[int, int, int], unit: tuple[int, int]):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(0.5, 1.0)
                assert m.bias is not None
                m.bias.zero_()
    x = torch.ones((1, *shape), requires_grad=True)
    model(x)[0, :, unit[0], unit[1]].sum().backward()
    assert x.grad is not None
    support = (x.grad[0].abs().sum(0) > 0).numpy()
    rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
    return (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))


def test_squeeze_and_unsqueeze_keep_the_field_ungated_and_exact():
    model = _SqueezeNet()
    shape = (1, 12, 12)
    summary = summarize(model, shape)
    for name in ("unsqueeze", "squeeze", "conv2"):
        rf = summary.row(name).rf
        assert rf is not None and not rf.gated, name
    truth = _gradient_bbox(model, shape, (3, 2))
    box = ReceptiveFieldIndex(model, shape).box("conv2", (3, 2))
    assert box.support_box == truth
    assert box.box == truth


def test_index_rejects_an_input_shape_that_is_not_chw():
    model = nn.Sequential(nn.Conv2d(1, 1, 3))
    with pytest.raises(LayerError, match=r"\(C, H, W\)"):
        ReceptiveFieldIndex(model, (8, 8))  # type: ignore[arg-type]


def test_tables_of_a_one_dimensional_input():
    shape = (3, 10)
    summary = summarize(nn.Sequential(nn.Conv1d(3, 4, 3)), shape)
    assert list(summary.input_shape) == list(shape)
    assert "Input: 3×10\n" in tables.to_text(summary)
    assert "- input 3×10," in tables.to_markdown(summary)
