"""Lesson 2: step a kernel through the input one output cell at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    C_CURRENT,
    C_DONE,
    C_WINDOW,
    NumberGrid,
    _caption,
    _fmt,
    _mono_font,
    _note,
    _spin,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


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
        self.explain_label = QtWidgets.QLabel()
        self.explain_label.setWordWrap(True)
        self.explain_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.explain_label)
        self.geometry_label = QtWidgets.QLabel()
        self.geometry_label.setFont(_mono_font())
        self.geometry_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.geometry_label)
        self.body.addWidget(_note("Double-click an input number to change it."))
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
        kh, kw = self.result.kernel.shape
        stride = self.stride_spin.value()
        self.geometry_label.setText(
            core.output_size_formula((h, w), (kh, kw), stride, p)
            + f"   \u2192 {len(self.steps)} positions"
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
            self.explain_label.setText(self._plan_text())
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
        self.explain_label.setText(self._position_text(s) + "<br>" + self._plan_text())

    def _plan_text(self) -> str:
        """What the chosen stride and padding do, with this input's numbers."""
        assert self.result is not None
        stride, p = self.stride_spin.value(), self.result.padding[0]
        h, w = self.input.shape
        oh, ow = self.result.output.shape
        kh, kw = self.result.kernel.shape
        pad = (
            f"Padding {p} adds {p} row{'s' if p > 1 else ''} and column{'s' if p > 1 else ''} of zeros on "
            f"every side, so the kernel slides over {h + 2 * p}\u00d7{w + 2 * p} cells. "
            if p
            else f"Padding 0: the kernel slides over the {h}\u00d7{w} input itself. "
        )
        step = (
            f"Stride {stride}: the window moves {stride} cell{'s' if stride > 1 else ''} between positions, "
            f"so the {kh}\u00d7{kw} kernel fits {oh} time{'s' if oh > 1 else ''} down and {ow} across: "
            f"the output is {oh}\u00d7{ow}."
        )
        return pad + step

    def _position_text(self, s: core.Step) -> str:
        """Where the window is now and why, in this position's numbers."""
        stride = self.stride_spin.value()
        p = self.result.padding[0] if self.result is not None else 0
        r0, r1, c0, c1 = s.rows[0], s.rows[-1], s.cols[0], s.cols[-1]
        where = (
            f"rows {r0}\u2013{r1} and columns {c0}\u2013{c1} of the padded input"
            if p
            else (f"rows {r0}\u2013{r1} and columns {c0}\u2013{c1} of the input")
        )
        return (
            f"Position {self.index + 1} of {len(self.steps)}, stride {stride}, padding {p}: output cell "
            f"[{s.out_row}, {s.out_col}] reads {where}, because its window starts at row "
            f"{s.out_row} \u00d7 {stride} = {r0} and column {s.out_col} \u00d7 {stride} = {c0}. "
            f"The {len(s.rows) * len(s.cols)} products add up to {_fmt(s.total)}."
        )
