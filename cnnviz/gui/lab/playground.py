"""Lesson 1, the kernel playground: stamp a kernel over a picture or a grid of numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    ColorBar,
    ImagePanel,
    NumberGrid,
    _caption,
    _note,
    _spin,
    signed_rgb,
    signed_scale,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


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
    ("auto", "Auto (signed for edge kernels)"),
    ("clip", "Clip to black..white"),
    ("abs", "Absolute value"),
    ("signed", "Signed (blue < 0 < red)"),
    ("stretch", "Stretch min..max"),
]

_XCORR_TEXT = (
    "Cross-correlation: the kernel is used as drawn, out[i, j] = \u03a3 in[i+u, j+v]\u00b7k[u, v]. "
    "This is what every Conv2d layer computes."
)
_CONV_TEXT = (
    "True convolution: the kernel is first rotated 180\u00b0, out[i, j] = \u03a3 in[i\u2212u, j\u2212v]\u00b7k[u, v]. "
    "Symmetric kernels (blurs) do not change; Sobel flips sign (red and blue swap) and emboss lights the "
    "other side."
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
        # What a signed picture shows: the output itself, or for a colour picture its brightness (the mean of
        # the channels' outputs, which equals the kernel applied to the mean of the channels).
        self.signed_map: np.ndarray | None = None
        self.signed_scale = 1.0

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
        self.colorbar = ColorBar(180)
        pl.addWidget(self.input_panel)
        pl.addWidget(self.output_panel)
        pl.addWidget(self.colorbar)
        numbers = QtWidgets.QWidget()
        nl = QtWidgets.QGridLayout(numbers)
        self.grid_in = NumberGrid(editable=True, cell=(40, 28))
        self.grid_out = NumberGrid(cell=(40, 28))
        # Input above output: side by side, two 8-column grids do not fit a 1024-pixel-wide screen.
        nl.addWidget(_caption("Input (double-click to edit)"), 0, 0)
        nl.addWidget(self.grid_in, 1, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        nl.addWidget(_caption("Output"), 2, 0)
        out_row = QtWidgets.QHBoxLayout()
        out_row.addWidget(self.grid_out, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        self.grid_colorbar = ColorBar(150)
        out_row.addWidget(self.grid_colorbar, 0, QtCore.Qt.AlignmentFlag.AlignVCenter)
        out_row.addStretch(1)
        nl.addLayout(out_row, 3, 0)
        nl.setRowStretch(4, 1)
        nl.setColumnStretch(1, 1)
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
        self.rule = core.display_rule(k, self.scale_combo.currentData(), zero_sum="signed")
        signed = self.rule == "signed"
        if signed:
            out = self.output
            self.signed_map = out if out.ndim == 2 else out.mean(axis=2)
            self.signed_scale = signed_scale(self.signed_map)
            self.shown = signed_rgb(self.signed_map, self.signed_scale)
        else:
            self.signed_map = None
            self.shown = core.to_uint8(self.output, self.rule)
        for bar in (self.colorbar, self.grid_colorbar):
            bar.set_scale(self.signed_scale)
            bar.setVisible(signed)
        if numbers:
            self.grid_out.set_array(self.output)
            colors = {}
            if signed:
                for (i, j), _ in np.ndenumerate(self.output):
                    colors[(i, j)] = QtGui.QColor(*(int(c) for c in self.shown[i, j]))
            self.grid_out.paint(colors)
        else:
            self.input_panel.set_image(core.to_uint8(self.input, "clip"))
            self.output_panel.set_image(self.shown)
            h, w = self.output.shape[:2]
            if signed:
                what = "brightness, " if self.output.ndim == 3 else ""
                self.output_panel.set_title(
                    f"Output {w}\u00d7{h} \u2014 {what}signed: red > 0, light grey = 0, blue < 0"
                )
            else:
                rule = dict(_SCALE_CHOICES).get(self.rule, self.rule).split(" (")[0]
                self.output_panel.set_title(f"Output {w}\u00d7{h} \u2014 shown as: {rule.lower()}")
            ih, iw = self.input.shape[:2]
            self.input_panel.set_title(f"Input {iw}\u00d7{ih}")
