"""The window on small screens: tools never raise its minimum past 1024×700, squeezed docks recover, Reset Layout."""

from __future__ import annotations

import pytest
from gui_helpers import wait_idle
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QApplication, QScrollArea

SIZES = [(1366, 768), (1024, 700)]


def settle(qtbot, ms: int = 150) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


@pytest.fixture
def started(gui_window, qtbot):
    """The window with the bundled digits model and its sample picture run (the tools' forms filled)."""
    gui_window.start()
    wait_idle(gui_window)
    return gui_window


def open_every_tool(window, qtbot) -> None:
    for act in (window.act_editor, window.act_training, window.act_lab):
        act.trigger()
        settle(qtbot)


def test_every_tool_open_the_window_still_fits_1024_by_700(started, qtbot):
    window = started
    window.resize(1366, 768)
    open_every_tool(window, qtbot)
    for dock in (window.editor_dock, window.training_dock):
        dock.show()
        dock.raise_()
        settle(qtbot)
        hint, minimum = window.minimumSizeHint(), window.minimumSize()
        for size in (hint, minimum):
            assert size.width() <= 1024 and size.height() <= 700, (dock.objectName(), size)
        # The tool's own content asks for more than a small window has: it scrolls instead.
        assert isinstance(dock.widget(), QScrollArea)
    for width, height in SIZES:
        window.resize(width, height)
        settle(qtbot)
        assert window.size() == QSize(width, height)
        assert window.frameGeometry().height() >= height  # nothing pushed the window taller


def test_the_lab_has_a_window_of_its_own(started, qtbot):
    window = started
    window.act_lab.trigger()
    lab = window.lab_window
    qtbot.waitUntil(lab.isVisible, timeout=3000)
    assert lab.isWindow() and lab.window() is lab  # not a dock inside the main window
    assert (
        lab.parentWidget() is None
    )  # a window of its own: the main window can come in front of it
    assert window.minimumSizeHint().height() <= 700
    # Fed with the current picture, as the dock was.
    assert window.lab._image.shape == window.session.image.display.shape


def test_the_lab_window_gives_every_lesson_its_room_on_a_1366_by_768_screen(started, qtbot):
    window = started
    window.act_lab.trigger()
    lab_window = window.lab_window
    place = lab_window.default_geometry()
    # Far more than the 400-px bottom dock the lab used to have (the offscreen screen is 800×800).
    screen = lab_window.screen().availableGeometry()
    assert place.width() >= min(1200, 0.9 * screen.width())
    assert place.height() >= min(760, 0.9 * screen.height())
    # The room a 1366×768 screen leaves a window (panel and title bar taken off).
    lab_window.setGeometry(0, 0, 1366, 768 - 32 - 28)
    settle(qtbot)
    lab = window.lab
    for key in lab.lesson_keys():
        lab.set_lesson(key)
        settle(qtbot, 80)
        scroll = lab.stack.currentWidget()
        assert isinstance(scroll, QScrollArea)
        lesson, viewport = scroll.widget(), scroll.viewport()
        # Never squeezed below what it needs; where it is taller than the window, all of it scrolls into view.
        assert lesson.width() >= lesson.minimumSizeHint().width()
        bar = scroll.verticalScrollBar()
        assert bar.maximum() == max(0, lesson.height() - viewport.height())
        assert lesson.height() >= lesson.minimumSizeHint().height()
        # Across, everything is in view: a lesson never scrolls sideways at this size.
        assert scroll.horizontalScrollBar().maximum() == 0, key


def test_shrinking_and_growing_back_restores_the_docks(started, qtbot):
    window = started
    window.act_editor.trigger()  # a tool open at the bottom, as when the squeeze was reported
    window.resize(1366, 768)
    settle(qtbot, 300)
    window.resize(800, 560)
    settle(qtbot, 300)
    assert window.layers_dock.width() < 0.1 * 1366  # squeezed, as any window this small must
    window.resize(1366, 768)
    settle(qtbot, 300)
    assert window.layers_dock.width() >= 0.15 * 1366
    assert window.editor_dock.height() >= 0.3 * 768
    window.table_dock.raise_()
    settle(qtbot, 200)
    rows = window.layer_table.table.verticalHeader().defaultSectionSize()
    # At least four rows of the table, not one and a half.
    assert window.layer_table.table.viewport().height() >= 4 * rows


def test_a_squeezed_layout_saved_on_quit_recovers_on_the_next_start(started, qtbot):
    window = started
    window.resize(800, 560)
    settle(qtbot, 300)
    window.save_settings()  # quit while small: the squeezed docks are in the saved state
    from cnnviz.gui.main_window import MainWindow

    again = MainWindow(preferences=window.prefs)
    qtbot.addWidget(again)
    again.show()
    again.resize(1366, 768)
    settle(qtbot, 300)
    assert again.layers_dock.width() >= 0.15 * 1366
    assert again.layer_table.table.viewport().height() >= 4 * (
        again.layer_table.table.verticalHeader().defaultSectionSize()
    )
    again.close()


def test_reset_layout_brings_back_the_default_docks_and_is_saved(started, qtbot):
    window = started
    window.resize(1366, 768)
    settle(qtbot)
    window.save_settings()
    before = bytes(window.prefs.get("windowState").data())
    window.layers_dock.hide()
    window.predictions_dock.setFloating(True)
    window.act_editor.trigger()
    window.resizeDocks([window.editor_dock], [120], Qt.Orientation.Vertical)
    settle(qtbot)
    window.act_reset_layout.trigger()
    settle(qtbot, 300)
    assert window.layers_dock.isVisible() and not window.layers_dock.isFloating()
    assert not window.predictions_dock.isFloating() and window.predictions_dock.isVisible()
    assert window.dockWidgetArea(window.predictions_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert not window.editor_dock.isVisible() and not window.training_dock.isVisible()
    assert not window.table_dock.visibleRegion().isEmpty()
    assert window.layers_dock.width() >= 0.15 * 1366
    rows = window.layer_table.table.verticalHeader().defaultSectionSize()
    assert window.layer_table.table.viewport().height() >= 4 * rows
    # Saved at once: a window started now from the same preferences has the same layout.
    assert bytes(window.prefs.get("windowState").data()) != before
    from cnnviz.gui.main_window import MainWindow

    again = MainWindow(preferences=window.prefs)
    qtbot.addWidget(again)
    again.show()
    settle(qtbot)
    assert again.layers_dock.isVisible() and not again.predictions_dock.isFloating()
    again.close()
