"""Outputs without a spatial map are bar charts: bar lengths are the captured values, class names label the
output layer, the selected value is highlighted, the order and the read-out follow the values."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from gui_helpers import wait_idle  # noqa: E402

from cnnviz.core.present.vectors import value_order, vector_values  # noqa: E402


def _forward(window, upto: int) -> np.ndarray:
    """The output of layer ``upto`` of the tiny Sequential, by a forward pass of our own."""
    model = window.session.model
    x = window.session.image.tensor.clone()
    with torch.no_grad():
        for i, layer in enumerate(model.module):
            x = layer(x)
            if i == upto:
                return x.numpy()
    raise AssertionError("no such layer")


def test_logits_are_bars_of_their_values_labelled_by_class(loaded_window):
    window = loaded_window
    window.session.select_layer("7")
    view = window.feature_view
    assert view.stack.currentWidget() is view.bars
    truth = _forward(window, 7).reshape(-1)
    np.testing.assert_allclose(view.bars.bar_values(), truth, rtol=1e-5, atol=1e-6)
    # Index order: bar i in row i, labelled by its class.
    np.testing.assert_array_equal(view.bars.bar_rows(), np.arange(truth.size))
    assert view.bars.tick_texts() == [f"{i} {n}" for i, n in enumerate(window.session.model.labels)]
    # Largest first: the top row holds the largest logit.
    view.order_box.setCurrentIndex(view.order_box.findData("largest"))
    rows = view.bars.bar_rows()
    assert rows[int(np.argmax(truth))] == 0 and rows[int(np.argmin(truth))] == truth.size - 1
    np.testing.assert_allclose(view.bars.bar_values(), truth, rtol=1e-5, atol=1e-6)


def test_pooled_vector_is_one_scale_of_bars_without_class_names(loaded_window):
    window = loaded_window
    window.session.select_layer("5")  # AdaptiveAvgPool2d(1): 8×1×1
    view = window.feature_view
    assert view.stack.currentWidget() is view.bars
    truth = _forward(window, 5).reshape(-1)
    np.testing.assert_allclose(view.bars.bar_values(), truth, rtol=1e-5, atol=1e-6)
    assert view.bars.labels is None  # 8 pooled channels are not the 4 classes
    # One axis for all bars: the value line gives their range, not a per-channel colour scale, also
    # when the selection changes afterwards.
    window.session.select_unit(0, 0, channel=2)
    wait_idle(window)
    line = view.hist_label.text()
    assert "per channel" not in line
    assert f"{truth.min():.4g}" in line and f"{truth.max():.4g}" in line
    assert not view.cmap_box.isVisible() or not view.isVisible()


def test_hover_reads_a_bar_and_click_selects_and_highlights_it(loaded_window, qtbot):
    window = loaded_window
    session = window.session
    session.select_layer("7")
    view = window.feature_view
    truth = _forward(window, 7).reshape(-1)
    scene = view.bars.scene_point(2)
    view.bars._moved(scene)
    assert view.readout.text().startswith(f"index 2   value {truth[2]:.5g}   (bird)")
    view.bars.clicked.emit(view.bars.index_at(scene))
    wait_idle(window)
    assert session.selection is not None and session.selection.channel == 2
    assert view.bars.selected == 2 and view.bars.mark.isVisible()


def test_back_to_a_map_shows_the_mosaic(loaded_window):
    window = loaded_window
    window.session.select_layer("7")
    window.session.select_layer("3")
    view = window.feature_view
    assert view.stack.currentWidget() is view.graphics and view.vector is None


def test_vector_values_and_order_helpers():
    assert vector_values(np.zeros((1, 5))).shape == (5,)
    assert vector_values(np.zeros((1, 7, 1, 1))).shape == (7,)
    assert vector_values(np.zeros((1, 3, 2, 2))) is None
    v = np.array([1.0, -5.0, 3.0, np.nan])
    assert list(value_order(v, "largest")) == [2, 0, 1, 3]
    assert list(value_order(v, "magnitude")) == [1, 2, 0, 3]
    assert list(value_order(v, "index")) == [0, 1, 2, 3]


class _Wheel:
    """A wheel turn as the scene hands it to the view box."""

    def __init__(self, delta: int, ctrl: bool = False):
        from PySide6.QtCore import Qt

        self._delta = delta
        self._mods = Qt.KeyboardModifier.ControlModifier if ctrl else Qt.KeyboardModifier.NoModifier

    def delta(self) -> int:
        return self._delta

    def modifiers(self):
        return self._mods

    def accept(self) -> None:
        pass


def test_a_thousand_logits_open_largest_first_and_scroll(qtbot):
    from cnnviz.gui.views.feature_maps import FeatureMapView

    view = FeatureMapView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 8, size=(1, 1000)).astype(np.float32)
    view.value_labels = [f"class {i}" for i in range(1000)]
    view.set_layer("fc", logits)
    bars = view.bars
    assert view.order_box.currentData() == "largest"
    top = int(np.argmax(logits))
    assert bars.bar_rows()[top] == 0
    np.testing.assert_allclose(bars.bar_values(), logits[0], rtol=1e-6)
    (y0, y1) = bars.vb.viewRange()[1]
    assert y1 - y0 < 40  # a readable page of rows, not 1000 slivers
    assert bars.tick_texts()[0] == f"{top} class {top}"
    bars.vb.wheelEvent(_Wheel(-120))
    (z0, z1) = bars.vb.viewRange()[1]
    assert z0 > y0 and z1 - z0 == pytest.approx(y1 - y0)


def test_up_and_down_keys_move_the_selected_bar(loaded_window, qtbot):
    from PySide6.QtCore import Qt

    window = loaded_window
    session = window.session
    session.select_layer("7")
    bars = window.feature_view.bars
    bars.set_order("largest")
    ranked = list(np.argsort(-_forward(window, 7).reshape(-1), kind="stable"))
    with qtbot.waitSignal(bars.clicked) as first:
        qtbot.keyClick(bars, Qt.Key.Key_Down)
    assert first.args == [ranked[0]]
    session.select_unit(0, 0, channel=int(ranked[0]))
    with qtbot.waitSignal(bars.clicked) as second:
        qtbot.keyClick(bars, Qt.Key.Key_Down)
    assert second.args == [ranked[1]]
    assert session.selection.channel == ranked[1] and bars.selected == ranked[1]
