"""The convolution lab widget, driven like a student would; shown numbers are checked against torch here."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from fractions import Fraction  # noqa: E402

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6 import QtCore  # noqa: E402
from torch import nn  # noqa: E402

from cnnviz.core.analysis.types import LayerRow, ReceptiveField, Summary  # noqa: E402
from cnnviz.core.errors import CnnvizError  # noqa: E402
from cnnviz.gui.lab import DEFAULT_GRID, ConvolutionLab  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major")

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


def conv_channels(img: np.ndarray, kernel: np.ndarray, **kw) -> np.ndarray:
    """Per-channel cross-correlation with F.conv2d: the truth the lab must show."""
    x = torch.tensor(img, dtype=torch.float64)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    c = x.shape[1]
    w = torch.tensor(np.ascontiguousarray(kernel), dtype=torch.float64)[None, None].repeat(
        c, 1, 1, 1
    )
    y = F.conv2d(x, w, groups=c, **kw)[0]
    return y[0].numpy() if img.ndim == 2 else y.permute(1, 2, 0).numpy()


@pytest.fixture
def picture() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.fixture
def lab(qtbot, picture) -> ConvolutionLab:
    widget = ConvolutionLab()
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.set_image(picture)
    return widget


def choose(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0, data
    combo.setCurrentIndex(index)


# ---------------------------------------------------------------------------------------------- playground


def test_playground_output_equals_conv2d_and_flip_toggle(lab, picture, qtbot):
    lesson = lab.lesson("playground")
    lab.set_lesson("playground")
    choose(lesson.kernel_combo, "sobel_x")
    img = picture / 255.0
    want = conv_channels(img, SOBEL_X, padding=1)
    np.testing.assert_allclose(lesson.input, img)
    np.testing.assert_allclose(lesson.output, want, atol=1e-12)
    assert np.array_equal(lesson.kernel_grid.values(), SOBEL_X)
    # Sobel sums to zero, so "auto" shows the sign: the brightness (mean of the channels) convolved.
    assert lesson.rule == "signed"
    grey = conv_channels(img.mean(axis=2), SOBEL_X, padding=1)
    np.testing.assert_allclose(lesson.signed_map, grey, atol=1e-12)
    peak = np.abs(grey).max()
    assert lesson.colorbar.isVisibleTo(lesson)
    assert lesson.colorbar.labels() == (f"+{peak:.3f}", "0", f"\u2212{peak:.3f}")
    shown = lesson.output_panel.image().astype(int)
    assert shown.shape == (*grey.shape, 3)
    rising, falling = grey > 0.5 * peak, grey < -0.5 * peak
    assert rising.any() and falling.any()
    assert (shown[rising, 0] > shown[rising, 2]).all()  # positive: red
    assert (shown[falling, 2] > shown[falling, 0]).all()  # negative: blue

    lesson.flip_radio.click()
    assert lesson.flip
    flipped = conv_channels(img, SOBEL_X[::-1, ::-1], padding=1)
    np.testing.assert_allclose(lesson.output, flipped, atol=1e-12)
    np.testing.assert_allclose(lesson.output, -want, atol=1e-12)
    # the sign flip is visible: what was red is blue now, on the same scale
    np.testing.assert_allclose(lesson.signed_map, -grey, atol=1e-12)
    assert lesson.colorbar.labels() == (f"+{peak:.3f}", "0", f"\u2212{peak:.3f}")
    shown = lesson.output_panel.image().astype(int)
    assert (shown[rising, 2] > shown[rising, 0]).all() and (
        shown[falling, 0] > shown[falling, 2]
    ).all()
    assert np.array_equal(lesson.applied_grid.values(), SOBEL_X[::-1, ::-1])
    assert "rotated 180" in lesson.flip_note.text()

    choose(lesson.kernel_combo, "emboss")
    emboss = lesson.kernel()
    np.testing.assert_allclose(
        lesson.output, conv_channels(img, emboss[::-1, ::-1], padding=1), atol=1e-12
    )
    lesson.xcorr_radio.click()
    np.testing.assert_allclose(lesson.output, conv_channels(img, emboss, padding=1), atol=1e-12)
    assert "Conv2d" in lesson.flip_note.text()


def test_playground_edit_kernel_cell_and_display_rule(lab, picture):
    lesson = lab.lesson("playground")
    choose(lesson.kernel_combo, "box_blur")
    lesson.kernel_grid.item(0, 0).setText("2")  # as if typed into the cell
    assert lesson.kernel_combo.currentData() == "custom"
    k = np.ones((3, 3)) / 9
    k[0, 0] = 2
    np.testing.assert_allclose(lesson.kernel(), k)
    np.testing.assert_allclose(
        lesson.output, conv_channels(picture / 255.0, k, padding=1), atol=1e-12
    )
    lesson.kernel_grid.item(1, 1).setText("abc")  # not a number: the old value stays
    assert lesson.kernel_grid.item(1, 1).text() == "0.111"
    choose(lesson.scale_combo, "abs")
    assert lesson.rule == "abs" and not lesson.colorbar.isVisibleTo(lesson)
    np.testing.assert_array_equal(
        lesson.output_panel.image(),
        np.rint(np.clip(np.abs(lesson.output), 0, 1) * 255).astype(np.uint8),
    )
    choose(lesson.scale_combo, "signed")
    assert lesson.rule == "signed" and lesson.colorbar.isVisibleTo(lesson)
    np.testing.assert_allclose(
        lesson.signed_map, conv_channels((picture / 255.0).mean(axis=2), k, padding=1), atol=1e-12
    )
    lesson.size_spin.setValue(
        4
    )  # even custom size: zero padding 2 makes the output one pixel larger
    assert lesson.kernel().shape == (4, 4)
    assert lesson.output.shape[:2] == (13, 11)


def test_playground_number_grid_mode(lab):
    lesson = lab.lesson("playground")
    lesson.input_combo.setCurrentIndex(1)
    choose(lesson.kernel_combo, "laplacian")
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
    want = conv_channels(DEFAULT_GRID, lap, padding=1)
    np.testing.assert_array_equal(lesson.grid_out.values(), want)
    assert lesson.grid_out.texts()[2][2] == str(int(want[2, 2]))
    lesson.grid_in.item(0, 0).setText("5")
    grid = DEFAULT_GRID.copy()
    grid[0, 0] = 5
    np.testing.assert_array_equal(lesson.grid_out.values(), conv_channels(grid, lap, padding=1))


# ---------------------------------------------------------------------------------------------- step through


def test_step_through_fills_the_output_with_conv2d_values(lab, qtbot):
    lesson = lab.lesson("step")
    lab.set_lesson("step")
    lesson.padding_spin.setValue(1)
    lesson.stride_spin.setValue(2)
    want = conv_channels(lesson.input, SOBEL_X, padding=1, stride=2)
    assert len(lesson.steps) == want.size
    assert np.isnan(lesson.output_values()).all()
    qtbot.mouseClick(lesson.step_button, QtCore.Qt.MouseButton.LeftButton)
    first = lesson.steps[0]
    assert lesson.sum_label.text().endswith(f"= {int(want[0, 0])}")
    assert lesson.grid_out.texts()[0][0] == str(int(want[0, 0]))
    assert lesson.grid_out.texts()[0][1] == ""
    # The highlighted window is the kernel's first position in the padded input.
    assert first.rows == (0, 1, 2) and first.cols == (0, 1, 2)
    assert (
        lesson.grid_in.item(0, 0).background().color()
        == lesson.grid_in.item(1, 1).background().color()
    )
    assert lesson.grid_in.item(3, 3).background().style() == QtCore.Qt.BrushStyle.NoBrush
    while lesson.step_button.isEnabled():
        qtbot.mouseClick(lesson.step_button, QtCore.Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(lesson.output_values(), want)
    qtbot.mouseClick(lesson.back_button, QtCore.Qt.MouseButton.LeftButton)
    assert np.isnan(lesson.output_values()[-1, -1])
    qtbot.mouseClick(lesson.reset_button, QtCore.Qt.MouseButton.LeftButton)
    assert lesson.index == -1


def test_step_through_text_follows_the_chosen_stride_and_padding(lab, qtbot):
    lesson = lab.lesson("step")
    for stride, padding, steps in ((2, 1, 3), (3, 0, 2), (1, 2, 5)):
        lesson.padding_spin.setValue(padding)
        lesson.stride_spin.setValue(stride)
        want = conv_channels(lesson.input, SOBEL_X, padding=padding, stride=stride)
        oh, ow = want.shape
        plan = lesson.explain_label.text()
        assert f"Stride {stride}:" in plan and f"Padding {padding}" in plan
        assert f"the output is {oh}\u00d7{ow}" in plan
        n = 6 + 2 * padding
        if padding:
            assert f"slides over {n}\u00d7{n} cells" in plan
        for _ in range(steps):
            qtbot.mouseClick(lesson.step_button, QtCore.Qt.MouseButton.LeftButton)
        i, j = divmod(steps - 1, ow)
        text = lesson.explain_label.text()
        assert text.startswith(
            f"Position {steps} of {want.size}, stride {stride}, padding {padding}: output cell [{i}, {j}]"
        )
        r0, c0 = i * stride, j * stride  # the window's corner in the padded input
        assert f"rows {r0}\u2013{r0 + 2} and columns {c0}\u2013{c0 + 2}" in text
        assert f"row {i} \u00d7 {stride} = {r0} and column {j} \u00d7 {stride} = {c0}" in text
        assert f"add up to {int(want[i, j])}." in text
        assert lesson.geometry_label.text().splitlines()[0].endswith(f"= {oh}")


def test_step_through_play_animates_to_the_end(lab, qtbot):
    lesson = lab.lesson("step")
    lesson.speed.setValue(lesson.speed.minimum())
    lesson.play_button.click()
    qtbot.waitUntil(lambda: lesson.index == len(lesson.steps) - 1, timeout=20000)
    qtbot.waitUntil(lambda: not lesson.play_button.isChecked(), timeout=5000)
    np.testing.assert_array_equal(lesson.output_values(), conv_channels(lesson.input, SOBEL_X))


def test_step_through_edit_input(lab):
    lesson = lab.lesson("step")
    lesson.padding_spin.setValue(1)
    lesson.grid_in.item(1, 1).setText("42")  # padded (1, 1) is input (0, 0)
    assert lesson.input[0, 0] == 42
    assert lesson.grid_in.item(
        0, 0
    ).flags() & QtCore.Qt.ItemFlag.ItemIsEditable == QtCore.Qt.ItemFlag(0)
    np.testing.assert_array_equal(
        lesson.result.output, conv_channels(lesson.input, SOBEL_X, padding=1)
    )


# ---------------------------------------------------------------------------------------------- stride and padding


@pytest.mark.parametrize(
    ("h", "w", "k", "s", "p", "d"), [(7, 9, 3, 2, 1, 1), (16, 9, 5, 3, 0, 2), (4, 4, 2, 1, 3, 1)]
)
def test_geometry_formula_label_equals_torch(lab, h, w, k, s, p, d):
    lesson = lab.lesson("geometry")
    for spin, v in zip(
        (lesson.h_spin, lesson.w_spin, lesson.k_spin, lesson.s_spin, lesson.p_spin, lesson.d_spin),
        (h, w, k, s, p, d),
        strict=True,
    ):
        spin.setValue(v)
    ho, wo = F.conv2d(
        torch.zeros(1, 1, h, w), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d
    ).shape[2:]
    assert lesson.formula_label.text().splitlines() == [
        f"H_out = floor(({h} + 2*{p} - {d}*({k}-1) - 1)/{s}) + 1 = {ho}",
        f"W_out = floor(({w} + 2*{p} - {d}*({k}-1) - 1)/{s}) + 1 = {wo}",
    ]
    assert lesson.out_shape == (ho, wo) == lesson.torch_shape
    assert not lesson.error_label.isVisibleTo(lesson)
    # The drawing: one 16-pixel cell (15 + grid line) per padded input cell and per output cell.
    assert lesson.input_panel.image().shape[:2] == ((h + 2 * p) * 16 + 1, (w + 2 * p) * 16 + 1)
    assert lesson.output_panel.image().shape[:2] == (ho * 16 + 1, wo * 16 + 1)
    lesson.row_spin.setValue(99)
    assert lesson.row_spin.value() == ho - 1


def test_geometry_explains_an_impossible_combination(lab):
    lesson = lab.lesson("geometry")
    lesson.h_spin.setValue(2)
    lesson.p_spin.setValue(0)
    lesson.k_spin.setValue(5)
    assert lesson.error_label.isVisibleTo(lesson)
    assert "spans 5 pixels" in lesson.error_label.text()
    assert lesson.out_shape is None
    lesson.p_spin.setValue(2)
    assert not lesson.error_label.isVisibleTo(lesson)


# ---------------------------------------------------------------------------------------------- channels, pooling


def test_rgb_filters_are_one_conv2d_layer(lab, picture):
    lesson = lab.lesson("channels")
    choose(lesson.weights_combo, "random")
    assert lesson.seed_spin.isEnabled()
    lesson.n_spin.setValue(3)
    lesson.seed_spin.setValue(5)
    res = lesson.result
    layer = nn.Conv2d(3, 3, 3, padding=1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(res.weights))
        layer.bias.copy_(torch.tensor(res.bias))
        want = layer(torch.tensor(lesson.input).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(lesson.input, picture / 255.0)
    np.testing.assert_allclose(res.outputs, want, atol=1e-12)
    assert res.outputs.shape[2] == 3
    assert f"= {sum(p.numel() for p in layer.parameters())}" in lesson.params_label.text()
    lesson.show_spin.setValue(2)
    np.testing.assert_allclose(lesson.slice_grids[1].values(), res.weights[1, 1])
    assert lesson.outputs_panel.image().shape[1] == 3 * 10 + 2 * 3


def test_rgb_named_filters_do_what_their_names_say(lab):
    # Patches a student can predict: red, green, grey, blue, yellow, and a red edge.
    img = np.full((12, 30, 3), 128, np.uint8)
    img[:, 0:6] = (255, 0, 0)
    img[:, 6:12] = (0, 255, 0)
    img[:, 18:24] = (0, 0, 255)
    img[:, 24:30] = (255, 255, 0)
    lab.set_image(img)
    lesson = lab.lesson("channels")
    assert lesson.named and not lesson.seed_spin.isEnabled()
    lesson.n_spin.setValue(lesson.n_spin.maximum())
    names = lesson.filter_names()
    assert names[:3] == ["Brightness", "Red minus green", "Blue minus yellow"]
    res = lesson.result
    shown = []
    for f in range(len(names)):
        lesson.show_spin.setValue(f + 1)
        shown.append(np.stack([grid.values() for grid in lesson.slice_grids]))
        assert lesson.filter_label.text().startswith(f"<b>Filter {f + 1}: {names[f]}.</b>")
        assert names[f] in lesson.sum_panel.title.text()
    layer = nn.Conv2d(3, len(names), 3, padding=1, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.stack(shown)))  # the weights as displayed
        x = torch.tensor(lesson.input).permute(2, 0, 1)[None]
        want = layer(x)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(res.outputs, want, atol=1e-12)
    red, green, grey, blue, yellow = (want[6, c] for c in (3, 9, 15, 21, 27))
    lum = (0.299, 0.587, 0.114)
    assert grey[0] == pytest.approx(128 / 255) and red[0] == pytest.approx(lum[0])
    assert (
        red[1] == pytest.approx(1) and green[1] == pytest.approx(-1) and grey[1] == pytest.approx(0)
    )
    assert (
        blue[2] == pytest.approx(1)
        and yellow[2] == pytest.approx(-1)
        and grey[2] == pytest.approx(0)
    )
    # the edge filters answer only at edges: red to green is an edge of colour, not of brightness
    assert want[6, 15, 3] == pytest.approx(0) and abs(want[6, 11, 3]) > 0.1
    assert want[6, 5, 3] == pytest.approx(0) and abs(want[6, 5, 4]) > 1
    red_edges = conv_channels(lesson.input[..., 0], SOBEL_X, padding=1)
    np.testing.assert_allclose(want[..., 4], red_edges, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_keeps_channels_and_matches_torch(lab, picture, kind):
    lesson = lab.lesson("pooling")
    choose(lesson.kind_combo, kind)
    lesson.k_spin.setValue(3)
    lesson.s_spin.setValue(2)
    lesson.p_spin.setValue(1)
    x = torch.tensor(lesson.fmap).permute(2, 0, 1)[None]
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    want = pool(x, 3, 2, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(lesson.output, want)
    assert lesson.output.shape[2] == lesson.fmap.shape[2] == 3
    assert "still 3 channels" in lesson.shape_label.text()
    lesson.channel_combo.setCurrentIndex(2)
    np.testing.assert_allclose(lesson.grid_out.values(), want[..., 2])
    img = torch.tensor(picture / 255.0).permute(2, 0, 1)[None]
    np.testing.assert_allclose(lesson.image_output, pool(img, 3, 2, 1)[0].permute(1, 2, 0).numpy())
    assert lesson.image_output.shape[2] == 3


def test_pooling_marks_the_chosen_cells(lab):
    lesson = lab.lesson("pooling")
    lesson.channel_combo.setCurrentIndex(1)
    _, idx = F.max_pool2d(torch.tensor(lesson.fmap).permute(2, 0, 1)[None], 2, return_indices=True)
    chosen = {divmod(int(i), 8) for i in idx[0, 1].flatten()}
    from cnnviz.gui.lab import C_CHOSEN

    painted = {
        (i, j)
        for i in range(8)
        for j in range(8)
        if lesson.grid_in.item(i, j).background().color() == C_CHOSEN
    }
    assert painted == chosen


def test_pooling_padding_error_is_explained(lab):
    lesson = lab.lesson("pooling")
    lesson.k_spin.setValue(2)
    lesson.p_spin.setValue(2)
    assert "more than half" in lesson.error_label.text() and lesson.error_label.isVisibleTo(lesson)


# ---------------------------------------------------------------------------------------------- counts


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_one_by_one_counts_equal_real_layers(lab):
    lesson = lab.lesson("one_by_one")
    lesson.cin_spin.setValue(64)
    lesson.cmid_spin.setValue(16)
    lesson.cout_spin.setValue(32)
    cmp = lesson.comparison
    direct = nn.Conv2d(64, 32, 3, padding=1)
    squeezed = nn.Sequential(nn.Conv2d(64, 16, 1), nn.Conv2d(16, 32, 3, padding=1))
    assert cmp.before_params == numel(direct) and cmp.after_params == numel(squeezed)
    assert lesson.table.item(0, 1).text() == f"{numel(direct):,}"
    assert lesson.table.item(3, 1).text() == f"{numel(squeezed):,}"
    assert "fewer parameters" in lesson.ratio_label.text()


def test_one_by_one_mixes_channels_without_moving_pixels(lab, picture):
    lesson = lab.lesson("one_by_one")
    x = torch.tensor(picture / 255.0).permute(2, 0, 1)[None]

    def check() -> None:
        w = lesson.mix_grid.values()  # the matrix as displayed: C_out x C_in
        assert w.shape[1] == 3
        want = F.conv2d(x, torch.tensor(w)[:, :, None, None])[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(lesson.mix.outputs, want, atol=1e-12)
        assert want.shape[:2] == picture.shape[:2]  # no spatial change
        visible = [p for p in lesson.mix_out_panels if p.isVisibleTo(lesson)]
        assert len(visible) == w.shape[0]
        for k, panel in enumerate(visible):
            assert panel.image().shape[:2] == picture.shape[:2]
            assert f"out {k + 1} = " in lesson.mix_formula.text()
        y, xx = picture.shape[0] // 2, picture.shape[1] // 2
        last = lesson.mix_formula.text().splitlines()[-1]
        assert last.startswith(f"at pixel [{y}, {xx}]: ")
        shown = [float(v) for v in last.split("outputs (")[1].rstrip(")").split(", ")]
        np.testing.assert_allclose(shown, want[y, xx], rtol=5e-3, atol=1e-12)

    check()
    assert (
        lesson.mix_formula.text().splitlines()[0]
        == "out 1 = 0.299\u00b7R + 0.587\u00b7G + 0.114\u00b7B"
    )
    assert (
        lesson.mix_formula.text().splitlines()[1] == "out 2 = 1\u00b7R \u2212 1\u00b7G + 0\u00b7B"
    )
    lesson.mix_grid.item(1, 2).setText("0.5")  # as if typed
    assert (
        lesson.mix_formula.text().splitlines()[1] == "out 2 = 1\u00b7R \u2212 1\u00b7G + 0.5\u00b7B"
    )
    check()
    lesson.mix_out_spin.setValue(4)
    assert lesson.mix_grid.values()[1, 2] == 0.5  # the edit stays
    check()
    lesson.mix_out_spin.setValue(1)
    check()
    assert "1\u00d73" in lesson.matrix_caption.text()


def summary_of(model: nn.Sequential, input_shape: tuple[int, int, int]) -> Summary:
    """A Summary built from a real forward pass (shapes) and sum(p.numel()) (params)."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))
        )
        for name, m in model.named_children()
    ]
    model(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    rows = []
    r, s = 1, 1
    for name, m in model.named_children():
        conv = isinstance(m, nn.Conv2d)
        k = m.kernel_size[0] if conv else (m.kernel_size if isinstance(m, nn.MaxPool2d) else 1)
        stride = m.stride[0] if conv else (m.stride if isinstance(m, nn.MaxPool2d) else 1)
        r, s = r + (k - 1) * s, s * stride
        rows.append(
            LayerRow(
                name=name,
                type=type(m).__name__,
                kind="module",
                depth=1,
                output_shape=shapes[name],
                params=numel(m),
                kernel_size=m.kernel_size if conv else None,
                stride=(stride, stride),
                groups=m.groups if conv else None,
                in_channels=m.in_channels if conv else None,
                out_channels=m.out_channels if conv else None,
                rf=ReceptiveField((r, r), (Fraction(s), Fraction(s)), (Fraction(0), Fraction(0))),
            )
        )
    return Summary("tiny", input_shape, rows, numel(model), numel(model), 0)


@pytest.fixture
def tiny_summary() -> Summary:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 4, 3, padding=1, bias=False),
    )
    return summary_of(model, (3, 16, 16))


def test_conv_versus_dense_for_a_model_layer(lab, tiny_summary):
    lesson = lab.lesson("dense")
    assert lesson.layer_combo.currentData() == lesson.EXAMPLE
    lab.set_model_summary(tiny_summary)
    assert [lesson.layer_combo.itemData(i) for i in range(lesson.layer_combo.count())] == [
        "0",
        "3",
        "example",
    ]
    lesson.select_layer("3")
    cmp = lesson.comparison
    assert cmp.in_shape == (8, 8, 8) and cmp.out_shape == (4, 8, 8)
    assert cmp.conv.value == 8 * 4 * 9
    assert cmp.dense.value == numel(nn.Linear(8 * 8 * 8, 4 * 8 * 8, bias=False))
    assert f"{cmp.dense.value:,} parameters" in lesson.dense_label.text()
    assert not lesson.example_box.isVisibleTo(lesson)
    choose(lesson.layer_combo, "example")
    assert lesson.example_box.isVisibleTo(lesson)
    assert lesson.comparison.conv.value == numel(nn.Conv2d(3, 16, 3))
    assert lesson.comparison.dense.value == numel(nn.Linear(3 * 32 * 32, 16 * 32 * 32))
    lab.set_model_summary(None)
    assert lesson.layer_combo.count() == 1


def test_receptive_field_growth_of_the_model_and_demos(lab, tiny_summary):
    lesson = lab.lesson("rf")
    assert lesson.source_combo.currentData() != lesson.MODEL
    lab.set_model_summary(tiny_summary)
    assert lesson.source_combo.currentData() == lesson.MODEL
    assert [p.name for p in lesson.points] == ["input", "0", "1", "2", "3"]
    assert [p.size[0] for p in lesson.points] == [1, 3, 3, 4, 8]
    assert [p.jump for p in lesson.points] == [False, False, False, True, False]
    assert lesson.table.rowCount() == 5
    assert "S becomes 2" in lesson.table.item(3, 4).text()
    lesson.select_source("3x3 convolutions with stride 2")
    r, jump = 1, 1
    for layer in (
        2,
        1,
        2,
        1,
        2,
        1,
    ):  # kernel 3 everywhere: each layer adds 2*S, S doubles on stride 2
        r += 2 * jump
        jump *= layer
    assert lesson.points[-1].size == (r, r) == (43, 43)
    assert len(lesson.plot.getPlotItem().listDataItems()) >= 3


def demo_model(layers) -> nn.Sequential:
    """The demo stack as a real network (one channel, so the gradient support is the field)."""
    modules: list[nn.Module] = []
    for layer in layers:
        if layer.type == "MaxPool2d":
            modules.append(nn.MaxPool2d(layer.kernel, layer.stride, layer.padding))
        else:
            modules.append(
                nn.Conv2d(1, 1, layer.kernel, layer.stride, layer.padding, layer.dilation)
            )
    return nn.Sequential(*modules)


@pytest.mark.parametrize(
    "demo",
    [
        "3x3 convolutions with 2x2 max pooling",
        "3x3 convolutions with stride 2",
        "Six 5x5 convolutions",
    ],
)
def test_receptive_field_markers_sit_at_their_own_layer(lab, demo):
    from oracles import gradient_rf

    from cnnviz.core.lab import DEMO_STACKS

    lesson = lab.lesson("rf")
    lesson.select_source(demo)
    layers = DEMO_STACKS[demo]
    model = demo_model(layers)
    truth = [1] + [gradient_rf(model, [1, 128, 128], i)[0] for i in range(len(layers))]
    line = next(
        item
        for item in lesson.plot.getPlotItem().listDataItems()
        if item.name() == "r: receptive field size"
    )
    xs, ys = line.getData()
    assert list(xs) == list(range(len(layers) + 1)) and list(ys) == truth
    strided = [i + 1 for i, layer in enumerate(layers) if layer.stride > 1]
    if not strided:
        assert lesson.jump_item is None  # no stride, no jump: no triangle
        return
    jx, jy = lesson.jump_item.getData()
    assert list(jx) == strided
    assert list(jy) == [truth[i] for i in strided]
    for i in strided:  # the table row with that number is the same layer, marked
        assert lesson.table.item(i, 0).text() == str(i)
        assert lesson.table.item(i, 1).text() == layers[i - 1].name
        assert lesson.table.item(i, 3).text() == str(truth[i])
    labels = [item for item in lesson.plot.getPlotItem().items if isinstance(item, pg.TextItem)]
    placed = {item.toPlainText(): (item.pos().x(), item.pos().y()) for item in labels}
    for i in strided:
        assert placed[layers[i - 1].name] == (i, truth[i])


def test_receptive_field_markers_of_a_real_model(lab):
    from oracles import gradient_rf

    from cnnviz.core.analysis.summary import summarize

    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2, 2, 5, padding=2),
        nn.Conv2d(2, 2, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(2, 1, 3),
    )
    lab.set_model_summary(summarize(model, (1, 96, 96)))
    lesson = lab.lesson("rf")
    assert lesson.source_combo.currentData() == lesson.MODEL
    truth = [1] + [gradient_rf(model, [1, 96, 96], i)[0] for i in range(len(model))]
    assert [p.size[0] for p in lesson.points] == truth
    jx, jy = lesson.jump_item.getData()
    assert list(jx) == [3, 5]  # the pooling (layer 2) and the stride-2 convolution (layer 4)
    assert list(jy) == [truth[3], truth[5]]


# ---------------------------------------------------------------------------------------------- lab


def test_every_lesson_has_a_one_line_explanation(lab):
    assert lab.lesson_keys() == [
        "playground",
        "step",
        "geometry",
        "channels",
        "pooling",
        "one_by_one",
        "dense",
        "rf",
    ]
    for n, key in enumerate(lab.lesson_keys()):
        lab.set_lesson(key)
        assert lab.stack.currentIndex() == n and lab.current_lesson().key == key
        text = lab.current_lesson().summary_label.text()
        assert 60 < len(text) < 260 and text.endswith(".")
        assert not lab.current_lesson().error_label.isVisibleTo(lab.current_lesson())


def test_export_png_writes_the_current_lesson(lab, tmp_path, qtbot):
    lab.show()
    qtbot.waitExposed(lab)
    lab.set_lesson("pooling")
    path = lab.export_png(tmp_path / "pool.png")
    page = lab.current_lesson()
    with Image.open(path) as im:
        assert im.format == "PNG"
        ratio = page.devicePixelRatioF()
        assert im.size == (round(page.width() * ratio), round(page.height() * ratio))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool.png"]
    with pytest.raises(CnnvizError, match="does not exist"):
        lab.export_png(tmp_path / "missing" / "x.png")


def test_set_image_accepts_grey_and_rgba_and_refuses_others(lab):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    lab.set_image(grey)
    np.testing.assert_allclose(lab.lesson("playground").input, grey / 255.0)
    assert lab.lesson("channels").input.shape == (8, 8, 3)
    assert lab.lesson("pooling").image_output.ndim == 2
    rgba = np.zeros((6, 6, 4), np.uint8)
    lab.set_image(rgba)
    assert lab.lesson("playground").input.shape == (6, 6, 3)
    with pytest.raises(CnnvizError, match="picture"):
        lab.set_image(np.zeros((4, 4, 2), np.uint8))


def test_large_pictures_are_shrunk_for_the_lessons(lab):
    lab.set_image(np.zeros((600, 400, 3), np.uint8))
    assert lab.lesson("playground").input.shape == (256, 171, 3)
    assert max(lab.lesson("channels").input.shape[:2]) == 72
