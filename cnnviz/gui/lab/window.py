"""The lab widget (the list of lessons on the left, the lesson on the right, export as PNG) and its window."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.analysis.types import Summary
from cnnviz.core.errors import CnnvizError
from cnnviz.core.fileio import atomic_write_bytes
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.channels import ChannelsLesson
from cnnviz.gui.lab.dense import DenseLesson
from cnnviz.gui.lab.geometry import GeometryLesson
from cnnviz.gui.lab.one_by_one import OneByOneLesson
from cnnviz.gui.lab.playground import PlaygroundLesson
from cnnviz.gui.lab.pooling import PoolingLesson
from cnnviz.gui.lab.receptive import RFLesson
from cnnviz.gui.lab.step import StepLesson


class ConvolutionLab(QtWidgets.QWidget):
    """Eight lessons on convolution in one widget: a list of lessons on the left, the lesson on the right.

    Public API: :meth:`set_image` (the current picture, uint8), :meth:`set_model_summary` (the current model's
    :class:`~cnnviz.core.analysis.types.Summary`, for the conv-versus-dense and receptive-field lessons),
    :meth:`set_lesson` and :meth:`export_png`.
    """

    LESSONS: tuple[type[_Lesson], ...] = (
        PlaygroundLesson,
        StepLesson,
        GeometryLesson,
        ChannelsLesson,
        PoolingLesson,
        OneByOneLesson,
        DenseLesson,
        RFLesson,
    )

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Convolution lab")
        self._image = core.sample_image(96)
        self._pictures: dict[int, np.ndarray] = {}
        self.summary: Summary | None = None
        self.last_error: str | None = None  # the last export failure, as shown to the user

        self.nav = QtWidgets.QListWidget()
        self.nav.setFixedWidth(210)
        self.nav.setSpacing(2)
        self.nav.setWordWrap(True)
        self.nav.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.stack = QtWidgets.QStackedWidget()
        # Lessons are built when first shown (or asked for), so opening the lab costs one lesson, not eight.
        self._built: dict[int, _Lesson] = {}
        for n, cls in enumerate(self.LESSONS):
            scroll = QtWidgets.QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
            self.stack.addWidget(scroll)
            item = QtWidgets.QListWidgetItem(f"{n + 1}. {cls.nav_title or cls.title}")
            item.setToolTip(cls.summary)
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self._show_row)
        self.nav.setCurrentRow(0)

        self.export_button = QtWidgets.QPushButton("Export this lesson as PNG\u2026")
        self.export_button.clicked.connect(self._export_clicked)
        side = QtWidgets.QVBoxLayout()
        title = QtWidgets.QLabel("<b>Convolution lab</b>")
        side.addWidget(title)
        side.addWidget(self.nav, 1)
        side.addWidget(self.export_button)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addLayout(side)
        layout.addWidget(self.stack, 1)

    # -- state from the application

    def set_image(self, image: np.ndarray) -> None:
        """Use ``image`` (uint8 H x W, H x W x 3 or H x W x 4) in the picture lessons; large ones are shrunk."""
        arr = np.asarray(image)
        core.image_to_float(
            arr[:4, :4] if arr.ndim >= 2 else arr
        )  # a clear error for a wrong shape
        self._image = arr.copy()
        self._pictures.clear()
        for lesson in self._built.values():
            lesson.image_changed()

    def set_model_summary(self, summary: Summary | None) -> None:
        """The current model's per-layer table (or None when no model is loaded)."""
        self.summary = summary
        for lesson in self._built.values():
            lesson.summary_changed()

    def picture(self, max_side: int) -> np.ndarray:
        """The current picture as float64 in 0..1, shrunk to at most ``max_side`` pixels (cached)."""
        if max_side not in self._pictures:
            self._pictures[max_side] = core.image_to_float(self._image, max_side=max_side)
        return self._pictures[max_side]

    # -- navigation

    def lesson_keys(self) -> list[str]:
        return [cls.key for cls in self.LESSONS]

    def lesson(self, key: str) -> _Lesson:
        """The lesson with this key, built on first use."""
        return self._lesson_at(self.lesson_keys().index(key))

    def set_lesson(self, key: str) -> None:
        """Show the lesson with this key (see :meth:`lesson_keys`)."""
        self.nav.setCurrentRow(self.lesson_keys().index(key))

    def current_lesson(self) -> _Lesson:
        return self._lesson_at(self.stack.currentIndex())

    def _lesson_at(self, row: int) -> _Lesson:
        if row not in self._built:
            lesson = self.LESSONS[row](self)
            self._built[row] = lesson
            scroll = self.stack.widget(row)
            assert isinstance(scroll, QtWidgets.QScrollArea)
            scroll.setWidget(lesson)
        return self._built[row]

    def _show_row(self, row: int) -> None:
        if row >= 0:
            self._lesson_at(row)
            self.stack.setCurrentIndex(row)

    # -- export

    def export_png(self, path: str | os.PathLike[str]) -> Path:
        """Save the current lesson as it looks on screen to a PNG file (written atomically)."""
        pixmap = self.current_lesson().grab()
        data = QtCore.QByteArray()
        buffer = QtCore.QBuffer(data)
        buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
        if not pixmap.save(buffer, "PNG"):
            raise CnnvizError("The lesson could not be rendered as PNG.")
        buffer.close()
        return atomic_write_bytes(path, bytes(data.data()))

    def _export_clicked(self) -> None:
        default = f"cnnviz-lab-{self.current_lesson().key}.png"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export lesson as PNG", default, "PNG image (*.png)"
        )
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            self.export_png(path)
        except (CnnvizError, OSError) as exc:
            self.last_error = str(exc)
            # Tests (and scripts) run without modal boxes, which would wait for a click forever.
            if not os.environ.get("CNNVIZ_NO_DIALOGS"):
                QtWidgets.QMessageBox.warning(self, "Export failed", self.last_error)


class LabWindow(QtWidgets.QWidget):
    """The convolution lab in a window of its own, beside the main window: its pictures get the whole screen.

    Non-modal and independent (the main window closes it when it closes). ``closed`` fires when it closes.
    """

    closed = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)
        self.setObjectName("convolution_lab_window")
        self.setWindowTitle("Convolution lab — cnnviz")
        self.lab = ConvolutionLab()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)  # the lab has its own margins
        layout.addWidget(self.lab)
        close = QtGui.QAction("Close the Lab", self)
        # Ctrl+W, not Esc: the lessons' editors use Esc themselves.
        close.setShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Close))
        close.triggered.connect(self.close)
        self.addAction(close)

    def default_geometry(self, near: QtWidgets.QWidget | None = None) -> QtCore.QRect:
        """A first-time place: most of the screen ``near`` (the main window) is on, so that lessons fit."""
        anchor = near or self.parentWidget()
        screen = (
            anchor.screen() if anchor is not None else None
        ) or QtGui.QGuiApplication.primaryScreen()
        room = screen.availableGeometry() if screen is not None else QtCore.QRect(0, 0, 1366, 768)
        width = min(1280, int(room.width() * 0.92))
        height = min(860, int(room.height() * 0.92))
        rect = QtCore.QRect(0, 0, width, height)
        rect.moveCenter(room.center())
        return rect

    def open(self, geometry: object = None, near: QtWidgets.QWidget | None = None) -> None:
        """Show the window in front, at ``geometry`` (saved by ``saveGeometry``) or at its first-time place
        on the screen of ``near``."""
        if not self.isVisible():
            restored = isinstance(geometry, (QtCore.QByteArray, bytes)) and self.restoreGeometry(
                QtCore.QByteArray(geometry)
            )
            if not restored:
                self.setGeometry(self.default_geometry(near))
        self.show()
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        super().closeEvent(event)
        self.closed.emit()
