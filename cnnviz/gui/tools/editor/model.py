"""The live table of the layer editor: a Qt model over a LiveTable, its colours and tooltips."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from cnnviz.core.editing import (
    LiveRow,
    LiveTable,
    delta_text,
)
from cnnviz.core.present.tables import rf_cells
from cnnviz.core.text import compact, count
from cnnviz.core.text import shape as shape_text

Index = QModelIndex | QPersistentModelIndex

ERROR_BG = QColor("#f6caca")
ERROR_FG = QColor("#7a0000")
CHANGED_BG = QColor("#fff1c2")
NEW_BG = QColor("#d6f0d6")
LOCKED_BG = QColor("#ececec")
DIM_FG = QColor("#7d7d7d")
INK = QColor("#1a1a1a")
REINIT_FG = QColor("#a04a00")


# --------------------------------------------------------------------------------------------------------------
# The table model


def _shape(shape: Any) -> str:
    return shape_text((1, *shape)) if shape else ""


class LiveTableModel(QAbstractTableModel):
    """A Qt model over a :class:`LiveTable`; ``updated`` is emitted after every new table."""

    updated = Signal()
    COLUMNS = (
        "#",
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
        "Weights",
    )
    OUTPUT_COLUMN = 4
    NUMERIC = frozenset({0, 5, 6, 7, 8})

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.table: LiveTable | None = None

    # -- content ---------------------------------------------------------------------------------------------
    def set_table(self, table: LiveTable | None) -> None:
        old = len(self.table.rows) if self.table is not None else -1
        new = len(table.rows) if table is not None else -1
        if old != new:
            self.beginResetModel()
            self.table = table
            self.endResetModel()
        else:
            self.table = table
            if new > 0:
                self.dataChanged.emit(self.index(0, 0), self.index(new - 1, len(self.COLUMNS) - 1))
        self.updated.emit()

    def live_row(self, row: int) -> LiveRow | None:
        if self.table is None or not 0 <= row < len(self.table.rows):
            return None
        return self.table.rows[row]

    def text(self, row: LiveRow, column: int) -> str:
        """The text of one cell (what the view shows)."""
        if column == 0:
            return str(row.index)
        if column == 1:
            return row.name
        if column == 2:
            return row.type
        if column == 3:
            return row.settings
        if not row.checked:
            return (
                "not checked: an earlier layer is invalid" if column == self.OUTPUT_COLUMN else ""
            )
        if not row.ok:
            return f"✗ {row.reason}" if column == self.OUTPUT_COLUMN else ""
        if column == 4:
            return _shape(row.output_shape)
        if column == 5:
            return count(row.params)
        if column == 6:
            return self._delta(row.params, row.base_params, row.status)
        if column == 7:
            return count(row.macs)
        if column == 8:
            return self._delta(row.macs, row.base_macs, row.status)
        if column in (9, 10):
            size, stride, _padding = rf_cells(row.rf)
            return size if column == 9 else stride
        if column == 11:
            return row.weights
        return ""

    @staticmethod
    def _delta(value: int | None, base: int | None, status: str) -> str:
        """Compact change for the cell (the exact figures are in the tooltip)."""
        if value is None:
            return ""
        if status == "new":
            return f"+{compact(value)}" if value else ""
        if base is None or value == base:
            return ""
        diff = value - base
        sign = "+" if diff > 0 else "−"
        text = f"{sign}{compact(abs(diff))}"
        if base:
            pct = abs(100.0 * diff / base)
            text += f" ({sign}{pct:.0f}%)" if pct >= 1 else f" ({sign}{pct:.2g}%)"
        return text

    def texts(self) -> list[list[str]]:
        """Every cell's text, row by row (for tests and copying)."""
        if self.table is None:
            return []
        return [[self.text(r, c) for c in range(len(self.COLUMNS))] for r in self.table.rows]

    # -- Qt --------------------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        if parent.isValid() or self.table is None:
            return 0
        return len(self.table.rows)

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
        row = self.live_row(index.row())
        if row is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column in self.NUMERIC and row.ok:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole:
            if row.checked and not row.ok:
                return QBrush(ERROR_BG)
            if row.locked:
                return QBrush(LOCKED_BG)
            if row.status == "new":
                return QBrush(NEW_BG)
            if row.status == "changed":
                return QBrush(CHANGED_BG)
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.checked and not row.ok:
                return QBrush(ERROR_FG)
            if not row.checked or row.locked:
                return QBrush(DIM_FG)
            if column == 11 and row.weights != "kept":
                return QBrush(REINIT_FG)
            if row.status in ("new", "changed"):
                return QBrush(INK)  # readable on the light highlight in dark themes too
            return None
        if role == Qt.ItemDataRole.FontRole:
            if (row.checked and not row.ok) or (column == 11 and row.weights == "re-initialised"):
                font = QFont()
                font.setBold(True)
                return font
            if not row.checked:
                font = QFont()
                font.setItalic(True)
                return font
        return None

    def _tooltip(self, row: LiveRow, column: int) -> str | None:
        if row.checked and not row.ok:
            return f"{row.name} ({row.type}): {row.reason}"
        if not row.checked:
            return "Fix the red layer above first; this one is checked once the layers before it are valid."
        status = {
            "new": "Inserted since the model was loaded.",
            "changed": "Changed since the model was loaded.",
        }.get(row.status, "")
        if row.locked:
            status = "Fixed part of the model: shown and checked, not editable."
        if column == 5 and row.formula:
            return row.formula
        if column == 4 and row.input_shape is not None:
            was = ""
            if row.base_output_shape is not None and row.base_output_shape != row.output_shape:
                was = f" (was {_shape(row.base_output_shape)})"
            return f"{_shape(row.input_shape)} → {_shape(row.output_shape)}{was}"
        if column in (6, 8) and row.status != "new":
            base = row.base_params if column == 6 else row.base_macs
            value = row.params if column == 6 else row.macs
            if base is not None and value is not None:
                return f"{base:,} before editing → {value:,} now ({delta_text(value, base)})"
        if column in (9, 10) and row.rf is not None:
            size, stride, padding = rf_cells(row.rf)
            if size == "global":
                return "Every unit sees the whole input."
            return f"Receptive field {size}, stride {stride}, padding {padding} (in input pixels)"
        if column == 11:
            return {
                "kept": "Apply keeps this layer's weights.",
                "re-initialised": "The last Apply gave this layer fresh (untrained) weights.",
                "new on Apply": "Changed or new: Apply gives it fresh (untrained) weights.",
            }.get(row.weights)
        if column == 7 and row.macs:
            return "Multiply-accumulates for one input picture."
        return status or None


_HEADER_TIPS = {
    "Settings": "Kernel, stride (s), padding (p), dilation (d), groups (g) ...",
    "Output": "Output shape C×H×W (without the batch)",
    "Params": "Parameters of the layer; the tooltip spells out the formula",
    "Δ params": "Change against the model as it was loaded",
    "MACs": "Multiply-accumulates for one input",
    "Δ MACs": "Change against the model as it was loaded",
    "RF": "Receptive field size in input pixels (height×width)",
    "RF stride": "Distance in input pixels between neighbouring units",
    "Weights": "What Apply does with the layer's weights",
}


class _TintedSelection(QStyledItemDelegate):
    """Selected rows are tinted, not painted over, so red, new and changed rows keep their colour."""

    TINT = QColor(40, 110, 220)

    def initStyleOption(self, option: QStyleOptionViewItem, index: Index) -> None:
        super().initStyleOption(option, index)
        if not option.state & QStyle.StateFlag.State_Selected:
            return
        brush = option.backgroundBrush
        base = brush.color() if brush.style() != Qt.BrushStyle.NoBrush else QColor("white")
        a = 0.3
        tinted = QColor(
            round(base.red() * (1 - a) + self.TINT.red() * a),
            round(base.green() * (1 - a) + self.TINT.green() * a),
            round(base.blue() * (1 - a) + self.TINT.blue() * a),
        )
        option.backgroundBrush = QBrush(tinted)
        if index.data(Qt.ItemDataRole.ForegroundRole) is None:
            option.palette.setColor(option.palette.ColorRole.Text, INK)
        option.state &= ~QStyle.StateFlag.State_Selected
