"""Tools › Layer Editor / Training / Convolution Lab bring the tool to the front; pressing again never hides it."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QApplication


@pytest.mark.parametrize(
    ("action", "name"), [("act_editor", "editor_dock"), ("act_training", "training_dock")]
)
def test_a_tool_shortcut_brings_its_dock_to_the_front_and_keeps_it_open(
    gui_window, qtbot, action, name
):
    dock = getattr(gui_window, name)
    act = getattr(gui_window, action)
    assert not dock.isVisible()
    act.trigger()
    # In front means painted: a dock in a tab behind another has no visible region
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=3000)
    assert gui_window.table_dock.visibleRegion().isEmpty()
    act.trigger()  # pressed again: still open, still in front
    QApplication.processEvents()
    qtbot.wait(100)
    assert dock.isVisible() and not dock.visibleRegion().isEmpty()
    gui_window.table_dock.raise_()  # the user looks at the table, then asks for the tool again
    qtbot.waitUntil(lambda: dock.visibleRegion().isEmpty(), timeout=3000)
    act.trigger()
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=3000)
    dock.close()  # the dock's own close button still closes it
    qtbot.waitUntil(lambda: not dock.isVisible(), timeout=3000)
    act.trigger()
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=3000)


def test_the_tool_shortcuts_are_the_documented_keys(gui_window):
    keys = {
        a.text().replace("&", ""): a.shortcut().toString()
        for a in gui_window.findChildren(type(gui_window.act_lab))
    }
    assert keys["Layer Editor"] == "Ctrl+E"
    assert keys["Training"] == "Ctrl+T"
    assert keys["Convolution Lab"] == "Ctrl+L"


def test_the_lab_window_opens_again_where_it_was_and_closes_with_the_main_window(gui_window, qtbot):
    window = gui_window
    lab = window.lab_window
    window.act_lab.trigger()
    qtbot.waitUntil(lab.isVisible, timeout=3000)
    window.act_lab.trigger()  # again: stays open
    QApplication.processEvents()
    assert lab.isVisible()
    place = QRect(
        40, 50, 700, 560
    )  # inside the 800×800 offscreen screen (restoring keeps a window on it)
    lab.setGeometry(place)
    QApplication.processEvents()
    lab.close()
    qtbot.waitUntil(lambda: not lab.isVisible(), timeout=3000)
    lab.setGeometry(QRect(0, 0, 500, 400))  # forgotten unless it was saved on close
    window.act_lab.trigger()
    qtbot.waitUntil(lab.isVisible, timeout=3000)
    assert lab.geometry().size() == place.size()
    window.close()
    assert not lab.isVisible()
