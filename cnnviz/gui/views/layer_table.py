"""The layer list (a tree of every captured layer) and the per-layer table (a model over Summary rows).

The table sorts by any column (numbers as numbers; the Layer column in execution order) with the totals row kept
last, shows each layer's share of the parameters and MACs, and fills its dock.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTableView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.present.tables import rf_cells
from cnnviz.core.present.view import layer_label
from cnnviz.core.text import pair as pair_text
from cnnviz.core.text import shape as shape_text
from cnnviz.gui.views.elided import ElidedLabel

__all__ = ["LayerListView", "LayerTableView", "SummaryTableModel"]

Index = QModelIndex | QPersistentModelIndex
NAME_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2


def _parent_key(name: str, containers: set[str]) -> str | None:
    base = name.split("@", 1)[0]
    parts = base.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in containers and prefix != name:
            return prefix
    return None


class LayerListView(QWidget):
    """Every layer the capture returned, nested by container, with type and output shape; a filter box on top."""

    layerSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers (name or type)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Layer", "Type", "Output"])
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(12)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setStretchLastSection(True)
        # Names first: the Layer column is as wide as its names, the others scroll in beside it when narrow.
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.items: dict[str, QTreeWidgetItem] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree, 1)

    def set_layers(
        self, names: list[str], rows: dict[str, Any], shapes: dict[str, tuple[int, ...]]
    ) -> None:
        """Fill the tree: ``names`` in execution order; ``rows`` give types; ``shapes`` actual output shapes."""
        current = self.current()
        self.tree.blockSignals(True)
        self.tree.clear()
        self.items = {}
        containers = {n for n in names if rows.get(n) is not None and rows[n].kind == "container"}
        captioned = 0
        for name in names:
            row = rows.get(name)
            type_name = row.type if row is not None else ""
            parent_key = _parent_key(name, containers)
            parent = self.items.get(parent_key) if parent_key else None
            short = name[len(parent_key) + 1 :] if parent is not None and parent_key else name
            label = layer_label(short, row)
            captioned += label != short
            item = QTreeWidgetItem([label, type_name, shape_text(shapes.get(name))])
            item.setData(0, NAME_ROLE, name)
            item.setToolTip(2, f"output {item.text(2)}")
            item.setToolTip(0, layer_label(name, row) if label != short else name)
            if row is not None and row.kind in ("function", "method"):
                item.setForeground(1, QBrush(QColor(120, 120, 200)))
                item.setToolTip(1, "a functional operation (not a module)")
            if parent is not None:
                parent.addChild(item)
            else:
                self.tree.addTopLevelItem(item)
            self.items[name] = item
        if len(names) <= 80:
            self.tree.expandAll()
        else:
            for i in range(self.tree.topLevelItemCount()):
                top = self.tree.topLevelItem(i)
                if top is not None:
                    top.setExpanded(False)
        # Names such as "4 · Conv2d 3×3, 32" already carry the type: the Type column would repeat them.
        self.tree.setColumnHidden(1, bool(names) and captioned == len(names))
        self.tree.blockSignals(False)
        self._apply_filter(self.filter.text())
        if current in self.items:
            self.set_current(current)

    def set_current(self, name: str | None) -> None:
        """Select ``name`` without emitting layerSelected."""
        item = self.items.get(name) if name else None
        self.tree.blockSignals(True)
        if item is None:
            self.tree.setCurrentItem(None)  # type: ignore[call-overload]
        else:
            parent = item.parent()
            while parent is not None:
                parent.setExpanded(True)
                parent = parent.parent()
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)
        self.tree.blockSignals(False)

    def current(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, NAME_ROLE) if item is not None else None

    def _current_changed(self, item: QTreeWidgetItem | None, _previous: Any) -> None:
        if item is not None:
            self.layerSelected.emit(item.data(0, NAME_ROLE))

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()

        def visit(item: QTreeWidgetItem) -> bool:
            match = (
                not needle
                or needle in item.data(0, NAME_ROLE).lower()
                or needle in item.text(0).lower()
                or needle in item.text(1).lower()
            )
            child_match = False
            for i in range(item.childCount()):
                child = item.child(i)
                if child is not None:
                    child_match = visit(child) or child_match
            item.setHidden(not (match or child_match))
            if needle and child_match:
                item.setExpanded(True)
            return match or child_match

        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top is not None:
                visit(top)


COLUMNS = (
    (
        "Layer",
        "name of the layer (modules as in named_modules(); functional operations as scope.op);\n"
        "sorting by it restores the execution order",
    ),
    ("Type", "module class or operation"),
    ("Output", "output shape without the batch axis (C×H×W); sorts by the number of values"),
    ("Params", "number of parameters (weights and biases)"),
    ("Params %", "share of all the model's parameters"),
    ("MACs", "multiply-accumulate operations for one picture"),
    ("MACs %", "share of all the model's MACs for one picture"),
    ("Kernel", "kernel size"),
    ("Stride", "stride"),
    ("Padding", "padding"),
    ("RF r", "receptive field size r: how many input pixels (per axis) one unit sees"),
    ("RF S", "effective stride S: input pixels between neighbouring units"),
    ("RF P", "effective padding P: unit (y, x) sees input rows y·S − P … y·S − P + r − 1"),
)
NUMERIC = {3, 4, 5, 6}
PARAMS, PARAMS_SHARE, MACS, MACS_SHARE = 3, 4, 5, 6


def share_text(share: float | None) -> str:
    """A percentage as the table shows it: ``12.3 %``, ``<0.1 %`` for tiny non-zero shares."""
    if share is None:
        return ""
    if share == 0:
        return "0 %"
    if 0 < share < 0.05:
        return "<0.1 %"
    return f"{share:.1f} %"


def _numel(shape: Any) -> int:
    if isinstance(shape, tuple) and shape and all(isinstance(d, int) for d in shape):
        n = 1
        for d in shape[1:]:
            n *= d
        return n
    return -1


class SummaryTableModel(QAbstractTableModel):
    """A read-only table over :class:`cnnviz.core.analysis.types.Summary` rows, with a totals row at the end."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.summary: Any = None
        self.rows: list[Any] = []

    def set_summary(self, summary: Any) -> None:
        self.beginResetModel()
        self.summary = summary
        self.rows = list(summary.rows) if summary is not None else []
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt signature
        if parent.isValid() or self.summary is None:
            return 0
        return len(self.rows) + 1

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt signature
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section][1]
        return None

    def is_total(self, row: int) -> bool:
        return row == len(self.rows)

    def layer_at(self, row: int) -> str | None:
        return self.rows[row].name if 0 <= row < len(self.rows) else None

    def row_of(self, name: str) -> int:
        for i, r in enumerate(self.rows):
            if r.name == name:
                return i
        return -1

    def share(self, row: int, column: int) -> float | None:
        """A row's share (percent) of the model's parameters (``PARAMS_SHARE``) or MACs (``MACS_SHARE``)."""
        s = self.summary
        total = s.total_params if column == PARAMS_SHARE else s.total_macs
        if self.is_total(row):
            return 100.0 if total else None
        part = self.rows[row].params if column == PARAMS_SHARE else self.rows[row].macs
        return 100.0 * part / total if total else None

    def value(self, row: int, column: int) -> Any:
        """The raw value of a cell (ints stay ints, shares are percent floats), as the CSV export writes it."""
        if column in (PARAMS_SHARE, MACS_SHARE):
            return self.share(row, column)
        if self.is_total(row):
            s = self.summary
            return {0: "Total", PARAMS: s.total_params, MACS: s.total_macs}.get(column, "")
        r = self.rows[row]
        rf = r.rf
        if column == 0:
            return r.name
        if column == 1:
            return r.type
        if column == 2:
            return shape_text(r.output_shape)
        if column == PARAMS:
            return r.params
        if column == MACS:
            return r.macs
        if column == 7:
            return pair_text(r.kernel_size)
        if column == 8:
            return pair_text(r.stride)
        if column == 9:
            return pair_text(r.padding)
        return rf_cells(rf)[column - 10]

    def sort_key(self, row: int, column: int) -> Any:
        """What a column sorts by: numbers for counts, shares and shapes; the execution order for Layer."""
        if column == 0:
            return row
        if column == 2:
            return _numel(self.rows[row].output_shape) if not self.is_total(row) else -1
        if column >= 10 and not self.is_total(row):
            rf = self.rows[row].rf
            if rf is None:
                return -1.0
            if rf.global_:
                return float("inf")
            values = {10: rf.size, 11: rf.stride, 12: rf.padding}[column]
            return float(max(values)) if values else -1.0
        v = self.value(row, column)
        if column in NUMERIC:
            return float(v) if v is not None else -1.0
        return str(v).lower()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col in (PARAMS_SHARE, MACS_SHARE):
                return share_text(self.share(row, col))
            v = self.value(row, col)
            return f"{v:,}" if isinstance(v, int) else v
        if role == SORT_ROLE:
            return self.sort_key(row, col)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if col in NUMERIC:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and (
            self.is_total(row) or (col == 0 and self.rows[row].kind == "container")
        ):
            font = QFont()
            font.setBold(True)
            return font
        if (
            role == Qt.ItemDataRole.ForegroundRole
            and not self.is_total(row)
            and self.rows[row].kind == "container"
        ):
            return QBrush(QColor(90, 90, 90))
        if role == Qt.ItemDataRole.ToolTipRole and not self.is_total(row):
            r = self.rows[row]
            tips = [f"{layer_label(r.name, r)} ({r.type})"]
            if col > 0:
                cell = self.data(index, Qt.ItemDataRole.DisplayRole)
                if cell:
                    tips.insert(0, f"{COLUMNS[col][0]}: {cell}")
            if r.kind == "container":
                tips.append("a container: parameters and MACs of everything inside it")
            if r.param_formula:
                tips.append(f"parameters = {r.param_formula}")
            if r.rf is not None and r.rf.gated:
                tips.append(
                    "gated: a global gate (squeeze-and-excitation) also makes every unit see the whole input"
                )
            return "\n".join(tips)
        if role == NAME_ROLE and not self.is_total(row):
            return self.rows[row].name
        return None


class _SortProxy(QSortFilterProxyModel):
    """Sorts by :meth:`SummaryTableModel.sort_key`; the totals row stays last in either order."""

    def lessThan(self, left: Index, right: Index) -> bool:  # noqa: N802 - Qt override
        source = self.sourceModel()
        assert isinstance(source, SummaryTableModel)
        if source.is_total(left.row()) or source.is_total(right.row()):
            # Keep Total at the bottom: it is "largest" ascending and "smallest" descending.
            last = source.is_total(left.row())
            return not last if self.sortOrder() == Qt.SortOrder.AscendingOrder else last
        a, b = (
            source.sort_key(left.row(), left.column()),
            source.sort_key(right.row(), right.column()),
        )
        if type(a) is not type(b):
            return str(a) < str(b)
        return bool(a < b)


class LayerTableView(QWidget):
    """The table with totals and, for the selected convolution, its parameter formula with numbers."""

    layerSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = SummaryTableModel(self)
        self.proxy = _SortProxy(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.horizontalHeader().setSortIndicatorClearable(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.horizontalHeader().setHighlightSections(False)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        # The viewport narrows when the vertical scroll bar appears, after this widget's own resize.
        self.table.viewport().installEventFilter(self)
        self.formula = ElidedLabel(" ")
        self.formula.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.totals = ElidedLabel(" ")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.formula)
        layout.addWidget(self.totals)

    def set_summary(self, summary: Any) -> None:
        self.model.set_summary(summary)
        self._fit_columns()
        if summary is not None:
            c, h, w = summary.input_shape
            note = (
                ""
                if summary.traced
                else "   (traced with module hooks: functional operations are not listed)"
            )
            self.totals.set_texts(
                f"{summary.model_name}: input {c}×{h}×{w}, {summary.total_params:,} parameters "
                f"({summary.trainable_params:,} trainable), {summary.total_macs:,} MACs per picture{note}",
                f"{summary.model_name}: {summary.total_params:,} parameters, "
                f"{summary.total_macs:,} MACs{note}",
            )
        self.formula.setText(" ")

    def _fit_columns(self) -> None:
        """Every column as wide as its widest cell (all rows measured); the Layer column takes the room left."""
        header = self.table.horizontalHeader()
        header.setResizeContentsPrecision(-1)
        self.table.resizeColumnsToContents()
        for col in range(self.model.columnCount()):
            self.table.setColumnWidth(col, self.table.columnWidth(col) + 12)
        self._content_width0 = max(self.table.columnWidth(0), 140)
        self._stretch_first()

    def _stretch_first(self) -> None:
        base = getattr(self, "_content_width0", None)
        if base is None:
            return
        others = sum(self.table.columnWidth(c) for c in range(1, self.model.columnCount()))
        room = self.table.viewport().width() - others
        self.table.setColumnWidth(0, max(base, room))

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        self._stretch_first()

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Resize and watched is self.table.viewport():
            self._stretch_first()
        return super().eventFilter(watched, event)

    def showEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(ev)
        self._stretch_first()

    def sort_by(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort as a click on the column's header does."""
        self.table.sortByColumn(column, order)

    def shown_layers(self) -> list[str | None]:
        """The layer of each row as shown, top to bottom (None for the totals row)."""
        return [
            self.model.layer_at(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
            for r in range(self.proxy.rowCount())
        ]

    def set_current(self, name: str | None) -> None:
        """Select ``name``'s row without emitting layerSelected, and show its formula."""
        row = self.model.row_of(name) if name else -1
        self._syncing = True
        try:
            if row < 0:
                self.table.clearSelection()
            else:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                self.table.setCurrentIndex(index)
                self.table.selectRow(index.row())
                self.table.scrollTo(index)
        finally:
            self._syncing = False
        self._show_formula(row)

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if getattr(self, "_syncing", False):
            return
        row = self.proxy.mapToSource(current).row() if current.isValid() else -1
        name = self.model.layer_at(row)
        self._show_formula(row)
        if name is not None:
            self.layerSelected.emit(name)

    def _show_formula(self, row: int) -> None:
        if 0 <= row < len(self.model.rows):
            r = self.model.rows[row]
            label = layer_label(r.name, r)
            what = label if label != r.name else f"{r.name} ({r.type})"
            if r.param_formula:
                self.formula.setText(f"{what} parameters: {r.param_formula}")
                return
            if r.params and r.kind != "container":
                self.formula.setText(f"{what}: {r.params:,} parameters")
                return
        self.formula.setText(" ")

    def keyPressEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        if ev.matches(QKeySequence.StandardKey.Copy):
            self.copy()
            return
        super().keyPressEvent(ev)

    def copy(self) -> str:
        """Copy the whole table as tab-separated text (pastes into spreadsheets)."""
        lines = ["\t".join(c[0] for c in COLUMNS)]
        for prow in range(self.proxy.rowCount()):  # in the order shown
            row = self.proxy.mapToSource(self.proxy.index(prow, 0)).row()
            cells = [self.model.value(row, col) for col in range(len(COLUMNS))]
            lines.append(
                "\t".join(
                    "" if c is None else f"{c:.4g}" if isinstance(c, float) else str(c)
                    for c in cells
                )
            )
        text = "\n".join(lines) + "\n"
        QGuiApplication.clipboard().setText(text)
        return text
