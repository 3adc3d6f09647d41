"""A layer output without a spatial map (C×1×1, a flat vector, logits) as a horizontal bar chart.

One bar per value, all on one scale with a zero line, so signed values compare at a glance. Bars are rows from
the top (in index order or largest first); class names label the rows of the output layer. The wheel scrolls
through long vectors (1000 logits), Ctrl+wheel zooms; hovering a bar reads its value, clicking selects it and
the Up/Down keys move the selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen

from cnnviz.core.present.figures import HIGHLIGHT as HIGHLIGHT_RGBA
from cnnviz.core.present.vectors import value_order

__all__ = ["VectorPlot"]

POSITIVE = (230, 150, 60)
NEGATIVE = (80, 140, 220)
HIGHLIGHT = QColor(*HIGHLIGHT_RGBA)
VISIBLE_ROWS = 24  # rows shown at first; the rest scroll into view
LABEL_CHARS = 28


class _RowBox(pg.ViewBox):
    """The wheel scrolls rows; Ctrl+wheel zooms the rows; the value axis stays fitted."""

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - pyqtgraph override
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis=1)
            return
        (top, bottom) = self.viewRange()[1]
        rows = bottom - top
        step = -np.sign(ev.delta()) * max(1.0, rows / 8)
        self.setYRange(top + step, bottom + step, padding=0)
        ev.accept()


class VectorPlot(pg.PlotWidget):
    """The bars of one vector. Emits ``hovered(index | -1)`` and ``clicked(index)``."""

    hovered = Signal(int)
    clicked = Signal(int)

    def __init__(self, parent: Any = None):
        super().__init__(parent, viewBox=_RowBox())
        self.values: np.ndarray = np.zeros(0)
        self.labels: list[str] | None = None
        self.order: np.ndarray = np.zeros(0, dtype=int)
        self.order_mode = "index"
        self.selected: int | None = None
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.showGrid(x=True, y=False, alpha=0.25)
        self.vb: pg.ViewBox = item.getViewBox()
        self.vb.invertY(True)
        self.vb.setMouseEnabled(x=False, y=True)
        item.getAxis("bottom").setLabel("value")
        self.bars = pg.BarGraphItem(x0=[], y=[], width=[], height=0.8)
        self.addItem(self.bars)
        self.zero = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen((200, 200, 200), width=1))
        self.addItem(self.zero)
        self.mark = pg.QtWidgets.QGraphicsRectItem()
        pen = QPen(HIGHLIGHT, 2.5)
        pen.setCosmetic(True)
        self.mark.setPen(pen)
        self.mark.setZValue(10)
        self.mark.setVisible(False)
        self.addItem(self.mark)
        self.vb.sigYRangeChanged.connect(lambda *_a: self._update_ticks())
        self.scene().sigMouseMoved.connect(self._moved)
        self.scene().sigMouseClicked.connect(self._clicked)

    # -- data ----------------------------------------------------------------------------------------------------
    def set_values(
        self, values: np.ndarray, labels: list[str] | None = None, *, keep_range: bool = False
    ) -> None:
        """Draw ``values`` (1-D); ``labels`` name them when there is one per value."""
        self.values = np.asarray(values, dtype=np.float64).reshape(-1)
        self.labels = labels if labels is not None and len(labels) == self.values.size else None
        self._redraw(keep_range)

    def set_order(self, mode: str) -> None:
        """``"index"``, ``"largest"`` or ``"magnitude"`` (see :data:`cnnviz.core.present.vectors.ORDERS`)."""
        if mode == self.order_mode:
            return
        self.order_mode = mode
        self._redraw(False)

    def set_selected(self, index: int | None) -> None:
        """Highlight value ``index`` (None: none)."""
        self.selected = index if index is not None and 0 <= index < self.values.size else None
        self._draw_mark()
        self._brushes()

    def _redraw(self, keep_range: bool) -> None:
        v = self.values
        self.order = value_order(v, self.order_mode)
        n = v.size
        rows = np.empty(n, dtype=np.float64)
        rows[self.order] = np.arange(n)
        self._rows = rows
        shown = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        self.bars.setOpts(x0=np.minimum(shown, 0.0), width=np.abs(shown), y=rows, height=0.8)
        self._brushes()
        finite = v[np.isfinite(v)]
        lo = min(0.0, float(finite.min())) if finite.size else -1.0
        hi = max(0.0, float(finite.max())) if finite.size else 1.0
        if hi <= lo:
            hi = lo + 1.0
        self.vb.setLimits(yMin=-0.6, yMax=max(n, 1) - 0.4, minYRange=min(3, max(n, 1)))
        self.vb.setXRange(lo, hi, padding=0.04)
        if not keep_range:
            self.vb.setYRange(-0.6, min(n, VISIBLE_ROWS) - 0.4, padding=0)
        self._draw_mark()
        self._update_ticks()

    def _brushes(self) -> None:
        v = self.values
        if v.size == 0:
            return
        brushes = [pg.mkBrush(*(POSITIVE if x >= 0 else NEGATIVE)) for x in v]
        if self.selected is not None:
            brushes[self.selected] = pg.mkBrush(HIGHLIGHT)
        self.bars.setOpts(brushes=brushes)

    def _draw_mark(self) -> None:
        i = self.selected
        if i is None or self.values.size == 0:
            self.mark.setVisible(False)
            return
        lo, hi = self.vb.viewRange()[0]
        row = float(self._rows[i])
        self.mark.setRect(QRectF(lo, row - 0.5, hi - lo, 1.0))
        self.mark.setVisible(True)

    def label(self, index: int) -> str | None:
        """The class name of value ``index``; None without labels or when it only repeats the index."""
        if self.labels is None or not 0 <= index < len(self.labels):
            return None
        label = str(self.labels[index])
        return None if label.strip() == str(index) else label

    def row_name(self, index: int) -> str:
        """``281 tabby`` with labels, else ``281``."""
        label = self.label(index)
        if label is None:
            return str(index)
        if len(label) > LABEL_CHARS:
            label = label[: LABEL_CHARS - 1] + "…"
        return f"{index} {label}"

    def _update_ticks(self) -> None:
        n = self.values.size
        axis = self.getPlotItem().getAxis("left")
        if n == 0:
            axis.setTicks([[]])
            return
        top, bottom = self.vb.viewRange()[1]
        first, last = max(int(np.ceil(top)), 0), min(int(np.floor(bottom)), n - 1)
        visible = max(last - first + 1, 1)
        height = max(self.vb.height(), 1.0)
        step = max(1, int(np.ceil(visible * 15 / height)))  # a label per ~15 pixels
        ticks = [
            (float(r), self.row_name(int(self.order[r]))) for r in range(first, last + 1, step)
        ]
        axis.setTicks([ticks])

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        if "bars" in self.__dict__:  # pyqtgraph resizes once while it is being built
            self._update_ticks()

    # -- what is drawn (tests) -----------------------------------------------------------------------------------
    def bar_values(self) -> np.ndarray:
        """The signed length of each drawn bar, by value index."""
        x0 = np.asarray(self.bars.opts["x0"], dtype=np.float64)
        width = np.asarray(self.bars.opts["width"], dtype=np.float64)
        return np.where(x0 < 0, x0, width)

    def bar_rows(self) -> np.ndarray:
        """The row (0 = top) each value's bar is drawn in."""
        return np.asarray(self.bars.opts["y"], dtype=np.float64)

    def tick_texts(self) -> list[str]:
        ticks = self.getPlotItem().getAxis("left")._tickLevels
        return [text for _pos, text in ticks[0]] if ticks else []

    # -- mouse ---------------------------------------------------------------------------------------------------
    def index_at(self, scene_pos: Any) -> int | None:
        """The value whose row is under ``scene_pos``, or None."""
        if self.values.size == 0 or not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        row = int(round(self.vb.mapSceneToView(scene_pos).y()))
        if not 0 <= row < self.values.size:
            return None
        return int(self.order[row])

    def scene_point(self, index: int) -> Any:
        """Where the middle of row ``index`` is, in scene coordinates (tests)."""
        lo, hi = self.vb.viewRange()[0]
        return self.vb.mapViewToScene(pg.Point((lo + hi) / 2, float(self._rows[index])))

    def keyPressEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        """Up/Down select the bar above/below the selected one (Shift: five rows)."""
        step = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1}.get(ev.key())
        if step is None or self.values.size == 0:
            super().keyPressEvent(ev)
            return
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            step *= 5
        row = int(self._rows[self.selected]) + step if self.selected is not None else 0
        row = min(max(row, 0), self.values.size - 1)
        top, bottom = self.vb.viewRange()[1]
        if not top <= row <= bottom:  # keep the selected bar in view
            span = bottom - top
            start = row - 0.5 if row < top else row + 0.5 - span
            self.vb.setYRange(start, start + span, padding=0)
        self.clicked.emit(int(self.order[row]))
        ev.accept()

    def _moved(self, scene_pos: Any) -> None:
        index = self.index_at(scene_pos)
        self.hovered.emit(-1 if index is None else index)

    def _clicked(self, ev: Any) -> None:
        self.setFocus()
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        index = self.index_at(ev.scenePos())
        if index is not None:
            self.clicked.emit(index)
