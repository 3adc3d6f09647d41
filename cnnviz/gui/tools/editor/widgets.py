"""Small widgets of the editors: a pair of spin boxes that can be linked (and its conversions), the error banner."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from cnnviz.gui.tools.editor.model import ERROR_BG, ERROR_FG


class PairEdit(QWidget):
    """Two spin boxes (height, width) with a link that keeps them equal; emits ``valueChanged((h, w))``.

    ``editingFinished`` is emitted when either box's edit is committed (Enter or leaving the box).

    With ``none_text`` the lowest value (``minimum - 1``) means None (e.g. a pooling stride equal to the kernel).
    """

    valueChanged = Signal(object)
    editingFinished = Signal()

    def __init__(
        self,
        minimum: int,
        maximum: int,
        value: tuple[int, int] | None,
        *,
        none_text: str | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.none_text = none_text
        low = minimum - 1 if none_text else minimum
        self.h = QSpinBox()
        self.w = QSpinBox()
        for spin, axis in ((self.h, "height"), (self.w, "width")):
            spin.setRange(low, maximum)
            spin.setToolTip(axis)
            spin.setKeyboardTracking(True)
            spin.setAccelerated(True)
            if none_text:
                spin.setSpecialValueText(none_text)
        self.link = QToolButton()
        self.link.setText("=")
        self.link.setCheckable(True)
        self.link.setToolTip("Keep height and width equal")
        self.link.setAutoRaise(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.h, 1)
        times = QLabel("×")
        layout.addWidget(times)
        layout.addWidget(self.w, 1)
        layout.addWidget(self.link)
        self.set_value(value)
        self.link.setChecked(self.h.value() == self.w.value())
        self.h.valueChanged.connect(lambda v: self._changed(self.h, self.w, v))
        self.w.valueChanged.connect(lambda v: self._changed(self.w, self.h, v))
        self.h.editingFinished.connect(self.editingFinished)
        self.w.editingFinished.connect(self.editingFinished)

    def set_value(self, value: tuple[int, int] | None) -> None:
        """Show ``value`` without emitting."""
        if value is None:
            value = (self.h.minimum(), self.w.minimum())
        for spin, v in ((self.h, value[0]), (self.w, value[1])):
            spin.blockSignals(True)
            spin.setValue(int(v))
            spin.blockSignals(False)

    def value(self) -> tuple[int, int] | None:
        if self.none_text and self.h.value() == self.h.minimum():
            return None
        return (self.h.value(), self.w.value())

    def _changed(self, source: QSpinBox, other: QSpinBox, value: int) -> None:
        if self.link.isChecked() and other.value() != value:
            other.blockSignals(True)
            other.setValue(value)
            other.blockSignals(False)
        if self.none_text and (self.h.value() == self.h.minimum()) != (
            self.w.value() == self.w.minimum()
        ):
            # None is one value for both axes.
            other.blockSignals(True)
            other.setValue(
                source.value() if source.value() != source.minimum() else other.minimum()
            )
            other.blockSignals(False)
        self.valueChanged.emit(self.value())


class ErrorBanner(QLabel):
    """The explained error of a broken graph; clicking it selects the node it names."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setStyleSheet(
            f"QLabel {{ color: {ERROR_FG.name()}; background: {ERROR_BG.name()}; padding: 4px; "
            "border: 1px solid #d08080; }"
        )
        self.setVisible(False)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)


def _as_pair(value: Any) -> tuple[int, int] | None:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, tuple | list):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _from_pair(pair: tuple[int, int] | None) -> Any:
    if pair is None:
        return None
    return pair[0] if pair[0] == pair[1] else [pair[0], pair[1]]
