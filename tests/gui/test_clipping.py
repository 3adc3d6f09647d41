"""Nothing is cut off at 1024×700, 1366×768 or 1920×1080: every visible label, button, check box, group title,
status-bar line and table cell shows its whole text, or elides it and carries the whole in its tooltip.

The widths needed are measured with the widget's own QFontMetrics (or, for word-wrapped labels, its
heightForWidth), not with numbers copied from the layout.
"""

from __future__ import annotations

import pytest
from gui_helpers import wait_idle
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import Qt as QtGuiQt  # mightBeRichText lives on QtGui's Qt namespace
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QDockWidget,
    QGroupBox,
    QLabel,
    QPushButton,
    QRadioButton,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QWidget,
)

SIZES = [(1024, 700), (1366, 768), (1920, 1080)]
SLACK = 1  # pixels of rounding between font metrics and layout


def settle(qtbot, ms: int = 120) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def _tooltip_holds(widget: QWidget, text: str) -> bool:
    tip = widget.toolTip()
    if QtGuiQt.mightBeRichText(tip):
        doc = QTextDocument()
        doc.setHtml(tip)
        tip = doc.toPlainText()
    flat = " ".join(text.split())
    return bool(flat) and flat in " ".join(tip.split())


def _shown(widget: QWidget) -> bool:
    return widget.isVisible() and not widget.visibleRegion().isEmpty() and widget.width() > 0


def _label_problem(label: QLabel) -> tuple[str, int, int] | None:
    text = label.text()
    if not text.strip() or label.pixmap() is not None and not label.pixmap().isNull():
        return None
    rect = label.contentsRect()
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and QtGuiQt.mightBeRichText(text)
    )
    plain = text
    if rich:
        doc = QTextDocument()
        doc.setDefaultFont(label.font())
        doc.setDocumentMargin(0)
        doc.setHtml(text)
        plain = doc.toPlainText()
    if label.wordWrap():
        need = label.heightForWidth(label.width())
        if need > label.height() + SLACK:
            return plain, need, label.height()
        return None
    if rich:
        need = int(doc.idealWidth() + 0.999)
    else:
        metrics = label.fontMetrics()
        need = max(metrics.horizontalAdvance(line) for line in text.split("\n"))
    avail = rect.width() - 2 * label.margin() - max(label.indent(), 0)
    if need > avail + SLACK:
        return plain, need, avail
    return None


def _button_problem(button: QAbstractButton) -> tuple[str, int, int] | None:
    text = _plain(button.text())
    if not text.strip():
        return None
    style = button.style()
    need = button.fontMetrics().horizontalAdvance(text)
    if not button.icon().isNull():
        need += button.iconSize().width() + 4
    if isinstance(button, (QCheckBox, QRadioButton)):
        need += style.pixelMetric(QStyle.PixelMetric.PM_IndicatorWidth, None, button)
        need += style.pixelMetric(QStyle.PixelMetric.PM_CheckBoxLabelSpacing, None, button)
    elif isinstance(button, QPushButton):
        need += 2 * style.pixelMetric(QStyle.PixelMetric.PM_ButtonMargin, None, button)
    elif isinstance(button, QToolButton):
        need += 4
        if (
            button.menu() is not None
            or button.popupMode() == QToolButton.ToolButtonPopupMode.MenuButtonPopup
        ):
            need += style.pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, None, button)
    if need > button.width() + SLACK:
        return text, need, button.width()
    return None


def _group_problem(box: QGroupBox) -> tuple[str, int, int] | None:
    title = _plain(box.title())
    if not title.strip():
        return None
    need = box.fontMetrics().horizontalAdvance(title) + 12
    if box.isCheckable():
        need += box.style().pixelMetric(QStyle.PixelMetric.PM_IndicatorWidth, None, box) + 4
    if need > box.width() + SLACK:
        return title, need, box.width()
    return None


def _dock_problem(dock: QDockWidget) -> tuple[str, int, int] | None:
    title = dock.windowTitle()
    if not title.strip() or dock.titleBarWidget() is not None:
        return None
    # The title, then the float and close buttons of the title bar.
    button = dock.style().pixelMetric(QStyle.PixelMetric.PM_TitleBarButtonIconSize, None, dock)
    need = dock.fontMetrics().horizontalAdvance(title) + 2 * (button + 4) + 8
    if need > dock.width() + SLACK:
        return title, need, dock.width()
    return None


def _columns(model, parent: QModelIndex) -> int:
    try:
        return model.columnCount(parent)
    except TypeError:  # a list model: one column, its columnCount is private
        return 1


def _cell_problems(view: QAbstractItemView) -> list[tuple[str, str, int, int]]:
    model = view.model()
    if model is None:
        return []
    out = []
    viewport = view.viewport().rect()
    metrics = view.fontMetrics()
    margin = view.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1

    def walk(parent: QModelIndex, depth: int) -> None:
        for row in range(min(model.rowCount(parent), 400)):
            for col in range(_columns(model, parent)):
                index = model.index(row, col, parent)
                rect = view.visualRect(index)
                if rect.isEmpty() or not viewport.intersects(rect):
                    continue
                text = model.data(index, Qt.ItemDataRole.DisplayRole)
                if text is None or not str(text).strip():
                    continue
                text = str(text)
                # The item delegate elides text wider than the cell less its text margins.
                need = metrics.horizontalAdvance(text.split("\n")[0]) + 2 * margin
                if model.data(index, Qt.ItemDataRole.DecorationRole) is not None:
                    need += view.iconSize().width() + 4 if view.iconSize().width() > 0 else 20
                if need > rect.width() + SLACK:
                    tip = model.data(index, Qt.ItemDataRole.ToolTipRole)
                    if tip is None or " ".join(text.split()) not in " ".join(str(tip).split()):
                        out.append((f"cell ({row}, {col})", text, need, rect.width()))
            first = model.index(row, 0, parent)
            if (
                depth < 3
                and model.rowCount(first) > 0
                and getattr(view, "isExpanded", lambda _i: False)(first)
            ):
                walk(first, depth + 1)

    walk(QModelIndex(), 0)
    return out


def _owner(widget: QWidget) -> str:
    """The cnnviz module that built the nearest cnnviz widget around ``widget`` (where a fix belongs)."""
    node: QWidget | None = widget
    while node is not None:
        module = type(node).__module__
        if module.startswith("cnnviz."):
            return module
        node = node.parentWidget()
    return "?"


def offenders(root: QWidget) -> list[str]:
    """Every visible widget under ``root`` whose text is cut without its whole text in a tooltip."""
    found = []
    widgets = [root, *root.findChildren(QWidget)]
    for widget in widgets:
        if not _shown(widget) or widget.window() is not root.window():
            continue
        if isinstance(widget, QLabel):
            problems = [_label_problem(widget)]
        elif isinstance(widget, QAbstractButton):
            problems = [_button_problem(widget)]
        elif isinstance(widget, QGroupBox):
            problems = [_group_problem(widget)]
        elif isinstance(widget, QDockWidget) and not widget.isFloating():
            problems = [_dock_problem(widget)]
        else:
            problems = []
        for problem in problems:
            if problem is not None and not _tooltip_holds(widget, problem[0]):
                text, need, avail = problem
                name = type(widget).__name__ + (
                    f"#{widget.objectName()}" if widget.objectName() else ""
                )
                found.append(f"{_owner(widget)}: {name} {text[:60]!r} needs {need} px, has {avail}")
        if isinstance(widget, QAbstractItemView):
            for where, text, need, avail in _cell_problems(widget):
                found.append(
                    f"{_owner(widget)}: {type(widget).__name__} {where} {text[:40]!r} needs {need} px, has {avail}"
                )
    return found


@pytest.fixture
def started(gui_window, qtbot):
    """The window with the bundled model, its sample picture run and a unit selected."""
    gui_window.start()
    wait_idle(gui_window)
    session = gui_window.session
    act = session.activation()
    if act is not None and act.ndim == 4:
        session.select_unit(act.shape[2] // 2, act.shape[3] // 2, channel=0)
        wait_idle(gui_window)
    gui_window.unit_hint.dismiss()
    return gui_window


def _assert_none(problems: list[str]) -> None:
    assert not problems, "text cut off without a tooltip:\n" + "\n".join(problems)


def _check(root: QWidget, state: str, size: tuple[int, int], qtbot) -> list[str]:
    settle(qtbot)
    return [f"[{size[0]}×{size[1]} {state}] {line}" for line in offenders(root)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_nothing_is_cut_off_in_the_main_window(started, qtbot, size):
    window = started
    window.resize(*size)
    settle(qtbot, 300)
    problems = _check(window, "maps", size, qtbot)
    # A long error in the status bar is elided, its whole text a tooltip.
    window.show_error(
        "Could not open the picture",
        "the file /a/very/long/folder/name/that/goes/on/and/on/picture-with-a-long-name.png is not a "
        "picture cnnviz can read; choose a PNG, JPEG, BMP, GIF, TIFF or WebP file",
    )
    problems += _check(window, "error", size, qtbot)
    # Background work with a long label (an export to a long file name) elides too.
    window.busy_label.setText("Exporting " + "a-very-long-file-name-" * 6 + ".png…")
    window.progress.setVisible(True)
    window.cancel_button.setVisible(True)
    problems += _check(window, "busy", size, qtbot)
    assert window.minimumSizeHint().width() <= 1024
    window._busy_changed(False, "")
    for act, dock in (
        (window.act_editor, window.editor_dock),
        (window.act_training, window.training_dock),
    ):
        act.trigger()
        settle(qtbot, 200)
        assert not dock.visibleRegion().isEmpty()
        problems += _check(window, dock.objectName(), size, qtbot)
    _assert_none(problems)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_nothing_is_cut_off_in_the_lab(started, qtbot, size):
    window = started
    window.act_lab.trigger()
    lab_window = window.lab_window
    lab_window.resize(*size)
    problems = []
    for key in window.lab.lesson_keys():
        window.lab.set_lesson(key)
        problems += _check(lab_window, f"lab {key}", size, qtbot)
    _assert_none(problems)


def test_the_check_finds_a_cut_label(qtbot):
    """The walker itself: a label too narrow for its text is found, one with its text as tooltip is not."""
    root = QWidget()
    qtbot.addWidget(root)
    root.resize(300, 100)
    cut = QLabel("a label whose text is far too long for the forty pixels it has", root)
    cut.setGeometry(0, 0, 40, 20)
    tipped = QLabel("another label whose text is far too long for forty pixels", root)
    tipped.setGeometry(0, 30, 40, 20)
    tipped.setToolTip(tipped.text())
    button = QPushButton("A button with a long caption", root)
    button.setGeometry(0, 60, 50, 24)
    fits = QLabel("ok", root)
    fits.setGeometry(100, 0, 100, 20)
    wrapped = QLabel("a word-wrapped label with many words in it, given one line only", root)
    wrapped.setWordWrap(True)
    wrapped.setGeometry(100, 30, 120, 18)
    table = QTableWidget(1, 1, root)
    table.setItem(0, 0, QTableWidgetItem("1,843,200,000 multiply-adds"))
    table.setColumnWidth(0, 40)
    table.setGeometry(100, 50, 150, 50)
    root.show()
    qtbot.waitExposed(root)
    found = offenders(root)
    assert len(found) == 4, found
    assert any("word-wrapped" in line for line in found)
    assert any("1,843,200,000" in line for line in found)
    assert any("a label whose text" in line for line in found)
    assert any("A button with a long caption" in line for line in found)
