"""The fast paths of the table: the stored table of an unchanged model, shape rules for elementwise operations.

Truth: a fresh table of a rebuilt model (for the cache) and a real forward pass (for the shape rules).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from oracles import hooked_shapes
from torch import nn

from cnnviz.core.analysis.capture import ForwardError, capture
from cnnviz.core.analysis.graph import layer_graph
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
    after = table(model)  # no forget_graph: the changed model is traced again by itself
    assert after != before
    # the truth: the same edit on a model never summarised
    fresh = small()
    edit(fresh)
    assert after == table(fresh)


def resnet():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def swap_in_place(model: nn.Module) -> None:
    model.layer1[0].conv1 = nn.Conv2d(64, 32, 3, padding=1, bias=False)  # replaced
    model.layer1[0].bn1 = nn.BatchNorm2d(32)
    model.layer1[0].conv2 = nn.Conv2d(32, 64, 5, padding=2, bias=False)
    model.layer2[0].downsample.append(nn.ReLU())  # added
    model.layer4[1].relu = nn.Identity()


def test_a_layer_swapped_in_place_is_traced_again_without_forget_graph() -> None:
    model = resnet()
    x = torch.randn(1, 3, 64, 64)
    summarize(model, (3, 64, 64))
    capture(model, x)
    old_graph = layer_graph(model)
    swap_in_place(model)
    assert layer_graph(model) is not old_graph
    rows = summarize(model, (3, 64, 64)).rows
    fresh = resnet()
    swap_in_place(fresh)
    assert [(r.name, r.type, r.output_shape, r.params, r.macs) for r in rows] == [
        (r.name, r.type, r.output_shape, r.params, r.macs)
        for r in summarize(fresh, (3, 64, 64)).rows
    ]
    by_name = {r.name: r for r in rows}
    truth = hooked_shapes(model, x)
    assert by_name["layer1.0.conv1"].output_shape == (1, 32, 16, 16)
    assert by_name["layer1.0.conv1"].params == 64 * 32 * 9
    assert "layer2.0.downsample.2" in by_name
    for name, shape in truth.items():
        if name in by_name:
            assert by_name[name].output_shape == shape, name
    # the capture runs the new layers too: its values are those of a real forward
    with torch.no_grad():
        conv = model.layer1[0].conv1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))
    assert torch.equal(capture(model, x)["layer1.0.conv1"], conv)


def test_an_unchanged_model_keeps_its_graph() -> None:
    model = resnet()
    graph = layer_graph(model)
    model.layer1[0].conv1.weight.requires_grad_(False)  # values and trainability: not the graph's
    with torch.no_grad():
        model.fc.weight.mul_(2)
    assert layer_graph(model) is graph
    model.layer1[0].conv1.stride = (2, 2)  # a leaf's setting is read when it runs: the same graph
    assert layer_graph(model) is graph


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


class CachingBias(nn.Module):
    """A block that caches a bias per device in a dict of its own at inference, as timm's LeViT does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bias = nn.Parameter(torch.randn(4, 1, 1))
        self.cache: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = str(x.device)
        if self.training:
            bias = self.bias * 2
        else:
            if key not in self.cache:
                self.cache[key] = self.bias * 2
            bias = self.cache[key]
        return self.conv(x) + bias


def test_tracing_leaves_a_caching_model_as_it_was_and_traces_again() -> None:
    import copy

    import torch.fx as fx

    from cnnviz.core.analysis.graph import forget_graph

    torch.manual_seed(0)
    model = nn.Sequential(CachingBias(), nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    summarize(model, (3, 8, 8))
    assert model[0].cache == {}  # no fx proxy left behind in the model's own cache
    fresh = copy.deepcopy(model)
    forget_graph(model)
    for m in (model, fresh):
        got = capture(m, x)
        with torch.no_grad():
            truth = m(x)
        assert torch.equal(got.output, truth)
        assert not any(isinstance(v, fx.Proxy) for v in m[0].__dict__.values())
    # the model's own cache, filled by its own forward, is kept through a trace
    forget_graph(model)
    filled = dict(model[0].cache)
    assert filled and summarize(model, (3, 8, 8)).rows
    assert model[0].cache.keys() == filled.keys()
    assert all(model[0].cache[k] is v for k, v in filled.items())


@pytest.mark.slow
def test_timm_levit_is_traced_again_after_a_first_trace() -> None:
    import copy

    import timm

    torch.manual_seed(0)
    model = timm.create_model("levit_128", pretrained=False).eval()
    x = torch.randn(1, 3, 224, 224)
    summarize(model, (3, 224, 224))
    fresh = copy.deepcopy(model)  # a copy made after the first trace traces as a new model
    rows = summarize(fresh, (3, 224, 224)).rows
    got = capture(fresh, x)
    with torch.no_grad():
        assert torch.equal(got.output, fresh(x))
    assert len(rows) == len(summarize(model, (3, 224, 224)).rows)
