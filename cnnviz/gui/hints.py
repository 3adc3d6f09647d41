"""The first-launch hint: a speech bubble over the feature maps that says what clicking a unit does.

Shown once, the first time maps are drawn; "Got it" or a click on a unit dismisses it for good (a preference).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPolygonF
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

__all__ = ["HINT_TEXT", "UnitHint"]

HINT_TEXT = "Click a unit in a feature map to see which pixels of the picture it sees."
_ARROW = 12  # height of the pointer under the bubble


class UnitHint(QWidget):
    """A dismissible bubble drawn over ``host`` whose pointer touches ``host`` at :meth:`point_at`."""

    dismissed = Signal()

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.setObjectName("unit_hint")
        self.host = host
        self.target = QPoint(host.width() // 2, host.height() // 2)
        self.below = True  # the bubble hangs below its target, pointer up
        self._view: Any = None
        self.label = QLabel(HINT_TEXT)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.button = QPushButton("Got it")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8 + _ARROW)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.WindowText, QColor("#1d1d1f"))
        palette.setColor(QPalette.ColorRole.Text, QColor("#1d1d1f"))
        self.label.setPalette(palette)
        self.hide()
        host.installEventFilter(self)

    def point_at(self, target: QPoint) -> None:
        """Put the bubble's pointer on ``target`` (a point in the host's coordinates) and show it."""
        self.target = QPoint(target)
        self._place()
        self.show()
        self.raise_()

    def offer(self, view: Any) -> None:
        """Point at the first map of ``view`` (a FeatureMapView), if it shows 2-D maps, and show the bubble;
        called again after each new mosaic, it follows the maps (another layer, another size)."""
        maps = getattr(view.mosaic, "maps", None)
        if maps is None or getattr(maps, "ndim", 0) != 3 or not view.isVisible():
            return  # a layer without 2-D maps: wait for one, or stay where the last one was
        self._view = view
        self.point_at(self._map_edge(view))

    def _map_edge(self, view: Any) -> QPoint:
        # The middle of the first map's bottom edge: the bubble sits below it and leaves that map in view.
        _c, h, w = view.mosaic.maps.shape
        last = view.widget_point(0, h - 1, w // 2)
        step = last.y() - view.widget_point(0, max(0, h - 2), w // 2).y() if h > 1 else 0
        return view.graphics.mapTo(self.host, QPoint(int(last.x()), int(last.y() + step / 2)))

    def dismiss(self) -> None:
        """Hide the bubble for good and say so (``dismissed``)."""
        if not self.isHidden():
            self.hide()
        self.dismissed.emit()

    def _place(self) -> None:
        host = self.host
        width = max(160, min(420, host.width() - 16))
        # The label wraps beside the button: its height at the width it gets, plus the margins and pointer.
        room = width - self.button.sizeHint().width() - 28
        text = self.label.heightForWidth(max(80, room))
        height = max(text, self.button.sizeHint().height()) + 16 + _ARROW
        tx = min(max(self.target.x(), 8), host.width() - 8)
        x = min(max(tx - width // 2, 8), max(8, host.width() - width - 8))
        # Below the target, pointing up; above it, pointing down, where there is no room below.
        self.below = self.target.y() + height <= host.height()
        y = self.target.y() if self.below else max(0, self.target.y() - height)
        margins = (12, 8 + _ARROW, 8, 8) if self.below else (12, 8, 8, 8 + _ARROW)
        box = self.layout()
        if box is not None:
            box.setContentsMargins(*margins)
        self.setGeometry(x, y, width, height)
        self.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.host and event.type() == QEvent.Type.Resize and self.isVisible():
            if self._view is not None and getattr(self._view.mosaic, "maps", None) is not None:
                self.target = self._map_edge(self._view)
            self._place()
        return False

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        top = _ARROW if self.below else 0
        body = QRectF(0.5, top + 0.5, self.width() - 1.0, self.height() - 1.0 - _ARROW)
        tip_x = float(min(max(self.target.x() - self.x(), 16), self.width() - 16))
        path = QPainterPath()
        path.addRoundedRect(body, 8, 8)
        base = body.top() + 1 if self.below else body.bottom() - 1
        tip = 0.0 if self.below else float(self.height())
        pointer = QPainterPath()
        pointer.addPolygon(
            QPolygonF(
                [QPointF(tip_x - _ARROW, base), QPointF(tip_x + _ARROW, base), QPointF(tip_x, tip)]
            )
        )
        painter.setPen(QColor("#c9a227"))
        painter.setBrush(QColor("#fff4c2"))
        painter.drawPath(path.united(pointer))
