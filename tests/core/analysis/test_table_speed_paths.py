"""The fast paths of the table: the stored table of an unchanged model, shape rules for elementwise operations.

Truth: a fresh table of a rebuilt model (for the cache) and a real forward pass (for the shape rules).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.core.analysis.capture import ForwardError
from cnnviz.core.analysis.graph import forget_graph
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import MemoryBudgetError


def small() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3), nn.Flatten()
    ).eval()


def table(model: nn.Module, shape: tuple[int, ...] = (3, 12, 12)) -> list[tuple]:
    return [(r.name, r.type, r.output_shape, r.params, r.trainable_params, r.macs) for r in
            summarize(model, shape).rows]  # fmt: skip


def edited_structure(model: nn.Sequential) -> bool:
    return len(model) == 5 or model[2].out_channels == 4


def test_unchanged_model_gives_the_same_table_as_a_fresh_one() -> None:
    model = small()
    first = table(model)
    assert table(model) == first == table(small())


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: setattr(m, "2", nn.Conv2d(8, 4, 3)),  # a layer replaced
        lambda m: setattr(m[2], "stride", (2, 2)),  # a setting changed in place
        lambda m: setattr(m[2], "padding", (2, 2)),
        lambda m: m[0].weight.requires_grad_(False),  # a weight frozen
        lambda m: setattr(
            m[2], "weight", nn.Parameter(torch.zeros(8, 8, 5, 5))
        ),  # a kernel resized
        lambda m: m.append(nn.Linear(8 * 10 * 10, 5)),  # a layer added
    ],
    ids=["replaced", "stride", "padding", "frozen", "resized", "appended"],
)
def test_an_edit_in_place_gives_a_new_table(edit) -> None:
    model = small()
    before = table(model)
    edit(model)
    if edited_structure(model):
        forget_graph(model)  # a layer replaced or added needs a new trace, as documented
    after = table(model)
    assert after != before
    # the truth: the same edit on a model never summarised
    fresh = small()
    edit(fresh)
    assert after == table(fresh)


def test_rows_of_a_returned_table_can_be_changed_freely() -> None:
    model = small()
    first = summarize(model, (3, 12, 12))
    first.rows[0].output_shape = (0,)
    first.rows[0].inputs.append("x")
    first.rows.pop()
    again = summarize(model, (3, 12, 12))
    assert again.rows[0].output_shape == (1, 8, 12, 12)
    assert "x" not in again.rows[0].inputs and len(again.rows) == len(first.rows) + 1


def test_a_stored_table_still_obeys_a_smaller_memory_budget(monkeypatch) -> None:
    model = small()
    summarize(model, (3, 64, 64))
    monkeypatch.setenv("CNNVIZ_MEMORY_BUDGET", "10KB")
    with pytest.raises(MemoryBudgetError):
        summarize(model, (3, 64, 64))


class Elementwise(nn.Module):
    """Activations and arithmetic of every kind the shape rules cover, and layouts they leave to torch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.act = nn.Hardswish()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(6, 6, 1), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        y = y * self.gate(y)  # broadcast gate
        y = F.relu(y) + 1.5 - y.sigmoid() * 2
        z = y.transpose(2, 3) + y.transpose(2, 3)  # a non-contiguous layout: torch's own rule
        w = F.leaky_relu(z, 0.2) / torch.tanh(z).add(3)
        half = y.to(torch.float16)
        return w.flatten(1) + half.flatten(1).float().mean()


def test_shape_rules_match_a_real_forward_pass() -> None:
    model = Elementwise().eval()
    x = torch.randn(1, 3, 10, 7)
    rows = summarize(model, (3, 10, 7)).rows
    with torch.no_grad():
        out = model(x)
    assert rows[-1].output_shape == tuple(out.shape)
    shapes = {r.name: r.output_shape for r in rows}
    assert shapes["mul"] == (1, 6, 10, 7) and shapes["transpose"] == (1, 6, 7, 10)


class Mismatch(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.a(x)) * torch.sigmoid(self.b(x))


def test_an_impossible_broadcast_still_names_its_layer() -> None:
    assert summarize(Mismatch(4), (3, 5, 5)).rows[-1].output_shape == (1, 4, 5, 5)
    with pytest.raises(ForwardError, match="mul"):
        summarize(Mismatch(3), (3, 5, 5))
