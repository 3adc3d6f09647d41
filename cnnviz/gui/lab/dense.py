"""Lesson 7: a convolution against a dense layer of the same input and output."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.core.text import nbytes
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    _caption,
    _headline,
    _mono_font,
    _note,
    _spin,
    _still_plot,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


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
        for box in (self.conv_label, self.dense_label):
            box.setFont(_mono_font())
            box.setWordWrap(True)
            box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(_caption("Convolution"))
        self.body.addWidget(self.conv_label)
        self.body.addWidget(_caption("Dense (fully connected) layer between the same sizes"))
        self.body.addWidget(self.dense_label)
        self.ratio_label = _headline(1.3)
        self.body.addWidget(self.ratio_label)
        self.plot = _still_plot(self)
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
            f"Stored as 32-bit floats the dense weights would take {nbytes(cmp.dense.value * 4)}, the "
            f"convolution's {nbytes(cmp.conv.value * 4)} \u2014 and a dense layer has to learn a cat in the "
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
