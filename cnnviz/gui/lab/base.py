"""The page every lesson is built on: a title, a one-line explanation, an error line, its content."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtWidgets

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


class _Lesson(QtWidgets.QWidget):
    """One lesson page: a title, the one-line explanation, an error line, then its own content."""

    key = ""
    title = ""
    nav_title = ""
    summary = ""

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__()
        self.owner = owner
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(12, 10, 12, 10)
        heading = QtWidgets.QLabel(self.title)
        font = heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.45)
        font.setBold(True)
        heading.setFont(font)
        self.summary_label = QtWidgets.QLabel(self.summary)
        self.summary_label.setWordWrap(True)
        sfont = self.summary_label.font()
        sfont.setPointSizeF(sfont.pointSizeF() * 1.1)
        self.summary_label.setFont(sfont)
        self.summary_label.setStyleSheet("color: palette(text); padding: 2px 0 6px 0;")
        self.error_label = QtWidgets.QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020; font-weight: bold;")
        self.error_label.hide()
        outer.addWidget(heading)
        outer.addWidget(self.summary_label)
        line = QtWidgets.QFrame()
        line.setFrameShape(QtWidgets.QFrame.Shape.HLine)
        line.setFrameShadow(QtWidgets.QFrame.Shadow.Sunken)
        outer.addWidget(line)
        outer.addWidget(self.error_label)
        self.body = QtWidgets.QVBoxLayout()
        outer.addLayout(self.body, 1)

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    def clear_error(self) -> None:
        self.error_label.hide()
        self.error_label.clear()

    def image_changed(self) -> None:
        """The lab's picture changed."""

    def summary_changed(self) -> None:
        """The lab's model summary changed."""
