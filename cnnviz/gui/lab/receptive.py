"""Lesson 8: how the receptive field grows through a stack of layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    _note,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


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
        self.jump_item: pg.PlotDataItem | None = (
            None  # the orange triangles: x = layer number, y = r
        )
        row = QtWidgets.QHBoxLayout()
        self.body.addLayout(row)
        row.addWidget(QtWidgets.QLabel("Network"))
        self.source_combo = QtWidgets.QComboBox()
        self.compare_combo = QtWidgets.QComboBox()
        for combo in (self.source_combo, self.compare_combo):
            # Long demo names would push the page wider than a small screen; the list shows them whole.
            combo.setSizeAdjustPolicy(
                QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(24)
        row.addWidget(self.source_combo)
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
                name=f"r of {compare} (by layer number)",
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
        self.jump_item = None
        if jumps:
            self.jump_item = self.plot.plot(
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
                    # Centred above its own triangle, so no label seems to name a neighbour.
                    label = pg.TextItem(self.points[i].name, anchor=(0.5, 1.35), color="#b35900")
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
