"""The convolution lab: eight short, playable lessons on what a convolutional layer computes.

Every number shown comes from :mod:`cnnviz.core.lab` (torch's own operators); this module only lays out controls
and draws. The widget is self-contained: give it a picture with :meth:`ConvolutionLab.set_image` and the current
model's table with :meth:`ConvolutionLab.set_model_summary`; without them it uses a built-in sample picture and
demo networks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.core.export import atomic_write_bytes
from cnnviz.core.summary_types import Summary

C_WINDOW = QtGui.QColor("#ffb347")  # the kernel's current window
C_CURRENT = QtGui.QColor("#ffd966")  # the output cell being computed
C_CHOSEN = QtGui.QColor("#8fd18f")  # cells picked by max pooling
C_COVERED = QtGui.QColor("#d9ead3")  # cells read by average pooling
C_PAD = QtGui.QColor("#e4e4e4")  # zero padding
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


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


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


# --------------------------------------------------------------------------------------------------------------
# Building blocks


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
        self._editable_mask: np.ndarray | None = None
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
        self._editable_mask = editable
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
            [self.item(i, j).text() for j in range(self.columnCount())]
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


def _note(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #505050;")
    return label


def _caption(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(f"<b>{text}</b>")
    label.setWordWrap(True)
    return label


# --------------------------------------------------------------------------------------------------------------
# 1. Kernel playground


DEFAULT_GRID = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 9, 9, 9, 9, 1, 1],
        [1, 1, 9, 9, 9, 9, 1, 1],
        [1, 1, 9, 9, 9, 9, 1, 1],
        [1, 1, 9, 9, 9, 9, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
    ],
    dtype=np.float64,
)

_SCALE_CHOICES = [
    ("auto", "Auto (|value| for edge kernels)"),
    ("clip", "Clip to black..white"),
    ("abs", "Absolute value"),
    ("signed", "Signed (grey = 0)"),
    ("stretch", "Stretch min..max"),
]

_XCORR_TEXT = (
    "Cross-correlation: the kernel is used as drawn, out[i, j] = \u03a3 in[i+u, j+v]\u00b7k[u, v]. "
    "This is what every Conv2d layer computes."
)
_CONV_TEXT = (
    "True convolution: the kernel is first rotated 180\u00b0, out[i, j] = \u03a3 in[i\u2212u, j\u2212v]\u00b7k[u, v]. "
    "Symmetric kernels (blurs) do not change; Sobel flips sign and emboss lights the other side."
)


class PlaygroundLesson(_Lesson):
    key = "playground"
    title = "Kernel playground"
    summary = (
        "A kernel is a small grid of weights stamped over the image: at each position the pixels under it are "
        "multiplied by the weights and summed into one output pixel."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.input = np.zeros((1, 1))
        self.output = np.zeros((1, 1))
        self.shown = np.zeros((1, 1), np.uint8)
        self.rule = "clip"

        row = QtWidgets.QHBoxLayout()
        self.body.addLayout(row, 1)
        side = QtWidgets.QVBoxLayout()
        row.addLayout(side)
        form = QtWidgets.QFormLayout()
        side.addLayout(form)
        self.input_combo = QtWidgets.QComboBox()
        self.input_combo.addItems(["Picture", "Number grid (8\u00d78, editable)"])
        form.addRow("Input", self.input_combo)
        self.kernel_combo = QtWidgets.QComboBox()
        for preset in core.KERNEL_PRESETS.values():
            self.kernel_combo.addItem(preset.title, preset.name)
        self.kernel_combo.addItem("Custom", "custom")
        form.addRow("Kernel", self.kernel_combo)
        self.size_spin = _spin(1, 7, 3, "Size of a custom kernel (even sizes have no middle cell)")
        form.addRow("Custom size", self.size_spin)
        self.description = _note("")
        side.addWidget(self.description)
        side.addWidget(_caption("Kernel weights (double-click to edit)"))
        self.kernel_grid = NumberGrid(editable=True, cell=(44, 28), decimals=3)
        side.addWidget(self.kernel_grid)
        self.xcorr_radio = QtWidgets.QRadioButton("Cross-correlation (what Conv2d computes)")
        self.flip_radio = QtWidgets.QRadioButton("True convolution (kernel flipped 180\u00b0)")
        self.xcorr_radio.setChecked(True)
        group = QtWidgets.QButtonGroup(self)
        group.addButton(self.xcorr_radio)
        group.addButton(self.flip_radio)
        side.addWidget(self.xcorr_radio)
        side.addWidget(self.flip_radio)
        self.flip_note = _note(_XCORR_TEXT)
        side.addWidget(self.flip_note)
        side.addWidget(_caption("Kernel as applied"))
        self.applied_grid = NumberGrid(cell=(44, 28), decimals=3)
        side.addWidget(self.applied_grid)
        form2 = QtWidgets.QFormLayout()
        self.scale_combo = QtWidgets.QComboBox()
        for key, text in _SCALE_CHOICES:
            self.scale_combo.addItem(text, key)
        form2.addRow("Show output as", self.scale_combo)
        side.addLayout(form2)
        side.addWidget(
            _note("Zero padding of kernel//2 on each side keeps the output as large as the input.")
        )
        side.addStretch(1)

        self.views = QtWidgets.QStackedWidget()
        row.addWidget(self.views, 1)
        pictures = QtWidgets.QWidget()
        pl = QtWidgets.QHBoxLayout(pictures)
        pl.setContentsMargins(0, 0, 0, 0)
        self.input_panel = ImagePanel("Input")
        self.output_panel = ImagePanel("Output")
        pl.addWidget(self.input_panel)
        pl.addWidget(self.output_panel)
        numbers = QtWidgets.QWidget()
        nl = QtWidgets.QGridLayout(numbers)
        self.grid_in = NumberGrid(editable=True, cell=(36, 30))
        self.grid_out = NumberGrid(cell=(44, 30))
        nl.addWidget(_caption("Input (double-click to edit)"), 0, 0)
        nl.addWidget(_caption("Output"), 0, 1)
        nl.addWidget(self.grid_in, 1, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        nl.addWidget(self.grid_out, 1, 1, QtCore.Qt.AlignmentFlag.AlignTop)
        nl.setRowStretch(2, 1)
        nl.setColumnStretch(2, 1)
        self.views.addWidget(pictures)
        self.views.addWidget(numbers)
        self.grid_in.set_array(DEFAULT_GRID)

        self.input_combo.currentIndexChanged.connect(self._on_input_mode)
        self.kernel_combo.currentIndexChanged.connect(self._on_preset)
        self.size_spin.valueChanged.connect(self._on_size)
        self.kernel_grid.edited.connect(self._on_kernel_edited)
        self.xcorr_radio.toggled.connect(self.refresh)
        self.scale_combo.currentIndexChanged.connect(self.refresh)
        self.grid_in.edited.connect(self.refresh)
        self._on_preset()

    @property
    def flip(self) -> bool:
        return self.flip_radio.isChecked()

    def kernel(self) -> np.ndarray:
        """The kernel as entered (before any flip)."""
        return self.kernel_grid.values()

    def set_kernel(self, name: str) -> None:
        """Choose a preset by name (``custom`` keeps the grid)."""
        index = self.kernel_combo.findData(name)
        if index < 0:
            raise CnnvizError(f"Unknown kernel '{name}'.")
        self.kernel_combo.setCurrentIndex(index)

    def _on_input_mode(self) -> None:
        self.views.setCurrentIndex(self.input_combo.currentIndex())
        self.refresh()

    def _on_preset(self) -> None:
        name = self.kernel_combo.currentData()
        custom = name == "custom"
        self.size_spin.setEnabled(custom)
        if custom:
            self.description.setText(
                "Your own weights: double-click a cell of the grid to change it."
            )
            self.refresh()
            return
        preset = core.KERNEL_PRESETS[name]
        self.description.setText(preset.description)
        self.size_spin.blockSignals(True)
        self.size_spin.setValue(preset.kernel.shape[0])
        self.size_spin.blockSignals(False)
        self.kernel_grid.set_array(preset.kernel)
        self.refresh()

    def _on_size(self, size: int) -> None:
        k = np.zeros((size, size))
        k[size // 2, size // 2] = 1.0
        self.kernel_grid.set_array(k)
        self.refresh()

    def _on_kernel_edited(self) -> None:
        if self.kernel_combo.currentData() != "custom":
            self.kernel_combo.blockSignals(True)
            self.kernel_combo.setCurrentIndex(self.kernel_combo.findData("custom"))
            self.kernel_combo.blockSignals(False)
            self.size_spin.setEnabled(True)
            self.description.setText(
                "Your own weights: double-click a cell of the grid to change it."
            )
        self.refresh()

    def image_changed(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        k = self.kernel()
        self.flip_note.setText(_CONV_TEXT if self.flip else _XCORR_TEXT)
        applied = np.ascontiguousarray(k[::-1, ::-1]) if self.flip else k
        self.applied_grid.set_array(applied)
        numbers = self.input_combo.currentIndex() == 1
        self.input = self.grid_in.values() if numbers else self.owner.picture(256)
        try:
            self.output = core.convolve(
                self.input, k, flip=self.flip, padding=(k.shape[0] // 2, k.shape[1] // 2)
            )
        except CnnvizError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        self.rule = core.display_rule(k, self.scale_combo.currentData())
        self.shown = core.to_uint8(self.output, self.rule)
        if numbers:
            self.grid_out.set_array(self.output)
        else:
            self.input_panel.set_image(core.to_uint8(self.input, "clip"))
            self.output_panel.set_image(self.shown)
            h, w = self.output.shape[:2]
            rule = dict(_SCALE_CHOICES).get(self.rule, self.rule).split(" (")[0]
            self.output_panel.set_title(f"Output {w}\u00d7{h} \u2014 shown as: {rule.lower()}")
            ih, iw = self.input.shape[:2]
            self.input_panel.set_title(f"Input {iw}\u00d7{ih}")


# --------------------------------------------------------------------------------------------------------------
# 2. Step through


class StepLesson(_Lesson):
    key = "step"
    title = "Step through a convolution"
    nav_title = "Step through"
    summary = (
        "One output cell at a time: the kernel covers a window of the input (orange), each number is multiplied "
        "by the weight on top of it, and the sum of the products lands in the output cell (yellow)."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self._seed = 0
        self.input = np.random.default_rng(self._seed).integers(0, 10, (6, 6)).astype(np.float64)
        self.result: core.StepThrough | None = None
        self.index = -1
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._tick)

        controls = QtWidgets.QHBoxLayout()
        self.body.addLayout(controls)
        self.kernel_combo = QtWidgets.QComboBox()
        for preset in core.KERNEL_PRESETS.values():
            if preset.kernel.shape == (3, 3):
                self.kernel_combo.addItem(preset.title, preset.name)
        self.kernel_combo.setCurrentIndex(self.kernel_combo.findData("sobel_x"))
        self.padding_spin = _spin(0, 2, 0, "Rows/columns of zeros added on every side")
        self.stride_spin = _spin(1, 3, 1, "How far the kernel moves between positions")
        self.new_button = QtWidgets.QPushButton("New numbers")
        for label, widget in (
            ("Kernel", self.kernel_combo),
            ("Padding", self.padding_spin),
            ("Stride", self.stride_spin),
        ):
            controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(widget)
        controls.addWidget(self.new_button)
        controls.addStretch(1)

        buttons = QtWidgets.QHBoxLayout()
        self.body.addLayout(buttons)
        self.reset_button = QtWidgets.QPushButton("Reset")
        self.back_button = QtWidgets.QPushButton("\u25c0 Back")
        self.step_button = QtWidgets.QPushButton("Step \u25b6")
        self.play_button = QtWidgets.QPushButton("\u25b6 Play")
        self.play_button.setCheckable(True)
        self.speed = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.speed.setRange(100, 1500)
        self.speed.setValue(600)
        self.speed.setInvertedAppearance(True)
        self.speed.setMaximumWidth(160)
        self.speed.setToolTip("Animation speed")
        for b in (self.reset_button, self.back_button, self.step_button, self.play_button):
            buttons.addWidget(b)
        buttons.addWidget(QtWidgets.QLabel("Speed"))
        buttons.addWidget(self.speed)
        self.position_label = QtWidgets.QLabel()
        buttons.addWidget(self.position_label)
        buttons.addStretch(1)

        grids = QtWidgets.QGridLayout()
        self.body.addLayout(grids)
        self.grid_in = NumberGrid(editable=True, cell=(42, 36))
        self.grid_kernel = NumberGrid(cell=(42, 36))
        self.grid_products = NumberGrid(cell=(46, 36))
        self.grid_out = NumberGrid(cell=(46, 36))
        for grid in (self.grid_in, self.grid_kernel, self.grid_products, self.grid_out):
            font = grid.font()
            font.setPointSizeF(font.pointSizeF() * 1.2)
            grid.setFont(font)
        self.in_caption = _caption("Input with zero padding (grey)")
        captions = [
            self.in_caption,
            _caption("Kernel"),
            _caption("Window \u00d7 kernel"),
            _caption("Output"),
        ]
        for col, (cap, grid) in enumerate(
            zip(
                captions,
                (self.grid_in, self.grid_kernel, self.grid_products, self.grid_out),
                strict=True,
            )
        ):
            grids.addWidget(cap, 0, col)
            grids.addWidget(
                grid, 1, col, QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft
            )
        grids.setColumnStretch(4, 1)
        self.sum_label = QtWidgets.QLabel()
        self.sum_label.setWordWrap(True)
        font = _mono_font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.sum_label.setFont(font)
        self.sum_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.sum_label)
        self.body.addWidget(
            _note(
                "Double-click an input number to change it. With stride 2 the window jumps two cells, "
                "so the output has about half as many rows and columns."
            )
        )
        self.body.addStretch(1)

        self.kernel_combo.currentIndexChanged.connect(self.rebuild)
        self.padding_spin.valueChanged.connect(self.rebuild)
        self.stride_spin.valueChanged.connect(self.rebuild)
        self.new_button.clicked.connect(self._new_numbers)
        self.reset_button.clicked.connect(self.reset)
        self.back_button.clicked.connect(self.back)
        self.step_button.clicked.connect(self.step)
        self.play_button.toggled.connect(self._play)
        self.speed.valueChanged.connect(self.timer.setInterval)
        self.grid_in.edited.connect(self._on_input_edited)
        self.rebuild()

    @property
    def kernel(self) -> np.ndarray:
        return core.KERNEL_PRESETS[self.kernel_combo.currentData()].kernel.copy()

    @property
    def steps(self) -> list[core.Step]:
        return self.result.steps if self.result is not None else []

    def output_values(self) -> np.ndarray:
        """The output grid as shown: computed cells hold their sum, cells not reached yet are NaN."""
        assert self.result is not None
        out = np.full(self.result.output.shape, np.nan)
        for s in self.steps[: self.index + 1]:
            out[s.out_row, s.out_col] = s.total
        return out

    def _new_numbers(self) -> None:
        self._seed += 1
        self.input = np.random.default_rng(self._seed).integers(0, 10, (6, 6)).astype(np.float64)
        self.rebuild()

    def _on_input_edited(self) -> None:
        p = self.padding_spin.value()
        padded = self.grid_in.values()
        h, w = self.input.shape
        self.input = padded[p : p + h, p : p + w].copy()
        self.rebuild(keep_position=True)

    def rebuild(self, *_args: object, keep_position: bool = False) -> None:
        try:
            self.result = core.step_windows(
                self.input,
                self.kernel,
                stride=self.stride_spin.value(),
                padding=self.padding_spin.value(),
            )
        except CnnvizError as exc:
            self.result = None
            self.show_error(str(exc))
            return
        self.clear_error()
        if not keep_position:
            self.index = -1
        self.index = min(self.index, len(self.steps) - 1)
        p = self.result.padding[0]
        h, w = self.input.shape
        editable = np.zeros(self.result.padded.shape, bool)
        editable[p : p + h, p : p + w] = True
        self._pad_mask = ~editable
        self.grid_in.set_array(self.result.padded, editable=editable)
        self.grid_kernel.set_array(self.result.kernel)
        self.in_caption.setText(
            f"<b>Input {h}\u00d7{w}" + (f" with zero padding {p} (grey)</b>" if p else "</b>")
        )
        self._show()

    def reset(self) -> None:
        self.play_button.setChecked(False)
        self.index = -1
        self._show()

    def step(self) -> None:
        """Move the kernel to the next output cell."""
        if self.index < len(self.steps) - 1:
            self.index += 1
            self._show()
        if self.index >= len(self.steps) - 1:
            self.play_button.setChecked(False)

    def back(self) -> None:
        if self.index >= 0:
            self.index -= 1
            self._show()

    def _play(self, on: bool) -> None:
        if on:
            if self.index >= len(self.steps) - 1:
                self.index = -1
            self.play_button.setText("Pause")
            self.timer.start(self.speed.value())
        else:
            self.play_button.setText("\u25b6 Play")
            self.timer.stop()

    def _tick(self) -> None:
        self.step()

    def _show(self) -> None:
        if self.result is None:
            return
        out = self.output_values()
        self.grid_out.set_array(np.nan_to_num(out), blank=np.isnan(out))
        n = len(self.steps)
        self.position_label.setText(
            f"Position {self.index + 1} of {n}"
            if self.index >= 0
            else f"{n} positions \u2014 press Step"
        )
        self.back_button.setEnabled(self.index >= 0)
        self.step_button.setEnabled(self.index < n - 1)
        if self.index < 0:
            self.grid_in.paint({}, grey_text=self._pad_mask)
            self.grid_products.set_array(
                np.zeros(self.result.kernel.shape), blank=np.ones_like(self.result.kernel, bool)
            )
            self.grid_out.paint({})
            self.sum_label.setText("Press Step (or Play) to place the kernel on the first window.")
            return
        s = self.steps[self.index]
        window = {(r, c): C_WINDOW for r in s.rows for c in s.cols}
        self.grid_in.paint(window, grey_text=self._pad_mask)
        self.grid_products.set_array(s.products)
        self.grid_products.paint(
            {(u, v): C_WINDOW for u in range(len(s.rows)) for v in range(len(s.cols))}
        )
        done = {(t.out_row, t.out_col): C_DONE for t in self.steps[: self.index]}
        done[(s.out_row, s.out_col)] = C_CURRENT
        self.grid_out.paint(done)
        k = self.result.kernel
        terms = []
        for u in range(k.shape[0]):
            for v in range(k.shape[1]):
                weight = k[u, v]
                wt = _fmt(weight) if weight >= 0 else f"({_fmt(weight)})"
                terms.append(f"{_fmt(s.window[u, v])}\u00d7{wt}")
        self.sum_label.setText(
            f"out[{s.out_row}, {s.out_col}] = " + " + ".join(terms) + f" = {_fmt(s.total)}"
        )


# --------------------------------------------------------------------------------------------------------------
# 3. Stride, padding, dilation


class GeometryLesson(_Lesson):
    key = "geometry"
    title = "Stride, padding and dilation"
    summary = (
        "Stride is the step between kernel positions, padding adds a border of zeros, dilation spreads the "
        "kernel's taps apart; together with the kernel size they set the output size."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.out_shape: tuple[int, int] | None = None
        self.torch_shape: tuple[int, int] | None = None
        controls = QtWidgets.QGridLayout()
        self.body.addLayout(controls)
        self.h_spin = _spin(1, 16, 7, "Input height")
        self.w_spin = _spin(1, 16, 9, "Input width")
        self.k_spin = _spin(1, 7, 3, "Kernel size (square)")
        self.s_spin = _spin(1, 4, 2, "Stride")
        self.p_spin = _spin(0, 3, 1, "Padding on every side")
        self.d_spin = _spin(1, 3, 1, "Dilation: distance between kernel taps")
        self.row_spin = _spin(0, 0, 0, "Output row whose window is drawn")
        self.col_spin = _spin(0, 0, 1, "Output column whose window is drawn")
        items = [
            ("Input height", self.h_spin),
            ("Input width", self.w_spin),
            ("Kernel", self.k_spin),
            ("Stride", self.s_spin),
            ("Padding", self.p_spin),
            ("Dilation", self.d_spin),
            ("Window of output row", self.row_spin),
            ("column", self.col_spin),
        ]
        for n, (label, spin) in enumerate(items):
            controls.addWidget(QtWidgets.QLabel(label), n // 4, 2 * (n % 4))
            controls.addWidget(spin, n // 4, 2 * (n % 4) + 1)
        controls.setColumnStretch(8, 1)

        self.formula_label = QtWidgets.QLabel()
        font = _mono_font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.formula_label.setFont(font)
        self.formula_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.formula_label)
        self.check_label = _note("")
        self.body.addWidget(self.check_label)
        pictures = QtWidgets.QHBoxLayout()
        self.body.addLayout(pictures, 1)
        self.input_panel = ImagePanel("Padded input", min_size=220)
        self.output_panel = ImagePanel("Output", min_size=160)
        pictures.addWidget(self.input_panel, 3)
        pictures.addWidget(self.output_panel, 2)
        legend = QtWidgets.QLabel(
            "&nbsp;&nbsp;".join(
                [
                    _swatch(_RGB["input"], "input pixel"),
                    _swatch(_RGB["pad"], "zero padding"),
                    _swatch(_RGB["tap"], "kernel taps of the chosen output cell"),
                    _swatch(_RGB["out"], "output cell"),
                ]
            )
        )
        self.body.addWidget(legend)
        for spin in (self.h_spin, self.w_spin, self.k_spin, self.s_spin, self.p_spin, self.d_spin):
            spin.valueChanged.connect(self.refresh)
        self.row_spin.valueChanged.connect(self._draw)
        self.col_spin.valueChanged.connect(self._draw)
        self.refresh()

    def settings(self) -> dict[str, int]:
        return {
            "h": self.h_spin.value(),
            "w": self.w_spin.value(),
            "k": self.k_spin.value(),
            "s": self.s_spin.value(),
            "p": self.p_spin.value(),
            "d": self.d_spin.value(),
        }

    def refresh(self) -> None:
        c = self.settings()
        try:
            self.formula_label.setText(
                core.output_size_formula((c["h"], c["w"]), c["k"], c["s"], c["p"], c["d"])
            )
            result = core.convolve(
                np.zeros((c["h"], c["w"])),
                np.zeros((c["k"], c["k"])),
                stride=c["s"],
                padding=c["p"],
                dilation=c["d"],
            )
        except CnnvizError as exc:
            self.out_shape = self.torch_shape = None
            self.formula_label.setText("")
            self.check_label.setText("")
            self.input_panel.set_image(np.full((1, 1, 3), 255, np.uint8))
            self.output_panel.set_image(np.full((1, 1, 3), 255, np.uint8))
            self.show_error(str(exc))
            return
        self.clear_error()
        ho = core.output_size(c["h"], c["k"], c["s"], c["p"], c["d"])
        wo = core.output_size(c["w"], c["k"], c["s"], c["p"], c["d"])
        self.out_shape = (ho, wo)
        self.torch_shape = (int(result.shape[0]), int(result.shape[1]))
        span = c["d"] * (c["k"] - 1) + 1
        self.check_label.setText(
            f"torch's conv2d on a {c['h']}\u00d7{c['w']} input gives {self.torch_shape[0]}\u00d7"
            f"{self.torch_shape[1]}, as the formula says. The kernel spans {span} pixels "
            f"(d\u00b7(k\u22121)+1); floor() drops positions where it would stick out of the padded input."
        )
        for spin, top in ((self.row_spin, ho - 1), (self.col_spin, wo - 1)):
            spin.blockSignals(True)
            spin.setMaximum(top)
            spin.blockSignals(False)
        self._draw()

    def _draw(self) -> None:
        if self.out_shape is None:
            return
        c = self.settings()
        p = c["p"]
        hp, wp = c["h"] + 2 * p, c["w"] + 2 * p
        codes = np.full((hp, wp), "pad", dtype=object)
        codes[p : p + c["h"], p : p + c["w"]] = "input"
        r, q = self.row_spin.value(), self.col_spin.value()
        for u in range(c["k"]):
            for v in range(c["k"]):
                y, x = r * c["s"] + u * c["d"], q * c["s"] + v * c["d"]
                codes[y, x] = "tap" if codes[y, x] == "input" else "tap_pad"
        self.input_panel.set_image(_cells_picture(codes))
        out_codes = np.full(self.out_shape, "out", dtype=object)
        out_codes[r, q] = "out_sel"
        self.output_panel.set_image(_cells_picture(out_codes))
        self.input_panel.set_title(f"Input {c['h']}\u00d7{c['w']} padded to {hp}\u00d7{wp}")
        self.output_panel.set_title(
            f"Output {self.out_shape[0]}\u00d7{self.out_shape[1]} \u2014 cell ({r}, {q}) in orange"
        )


# --------------------------------------------------------------------------------------------------------------
# 4. RGB and many filters


class ChannelsLesson(_Lesson):
    key = "channels"
    title = "RGB kernels and many filters"
    summary = (
        "On a colour image each filter has one K\u00d7K slice per channel (R, G, B); the three filtered channels "
        "are added into ONE output map \u2014 so the number of filters sets the number of output channels."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.result: core.MultiFilter | None = None
        self.input = np.zeros((1, 1, 3))
        controls = QtWidgets.QHBoxLayout()
        self.body.addLayout(controls)
        self.n_spin = _spin(1, 8, 4, "Number of filters = number of output channels")
        self.seed_spin = _spin(0, 9999, 0, "Random weights are drawn from this seed")
        self.show_spin = _spin(1, 4, 1, "Which filter to take apart below")
        for label, w in (
            ("Filters", self.n_spin),
            ("Random seed", self.seed_spin),
            ("Take apart filter", self.show_spin),
        ):
            controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(w)
        controls.addStretch(1)
        self.params_label = QtWidgets.QLabel()
        self.params_label.setFont(_mono_font())
        self.body.addWidget(self.params_label)

        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(10)
        self.body.addLayout(grid)
        names = ("Red", "Green", "Blue")
        size = 118
        self.channel_panels = [ImagePanel(f"{n} channel", fixed=size) for n in names]
        self.slice_grids = [NumberGrid(cell=(46, 24), decimals=2) for _ in names]
        self.slice_captions = [QtWidgets.QLabel() for _ in names]
        self.partial_panels = [ImagePanel(f"{n} \u2217 slice", fixed=size) for n in names]

        def sign(text: str) -> QtWidgets.QLabel:
            label = QtWidgets.QLabel(text)
            font = label.font()
            font.setPointSizeF(font.pointSizeF() * 2)
            label.setFont(font)
            label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            return label

        for c in range(3):
            grid.addWidget(self.channel_panels[c], c, 0)
            grid.addWidget(sign("\u2217"), c, 1)
            box = QtWidgets.QVBoxLayout()
            box.addStretch(1)
            box.addWidget(self.slice_captions[c], 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
            box.addWidget(self.slice_grids[c], 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
            box.addStretch(1)
            grid.addLayout(box, c, 2)
            grid.addWidget(sign("="), c, 3)
            grid.addWidget(self.partial_panels[c], c, 4)
        brace = sign("\u2211 + bias\n\u2192")
        grid.addWidget(brace, 0, 5, 3, 1)
        self.sum_panel = ImagePanel("Output channel", fixed=170)
        grid.addWidget(self.sum_panel, 0, 6, 3, 1, QtCore.Qt.AlignmentFlag.AlignVCenter)
        grid.setColumnStretch(7, 1)
        self.outputs_panel = ImagePanel("All output channels", min_size=90)
        self.outputs_panel.view.setFixedHeight(110)
        self.body.addWidget(self.outputs_panel)
        self.body.addWidget(
            _note(
                "\u2217 slides the K\u00d7K slice over its channel. Results are drawn grey = 0, brighter = "
                "positive, darker = negative, all on one scale."
            )
        )
        self.body.addStretch(1)
        self.n_spin.valueChanged.connect(self._on_n)
        self.seed_spin.valueChanged.connect(self.refresh)
        self.show_spin.valueChanged.connect(self._draw)
        self.refresh()

    def image_changed(self) -> None:
        self.refresh()

    def _on_n(self, n: int) -> None:
        self.show_spin.setMaximum(n)
        self.refresh()

    def refresh(self) -> None:
        picture = self.owner.picture(72)
        self.input = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
        try:
            self.result = core.multi_filter(self.input, self.n_spin.value(), self.seed_spin.value())
        except CnnvizError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        n = self.n_spin.value()
        c, k = self.input.shape[2], self.result.weights.shape[2]
        self.params_label.setText(
            f"{n} filter{'s' if n > 1 else ''} of {c}\u00d7{k}\u00d7{k} weights + {n} bias \u2192 "
            f"{n} output channel{'s' if n > 1 else ''}.   Parameters: {self.result.params.formula}"
        )
        self._draw()

    def _draw(self) -> None:
        if self.result is None:
            return
        f = self.show_spin.value() - 1
        res = self.result
        scale = max(float(np.abs(res.partials).max()), float(np.abs(res.outputs).max()), 1e-12)
        for c in range(3):
            self.channel_panels[c].set_image(core.to_uint8(self.input[..., c], "clip"))
            self.slice_grids[c].set_array(res.weights[f, c])
            self.slice_captions[c].setText(f"filter {f + 1}, slice {c + 1}")
            self.partial_panels[c].set_image(core.to_uint8(res.partials[f, c], "signed", scale))
        self.sum_panel.set_image(core.to_uint8(res.outputs[..., f], "signed", scale))
        self.sum_panel.set_title(
            f"Output channel {f + 1}\n(sum of the 3 + bias {res.bias[f]:+.2f})"
        )
        h, w, n = res.outputs.shape
        gap = 3
        mosaic = np.full((h, n * w + (n - 1) * gap), 255, np.uint8)
        for i in range(n):
            mosaic[:, i * (w + gap) : i * (w + gap) + w] = core.to_uint8(
                res.outputs[..., i], "signed", scale
            )
        self.outputs_panel.set_image(mosaic)
        self.outputs_panel.set_title(f"All {n} output channels (one per filter), each {w}\u00d7{h}")


# --------------------------------------------------------------------------------------------------------------
# 5. Pooling


class PoolingLesson(_Lesson):
    key = "pooling"
    title = "Pooling"
    summary = (
        "Pooling slides a window over each channel on its own and keeps the largest value (max) or the mean "
        "(average): the map gets smaller, the number of channels stays the same, and nothing is learned."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self._seed = 1
        self.fmap = self._numbers()
        self.output = np.zeros((1, 1, 3))
        self.mask = np.zeros((1, 1, 3), bool)
        self.image_output = np.zeros((1, 1, 3))
        controls = QtWidgets.QHBoxLayout()
        self.body.addLayout(controls)
        self.kind_combo = QtWidgets.QComboBox()
        self.kind_combo.addItem("Max pooling", "max")
        self.kind_combo.addItem("Average pooling", "avg")
        self.k_spin = _spin(1, 4, 2, "Window size")
        self.s_spin = _spin(1, 4, 2, "Stride")
        self.p_spin = _spin(0, 2, 0, "Padding (at most half the window)")
        self.channel_combo = QtWidgets.QComboBox()
        self.channel_combo.addItems(["channel 1", "channel 2", "channel 3"])
        self.new_button = QtWidgets.QPushButton("New numbers")
        for label, w in (
            ("", self.kind_combo),
            ("Window", self.k_spin),
            ("Stride", self.s_spin),
            ("Padding", self.p_spin),
            ("Show", self.channel_combo),
        ):
            if label:
                controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(w)
        controls.addWidget(self.new_button)
        controls.addStretch(1)
        self.shape_label = QtWidgets.QLabel()
        self.shape_label.setWordWrap(True)
        font = self.shape_label.font()
        font.setBold(True)
        self.shape_label.setFont(font)
        self.body.addWidget(self.shape_label)
        row = QtWidgets.QHBoxLayout()
        self.body.addLayout(row)
        grids = QtWidgets.QGridLayout()
        row.addLayout(grids)
        self.grid_in = NumberGrid(cell=(34, 28))
        self.grid_out = NumberGrid(cell=(46, 28))
        self.in_caption = _caption("Input")
        grids.addWidget(self.in_caption, 0, 0)
        grids.addWidget(_caption("Output"), 0, 1)
        grids.addWidget(self.grid_in, 1, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        grids.addWidget(self.grid_out, 1, 1, QtCore.Qt.AlignmentFlag.AlignTop)
        self.legend = QtWidgets.QLabel()
        grids.addWidget(self.legend, 2, 0, 1, 3)
        grids.setRowStretch(3, 1)
        row.addSpacing(16)
        self.picture_panel = ImagePanel("Picture", fixed=self.PICTURE)
        self.pooled_panel = ImagePanel("Pooled picture", fixed=self.PICTURE)
        for panel in (self.picture_panel, self.pooled_panel):
            panel.title.setFixedWidth(self.PICTURE + 20)
            row.addWidget(panel, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        row.addStretch(1)
        self.body.addWidget(
            _note(
                "Tinted blocks show the windows (when they do not overlap). The pooled picture is drawn to "
                "scale: one value per window and per colour channel."
            )
        )
        self.body.addStretch(1)
        for w in (self.k_spin, self.s_spin, self.p_spin):
            w.valueChanged.connect(self.refresh)
        self.kind_combo.currentIndexChanged.connect(self.refresh)
        self.channel_combo.currentIndexChanged.connect(self._draw_grids)
        self.new_button.clicked.connect(self._new_numbers)
        self.refresh()

    PICTURE = 200

    def _numbers(self) -> np.ndarray:
        return np.random.default_rng(self._seed).integers(0, 10, (8, 8, 3)).astype(np.float64)

    def _new_numbers(self) -> None:
        self._seed += 1
        self.fmap = self._numbers()
        self.refresh()

    @property
    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    def image_changed(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        k, s, p = self.k_spin.value(), self.s_spin.value(), self.p_spin.value()
        picture = self.owner.picture(128)
        try:
            self.output, self.mask = core.pool(self.fmap, self.kind, k, s, p)  # type: ignore[arg-type]
            self.image_output, _ = core.pool(picture, self.kind, k, s, p)  # type: ignore[arg-type]
        except CnnvizError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        h, w, c = self.fmap.shape
        ho, wo, co = self.output.shape
        self.shape_label.setText(
            f"Input {c} \u00d7 {h} \u00d7 {w}  \u2192  output {co} \u00d7 {ho} \u00d7 {wo}: each of the {c} "
            f"channels is pooled on its own, so there are still {co} channels."
        )
        self.picture_panel.set_image(core.to_uint8(picture, "clip"))
        self.pooled_panel.set_image(core.to_uint8(self.image_output, "clip"))
        ph, pw = picture.shape[:2]
        oh, ow = self.image_output.shape[:2]
        scale = self.PICTURE / max(ph, pw)
        self.pooled_panel.view.setFixedSize(max(8, round(ow * scale)), max(8, round(oh * scale)))
        pc = 1 if picture.ndim == 2 else picture.shape[2]
        self.picture_panel.set_title(f"Picture {pw}\u00d7{ph}, {pc} channel{'s' if pc > 1 else ''}")
        self.pooled_panel.set_title(
            f"{self.kind_combo.currentText()}: {ow}\u00d7{oh}, still {pc} channel{'s' if pc > 1 else ''}"
        )
        self._draw_grids()

    def _draw_grids(self) -> None:
        ch = self.channel_combo.currentIndex()
        self.grid_in.set_array(self.fmap[..., ch])
        self.grid_out.set_array(self.output[..., ch])
        color = C_CHOSEN if self.kind == "max" else C_COVERED
        cells: dict[tuple[int, int], QtGui.QColor] = {}
        k, s, p = self.k_spin.value(), self.s_spin.value(), self.p_spin.value()
        if s >= k:  # non-overlapping windows can be told apart by alternating tints
            for y in range(self.fmap.shape[0]):
                for x in range(self.fmap.shape[1]):
                    (wy, ry), (wx, rx) = divmod(y + p, s), divmod(x + p, s)
                    if ry < k and rx < k and (wy + wx) % 2 == 0:
                        cells[(y, x)] = C_TINT
        chosen = [(int(i), int(j)) for i, j in zip(*np.nonzero(self.mask[..., ch]), strict=True)]
        if self.kind == "max":
            cells.update(dict.fromkeys(chosen, color))
        else:  # every read cell is averaged: only the skipped ones stay white
            for cell in chosen:
                cells.setdefault(cell, color)
        self.grid_in.paint(cells)
        self.in_caption.setText(f"<b>Input, channel {ch + 1}</b>")
        if self.kind == "max":
            self.legend.setText(_swatch(C_CHOSEN, "the value each window keeps (the largest)"))
        else:
            self.legend.setText(
                _swatch(
                    C_COVERED,
                    "cells that some window averages (white cells are skipped by the stride)",
                )
            )


# --------------------------------------------------------------------------------------------------------------
# 6. 1x1 convolution


class OneByOneLesson(_Lesson):
    key = "one_by_one"
    title = "1\u00d71 convolutions"
    summary = (
        "A 1\u00d71 convolution mixes the channels of each pixel without looking at its neighbours; squeezing "
        "C channels down to C\u2032 before a K\u00d7K convolution saves most parameters and multiply-adds."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.comparison: core.BottleneckComparison | None = None
        controls = QtWidgets.QGridLayout()
        self.body.addLayout(controls)
        self.cin_spin = _spin(1, 4096, 256, "Channels coming in")
        self.cmid_spin = _spin(1, 4096, 64, "Channels after the 1\u00d71 squeeze")
        self.cout_spin = _spin(1, 4096, 256, "Channels going out")
        self.k_spin = _spin(1, 7, 3, "Size of the spatial kernel")
        self.h_spin = _spin(1, 1024, 56, "Map height")
        self.w_spin = _spin(1, 1024, 56, "Map width")
        self.bias_check = QtWidgets.QCheckBox("with bias")
        self.bias_check.setChecked(True)
        items = [
            ("C_in", self.cin_spin),
            ("C\u2032 (squeezed)", self.cmid_spin),
            ("C_out", self.cout_spin),
            ("K", self.k_spin),
            ("H", self.h_spin),
            ("W", self.w_spin),
        ]
        for n, (label, spin) in enumerate(items):
            controls.addWidget(QtWidgets.QLabel(label), 0, 2 * n)
            controls.addWidget(spin, 0, 2 * n + 1)
        controls.addWidget(self.bias_check, 0, 12)
        controls.setColumnStretch(13, 1)
        self.table = QtWidgets.QTableWidget(4, 3)
        self.table.setHorizontalHeaderLabels(["Layer", "Parameters", "Multiply-adds (MACs)"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.body.addWidget(self.table)
        self.ratio_label = QtWidgets.QLabel()
        font = self.ratio_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.ratio_label.setFont(font)
        self.ratio_label.setWordWrap(True)
        self.body.addWidget(self.ratio_label)
        self.formula_label = QtWidgets.QLabel()
        self.formula_label.setFont(_mono_font())
        self.formula_label.setWordWrap(True)
        self.formula_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.formula_label)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(self.palette().color(QtGui.QPalette.ColorRole.Base))
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.setLabel("left", "% of the direct K\u00d7K convolution")
        self.plot.getAxis("bottom").setTicks([[(0, "parameters"), (1, "multiply-adds")]])
        self.plot.setMinimumHeight(150)
        self.plot.setMaximumHeight(320)
        self.body.addWidget(self.plot, 1)
        self.body.addWidget(
            _note(
                "Each output pixel of a 1\u00d71 convolution is a weighted sum of the C_in values at the same "
                "pixel: a tiny dense layer applied at every position. ResNet\u2019s bottleneck blocks and "
                "Inception use it exactly like this."
            )
        )
        for spin in (
            self.cin_spin,
            self.cmid_spin,
            self.cout_spin,
            self.k_spin,
            self.h_spin,
            self.w_spin,
        ):
            spin.valueChanged.connect(self.refresh)
        self.bias_check.toggled.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        cin, cmid, cout = self.cin_spin.value(), self.cmid_spin.value(), self.cout_spin.value()
        k, h, w = self.k_spin.value(), self.h_spin.value(), self.w_spin.value()
        try:
            cmp = core.bottleneck_comparison(
                cin, cmid, cout, k, h, w, bias=self.bias_check.isChecked()
            )
        except CnnvizError as exc:
            self.comparison = None
            self.show_error(str(exc))
            return
        self.clear_error()
        self.comparison = cmp
        rows = [
            (f"Direct {k}\u00d7{k} conv, {cin} \u2192 {cout}", cmp.direct_params, cmp.direct_macs),
            (f"1\u00d71 conv, {cin} \u2192 {cmid}", cmp.reduce_params, cmp.reduce_macs),
            (f"{k}\u00d7{k} conv, {cmid} \u2192 {cout}", cmp.conv_params, cmp.conv_macs),
        ]
        for r, (name, params, macs) in enumerate(rows):
            self._set_row(r, name, params.value, macs.value, params.formula, macs.formula)
        self._set_row(
            3, "1\u00d71 then K\u00d7K (total)", cmp.after_params, cmp.after_macs, "", "", bold=True
        )
        self.table.setFixedHeight(
            self.table.horizontalHeader().height()
            + sum(self.table.rowHeight(i) for i in range(4))
            + 4
        )

        def times(ratio: float) -> str:
            return f"{ratio:.1f}\u00d7 fewer" if ratio >= 1 else f"{1 / ratio:.1f}\u00d7 more"

        self.ratio_label.setText(
            f"The 1\u00d71 squeeze needs {times(cmp.params_ratio)} parameters and "
            f"{times(cmp.macs_ratio)} multiply-adds than the direct {k}\u00d7{k} convolution."
        )
        self.formula_label.setText(
            "direct params: "
            + cmp.direct_params.formula
            + "\ndirect MACs:   "
            + cmp.direct_macs.formula
        )
        self.plot.clear()
        before = pg.BarGraphItem(
            x=[-0.18, 0.82], height=[100, 100], width=0.34, brush="#9db9d9", name="direct"
        )
        after = [100 * cmp.after_params / cmp.before_params, 100 * cmp.after_macs / cmp.before_macs]
        bars = pg.BarGraphItem(x=[0.18, 1.18], height=after, width=0.34, brush="#ffb347")
        self.plot.addItem(before)
        self.plot.addItem(bars)
        for x, v in zip((0.18, 1.18), after, strict=True):
            text = pg.TextItem(f"{v:.0f}%", anchor=(0.5, 1.0), color="k")
            text.setPos(x, v)
            self.plot.addItem(text)
        for x, label in ((-0.18, "direct"), (0.18, "1\u00d71 + K\u00d7K")):
            t = pg.TextItem(label, anchor=(0.5, 0.0), color="k")
            t.setPos(x, 0)
            self.plot.addItem(t)
        self.plot.setYRange(0, max(110, *after) * 1.08)
        self.plot.setXRange(-0.6, 1.6)

    def _set_row(
        self, r: int, name: str, params: int, macs: int, pf: str, mf: str, bold: bool = False
    ) -> None:
        for c, text in enumerate((name, f"{params:,}", f"{macs:,}")):
            item = QtWidgets.QTableWidgetItem(text)
            if c:
                item.setTextAlignment(
                    QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
                )
            item.setToolTip({1: pf, 2: mf}.get(c, ""))
            if bold:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.table.setItem(r, c, item)


# --------------------------------------------------------------------------------------------------------------
# 7. CNN versus fully connected


class DenseLesson(_Lesson):
    key = "dense"
    title = "Convolution versus fully connected"
    nav_title = "CNN vs fully connected"
    summary = (
        "A convolution reuses one small kernel at every position (parameter sharing); a dense layer that maps "
        "the same input to the same output needs its own weight for every input\u2013output pair."
    )

    EXAMPLE = "example"

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.comparison: core.ConvVsDense | None = None
        row = QtWidgets.QHBoxLayout()
        self.body.addLayout(row)
        row.addWidget(QtWidgets.QLabel("Layer"))
        self.layer_combo = QtWidgets.QComboBox()
        self.layer_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        row.addWidget(self.layer_combo)
        row.addStretch(1)
        self.example_box = QtWidgets.QWidget()
        ex = QtWidgets.QHBoxLayout(self.example_box)
        ex.setContentsMargins(0, 0, 0, 0)
        self.cin_spin = _spin(1, 2048, 3, "Input channels")
        self.h_spin = _spin(1, 1024, 32, "Input height")
        self.w_spin = _spin(1, 1024, 32, "Input width")
        self.cout_spin = _spin(1, 2048, 16, "Output channels (filters)")
        self.k_spin = _spin(1, 11, 3, "Kernel size")
        self.s_spin = _spin(1, 4, 1, "Stride")
        self.p_spin = _spin(0, 5, 1, "Padding")
        for label, spin in (
            ("C_in", self.cin_spin),
            ("H", self.h_spin),
            ("W", self.w_spin),
            ("filters", self.cout_spin),
            ("K", self.k_spin),
            ("stride", self.s_spin),
            ("padding", self.p_spin),
        ):
            ex.addWidget(QtWidgets.QLabel(label))
            ex.addWidget(spin)
        ex.addStretch(1)
        self.body.addWidget(self.example_box)
        self.shape_label = QtWidgets.QLabel()
        self.body.addWidget(self.shape_label)
        self.conv_label = QtWidgets.QLabel()
        self.dense_label = QtWidgets.QLabel()
        for label in (self.conv_label, self.dense_label):
            label.setFont(_mono_font())
            label.setWordWrap(True)
            label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(_caption("Convolution"))
        self.body.addWidget(self.conv_label)
        self.body.addWidget(_caption("Dense (fully connected) layer between the same sizes"))
        self.body.addWidget(self.dense_label)
        self.ratio_label = QtWidgets.QLabel()
        font = self.ratio_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.ratio_label.setFont(font)
        self.ratio_label.setWordWrap(True)
        self.body.addWidget(self.ratio_label)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(self.palette().color(QtGui.QPalette.ColorRole.Base))
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.setLabel("bottom", "parameters (each step is 10\u00d7 more)")
        self.plot.getAxis("left").setTicks([[(0, "convolution"), (1, "dense")]])
        self.plot.setFixedHeight(170)
        self.body.addWidget(self.plot)
        self.memory_label = _note("")
        self.body.addWidget(self.memory_label)
        self.body.addStretch(1)
        self.layer_combo.currentIndexChanged.connect(self.refresh)
        for spin in (
            self.cin_spin,
            self.h_spin,
            self.w_spin,
            self.cout_spin,
            self.k_spin,
            self.s_spin,
            self.p_spin,
        ):
            spin.valueChanged.connect(self.refresh)
        self.summary_changed()

    def summary_changed(self) -> None:
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        summary = self.owner.summary
        if summary is not None:
            for r in core.conv_rows(summary):
                assert r.kernel_size is not None
                kh, kw = r.kernel_size
                self.layer_combo.addItem(
                    f"{r.name} \u2014 {r.type} {r.in_channels}\u2192{r.out_channels}, {kh}\u00d7{kw}",
                    r.name,
                )
        self.layer_combo.addItem("Example layer (set the numbers)", self.EXAMPLE)
        self.layer_combo.setCurrentIndex(0)
        self.layer_combo.blockSignals(False)
        self.refresh()

    def select_layer(self, name: str) -> None:
        index = self.layer_combo.findData(name)
        if index < 0:
            raise CnnvizError(f"There is no convolution named '{name}' in the current model.")
        self.layer_combo.setCurrentIndex(index)

    def refresh(self) -> None:
        name = self.layer_combo.currentData()
        example = name == self.EXAMPLE
        self.example_box.setVisible(example)
        try:
            if example:
                cmp = core.conv_vs_dense_shapes(
                    (self.cin_spin.value(), self.h_spin.value(), self.w_spin.value()),
                    self.cout_spin.value(),
                    self.k_spin.value(),
                    self.s_spin.value(),
                    self.p_spin.value(),
                    name="example",
                )
            else:
                assert self.owner.summary is not None
                cmp = core.conv_vs_dense(self.owner.summary, str(name))
        except CnnvizError as exc:
            self.comparison = None
            self.show_error(str(exc))
            return
        self.clear_error()
        self.comparison = cmp
        ci, hi, wi = cmp.in_shape
        co, ho, wo = cmp.out_shape
        self.shape_label.setText(
            f"Input {ci}\u00d7{hi}\u00d7{wi} = {ci * hi * wi:,} values  \u2192  output {co}\u00d7{ho}\u00d7{wo} = "
            f"{co * ho * wo:,} values"
        )
        self.conv_label.setText(f"{cmp.conv.formula}\n\u2192 {cmp.conv.value:,} parameters")
        self.dense_label.setText(
            f"D_in = {ci}*{hi}*{wi} = {ci * hi * wi} inputs, D_out = {co}*{ho}*{wo} = {co * ho * wo} outputs\n"
            f"{cmp.dense.formula}\n\u2192 {cmp.dense.value:,} parameters"
        )
        self._draw_bars(cmp)
        self.ratio_label.setText(
            f"The dense layer would need {cmp.ratio:,.0f}\u00d7 as many parameters as the convolution."
            if cmp.ratio >= 1
            else f"Here the dense layer needs fewer parameters ({cmp.ratio:.2f}\u00d7): the map is tiny."
        )
        self.memory_label.setText(
            f"Stored as 32-bit floats the dense weights would take {_bytes(cmp.dense.value * 4)}, the "
            f"convolution's {_bytes(cmp.conv.value * 4)} \u2014 and a dense layer has to learn a cat in the "
            "corner separately from a cat in the middle, while a convolution finds it anywhere."
        )

    def _draw_bars(self, cmp: core.ConvVsDense) -> None:
        self.plot.clear()
        values = [cmp.conv.value, cmp.dense.value]
        logs = [np.log10(max(v, 1)) for v in values]
        bars = pg.BarGraphItem(
            x0=0, y=[0, 1], height=0.55, width=logs, brushes=["#9db9d9", "#ffb347"]
        )
        self.plot.addItem(bars)
        for y, (v, lv) in enumerate(zip(values, logs, strict=True)):
            text = pg.TextItem(f"  {v:,}", anchor=(0, 0.5), color="k")
            text.setPos(lv, y)
            self.plot.addItem(text)
        top = int(np.ceil(max(logs))) + 2
        names = [
            "1",
            "10",
            "100",
            "1k",
            "10k",
            "100k",
            "1M",
            "10M",
            "100M",
            "1G",
            "10G",
            "100G",
            "1T",
        ]
        self.plot.getAxis("bottom").setTicks(
            [[(k, names[k] if k < len(names) else f"1e{k}") for k in range(top + 1)]]
        )
        self.plot.setXRange(0, top, padding=0)
        self.plot.setYRange(-0.5, 1.5, padding=0)


# --------------------------------------------------------------------------------------------------------------
# 8. Receptive-field growth


class RFLesson(_Lesson):
    key = "rf"
    title = "Receptive-field growth"
    summary = (
        "Each layer's units see a window of the input, the receptive field r; a K\u00d7K layer adds "
        "(K\u22121)\u00b7S pixels, where S is the product of all earlier strides \u2014 so bigger kernels, "
        "stride and pooling make r grow faster."
    )

    MODEL = "__model__"

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.points: list[core.RFPoint] = []
        row = QtWidgets.QHBoxLayout()
        self.body.addLayout(row)
        row.addWidget(QtWidgets.QLabel("Network"))
        self.source_combo = QtWidgets.QComboBox()
        self.source_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        row.addWidget(self.source_combo)
        self.compare_combo = QtWidgets.QComboBox()
        self.compare_combo.addItem("nothing", "")
        for name in core.DEMO_STACKS:
            self.compare_combo.addItem(f"Demo: {name}", name)
        self.compare_combo.setCurrentIndex(1)
        row.addWidget(QtWidgets.QLabel("Compare with"))
        row.addWidget(self.compare_combo)
        self.axis_combo = QtWidgets.QComboBox()
        self.axis_combo.addItems(["height", "width"])
        row.addWidget(QtWidgets.QLabel("Axis"))
        row.addWidget(self.axis_combo)
        row.addStretch(1)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(self.palette().color(QtGui.QPalette.ColorRole.Base))
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "layer (in execution order)")
        self.plot.setLabel("left", "input pixels")
        self.plot.addLegend(offset=(10, 10))
        self.plot.setMinimumHeight(240)
        self.body.addWidget(self.plot, 3)
        self.table = QtWidgets.QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["#", "Layer", "Type", "r (size)", "S (stride)"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.body.addWidget(self.table, 2)
        self.body.addWidget(
            _note(
                "Orange triangles mark layers that multiply S (a stride or pooling): from there on each layer "
                "widens r by more pixels. Compare \u201cSix 3x3\u201d with \u201cwith 2x2 max pooling\u201d."
            )
        )
        self.source_combo.currentIndexChanged.connect(self.refresh)
        self.compare_combo.currentIndexChanged.connect(self.refresh)
        self.axis_combo.currentIndexChanged.connect(self.refresh)
        self.summary_changed()

    def summary_changed(self) -> None:
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        summary = self.owner.summary
        if summary is not None and any(r.rf is not None for r in summary.rows):
            self.source_combo.addItem(f"Current model: {summary.model_name}", self.MODEL)
        for name in core.DEMO_STACKS:
            self.source_combo.addItem(f"Demo: {name}", name)
        self.source_combo.setCurrentIndex(
            0 if self.source_combo.itemData(0) == self.MODEL else self._default_demo()
        )
        self.source_combo.blockSignals(False)
        self.refresh()

    def _default_demo(self) -> int:
        # The stack with pooling shows the jumps that make this lesson's point.
        return max(0, self.source_combo.findData("3x3 convolutions with 2x2 max pooling"))

    def select_source(self, key: str) -> None:
        index = self.source_combo.findData(key)
        if index < 0:
            raise CnnvizError(f"Unknown network '{key}'.")
        self.source_combo.setCurrentIndex(index)

    def refresh(self) -> None:
        key = self.source_combo.currentData()
        if key == self.MODEL and self.owner.summary is not None:
            self.points = core.rf_growth(self.owner.summary)
        else:
            self.points = core.rf_stack(core.DEMO_STACKS[str(key)])
        axis = self.axis_combo.currentIndex()
        spatial = [i for i, p in enumerate(self.points) if p.size is not None]
        # Layers on a side branch (a shortcut's 1x1 conv) see less than the layer before them in execution
        # order; drawing them on the line would make r seem to shrink, so they are drawn apart.
        xs, side, widest = [], [], 0
        for i in spatial:
            size = self.points[i].size[axis]  # type: ignore[index]
            if size >= widest:
                xs.append(i)
                widest = size
            else:
                side.append(i)
        r = [self.points[i].size[axis] for i in xs]  # type: ignore[index]
        s = [float(self.points[i].stride[axis]) for i in xs]  # type: ignore[index]
        self.plot.clear()
        compare = self.compare_combo.currentData()
        if compare:
            other = core.rf_stack(core.DEMO_STACKS[compare])
            self.plot.plot(
                list(range(len(other))),
                [p.size[axis] for p in other],  # type: ignore[index]
                pen=pg.mkPen("#9a9a9a", width=2, style=QtCore.Qt.PenStyle.DashDotLine),
                name=f"r of {compare}",
            )
        self.plot.plot(
            xs,
            r,
            pen=pg.mkPen("#1f77b4", width=2),
            symbol="o",
            symbolSize=6,
            symbolBrush="#1f77b4",
            name="r: receptive field size",
        )
        self.plot.plot(
            xs,
            s,
            pen=pg.mkPen("#2ca02c", width=2, style=QtCore.Qt.PenStyle.DashLine),
            symbol="s",
            symbolSize=5,
            symbolBrush="#2ca02c",
            name="S: effective stride",
        )
        if side:
            self.plot.plot(
                side,
                [self.points[i].size[axis] for i in side],  # type: ignore[index]
                pen=None,
                symbol="o",
                symbolSize=7,
                symbolPen="#1f77b4",
                symbolBrush=None,
                name="r on a side branch (shortcut)",
            )
        jumps = [i for i in xs if self.points[i].jump]
        if jumps:
            self.plot.plot(
                jumps,
                [self.points[i].size[axis] for i in jumps],  # type: ignore[index]
                pen=None,
                symbol="t1",
                symbolSize=14,
                symbolBrush="#ff7f0e",
                name="stride/pooling: S jumps",
            )
            if len(jumps) <= 12:
                for i in jumps:
                    label = pg.TextItem(self.points[i].name, anchor=(1.05, 1.1), color="#b35900")
                    label.setPos(i, self.points[i].size[axis])  # type: ignore[index]
                    self.plot.addItem(label)
        first_global = next((i for i, p in enumerate(self.points) if p.global_), None)
        if first_global is not None:
            line = pg.InfiniteLine(
                first_global, angle=90, pen=pg.mkPen("#888", style=QtCore.Qt.PenStyle.DotLine)
            )
            self.plot.addItem(line)
            text = pg.TextItem(
                "from here every unit sees the whole input", anchor=(1.02, 0), color="#555"
            )
            text.setPos(first_global, max(r) if r else 1)
            self.plot.addItem(text)
        bottom = self.plot.getAxis("bottom")
        if len(self.points) <= 12:
            bottom.setTicks([[(i, p.name) for i, p in enumerate(self.points)]])
        elif len(self.points) <= 40:
            bottom.setTicks([[(i, str(i)) for i in range(0, len(self.points), 2)]])
        else:
            bottom.setTicks(None)
        self._fill_table(axis)

    def _fill_table(self, axis: int) -> None:
        self.table.setRowCount(len(self.points))
        for i, p in enumerate(self.points):
            if p.global_:
                size, stride = "whole input", "\u2014"
            else:
                assert p.size is not None and p.stride is not None
                size, stride = str(p.size[axis]), str(p.stride[axis])
            cells = [
                str(i),
                p.name,
                p.type,
                size,
                stride + (f"   \u2190 {p.reason}" if p.reason else ""),
            ]
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if p.jump:
                    item.setBackground(QtGui.QBrush(QtGui.QColor("#ffe6c7")))
                self.table.setItem(i, c, item)
        self.table.resizeColumnsToContents()


# --------------------------------------------------------------------------------------------------------------
# The lab


class ConvolutionLab(QtWidgets.QWidget):
    """Eight lessons on convolution in one widget: a list of lessons on the left, the lesson on the right.

    Public API: :meth:`set_image` (the current picture, uint8), :meth:`set_model_summary` (the current model's
    :class:`~cnnviz.core.summary_types.Summary`, for the conv-versus-dense and receptive-field lessons),
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
