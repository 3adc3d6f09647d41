"""The "Top pictures" panel: the pictures of a folder whose units respond most to one channel, as a grid of
receptive-field crops.

The view draws and reports clicks only. Each :class:`Tile` is the crop of one unit's theoretical receptive
field in its original picture: the tile stands for the whole field, the part that lies on the picture shows
its pixels and the part that falls into the padding around the picture is hatched. The grid is one painted
widget (no widget per tile), with as many columns as the panel's width allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.budget import TOP_UNITS_K
from cnnviz.gui.views.elided import ElidedLabel

__all__ = ["MAX_K", "Tile", "TileGrid", "TopPicturesView", "array_to_qimage"]

MAX_K = 64
"""The most pictures per channel the panel offers."""

MIN_TILE = 84
MAX_TILE = 180
GAP = 8
PADDING_BG = QColor(90, 90, 96)
PADDING_HATCH = QColor(200, 200, 205)
HOVER = QColor(255, 200, 0)
SELECTED = QColor(255, 140, 0)  # the orange of the receptive-field box in the picture
ERROR_STYLE = "color: #b00020;"


def array_to_qimage(array: np.ndarray) -> QImage:
    """A uint8 HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA) array as a QImage that owns its pixels."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = arr.shape[:2]
    if arr.ndim == 2:
        image = QImage(arr.data, width, height, width, QImage.Format.Format_Grayscale8)
    elif arr.shape[2] == 4:
        image = QImage(arr.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
    else:
        image = QImage(arr.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()  # detached from the NumPy buffer


@dataclass
class Tile:
    """One unit's crop: ``image``, the whole receptive field with the part beyond the picture hatched (None
    while it loads or when its picture can no longer be read), where the picture part lies in the field
    (``inner``: top, left, bottom, right as fractions of it; drawn so while the crop loads), the field's
    width / height (``aspect``), the lines under it and its tooltip."""

    name: str
    caption: str
    tooltip: str
    path: str = ""
    image: QImage | None = None
    inner: tuple[float, ...] = (0.0, 0.0, 1.0, 1.0)
    aspect: float = 1.0
    problem: str | None = None


class TileGrid(QWidget):
    """The tiles in rows, as many per row as fit; ``tileClicked(index)`` on a click."""

    tileClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tiles: list[Tile] = []
        self.hovered: int | None = None
        self.selected: int | None = None  # the tile of the unit selected in the window
        self.placeholder = ""
        self.setMouseTracking(True)
        self.setFocusPolicy(
            Qt.FocusPolicy.StrongFocus
        )  # arrows move between tiles, Enter opens one
        self.current = 0  # the tile the keyboard is on
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_tiles(self, tiles: list[Tile]) -> None:
        self.tiles = list(tiles)
        self.hovered = self.selected = None
        self.current = min(self.current, max(len(self.tiles) - 1, 0))
        self._update_height()
        self.update()

    def set_selected(self, index: int | None) -> None:
        if index != self.selected:
            self.selected = index
            self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    # -- geometry ------------------------------------------------------------------------------------------------
    def columns(self, width: int | None = None) -> int:
        w = self.width() if width is None else width
        fit = max(1, (w - GAP) // (MIN_TILE + GAP))
        return max(1, min(fit, len(self.tiles) or 1))

    def tile_side(self, width: int | None = None) -> int:
        w = self.width() if width is None else width
        cols = self.columns(w)
        return int(max(MIN_TILE // 2, min(MAX_TILE, (w - GAP * (cols + 1)) // cols)))

    def _caption_height(self) -> int:
        return 2 * self.fontMetrics().height() + 2

    def cell_rect(self, index: int) -> QRect:
        """The tile's square (the picture part and its caption lie below it)."""
        cols, side = self.columns(), self.tile_side()
        row, col = divmod(index, cols)
        used = cols * side + (cols - 1) * GAP
        left = max(GAP, (self.width() - used) // 2)
        top = GAP + row * (side + self._caption_height() + GAP)
        return QRect(left + col * (side + GAP), top, side, side)

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        if not self.tiles:
            return 0
        cols, side = self.columns(width), self.tile_side(width)
        rows = -(-len(self.tiles) // cols)
        return GAP + rows * (side + self._caption_height() + GAP)

    def _update_height(self) -> None:
        # In a resizable scroll area the minimum height decides when it scrolls.
        self.setMinimumHeight(self.heightForWidth(self.width()))

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        self._update_height()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(3 * (MIN_TILE + GAP) + GAP, self.heightForWidth(3 * (MIN_TILE + GAP) + GAP))

    def index_at(self, pos: QPoint) -> int | None:
        for i in range(len(self.tiles)):
            cell = self.cell_rect(i)
            if cell.adjusted(0, 0, 0, self._caption_height()).contains(pos):
                return i
        return None

    def field_rect(self, index: int) -> QRectF:
        """Where the tile's whole receptive field is drawn: its aspect kept, centred in the square."""
        cell = QRectF(self.cell_rect(index))
        aspect = max(self.tiles[index].aspect, 1e-6)
        if aspect >= 1:
            h = cell.width() / aspect
            return QRectF(cell.left(), cell.top() + (cell.height() - h) / 2, cell.width(), h)
        w = cell.height() * aspect
        return QRectF(cell.left() + (cell.width() - w) / 2, cell.top(), w, cell.height())

    def picture_rect(self, index: int) -> QRectF:
        """The part of the field that lies on the picture (the rest is padding)."""
        field = self.field_rect(index)
        top, left, bottom, right = self.tiles[index].inner
        return QRectF(
            field.left() + left * field.width(),
            field.top() + top * field.height(),
            (right - left) * field.width(),
            (bottom - top) * field.height(),
        )

    # -- drawing -------------------------------------------------------------------------------------------------
    def paintEvent(self, ev: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        pal = self.palette()
        if not self.tiles:
            if self.placeholder:
                painter.setPen(pal.color(pal.ColorRole.PlaceholderText))
                painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                                 Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)  # fmt: skip
            painter.end()
            return
        metrics = self.fontMetrics()
        line = metrics.height()
        hatch = QBrush(PADDING_HATCH, Qt.BrushStyle.BDiagPattern)
        for i, tile in enumerate(self.tiles):
            cell = self.cell_rect(i)
            if not ev.rect().intersects(cell.adjusted(-3, -3, 3, self._caption_height() + 3)):
                continue
            field, inner = self.field_rect(i), self.picture_rect(i)
            if tile.image is not None:
                painter.drawImage(field, tile.image)  # the whole field, its padding hatched already
            else:
                painter.fillRect(field, PADDING_BG)
                painter.fillRect(field, hatch)
                painter.fillRect(inner, pal.color(pal.ColorRole.Mid))
                painter.setPen(pal.color(pal.ColorRole.Text))
                painter.drawText(inner, Qt.AlignmentFlag.AlignCenter,
                                 "unreadable" if tile.problem else "…")  # fmt: skip
            painter.setPen(QPen(pal.color(pal.ColorRole.Mid), 1))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(field.adjusted(-0.5, -0.5, 0.5, 0.5))
            if i == self.current and self.hasFocus():
                painter.setPen(QPen(pal.color(pal.ColorRole.Highlight), 1, Qt.PenStyle.DashLine))
                painter.drawRect(QRectF(cell).adjusted(-5, -5, 5, self._caption_height() + 3))
            if i == self.selected:
                painter.setPen(QPen(SELECTED, 3))
                painter.drawRect(QRectF(cell).adjusted(-3, -3, 3, 3))
            elif i == self.hovered:
                painter.setPen(QPen(HOVER, 2))
                painter.drawRect(QRectF(cell).adjusted(-2, -2, 2, 2))
            painter.setPen(pal.color(pal.ColorRole.Text))
            text_rect = QRect(cell.left(), cell.bottom() + 2, cell.width(), line)
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter, tile.caption)
            name = metrics.elidedText(tile.name, Qt.TextElideMode.ElideMiddle, cell.width())
            painter.setPen(pal.color(pal.ColorRole.PlaceholderText))
            painter.drawText(text_rect.translated(0, line), Qt.AlignmentFlag.AlignHCenter, name)
        painter.end()

    # -- mouse ---------------------------------------------------------------------------------------------------
    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802 - Qt override
        index = self.index_at(ev.position().toPoint())
        if index != self.hovered:
            self.hovered = index
            self.setCursor(
                Qt.CursorShape.PointingHandCursor
                if index is not None
                else Qt.CursorShape.ArrowCursor
            )
            self.update()

    def leaveEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        if self.hovered is not None:
            self.hovered = None
            self.update()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if ev.button() == Qt.MouseButton.LeftButton:
            index = self.index_at(ev.position().toPoint())
            if index is not None:
                self.current = index
                self.tileClicked.emit(index)

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if not self.tiles:
            super().keyPressEvent(ev)
            return
        cols, key = self.columns(), ev.key()
        steps = {
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Up: -cols,
            Qt.Key.Key_Down: cols,
        }
        if key in steps:
            self.current = min(max(self.current + steps[Qt.Key(key)], 0), len(self.tiles) - 1)
            self.update()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.tileClicked.emit(self.current)
        else:
            super().keyPressEvent(ev)

    def contextMenuEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        index = self.index_at(ev.pos())
        if index is None:
            return
        self.current = index
        menu = QMenu(self)
        menu.addAction("Open with This Unit Selected", lambda: self.tileClicked.emit(index))
        path = self.tiles[index].path
        copy = menu.addAction("Copy File Path", lambda: QGuiApplication.clipboard().setText(path))
        copy.setEnabled(bool(path))
        menu.exec(ev.globalPos())

    def focusInEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().focusInEvent(ev)
        self.update()

    def focusOutEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().focusOutEvent(ev)
        self.update()

    def event(self, ev: QEvent) -> bool:
        if ev.type() == QEvent.Type.ToolTip:
            index = self.index_at(ev.pos())  # type: ignore[attr-defined]
            if index is not None:
                QToolTip.showText(ev.globalPos(), self.tiles[index].tooltip, self)  # type: ignore[attr-defined]
            else:
                QToolTip.hideText()
            return True
        return super().event(ev)


class TopPicturesView(QWidget):
    """Folder, layer and channel line, the channel and k controls, Run/Cancel with progress, one error line and
    the grid. Signals: ``folderRequested``, ``saveRequested``, ``runRequested``, ``cancelRequested``, ``channelChosen(int)``,
    ``kChanged(int)``, ``tileClicked(int)``."""

    folderRequested = Signal()
    saveRequested = Signal()
    runRequested = Signal()
    cancelRequested = Signal()
    channelChosen = Signal(int)
    kChanged = Signal(int)
    tileClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = ElidedLabel("No folder chosen", bold=True)
        self.counts = ElidedLabel(" ")
        self.folder_button = QPushButton("Folder…")
        self.folder_button.setToolTip(
            "Choose the folder of pictures (searched with its sub-folders)"
        )
        self.folder_button.clicked.connect(self.folderRequested)
        self.channel_spin = QSpinBox()
        self.channel_spin.setPrefix("ch ")
        self.channel_spin.setRange(0, 0)
        self.channel_spin.setToolTip(
            "The channel whose top pictures are shown (follows the feature maps)"
        )
        self.channel_spin.valueChanged.connect(self.channelChosen)
        self.k_spin = QSpinBox()
        self.k_spin.setPrefix("top ")
        self.k_spin.setRange(1, MAX_K)
        self.k_spin.setValue(TOP_UNITS_K)
        self.k_spin.setToolTip("How many units to show per channel (the highest activations)")
        self.k_spin.valueChanged.connect(self.kChanged)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip(
            "Run every picture of the folder through the model (once for all channels of the layer)"
        )
        self.run_button.clicked.connect(self.runRequested)
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip(
            "Write every channel's crops as a PNG mosaic, and top_units.json, into a folder"
        )
        self.save_button.clicked.connect(self.saveRequested)
        self.save_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the run (the result shown stays)")
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.cancel_button.setVisible(False)
        self.error = ElidedLabel("")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setVisible(False)
        self.grid = TileGrid()
        self.grid.tileClicked.connect(self.tileClicked)
        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QFrame.Shape.NoFrame)
        self.scroller.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroller.setWidget(self.grid)

        head = QHBoxLayout()
        head.setContentsMargins(6, 4, 6, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.save_button)
        head.addWidget(self.folder_button)
        controls = QHBoxLayout()
        controls.setContentsMargins(6, 0, 6, 0)
        controls.addWidget(self.counts, 1)
        controls.addWidget(self.channel_spin)
        controls.addWidget(self.k_spin)
        controls.addWidget(self.run_button)
        running = QHBoxLayout()
        running.setContentsMargins(6, 0, 6, 0)
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(head)
        layout.addLayout(controls)
        layout.addLayout(running)
        layout.addWidget(self.error)
        self.error.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(self.scroller, 1)

    # -- what the controller sets --------------------------------------------------------------------------------
    def set_title(self, text: str, *shorter: str) -> None:
        self.title.set_texts(text, *shorter)

    def set_counts(self, text: str, *shorter: str) -> None:
        self.counts.set_texts(text, *shorter)

    def set_error(self, text: str | None) -> None:
        """One line saying what went wrong (None clears it); whatever is shown stays."""
        self.error.setText(text or "")
        self.error.setVisible(bool(text))

    def set_channels(self, count: int) -> None:
        self.channel_spin.blockSignals(True)
        self.channel_spin.setRange(0, max(count - 1, 0))
        self.channel_spin.setEnabled(count > 0)
        self.channel_spin.blockSignals(False)

    def set_channel(self, channel: int) -> None:
        self.channel_spin.blockSignals(True)
        self.channel_spin.setValue(channel)
        self.channel_spin.blockSignals(False)

    def set_running(self, running: bool) -> None:
        if running and not self.progress.isVisibleTo(self):
            self.progress.setRange(
                0, 0
            )  # busy until the first report; later calls keep the count shown
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.run_button.setEnabled(not running)

    def set_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.progress.setFormat(f"{done} of {total} pictures")
        else:
            self.progress.setRange(0, 0)

    def set_tiles(
        self, tiles: list[dict[str, Any]], placeholder: str = "", selected: int | None = None
    ) -> None:
        """Show ``tiles`` (the fields of :class:`Tile`, the crop as a uint8 array ``pixels``), or
        ``placeholder`` when there are none."""
        made = []
        for spec in tiles:
            fields = dict(spec)
            pixels = fields.pop("pixels", None)
            tile = Tile(**fields)
            if pixels is not None:
                tile.image = array_to_qimage(pixels)
            made.append(tile)
        self.grid.set_placeholder(placeholder)
        self.grid.set_tiles(made)
        self.grid.set_selected(selected)
