"""The hatch marks only the padding part of a receptive field: the box less the picture pixels of the model
input (outside the crop, or in a letterbox border), cut to the view. The effective field names its scale."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from cnnviz.core.images import Preprocess  # noqa: E402
from cnnviz.core.models import LoadedModel  # noqa: E402
from cnnviz.core.present.view import padding_region  # noqa: E402
from cnnviz.gui.state import Session  # noqa: E402
from cnnviz.gui.views.input_view import InputView  # noqa: E402
from cnnviz.gui.workers import JobRunner  # noqa: E402


class _Block(nn.Module):
    """A residual block (two 3×3 convolutions and a shortcut), as in ResNet."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


def _resnet_like() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(3, 2, 1), _Block(8),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), _Block(8),
    ).eval()  # fmt: skip


def _area(rects) -> float:
    return float(sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects))


def _clip(a, b):
    t, le, bo, r = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (t, le, bo, r) if t < bo and le < r else None


@pytest.fixture
def run(qtbot, tmp_path):
    def make(mode: str, size: tuple[int, int]):
        pre = Preprocess(
            3, (64, 64), mode, 73 if mode == "resize_crop" else None, (0.5,) * 3, (0.25,) * 3
        )
        model = LoadedModel(_resnet_like(), "resnet-like", (3, 64, 64), pre, None, source="module")
        rng = np.random.default_rng(1)
        path = tmp_path / f"{mode}.png"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
        session = Session(JobRunner())
        session.queue_image(str(path))
        session.set_model(model)
        assert session.runner.wait(60_000) and session.activations
        view = InputView()
        qtbot.addWidget(view)
        view.resize(500, 420)
        view.show()
        qtbot.waitExposed(view)
        view.set_image(session.image, path.name)
        return session, view

    yield make


def _truth_box(session, layer: str, unit: tuple[int, int]):
    """The box from the receptive-field formula, mapped to original-picture edges by the geometry's affine map."""
    rf = session.row(layer).rf
    g = session.image.geometry
    (y, x), (ry, rx), (sy, sx), (py, px) = unit, rf.size, rf.stride, rf.padding
    top, left = y * sy - py, x * sx - px
    return (float(top * g.scale_y + g.offset_y), float(left * g.scale_x + g.offset_x),
            float((top + ry) * g.scale_y + g.offset_y), float((left + rx) * g.scale_x + g.offset_x))  # fmt: skip


def test_corner_unit_hatch_is_the_box_minus_the_model_input(run):
    session, view = run("resize_crop", (80, 120))  # cropped at the left and right
    layer = "5"
    session.select_layer(layer)
    session.select_unit(0, 0)
    view.set_selection(session.selection)
    box = _truth_box(session, layer, (0, 0))
    g = session.image.geometry
    crop = (float(g.offset_y), float(g.offset_x), float(64 * g.scale_y + g.offset_y),
            float(64 * g.scale_x + g.offset_x))  # fmt: skip
    assert box[0] < crop[0] and box[1] < crop[1]  # the corner unit reaches into the padding
    assert view.rf_edges() == pytest.approx(box)
    (x0, x1), (y0, y1) = view.vb.viewRange()
    shown = (y0, x0, y1, x1)
    rects = view.padding_rects()
    assert rects, "the padding part is hatched"
    # Exactly the box less the crop, within the view: same area, inside the box and the view, none on the crop.
    expected = _area([_clip(box, shown)]) - _area(
        [c for c in [_clip(_clip(box, shown) or box, crop)] if c]
    )
    assert _area(rects) == pytest.approx(expected, rel=1e-6)
    for r in rects:
        assert _clip(r, crop) is None
        assert r[0] >= max(box[0], shown[0]) - 1e-9 and r[2] <= min(box[2], shown[2]) + 1e-9
    # Picture pixels left and right of the crop inside the box are padding for the model: hatched.
    assert any(r[1] < crop[1] and r[3] > 0 for r in rects)
    assert view.inside_edges() == pytest.approx(_clip(box, crop))


def test_hatch_follows_the_view_when_zoomed(run):
    session, view = run("resize_crop", (80, 120))
    session.select_layer("5")
    session.select_unit(0, 0)
    view.set_selection(session.selection)
    before = _area(view.padding_rects())
    view.vb.setRange(xRange=(20, 40), yRange=(5, 25), padding=0)
    (x0, x1), (y0, y1) = view.vb.viewRange()
    after = view.padding_rects()
    assert _area(after) < before
    assert all(
        r[0] >= y0 - 1e-9 and r[1] >= x0 - 1e-9 and r[2] <= y1 + 1e-9 and r[3] <= x1 + 1e-9
        for r in after
    )


def test_letterbox_border_is_padding_in_the_model_input_view(run):
    session, view = run("letterbox", (40, 64))  # a wide picture: borders above and below
    view.set_mode("model")
    session.select_layer("5")
    session.select_unit(0, 3)
    view.set_selection(session.selection)
    content = view.content_edges()
    g = session.image.geometry
    # Independently: the picture's rows fill (40 / 64) of the 64 model rows, centred.
    rows = 64 * 40 / 64
    assert content[0] == pytest.approx((64 - rows) / 2, abs=0.51) and content[1] == pytest.approx(0)
    assert g.input_size == (64, 64)
    rf = session.row("5").rf
    top, left = 0 * rf.stride[0] - rf.padding[0], 3 * rf.stride[1] - rf.padding[1]
    box = (float(top), float(left), float(top + rf.size[0]), float(left + rf.size[1]))
    (x0, x1), (y0, y1) = view.vb.viewRange()
    want = padding_region(box, content, (y0, x0, y1, x1))
    np.testing.assert_allclose(np.array(view.padding_rects()), np.array(want), atol=1e-9)
    # A letterbox pixel above the picture, inside the tensor and the box, is hatched; a picture pixel is not.
    px = (max(box[1], 0.0) + min(box[3], 64.0)) / 2

    def hatched(y: float, x: float) -> bool:
        return any(r[0] <= y < r[2] and r[1] <= x < r[3] for r in view.padding_rects())

    assert hatched(content[0] / 2, px)
    assert not hatched(content[0] + 1, px)


def test_erf_legend_says_one_channel_or_all_summed(run, qtbot):
    session, view = run("resize_crop", (80, 120))
    session.select_layer("3")
    session.set_erf_enabled(True)
    session.erfChanged.connect(view.set_erf)
    session.unitChanged.connect(view.set_selection)
    session.select_unit(4, 4, channel=2)
    assert session.runner.wait(60_000) and session.erf is not None
    assert view.erf_visible() and view.erf_legend.isVisible()
    assert "channel 2" in view.erf_caption.text()
    assert float(view.erf_high.text()) == pytest.approx(
        float(np.abs(session.erf.heatmap).max()), rel=1e-2
    )
    session.select_unit(4, 5, channel=None)
    assert session.runner.wait(60_000) and session.erf is not None
    assert "all channels summed" in view.erf_caption.text()
    session.select_unit(1, 1, channel=None)  # a new unit: the old heatmap goes at once
    assert not view.erf_visible() or session.erf.unit == (1, 1)
    session.shutdown()
