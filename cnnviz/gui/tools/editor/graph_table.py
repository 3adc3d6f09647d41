"""The live table of the graph editor: a Qt model over a GraphTable (every row of the traced network).

Rows carry their change in words as well as in colour: the "Change" column reads ``edited``, ``new``,
``shape`` (the output shape differs from the loaded model's) and ``✗`` on the node where the graph breaks,
each with a tooltip saying what it means; the rows that depend on that node read *not computed* in grey italics.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QFont

from cnnviz.core.editing import delta_text
from cnnviz.core.present.tables import rf_cells
from cnnviz.core.text import count
from cnnviz.core.text import shape as shape_text
from cnnviz.gui.tools.editor.model import (
    CHANGED_BG,
    DIM_FG,
    ERROR_BG,
    ERROR_FG,
    INK,
    NEW_BG,
    LiveTableModel,
)

Index = QModelIndex | QPersistentModelIndex

SHAPE_BG = QColor("#ffd9a8")
"""Rows whose output shape changed: stronger than an edited row's yellow, since everything after them moves."""


def _shape(value: Any) -> str:
    return shape_text(value) if value else ""  # with the batch axis, as the Layers dock shows it


class GraphTableModel(QAbstractTableModel):
    """A Qt model over a GraphTable (rows of a traced network with deltas against the loaded model)."""

    COLUMNS = (
        "Change",
        "Layer",
        "Type",
        "Settings",
        "Output",
        "Params",
        "Δ params",
        "MACs",
        "Δ MACs",
        "RF",
        "RF stride",
    )
    CHANGE, NAME, TYPE, SETTINGS, OUTPUT, PARAMS, DPARAMS, MACS, DMACS, RF, RF_STRIDE = range(11)
    NUMERIC = frozenset({PARAMS, DPARAMS, MACS, DMACS})

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.table: Any = None
        self.rows: list[Any] = []
        self.error_node: str | None = None
        self._row_of: dict[str, int] = {}

    # -- content ---------------------------------------------------------------------------------------------
    def set_table(self, table: Any, rows: list[Any] | None = None) -> None:
        """Show ``table`` (a GraphTable, or None) with ``rows`` (default: the table's rows)."""
        if rows is None:
            rows = list(table.rows) if table is not None else []
        error = getattr(table, "error", None) if table is not None else None
        same_rows = [r.name for r in rows] == [r.name for r in self.rows]
        if not same_rows:
            self.beginResetModel()
        self.table = table
        self.rows = rows
        self.error_node = error.node if error is not None else None
        self._row_of = {r.name: i for i, r in enumerate(rows)}
        if not same_rows:
            self.endResetModel()
        elif rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(rows) - 1, len(self.COLUMNS) - 1)
            )

    def row_of(self, name: str | None) -> int | None:
        """The row of the module or node ``name`` (None when it has no row)."""
        return self._row_of.get(name) if name else None

    def graph_row(self, row: int) -> Any:
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def is_error(self, row: Any) -> bool:
        return self.error_node is not None and row.name == self.error_node

    def change_text(self, row: Any) -> str:
        """The Change column: what happened to the row, in words (after the break: only what was edited)."""
        if self.is_error(row):
            return "✗ error"
        marks = []
        if row.status == "new":
            marks.append("new")
        elif row.status == "changed":
            marks.append("edited")
        if row.computed and row.shape_changed and row.status != "new":
            marks.append("shape")
        return " · ".join(marks)

    def text(self, row: Any, column: int) -> str:
        """The text of one cell (what the view shows)."""
        if column == self.CHANGE:
            return self.change_text(row)
        if column == self.NAME:
            return row.name
        if column == self.TYPE:
            return row.type
        if column == self.SETTINGS:
            return row.settings or ""
        if not row.computed:
            if column == self.OUTPUT:
                return f"✗ {row.reason}" if self.is_error(row) and row.reason else "not computed"
            return ""
        if column == self.OUTPUT:
            return _shape(row.output_shape)
        if column == self.PARAMS:
            return count(row.params)
        if column == self.DPARAMS:
            return LiveTableModel._delta(row.params, row.base_params, row.status)
        if column == self.MACS:
            return count(row.macs)
        if column == self.DMACS:
            return LiveTableModel._delta(row.macs, row.base_macs, row.status)
        if column in (self.RF, self.RF_STRIDE):
            size, stride, _padding = rf_cells(row.rf)
            return size if column == self.RF else stride
        return ""

    def texts(self) -> list[list[str]]:
        """Every cell's text, row by row (for tests and copying)."""
        return [[self.text(r, c) for c in range(len(self.COLUMNS))] for r in self.rows]

    # -- Qt --------------------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return self.COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return _HEADER_TIPS.get(self.COLUMNS[section])
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.graph_row(index.row())
        if row is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column in self.NUMERIC and row.computed:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole:
            if self.is_error(row):
                return QBrush(ERROR_BG)
            if not row.computed:
                return None
            if row.status == "new":
                return QBrush(NEW_BG)
            if row.shape_changed:
                return QBrush(SHAPE_BG)
            if row.status == "changed":
                return QBrush(CHANGED_BG)
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if self.is_error(row):
                return QBrush(ERROR_FG)
            if not row.computed:
                return QBrush(DIM_FG)
            if row.status != "same" or row.shape_changed:
                return QBrush(INK)  # readable on the light highlight in dark themes too
            return None
        if role == Qt.ItemDataRole.FontRole:
            if self.is_error(row) or (column == self.CHANGE and self.change_text(row)):
                font = QFont()
                font.setBold(True)
                return font
            if not row.computed:
                font = QFont()
                font.setItalic(True)
                return font
        return None

    def _tooltip(self, row: Any, column: int) -> str | None:
        if self.is_error(row):
            error = self.table.error if self.table is not None else None
            return error.message if error is not None else row.reason
        if not row.computed:
            return row.reason or "Not computed: the graph breaks at an earlier node."
        if column == self.CHANGE:
            parts = []
            if row.status == "new":
                parts.append("Inserted since the model was loaded.")
            elif row.status == "changed":
                parts.append("Its settings changed since the model was loaded.")
            if row.shape_changed and row.status != "new":
                was = _shape(row.base_output_shape) or "no output"
                parts.append(
                    f"Its output shape changed: {was} before, {_shape(row.output_shape)} now."
                )
            return " ".join(parts) or None
        if column == self.OUTPUT and row.input_shape is not None:
            was = ""
            if row.base_output_shape is not None and row.shape_changed:
                was = f" (was {_shape(row.base_output_shape)})"
            return f"{_shape(row.input_shape)} → {_shape(row.output_shape)}{was}"
        if column in (self.DPARAMS, self.DMACS) and row.status != "new":
            base = row.base_params if column == self.DPARAMS else row.base_macs
            value = row.params if column == self.DPARAMS else row.macs
            if base is not None and value is not None:
                return f"{base:,} before editing → {value:,} now ({delta_text(value, base)})"
        if column in (self.RF, self.RF_STRIDE) and row.rf is not None:
            size, stride, padding = rf_cells(row.rf)
            if size == "global":
                return "Every unit sees the whole input."
            return f"Receptive field {size}, stride {stride}, padding {padding} (in input pixels)"
        if column == self.MACS and row.macs:
            return "Multiply-accumulates for one input picture."
        return None


_HEADER_TIPS = {
    "Change": "edited: its settings changed · new: inserted · shape: its output shape changed · "
    "✗: the graph breaks here",
    "Settings": "Kernel, stride (s), padding (p), dilation (d), groups (g) ...",
    "Output": "Output shape C×H×W (without the batch)",
    "Params": "Parameters of the module",
    "Δ params": "Change against the model as it was loaded",
    "MACs": "Multiply-accumulates for one input",
    "Δ MACs": "Change against the model as it was loaded",
    "RF": "Receptive field size in input pixels (height×width)",
    "RF stride": "Distance in input pixels between neighbouring units",
}
