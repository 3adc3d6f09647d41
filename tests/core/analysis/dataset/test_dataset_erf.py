"""The data-set effective receptive field against a plain autograd loop, one picture at a time.

Truth is computed here: each picture's own gradient through a forward stopped by a hook (``tests.oracles``),
averaged by hand, and the area ratios by growing squares with plain slicing. Pictures are real files written by
the tests; models are built in code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnviz.core.analysis.dataset.erf import (
    AREA_THRESHOLDS,
    area_ratios,
    dataset_erf,
    erf_growth,
    field_centre,
)
from cnnviz.core.analysis.receptive import receptive_field
from cnnviz.core.budget import budget_override
from cnnviz.core.errors import CnnvizError, InvalidArgumentError, LayerError, MemoryBudgetError
from cnnviz.core.images import load_image
from cnnviz.core.models import load_model
from cnnviz.core.present.erfplot import erf_growth_figure, erf_heatmap_figure, ratio_text
from cnnviz.core.present.export import write_figure
from cnnviz.core.present.figures import RF_COLOR
from tests.oracles import module_output


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(5, 6, 3, stride=2),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 2),
    )
    bn = net[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    return net


def oracle_map(
    model: nn.Module, pictures: list[torch.Tensor], layer: str, unit: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Mean over pictures of |d sum_c y[c, uy, ux] / d x| summed over colour channels, one picture at a time."""
    model = model.eval()
    run = module_output(layer)
    total = None
    for pic in pictures:
        x = pic.detach().clone().reshape(1, *pic.shape[-3:]).requires_grad_(True)
        out = run(model, x)
        uy, ux = unit if unit is not None else (out.shape[2] // 2, out.shape[3] // 2)
        (g,) = torch.autograd.grad(out[0, :, uy, ux].sum(), x)
        m = g[0].abs().sum(0).double().numpy()
        total = m if total is None else total + m
    assert total is not None
    return total / len(pictures), (uy, ux)


def brute_ratios(heat: np.ndarray, centre: tuple[int, int], t: float) -> tuple[int, float]:
    h, w = heat.shape
    cy, cx = centre
    total = heat.sum()
    r = 0
    while True:
        top, left = max(cy - r, 0), max(cx - r, 0)
        bottom, right = min(cy + r, h - 1), min(cx + r, w - 1)
        part = heat[top : bottom + 1, left : right + 1]
        covers = top == 0 and left == 0 and bottom == h - 1 and right == w - 1
        if part.sum() >= t * total * (1 - 1e-12) or covers:
            return 2 * r + 1, part.size / (h * w)
        r += 1


def test_mean_gradient_equals_a_plain_loop_across_batches():
    net = small_net()
    net.train()  # the analysis runs in eval mode and gives the flag back
    torch.manual_seed(1)
    pics = torch.randn(7, 3, 16, 16)
    result = dataset_erf(net, pics, "4", unit=(3, 5), batch_size=3)
    assert net.training and net[1].training
    expected, _ = oracle_map(net, list(pics), "4", (3, 5))
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-5, atol=1e-9)
    assert result.images == 7 and result.unit == (3, 5)
    assert result.input_shape == (3, 16, 16) and result.map_size == (8, 8)


def test_default_unit_is_the_map_centre_and_n_limits_pictures():
    net = small_net()
    torch.manual_seed(2)
    pics = torch.randn(9, 3, 16, 16)
    result = dataset_erf(net, pics, "6", n=4, batch_size=16)
    expected, unit = oracle_map(net, list(pics[:4]), "6", None)
    out = module_output("6")(net.eval(), pics[:1])
    assert result.map_size == tuple(out.shape[2:])
    assert result.unit == unit == (out.shape[2] // 2, out.shape[3] // 2)
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-5, atol=1e-9)
    assert result.images == 4


@pytest.mark.parametrize("seed", range(6))
def test_area_ratios_match_growing_squares(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 30, size=2)
    heat = rng.random((h, w)) ** 4
    if seed % 2:
        heat[rng.random((h, w)) < 0.7] = 0.0
        heat[rng.integers(h), rng.integers(w)] += 1.0
    centre = (int(rng.integers(h)), int(rng.integers(w)))
    got = area_ratios(heat, centre)
    for t in AREA_THRESHOLDS:
        assert got[t] == pytest.approx(brute_ratios(heat, centre, t))
        assert 0 < got[t][1] <= 1


def test_area_ratio_is_clipped_to_the_input():
    heat = np.zeros((5, 9))
    heat[0, 0] = heat[4, 8] = 1.0  # only the corners: the square must cover the whole input
    side, ratio = area_ratios(heat, (2, 4))[0.99]
    assert side == 9 and ratio == 1.0  # side**2 / (H*W) would be 81 / 45


def test_a_zero_map_has_no_area():
    with pytest.raises(InvalidArgumentError, match="zero everywhere"):
        area_ratios(np.zeros((4, 4)), (1, 1))


def test_result_ratios_and_centre_follow_the_theoretical_box():
    net = small_net()
    torch.manual_seed(3)
    pics = torch.randn(5, 3, 16, 16)
    result = dataset_erf(net, pics, "4")
    box = receptive_field(net, "4", result.unit, (3, 16, 16)).box
    assert result.theoretical_box == box
    assert (
        result.centre
        == field_centre(box, 16, 16)
        == ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
    )
    expected, _ = oracle_map(net, list(pics), "4", result.unit)
    for t in AREA_THRESHOLDS:
        side, ratio = brute_ratios(expected, result.centre, t)
        assert result.side[t] == side and result.area_ratio[t] == pytest.approx(ratio)
    # the 99% square lies inside the theoretical field's square: no gradient flows from outside it
    inside = np.zeros((16, 16))
    top, left = max(box[0], 0), max(box[1], 0)
    inside[top : box[2] + 1, left : box[3] + 1] = 1
    assert result.theoretical_square == pytest.approx(brute_ratios(inside, result.centre, 1.0))
    assert result.area_ratio[0.99] <= result.theoretical_square[1]
    data = result.to_json()
    assert set(data["area_ratio"]) == {"0.2", "0.3", "0.5", "0.99"}
    assert data["theoretical_box"] == list(box) and data["images"] == 5


def write_digits(folder, count: int) -> list:
    """Real PNG files: a bright stroke at a different place in each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        arr = np.zeros((40, 36), dtype=np.uint8)
        arr[5 + 2 * i : 20 + 2 * i, 6 + 3 * i : 10 + 3 * i] = 255
        p = folder / f"pic_{i:02d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def test_folder_of_pictures_with_an_unreadable_file(tmp_path):
    model = load_model("default", weights="none")
    paths = write_digits(tmp_path / "pics", 5)
    (tmp_path / "pics" / "broken.png").write_bytes(b"not a picture at all")
    result = dataset_erf(model, tmp_path / "pics", "4", batch_size=2)
    pics = [load_image(p, model.preprocess).tensor for p in paths]
    expected, _ = oracle_map(model.module, pics, "4", None)
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-5, atol=1e-9)
    assert result.images == 5
    assert [p for p, _ in result.skipped] == [str(tmp_path / "pics" / "broken.png")]


def test_progress_follows_each_pass_and_a_stop_averages_the_pictures_done(tmp_path):
    net = small_net()
    torch.manual_seed(3)
    pics = torch.randn(7, 3, 16, 16)
    seen: list[tuple[int, int]] = []
    dataset_erf(net, pics, "4", batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 7), (6, 7), (7, 7)]
    seen.clear()
    dataset_erf(net, pics, "4", n=5, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    # a stop after the first pass: the result is the mean of those pictures alone
    done: list[int] = []
    result = dataset_erf(
        net, pics, "4", batch_size=3, progress=lambda d, t: done.append(d),
        should_stop=lambda: bool(done),
    )  # fmt: skip
    expected, _ = oracle_map(net, list(pics[:3]), "4", None)
    assert result.images == 3 == done[-1]
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-5, atol=1e-9)
    # a folder with an unreadable file: the total counts the readable pictures, the last call is complete
    model = load_model("default", weights="none")
    paths = write_digits(tmp_path / "pics", 5)
    (tmp_path / "pics" / "broken.png").write_bytes(b"not a picture at all")
    seen.clear()
    growth = erf_growth(
        model, tmp_path / "pics", batch_size=2, progress=lambda d, t: seen.append((d, t))
    )
    assert growth.images == len(paths) and seen[-1] == (len(paths), len(paths))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(CnnvizError, match="progress must be a function"):
        dataset_erf(net, pics, "4", progress=3)  # type: ignore[arg-type]


def test_bad_input_is_one_clear_error(tmp_path):
    model = load_model("default", weights="none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnvizError, match="no picture files"):
        dataset_erf(model, tmp_path / "empty", "4")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"junk")
    (tmp_path / "junk" / "b.jpg").write_bytes(b"junk")
    with pytest.raises(InvalidArgumentError, match="none of the 2 picture files .* could be read"):
        dataset_erf(model, tmp_path / "junk", "4")
    pics = torch.randn(2, *model.input_shape)
    with pytest.raises(LayerError, match=r"unit \(99, 0\) is outside layer '4'"):
        dataset_erf(model, pics, "4", unit=(99, 0))
    linear = next(name for name, m in model.module.named_modules() if isinstance(m, nn.Linear))
    with pytest.raises(LayerError, match="no spatial map"):
        dataset_erf(model, pics, linear)
    with pytest.raises(InvalidArgumentError, match="must be 1 or more, not 0"):
        dataset_erf(model, pics, "4", n=0)
    with pytest.raises(InvalidArgumentError, match="'center'"):
        dataset_erf(model, pics, "4", unit="middle")
    with pytest.raises(LayerError, match="unknown layer"):
        dataset_erf(model, pics, "no_such_layer")


def test_a_unit_that_does_not_depend_on_the_input():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3))
    with torch.no_grad():
        net[1].weight.zero_()
    with pytest.raises(LayerError, match="does not depend on the input on these 3 pictures"):
        dataset_erf(net, torch.randn(3, 1, 12, 12), "1")


def test_batch_shrinks_to_the_memory_budget_and_refuses_when_nothing_fits():
    net = small_net()
    torch.manual_seed(4)
    pics = torch.randn(5, 3, 16, 16)
    with budget_override(64 * 1024):  # room for a couple of pictures' activations, not sixteen
        result = dataset_erf(net, pics, "4", batch_size=16)
    assert 1 <= result.batch_size < 5
    expected, _ = oracle_map(net, list(pics), "4", None)
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-5, atol=1e-9)
    with budget_override(2048), pytest.raises(MemoryBudgetError, match="memory budget"):
        dataset_erf(net, pics, "4")


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so layers are reached with hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        if float(y.sum()) > -1e9:
            y = torch.relu(y)
        return self.conv2(y)


def test_untraceable_model_uses_hooks():
    torch.manual_seed(5)
    net = Untraceable()
    pics = torch.randn(4, 1, 10, 10)
    result = dataset_erf(net, pics, "conv2", batch_size=3)
    expected, _ = oracle_map(net, list(pics), "conv2", None)
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-5, atol=1e-9)


def test_growth_has_one_point_per_layer_with_a_map():
    net = small_net()
    torch.manual_seed(6)
    pics = torch.randn(4, 3, 16, 16)
    growth = erf_growth(net, pics, batch_size=3)
    shapes = {}
    for name, m in net.named_children():
        m.register_forward_hook(lambda _m, _i, o, name=name: shapes.__setitem__(name, o.dim()))
    net.eval()(pics[:1])
    with_map = [name for name in shapes if shapes[name] == 4]
    assert [p.layer for p in growth.points] + growth.silent == with_map
    for p in growth.points:
        expected, unit = oracle_map(net, list(pics), p.layer, None)
        assert p.unit == unit
        np.testing.assert_allclose(p.heatmap, expected, rtol=1e-5, atol=1e-9)
    sides = [p.theoretical_square[0] for p in growth.points]
    assert sides == sorted(sides)  # the theoretical field never shrinks along this chain
    assert [d["depth"] for d in growth.to_json()] == list(range(len(growth.points)))


def test_figures_draw_the_boxes_where_they_are(tmp_path):
    net = small_net()
    torch.manual_seed(7)
    pics = torch.randn(3, 3, 16, 16)
    result = dataset_erf(net, pics, "6")
    fig = erf_heatmap_figure(result, target=256)
    rects = [s for s in fig.shapes if s.kind == "rect" and s.color == RF_COLOR]
    assert len(rects) == 1
    box = result.theoretical_box
    y0, x0, y1, x1 = rects[0].coords
    scale = (y1 - y0) / (box[2] - box[0] + 1)
    assert scale == int(scale) and (x1 - x0) / (box[3] - box[1] + 1) == scale
    assert any(ratio_text(result.area_ratio[0.5]) in line for line in fig.caption)
    out = write_figure(tmp_path / "erf.png", fig)
    with Image.open(out) as im:
        assert im.size[0] >= fig.image.shape[1] and im.size[1] > fig.image.shape[0]
    growth = erf_growth(net, pics)
    gfig = erf_growth_figure(growth, model_name="small")
    assert gfig.image.shape[:2] == (560, 1000)
    assert "small" in gfig.metadata["Title"]
    write_figure(tmp_path / "growth.svg", gfig)
    assert (tmp_path / "growth.svg").read_text().startswith("<?xml")


def test_public_api_name():
    import cnnviz

    assert cnnviz.dataset_erf is dataset_erf and "dataset_erf" in cnnviz.__all__


def test_resnet_block_and_residual_layers():
    import torchvision

    torch.manual_seed(8)
    net = torchvision.models.resnet18(weights=None)
    pics = torch.randn(3, 3, 64, 64)
    result = dataset_erf(
        net, pics, "layer2", batch_size=2
    )  # a block: its output is the last ReLU after an add
    expected, unit = oracle_map(net, list(pics), "layer2", None)
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-4, atol=1e-9)
    assert result.unit == unit and result.layer_type == "Sequential"
    growth = erf_growth(net, pics, ["layer1.0.conv1", "layer1.0.add", "layer3"], batch_size=3)
    assert [p.layer for p in growth.points] == ["layer1.0.conv1", "layer1.0.add", "layer3"]
    expected, _ = oracle_map(net, list(pics), "layer3", None)
    np.testing.assert_allclose(growth.points[2].heatmap, expected, rtol=1e-4, atol=1e-9)
    sides = [p.theoretical_square[0] for p in growth.points]
    assert sides == sorted(sides)
