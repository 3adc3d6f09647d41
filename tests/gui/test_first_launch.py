"""First launch teaches: a hint over the feature maps once, and Help's Getting Started and Keyboard Shortcuts."""

from __future__ import annotations

from gui_helpers import wait_idle
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication

from cnnviz.gui.main_window import MainWindow


def started_window(qtbot, prefs) -> MainWindow:
    window = MainWindow(preferences=prefs)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    window.start()
    wait_idle(window)
    QApplication.processEvents()
    return window


def close(window: MainWindow) -> None:
    window.close()
    window.session.runner.shutdown()
    window.io_runner.shutdown()


def test_the_hint_points_at_a_feature_map_until_dismissed_and_never_again(qtbot, gui_prefs):
    window = started_window(qtbot, gui_prefs)
    hint = window.unit_hint
    qtbot.waitUntil(hint.isVisible, timeout=5000)
    assert "click a unit" in hint.label.text().lower()
    # Its pointer touches the first map from below, and leaves that map in view.
    view = window.feature_view
    maps = view.mosaic.maps
    bottom = view.graphics.mapTo(view, view.widget_point(0, maps.shape[1] - 1, maps.shape[2] // 2))
    top = view.graphics.mapTo(view, view.widget_point(0, 0, maps.shape[2] // 2))
    assert top.y() < hint.geometry().top() and bottom.y() <= hint.geometry().top() + 2
    assert hint.geometry().top() - bottom.y() < 20
    assert hint.geometry().left() <= bottom.x() <= hint.geometry().right()
    assert window.feature_view.rect().contains(hint.geometry())
    # Its words are all inside the bubble.
    assert hint.label.height() >= hint.label.heightForWidth(hint.label.width())
    assert hint.rect().contains(hint.label.geometry()) and hint.rect().contains(
        hint.button.geometry()
    )
    # Another layer, drawn at another size: the bubble follows the first map.
    window.resize(1000, 720)
    later = next(
        n
        for n, v in window.session.activations.items()
        if v.ndim == 4 and v.shape[2] < maps.shape[1]
    )
    window.session.select_layer(later)
    wait_idle(window)
    qtbot.waitUntil(lambda: window.feature_view.mosaic.maps.shape[1] < maps.shape[1], timeout=5000)
    QApplication.processEvents()
    new = window.feature_view.mosaic.maps
    edge = view.graphics.mapTo(view, view.widget_point(0, new.shape[1] - 1, new.shape[2] // 2))
    assert hint.isVisible() and 0 <= hint.geometry().top() - edge.y() < 20
    assert hint.geometry().left() <= edge.x() <= hint.geometry().right()
    qtbot.mouseClick(hint.button, Qt.MouseButton.LeftButton)
    assert not hint.isVisible()
    close(window)

    again = started_window(qtbot, gui_prefs)  # the same preferences: a second launch
    qtbot.wait(300)
    assert not again.unit_hint.isVisible()
    close(again)


def test_clicking_a_unit_is_what_the_hint_asks_and_dismisses_it(qtbot, gui_prefs):
    window = started_window(qtbot, gui_prefs)
    qtbot.waitUntil(window.unit_hint.isVisible, timeout=5000)
    maps = window.feature_view.mosaic.maps
    point = window.feature_view.widget_point(1, maps.shape[1] // 3, maps.shape[2] // 3)
    qtbot.mouseClick(window.feature_view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: window.session.selection is not None, timeout=3000)
    assert not window.unit_hint.isVisible()
    assert gui_prefs.get("unitHintDone", False, bool)
    close(window)


def test_help_getting_started_walks_through_the_first_steps(gui_window):
    gui_window.act_getting_started.trigger()
    dialog = gui_window.help_dialogs["getting_started"]
    assert dialog.isVisible() and not dialog.isModal()
    text = dialog.browser.toPlainText()
    for step in (
        "Open a picture",
        "Pick a layer",
        "Click a unit",
        "table",
        "Layer Editor",
        "Training",
        "Lab",
    ):
        assert step in text


def test_help_keyboard_shortcuts_come_from_the_real_actions(gui_window):
    gui_window.act_shortcuts.trigger()
    text = gui_window.help_dialogs["shortcuts"].browser.toPlainText()
    native = QKeySequence.SequenceFormat.NativeText
    listed = 0
    lab_actions = gui_window.lab_window.actions()
    assert any("Lab" in a.text() and not a.shortcut().isEmpty() for a in lab_actions)
    for action in [*gui_window.findChildren(QAction), *lab_actions]:
        if action.shortcut().isEmpty() or not action.text():
            continue
        listed += 1
        name = action.text().replace("&", "")
        line = next((ln for ln in text.splitlines() if ln.startswith(name)), None)
        assert line is not None, f"{name} is missing from the shortcuts page"
        assert action.shortcut().toString(native) in text
    assert listed >= 8
    # Generated, not copied: a changed shortcut shows up the next time the page opens.
    gui_window.act_fit.setShortcut(QKeySequence("Ctrl+Alt+F"))
    gui_window.act_shortcuts.trigger()
    text = gui_window.help_dialogs["shortcuts"].browser.toPlainText()
    assert QKeySequence("Ctrl+Alt+F").toString(native) in text
