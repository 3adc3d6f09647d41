"""Opening a tool from the Tools menu shows it in front, not as a tab hidden behind the layer table."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["editor_dock", "training_dock", "lab_dock"])
def test_opening_a_tool_brings_it_to_the_front(gui_window, qtbot, name):
    dock = getattr(gui_window, name)
    assert not dock.isVisible()
    dock.toggleViewAction().trigger()
    # In front means painted: a dock in a tab behind another has no visible region
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=3000)
    assert gui_window.table_dock.visibleRegion().isEmpty()
    dock.toggleViewAction().trigger()
    qtbot.waitUntil(lambda: not dock.isVisible(), timeout=3000)
