"""Lesson 6: 1×1 convolutions mix channels and make bottlenecks cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    _headline,
    _mono_font,
    _note,
    _spin,
    _still_plot,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


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
        self.ratio_label = _headline(1.2)
        self.body.addWidget(self.ratio_label)
        self.formula_label = QtWidgets.QLabel()
        self.formula_label.setFont(_mono_font())
        self.formula_label.setWordWrap(True)
        self.formula_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.formula_label)
        self.plot = _still_plot(self)
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
