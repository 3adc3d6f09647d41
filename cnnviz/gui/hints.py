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
        """Point at the middle of the first map of ``view`` (a FeatureMapView), if it shows 2-D maps."""
        maps = getattr(view.mosaic, "maps", None)
        if (
            self.isVisible()
            or maps is None
            or getattr(maps, "ndim", 0) != 3
            or not view.isVisible()
        ):
            return
        _c, h, w = maps.shape
        point = view.graphics.mapTo(self.host, view.widget_point(0, h // 2, w // 2))
        self.point_at(point)

    def dismiss(self) -> None:
        """Hide the bubble for good and say so (``dismissed``)."""
        if not self.isHidden():
            self.hide()
        self.dismissed.emit()

    def _place(self) -> None:
        host = self.host
        width = max(160, min(420, host.width() - 16))
        box = self.layout()
        height = box.totalHeightForWidth(width) if box is not None else 60
        height = max(height, self.minimumSizeHint().height())
        tx = min(max(self.target.x(), 8), host.width() - 8)
        ty = min(max(self.target.y(), height), host.height())
        x = min(max(tx - width // 2, 8), max(8, host.width() - width - 8))
        self.setGeometry(x, ty - height, width, height)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.host and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        body = QRectF(0.5, 0.5, self.width() - 1.0, self.height() - 1.0 - _ARROW)
        tip_x = float(min(max(self.target.x() - self.x(), 16), self.width() - 16))
        path = QPainterPath()
        path.addRoundedRect(body, 8, 8)
        pointer = QPainterPath()
        pointer.addPolygon(
            QPolygonF(
                [
                    QPointF(tip_x - _ARROW, body.bottom() - 1),
                    QPointF(tip_x + _ARROW, body.bottom() - 1),
                    QPointF(tip_x, float(self.height())),
                ]
            )  # fmt: skip
        )
        painter.setPen(QColor("#c9a227"))
        painter.setBrush(QColor("#fff4c2"))
        painter.drawPath(path.united(pointer))
