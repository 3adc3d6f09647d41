"""Nothing shown outlives what it belongs to: the effective-RF heatmap goes with its unit, the hover read-out
with its map."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_helpers import wait_idle  # noqa: E402

from cnnviz.gui.views.feature_maps import HINT  # noqa: E402


def test_erf_heatmap_goes_when_the_new_layer_has_no_unit(loaded_window):
    window = loaded_window
    session = window.session
    session.select_layer("3")
    session.set_erf_enabled(True)
    session.select_unit(2, 3, channel=1)
    wait_idle(window)
    assert session.erf is not None and window.input_view.erf_visible()
    session.select_layer("7")  # a Linear layer: no unit to carry the selection to
    wait_idle(window)
    assert session.selection is None or session.selection.box is None
    assert session.erf is None
    assert not window.input_view.erf_visible()


def test_hover_readout_does_not_outlive_its_map(loaded_window):
    window = loaded_window
    session = window.session
    session.select_layer("0")  # 6×32×32
    view = window.feature_view
    view.readout_at(view.vb.mapViewToScene(view.unit_center(0, 13, 13)))
    assert view.readout.text().startswith("channel 0   y 13   x 13")
    session.select_layer("3")  # 8×8×8: there is no y 13
    view.wait_rendered()
    assert "y 13" not in view.readout.text()
    assert view.readout.text() == HINT
