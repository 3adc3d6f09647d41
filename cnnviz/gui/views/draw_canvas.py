"""A small canvas to draw a digit with the mouse; the picture updates while you draw."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cnnviz.gui.views.elided import ElidedLabel

__all__ = ["DrawCanvas", "DrawPanel", "qimage_to_array"]


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage -> uint8 array: HxW for grayscale images, HxWx3 RGB otherwise (a copy)."""
    if image.format() == QImage.Format.Format_Grayscale8:
        gray = image
        width, height = gray.width(), gray.height()
        buf = np.frombuffer(gray.constBits(), dtype=np.uint8, count=gray.sizeInBytes())
        return buf.reshape(height, gray.bytesPerLine())[:, :width].copy()
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = rgb.width(), rgb.height()
    buf = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=rgb.sizeInBytes())
    return buf.reshape(height, rgb.bytesPerLine())[:, : width * 3].reshape(height, width, 3).copy()


class DrawCanvas(QWidget):
    """Dark ink on white paper, drawn with the mouse. ``drawn(array)`` fires while drawing (throttled) and when a
    stroke ends; the array is uint8 HxW (the canvas at its own resolution)."""

    drawn = Signal(object)

    SIDE = 280

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image = QImage(self.SIDE, self.SIDE, QImage.Format.Format_Grayscale8)
        self.image.fill(255)
        self.pen_width = 22
        self._last: QPointF | None = None
        self._dirty = False
        self.setMinimumSize(140, 140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw a digit with the mouse (right click clears)")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(90)
        self._timer.timeout.connect(self._emit)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(200, 200)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        return width

    def _target(self) -> QRect:
        side = min(self.width(), self.height())
        return QRect((self.width() - side) // 2, 0, side, side)

    def _to_image(self, pos: QPointF) -> QPointF:
        t = self._target()
        scale = self.SIDE / max(t.width(), 1)
        return QPointF((pos.x() - t.x()) * scale, (pos.y() - t.y()) * scale)

    def paintEvent(self, _ev: Any) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        t = self._target()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(t, self.image)
        painter.setPen(QPen(QColor(150, 150, 150), 1))
        painter.drawRect(t.adjusted(0, 0, -1, -1))
        painter.end()

    def mousePressEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        if ev.button() == Qt.MouseButton.RightButton:
            self.clear()
            return
        if ev.button() == Qt.MouseButton.LeftButton:
            self._last = self._to_image(ev.position())
            self.stroke(self._last, self._last)

    def mouseMoveEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        if self._last is None:
            return
        point = self._to_image(ev.position())
        self.stroke(self._last, point)
        self._last = point

    def mouseReleaseEvent(self, _ev: Any) -> None:  # noqa: N802 - Qt override
        if self._last is not None:
            self._last = None
            self._timer.stop()
            self._emit()

    def stroke(self, a: QPointF, b: QPointF) -> None:
        """Draw a line of ink from ``a`` to ``b`` (canvas pixels)."""
        painter = QPainter(self.image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(
            QColor(0, 0, 0),
            self.pen_width,
            Qt.PenStyle.SolidLine,
            Qt.PenCapStyle.RoundCap,
            Qt.PenJoinStyle.RoundJoin,
        )
        painter.setPen(pen)
        if a == b:
            painter.drawPoint(a)
        else:
            painter.drawLine(a, b)
        painter.end()
        self._dirty = True
        self.update()
        if not self._timer.isActive():
            self._timer.start()

    def clear(self) -> None:
        self.image.fill(255)
        self._dirty = False
        self.update()

    def array(self) -> np.ndarray:
        """The drawing as uint8 HxW (255 = paper, 0 = ink)."""
        return qimage_to_array(self.image)

    def is_blank(self) -> bool:
        return bool((self.array() == 255).all())

    def _emit(self) -> None:
        if self._dirty:
            self.drawn.emit(self.array())


class DrawPanel(QWidget):
    """The canvas with a Clear button and a pen-width slider."""

    drawn = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.canvas = DrawCanvas()
        self.canvas.drawn.connect(self.drawn)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.canvas.clear)
        self.width_slider = QSlider(Qt.Orientation.Horizontal)
        self.width_slider.setRange(8, 40)
        self.width_slider.setValue(self.canvas.pen_width)
        self.width_slider.setToolTip("Pen width")
        self.width_slider.valueChanged.connect(lambda v: setattr(self.canvas, "pen_width", int(v)))
        # One line that shortens with the dock (a wrapped hint was cut in half by a short dock).
        hint = ElidedLabel()
        hint.set_texts(
            "Draw a digit with the mouse; the maps and the prediction follow. Right click clears.",
            "Draw a digit; the maps follow. Right click clears.",
            "Draw a digit · right click clears",
        )
        self.hint = hint
        row = QHBoxLayout()
        row.addWidget(QLabel("Pen"))
        row.addWidget(self.width_slider, 1)
        row.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(hint)
        layout.addLayout(row)
        layout.addWidget(self.canvas, 1)

    def draw_line(self, points: list[tuple[float, float]]) -> None:
        """Draw a polyline in canvas pixels (x, y) and report it, as a mouse stroke would (for scripts/tests)."""
        pts = [QPointF(x, y) for x, y in points]
        for a, b in zip(pts, pts[1:] or pts, strict=False):
            self.canvas.stroke(a, b)
        self.canvas._timer.stop()
        self.canvas._emit()
