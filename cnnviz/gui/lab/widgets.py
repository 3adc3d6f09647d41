"""The lab's building blocks: highlight colours, the number grid, the picture panel, small labels."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

C_WINDOW = QtGui.QColor("#ffb347")  # the kernel's current window
C_CURRENT = QtGui.QColor("#ffd966")  # the output cell being computed
C_CHOSEN = QtGui.QColor("#8fd18f")  # cells picked by max pooling
C_COVERED = QtGui.QColor("#d9ead3")  # cells read by average pooling
C_DONE = QtGui.QColor("#eef4fb")  # output cells already computed
C_TINT = QtGui.QColor("#dfe8f6")  # every other pooling window

_RGB = {
    "input": (214, 230, 245),
    "pad": (228, 228, 228),
    "pad_hatch": (190, 190, 190),
    "tap": (255, 179, 71),
    "tap_pad": (230, 150, 60),
    "out": (217, 234, 211),
    "out_sel": (255, 179, 71),
    "grid": (255, 255, 255),
}


def _fmt(v: float, decimals: int = 2) -> str:
    if not np.isfinite(v):
        return ""
    if float(v).is_integer() and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.{decimals}f}"


def _swatch(color: QtGui.QColor | tuple[int, int, int], text: str) -> str:
    c = QtGui.QColor(*color) if isinstance(color, tuple) else color
    return f'<span style="background:{c.name()};">&nbsp;&nbsp;&nbsp;&nbsp;</span>&nbsp;{text}'


def _mono_font() -> QtGui.QFont:
    font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
    return font


def _spin(low: int, high: int, value: int, tip: str = "") -> QtWidgets.QSpinBox:
    box = QtWidgets.QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setKeyboardTracking(False)
    if tip:
        box.setToolTip(tip)
    return box


def _cell_text(item: QtWidgets.QTableWidgetItem | None) -> str:
    return item.text() if item is not None else ""


class NumberGrid(QtWidgets.QTableWidget):
    """A small grid of numbers drawn as text, optionally editable, with per-cell highlight colours."""

    edited = QtCore.Signal()

    def __init__(
        self,
        editable: bool = False,
        cell: tuple[int, int] = (34, 28),
        decimals: int = 2,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self._cell = cell
        self._decimals = decimals
        self._editable = editable
        self._values = np.zeros((0, 0))
        self.horizontalHeader().hide()
        self.verticalHeader().hide()
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.setMinimumSectionSize(8)
            header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Fixed)
        if editable:
            self.setEditTriggers(
                QtWidgets.QAbstractItemView.EditTrigger.DoubleClicked
                | QtWidgets.QAbstractItemView.EditTrigger.EditKeyPressed
                | QtWidgets.QAbstractItemView.EditTrigger.AnyKeyPressed
                | QtWidgets.QAbstractItemView.EditTrigger.SelectedClicked
            )
            self.setToolTip("Double-click a number to change it.")
        else:
            self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
            self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
            self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.itemChanged.connect(self._on_item_changed)

    def set_array(
        self,
        values: np.ndarray,
        blank: np.ndarray | None = None,
        editable: np.ndarray | None = None,
    ) -> None:
        """Show ``values`` (2-D); cells where ``blank`` is True stay empty, ``editable`` limits editing."""
        v = np.array(values, dtype=np.float64)
        h, w = v.shape
        self._values = v
        self.blockSignals(True)
        self.setRowCount(h)
        self.setColumnCount(w)
        for i in range(h):
            for j in range(w):
                item = self.item(i, j)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
                    self.setItem(i, j, item)
                shown = not (blank is not None and blank[i, j])
                item.setText(_fmt(v[i, j], self._decimals) if shown else "")
                flags = QtCore.Qt.ItemFlag.ItemIsEnabled
                if self._editable and (editable is None or editable[i, j]):
                    flags |= QtCore.Qt.ItemFlag.ItemIsEditable | QtCore.Qt.ItemFlag.ItemIsSelectable
                item.setFlags(flags)
        self.blockSignals(False)
        cw, ch = self._cell
        for j in range(w):
            self.setColumnWidth(j, cw)
        for i in range(h):
            self.setRowHeight(i, ch)
        frame = 2 * self.frameWidth()
        self.setFixedSize(w * cw + frame, h * ch + frame)

    def values(self) -> np.ndarray:
        """The numbers as a float array (edits included)."""
        return self._values.copy()

    def texts(self) -> list[list[str]]:
        """The text shown in every cell (what a student reads)."""
        return [
            [_cell_text(self.item(i, j)) for j in range(self.columnCount())]
            for i in range(self.rowCount())
        ]

    def paint(
        self, colors: dict[tuple[int, int], QtGui.QColor], grey_text: np.ndarray | None = None
    ) -> None:
        """Give the listed cells a background colour and clear every other cell's."""
        self.blockSignals(True)
        for i in range(self.rowCount()):
            for j in range(self.columnCount()):
                item = self.item(i, j)
                if item is None:
                    continue
                color = colors.get((i, j))
                item.setBackground(QtGui.QBrush(color) if color is not None else QtGui.QBrush())
                grey = grey_text is not None and bool(grey_text[i, j])
                item.setForeground(
                    QtGui.QBrush(QtGui.QColor("#8a8a8a")) if grey else QtGui.QBrush()
                )
        self.blockSignals(False)

    def _on_item_changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        i, j = item.row(), item.column()
        text = item.text().strip().replace("\u2212", "-")
        try:
            value = float(text)
            if not np.isfinite(value):
                raise ValueError(text)
        except ValueError:
            self.blockSignals(True)
            item.setText(_fmt(self._values[i, j], self._decimals))
            self.blockSignals(False)
            return
        self._values[i, j] = value
        self.blockSignals(True)
        item.setText(_fmt(value, self._decimals))
        self.blockSignals(False)
        self.edited.emit()


class ImagePanel(QtWidgets.QWidget):
    """A titled picture drawn by a pyqtgraph ImageItem (row-major, pixels kept square)."""

    def __init__(
        self, title: str = "", min_size: int = 150, fixed: int | None = None, parent=None
    ) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.title = QtWidgets.QLabel(title)
        self.title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.view = pg.GraphicsView()
        self.view.setBackground(self.palette().color(QtGui.QPalette.ColorRole.Window))
        if fixed is not None:
            self.view.setFixedSize(fixed, fixed)
        else:
            self.view.setMinimumSize(min_size, min_size)
        self.box = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.view.setCentralItem(self.box)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.item)
        layout.addWidget(self.title)
        if fixed is not None:
            layout.addWidget(self.view, 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
            layout.addStretch(1)
        else:
            layout.addWidget(self.view, 1)

    def set_image(self, pixels: np.ndarray) -> None:
        """Show a uint8 H x W (grey) or H x W x 3 picture."""
        self.item.setImage(np.ascontiguousarray(pixels), levels=(0, 255), autoLevels=False)
        self.box.autoRange(padding=0.02)

    def image(self) -> np.ndarray | None:
        """The picture shown (uint8)."""
        return self.item.image

    def set_title(self, text: str) -> None:
        self.title.setText(text)


DIVERGING = "coolwarm"  # blue below zero, white at zero, red above


def signed_scale(values: np.ndarray) -> float:
    """The half-range of a diverging picture: the largest magnitude (1 for an all-zero map)."""
    v = np.asarray(values, dtype=np.float64)
    peak = float(np.nanmax(np.abs(v))) if v.size else 0.0
    return peak if np.isfinite(peak) and peak > 0 else 1.0


def signed_rgb(values: np.ndarray, scale: float) -> np.ndarray:
    """Colour a signed H x W map with the diverging map: -scale blue, 0 white, +scale red (uint8 RGB)."""
    from cnnviz.core.present.colormaps import apply_colormap

    t = 0.5 + np.asarray(values, dtype=np.float64) / (2 * scale)
    return np.ascontiguousarray(apply_colormap(np.clip(t, 0.0, 1.0), DIVERGING)[..., :3])


class ColorBar(QtWidgets.QWidget):
    """A vertical colour bar for a diverging picture: +scale on top, 0 in the middle, -scale below."""

    def __init__(self, height: int = 150, parent=None) -> None:
        super().__init__(parent)
        self.scale = 1.0
        self.strip = QtWidgets.QLabel()
        self.strip.setFixedSize(16, height)
        self.strip.setStyleSheet("border: 1px solid #888;")
        t = np.linspace(1.0, -1.0, height)[:, None].repeat(16, axis=1)
        rgb = signed_rgb(t, 1.0)
        self._rgb = rgb  # QImage borrows the buffer
        image = QtGui.QImage(rgb.data, 16, height, 16 * 3, QtGui.QImage.Format.Format_RGB888)
        self.strip.setPixmap(QtGui.QPixmap.fromImage(image))
        self.top, self.middle, self.bottom = (
            QtWidgets.QLabel(),
            QtWidgets.QLabel("0"),
            QtWidgets.QLabel(),
        )
        # Room for the widest number, so a new scale never needs a new layout to be read whole.
        room = self.fontMetrics().horizontalAdvance("\u221288.888") + 2
        for label in (self.top, self.middle, self.bottom):
            label.setMinimumWidth(room)
        ticks = QtWidgets.QVBoxLayout()
        ticks.setContentsMargins(0, 0, 0, 0)
        ticks.addWidget(self.top, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        ticks.addStretch(1)
        ticks.addWidget(self.middle)
        ticks.addStretch(1)
        ticks.addWidget(self.bottom, 0, QtCore.Qt.AlignmentFlag.AlignBottom)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.strip, 0, QtCore.Qt.AlignmentFlag.AlignVCenter)
        holder = QtWidgets.QWidget()
        holder.setFixedHeight(height + 14)
        holder.setLayout(ticks)
        layout.addWidget(holder, 0, QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.setToolTip("Red: positive, white: zero, blue: negative (the same scale on both sides)")
        self.set_scale(1.0)

    def set_scale(self, scale: float) -> None:
        self.scale = float(scale)
        self.top.setText(f"+{_fmt(self.scale, 3)}")
        self.bottom.setText(f"\u2212{_fmt(self.scale, 3)}")

    def labels(self) -> tuple[str, str, str]:
        """The three numbers shown, top to bottom."""
        return self.top.text(), self.middle.text(), self.bottom.text()


def _cells_picture(codes: np.ndarray, cell: int = 15) -> np.ndarray:
    """Paint a grid of cell kinds (keys of ``_RGB``) as an RGB picture with white grid lines and hatched padding."""
    h, w = codes.shape
    step = cell + 1
    pic = np.empty((h * step + 1, w * step + 1, 3), np.uint8)
    pic[:] = _RGB["grid"]
    yy, xx = np.mgrid[0:cell, 0:cell]
    hatch = (yy + xx) % 5 == 0
    for i in range(h):
        for j in range(w):
            kind = str(codes[i, j])
            block = np.empty((cell, cell, 3), np.uint8)
            block[:] = _RGB[kind]
            if kind == "pad":
                block[hatch] = _RGB["pad_hatch"]
            pic[1 + i * step : 1 + i * step + cell, 1 + j * step : 1 + j * step + cell] = block
    return pic


def _note(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #505050;")
    return label


def _caption(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(f"<b>{text}</b>")
    label.setWordWrap(True)
    return label


def _headline(scale: float) -> QtWidgets.QLabel:
    """A bold, larger, wrapping label: the one sentence a lesson wants the learner to take away."""
    label = QtWidgets.QLabel()
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    label.setWordWrap(True)
    return label


def _still_plot(parent: QtWidgets.QWidget) -> pg.PlotWidget:
    """A plot on the page's own background that the mouse does not pan or zoom (a figure, not a tool)."""
    plot = pg.PlotWidget()
    plot.setBackground(parent.palette().color(QtGui.QPalette.ColorRole.Base))
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(False, False)
    return plot
