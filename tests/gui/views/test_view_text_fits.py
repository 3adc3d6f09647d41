"""No text of the views is cut without a tooltip carrying it, at 1024×700, 1366×768 and 1920×1080."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from gui_helpers import wait_idle  # noqa: E402
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel  # noqa: E402


def _cut(widget) -> str | None:
    """The text of a visible label or button that does not fit and has no tooltip holding it, else None."""
    text = widget.text()
    if not widget.isVisibleTo(widget.window()) or not text.strip() or "\n" in text:
        return None
    if isinstance(widget, QLabel) and (
        widget.wordWrap() or widget.pixmap() is not None and not text
    ):
        return None
    if isinstance(widget, QAbstractButton):
        room = widget.width() - (widget.iconSize().width() if not widget.icon().isNull() else 0) - 8
    else:
        room = widget.contentsRect().width()
    if widget.fontMetrics().horizontalAdvance(text) <= room:
        return None
    if text in (widget.toolTip() or ""):
        return None
    return text


@pytest.mark.parametrize("size", [(1024, 700), (1366, 768), (1920, 1080)])
def test_view_texts_fit_or_carry_a_tooltip(loaded_window, size):
    window = loaded_window
    window.resize(*size)
    session = window.session
    views = (window.feature_view, window.input_view, window.layer_list, window.layer_table,
             window.predictions)  # fmt: skip
    for layer in ("0", "3", "5", "7"):
        session.select_layer(layer)
        session.select_unit(0, 0, channel=1)
        wait_idle(window)
        window.feature_view.wait_rendered()
        QApplication.processEvents()
        cut = [
            (type(w).__name__, t)
            for view in views
            for kind in (QLabel, QAbstractButton)
            for w in view.findChildren(kind)
            if (t := _cut(w)) is not None
        ]
        assert not cut, (size, layer, cut)


def test_the_check_sees_a_cut_label(qtbot):
    from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

    from cnnviz.gui.views.elided import ElidedLabel

    box = QWidget()
    qtbot.addWidget(box)
    layout = QVBoxLayout(box)
    plain, elided = QLabel("a rather long line of text that cannot fit"), ElidedLabel()
    elided.set_texts("a rather long line of text that cannot fit", "short")
    for label in (plain, elided):
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(label)
    box.resize(80, 60)
    box.show()
    qtbot.waitExposed(box)
    assert _cut(plain) is not None
    assert _cut(elided) is None and elided.toolTip().startswith(elided.text())
