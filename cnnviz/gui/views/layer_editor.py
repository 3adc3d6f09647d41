"""The layer editor dock: change a model's layers and watch shapes, parameters, MACs and receptive fields follow.

Everything it computes comes from :mod:`cnnviz.core.editing` (an :class:`EditSession` of immutable snapshots);
this module draws the live table, offers the controls and keeps the undo stack (each command holds the
snapshot before and after). Table updates run on the GUI thread because they take a few milliseconds; building
the edited model with real weights (Apply) runs on a background thread.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QBrush, QColor, QFont, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.editing import (
    ACTIVATION_TYPES,
    ADAPTIVE_TYPES,
    DROPOUT_TYPES,
    INFERRED,
    INSERTABLE,
    POOLING_TYPES,
    ApplyResult,
    Architecture,
    EditSession,
    LiveRow,
    LiveTable,
    NotEditableError,
    argument_default,
    delta_text,
    dense_row_text,
)
from cnnviz.core.errors import CnnvizError, describe_error
from cnnviz.core.formatting import rf_cells, shape_text
from cnnviz.gui.workers import JobRunner

__all__ = ["LayerEditorDock", "LiveTableModel", "PairEdit"]

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


def _compact(n: int) -> str:
    """12,345 -> '12.3k'; exact below 10,000."""
    if n < 10_000:
        return f"{n:,}"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.3g}{unit}" if value < 1000 else f"{value:,.0f}{unit}"
    return str(n)


def _count(value: int | None) -> str:
    return f"{value:,}" if value else ("0" if value == 0 else "")


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
            return _count(row.params)
        if column == 6:
            return self._delta(row.params, row.base_params, row.status)
        if column == 7:
            return _count(row.macs)
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
            return f"+{_compact(value)}" if value else ""
        if base is None or value == base:
            return ""
        diff = value - base
        sign = "+" if diff > 0 else "−"
        text = f"{sign}{_compact(abs(diff))}"
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


# --------------------------------------------------------------------------------------------------------------
# Editors for one argument


class PairEdit(QWidget):
    """Two spin boxes (height, width) with a link that keeps them equal; emits ``valueChanged((h, w))``.

    With ``none_text`` the lowest value (``minimum - 1``) means None (e.g. a pooling stride equal to the kernel).
    """

    valueChanged = Signal(object)

    def __init__(
        self,
        minimum: int,
        maximum: int,
        value: tuple[int, int] | None,
        *,
        none_text: str | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.none_text = none_text
        low = minimum - 1 if none_text else minimum
        self.h = QSpinBox()
        self.w = QSpinBox()
        for spin, axis in ((self.h, "height"), (self.w, "width")):
            spin.setRange(low, maximum)
            spin.setToolTip(axis)
            spin.setKeyboardTracking(True)
            spin.setAccelerated(True)
            if none_text:
                spin.setSpecialValueText(none_text)
        self.link = QToolButton()
        self.link.setText("=")
        self.link.setCheckable(True)
        self.link.setToolTip("Keep height and width equal")
        self.link.setAutoRaise(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.h, 1)
        times = QLabel("×")
        layout.addWidget(times)
        layout.addWidget(self.w, 1)
        layout.addWidget(self.link)
        self.set_value(value)
        self.link.setChecked(self.h.value() == self.w.value())
        self.h.valueChanged.connect(lambda v: self._changed(self.h, self.w, v))
        self.w.valueChanged.connect(lambda v: self._changed(self.w, self.h, v))

    def set_value(self, value: tuple[int, int] | None) -> None:
        """Show ``value`` without emitting."""
        if value is None:
            value = (self.h.minimum(), self.w.minimum())
        for spin, v in ((self.h, value[0]), (self.w, value[1])):
            spin.blockSignals(True)
            spin.setValue(int(v))
            spin.blockSignals(False)

    def value(self) -> tuple[int, int] | None:
        if self.none_text and self.h.value() == self.h.minimum():
            return None
        return (self.h.value(), self.w.value())

    def _changed(self, source: QSpinBox, other: QSpinBox, value: int) -> None:
        if self.link.isChecked() and other.value() != value:
            other.blockSignals(True)
            other.setValue(value)
            other.blockSignals(False)
        if self.none_text and (self.h.value() == self.h.minimum()) != (
            self.w.value() == self.w.minimum()
        ):
            # None is one value for both axes.
            other.blockSignals(True)
            other.setValue(
                source.value() if source.value() != source.minimum() else other.minimum()
            )
            other.blockSignals(False)
        self.valueChanged.emit(self.value())


def _as_pair(value: Any) -> tuple[int, int] | None:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, tuple | list):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _from_pair(pair: tuple[int, int] | None) -> Any:
    if pair is None:
        return None
    return pair[0] if pair[0] == pair[1] else [pair[0], pair[1]]


# --------------------------------------------------------------------------------------------------------------
# Undo


class _EditCommand(QUndoCommand):
    """One edit: the snapshots before and after. Consecutive changes of one argument merge into one step."""

    MERGE_ID = 4711

    def __init__(
        self,
        dock: LayerEditorDock,
        text: str,
        before: Architecture,
        after: Architecture,
        merge_key: tuple[Any, ...] | None = None,
        select: int | None = None,
    ):
        super().__init__(text)
        self.dock = dock
        self.before = before
        self.after = after
        self.merge_key = merge_key
        self.select_before = dock._selected_uid
        self.select_after = select if select is not None else dock._selected_uid

    def id(self) -> int:
        return self.MERGE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, _EditCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.select_after = other.select_after
        return True

    def redo(self) -> None:
        self.dock._goto(self.after, self.select_after)

    def undo(self) -> None:
        self.dock._goto(self.before, self.select_before)


# --------------------------------------------------------------------------------------------------------------
# The dock


class LayerEditorDock(QDockWidget):
    """Edit the current model's layers with a live table; Apply hands the edited model to the app.

    Interface: :meth:`set_model` (a LoadedModel), signals ``applied(LoadedModel)`` and ``status(str)``.
    """

    applied = Signal(object)
    status = Signal(str)

    def __init__(self, parent: QWidget | None = None, title: str = "Layer editor"):
        super().__init__(title, parent)
        self.setObjectName("layer_editor_dock")
        self.session: EditSession | None = None
        self.model: Any = None
        self._applied_model: Any = None
        self._selected_uid: int | None = None
        self._form_key: tuple[Any, ...] | None = None
        self.editors: dict[str, QWidget] = {}
        self.runner = JobRunner(self)
        self._last_dir = str(Path.home())
        self.undo_stack = QUndoStack(self)

        body = QWidget()
        self.setWidget(body)
        self.header = QLabel("Load a model to edit its layers.")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.PlainText)

        self._build_actions()
        self.toolbar = self._build_toolbar()

        self.table_model = LiveTableModel(self)
        self.view = QTableView()
        self.view.setModel(self.table_model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        self.view.selectionModel().currentRowChanged.connect(self._row_changed)
        self.view.addAction(self.delete_action)
        self.view.setItemDelegate(_TintedSelection(self.view))

        self.form_box = QGroupBox("Layer")
        self.form = QFormLayout(self.form_box)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.form_box.setMinimumWidth(280)

        form_scroll = QScrollArea()
        form_scroll.setWidget(self.form_box)
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        form_scroll.setMinimumWidth(self.form_box.minimumWidth() + 12)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(form_scroll)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter

        self.totals = QLabel("")
        self.totals.setTextFormat(Qt.TextFormat.PlainText)
        self.totals.setWordWrap(True)
        self.totals.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dense = QLabel("")
        self.dense.setTextFormat(Qt.TextFormat.PlainText)
        self.dense.setWordWrap(True)
        self.dense.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message = QLabel("")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(
            f"QLabel {{ color: {ERROR_FG.name()}; background: {ERROR_BG.name()}; padding: 3px; }}"
        )
        self.message.setVisible(False)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for label in (self.totals, self.dense, self.header):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(3)
        layout.addWidget(self.header)
        layout.addWidget(self.toolbar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.totals)
        layout.addWidget(self.dense)

        self.undo_stack.cleanChanged.connect(lambda _clean: self._update_actions())
        self.undo_stack.indexChanged.connect(lambda _i: self._update_actions())
        self._show_form(None)
        self._update_actions()

    # ----------------------------------------------------------------------------------------------------------
    # Construction

    def _build_actions(self) -> None:
        stack = self.undo_stack
        # Fixed texts (the stack's own actions put the command text in the label, which makes the toolbar jump).
        self.undo_action = QAction("Undo", self)
        self.undo_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
        self.undo_action.triggered.connect(stack.undo)
        self.undo_action.setEnabled(False)
        stack.canUndoChanged.connect(self.undo_action.setEnabled)
        stack.undoTextChanged.connect(lambda text: self.undo_action.setToolTip(f"Undo {text}"))
        self.redo_action = QAction("Redo", self)
        self.redo_action.setShortcuts(
            [QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)]
        )
        self.redo_action.triggered.connect(stack.redo)
        self.redo_action.setEnabled(False)
        stack.canRedoChanged.connect(self.redo_action.setEnabled)
        stack.redoTextChanged.connect(lambda text: self.redo_action.setToolTip(f"Redo {text}"))

        def action(text: str, slot: Any, tip: str, shortcut: str | None = None) -> QAction:
            act = QAction(text, self)
            act.setToolTip(tip)
            act.triggered.connect(slot)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            return act

        self.insert_action = action(
            "Insert", self.insert_selected_kind, "Insert the chosen layer after the selected one"
        )
        self.delete_action = action(
            "Delete", self.delete_selected, "Delete the selected layer", "Del"
        )
        self.up_action = action("Up", lambda: self.move_selected(-1), "Move the layer up", "Alt+Up")
        self.down_action = action(
            "Down", lambda: self.move_selected(1), "Move the layer down", "Alt+Down"
        )
        self.open_action = action(
            "Open…", lambda: self.open_architecture(), "Open an architecture (spec JSON)"
        )
        self.save_action = action(
            "Save…", lambda: self.save_architecture(), "Save the architecture as spec JSON"
        )
        self.revert_action = action(
            "Revert", self.revert, "Go back to the model as it was loaded (undoable)"
        )
        self.apply_action = action(
            "Apply",
            self.apply,
            "Build the edited model: unchanged layers keep their weights, changed ones start afresh",
            "Ctrl+Return",
        )
        for act in (
            self.undo_action,
            self.redo_action,
            self.delete_action,
            self.up_action,
            self.down_action,
            self.apply_action,
        ):
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(act)

    def _build_toolbar(self) -> QToolBar:
        bar = QToolBar()
        # Most used first: in a narrow dock the rest folds into the toolbar's overflow menu.
        bar.addAction(self.apply_action)
        apply_button = bar.widgetForAction(self.apply_action)
        if apply_button is not None:
            font = apply_button.font()
            font.setBold(True)
            apply_button.setFont(font)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)
        bar.addSeparator()
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(list(INSERTABLE))
        self.kind_combo.setToolTip("Layer to insert")
        self.kind_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        bar.addWidget(self.kind_combo)
        bar.addAction(self.insert_action)
        bar.addAction(self.delete_action)
        bar.addAction(self.up_action)
        bar.addAction(self.down_action)
        bar.addSeparator()
        bar.addAction(self.revert_action)
        bar.addAction(self.open_action)
        bar.addAction(self.save_action)
        return bar

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        # Narrow (docked beside other views): the settings go under the table instead of beside it.
        orientation = Qt.Orientation.Horizontal if self.width() >= 820 else Qt.Orientation.Vertical
        if self.splitter.orientation() != orientation:
            self.splitter.setOrientation(orientation)
            total = self.width() if orientation == Qt.Orientation.Horizontal else self.height()
            self.splitter.setSizes([int(total * 0.68), int(total * 0.32)])

    # ----------------------------------------------------------------------------------------------------------
    # The model

    def set_model(self, model: Any) -> None:
        """Edit ``model`` (a LoadedModel, or None). The model this dock applied itself keeps its edit history."""
        if model is not None and model is self._applied_model:
            self.model = model
            return
        self.model = model
        self._applied_model = None
        self.undo_stack.clear()
        self._selected_uid = None
        self.session = None
        if model is None:
            self.header.setText("Load a model to edit its layers.")
        else:
            try:
                self.session = EditSession.from_model(model)
            except NotEditableError as exc:
                self.header.setText(f"{exc}.")  # starts with the model's name: keep its spelling
            except CnnvizError as exc:
                self.header.setText(f"{model.name} cannot be edited: {exc}")
        if self.session is not None:
            self.header.setText(self._header_text())
        self.view.setColumnHidden(
            0, self.session is None or self.session.current.family == "spec"
        )  # spec layers are named by their position already
        self._sized = False
        self.splitter.setVisible(self.session is not None)
        self._refresh()

    def _header_text(self) -> str:
        assert self.session is not None
        arch = self.session.current
        name = self.model.name if self.model is not None else "the model"
        if arch.family == "features":
            last = self.session.original.editable_count - 1
            return (
                f"Editing the features of {name} (features.0 to features.{last}). avgpool and the "
                "classifier are fixed (grey rows) and checked against your edits. Apply runs the picture "
                "through the edited model."
            )
        return (
            f"Editing {name}. Select a layer and change it on the right; the table follows as you type "
            "(yellow: changed, green: inserted). Apply runs the picture through the edited model."
        )

    @property
    def table(self) -> LiveTable | None:
        return self.session.table() if self.session is not None else None

    # ----------------------------------------------------------------------------------------------------------
    # Edits (each becomes an undo command)

    def _push(
        self,
        text: str,
        after: Architecture,
        merge_key: tuple[Any, ...] | None = None,
        select: int | None = None,
    ) -> None:
        assert self.session is not None
        before = self.session.current
        if after.layers == before.layers:
            return
        self.undo_stack.push(_EditCommand(self, text, before, after, merge_key, select))

    def _try(self, fn: Any) -> Any:
        try:
            return fn()
        except CnnvizError as exc:
            self._say(str(exc), error=True)
            return None

    def set_param(self, index: int, key: str, value: Any) -> None:
        """Set argument ``key`` of layer ``index`` (None: torch's default), as one undoable step."""
        if self.session is None:
            return
        arch = self.session.current
        after = self._try(lambda: arch.with_param(index, key, value))
        if after is not None:
            layer = arch.layers[index]
            shown = "default" if value is None else value
            self._push(
                f"{arch.name_of(index)}: {key} = {shown}",
                after,
                ("param", layer.uid, key),
                layer.uid,
            )

    def set_type(self, index: int, new_type: str) -> None:
        if self.session is None:
            return
        arch = self.session.current
        after = self._try(lambda: arch.with_type(index, new_type))
        if after is not None:
            self._push(f"{arch.name_of(index)}: {new_type}", after, None, arch.layers[index].uid)

    def insert(self, index: int, kind: str) -> None:
        """Insert ``kind`` (one of INSERTABLE) at position ``index``."""
        if self.session is None:
            return
        session = self.session
        before = session.current
        after = self._try(lambda: session.insert(index, kind))
        if after is None:
            return
        session.goto(before)  # the command moves to `after`, so that undo knows where it came from
        self._push(f"insert {kind}", after, None, after.layers[index].uid)

    def insert_selected_kind(self) -> None:
        if self.session is None:
            return
        row = self.selected_index()
        position = row + 1 if row is not None else self.session.current.editable_count
        position = min(position, self.session.current.editable_count)
        self.insert(position, self.kind_combo.currentText())

    def delete(self, index: int) -> None:
        if self.session is None:
            return
        arch = self.session.current
        after = self._try(lambda: arch.without(index))
        if after is None:
            return
        neighbour = min(index, len(after.layers) - 1)
        select = after.layers[neighbour].uid if neighbour >= 0 else None
        self._push(f"delete {arch.name_of(index)} ({arch.layers[index].type})", after, None, select)

    def delete_selected(self) -> None:
        row = self.selected_index()
        if row is not None:
            self.delete(row)

    def move(self, index: int, offset: int) -> None:
        if self.session is None:
            return
        arch = self.session.current
        after = self._try(lambda: arch.moved(index, offset))
        if after is not None:
            uid = arch.layers[index].uid
            self._push(
                f"move {arch.name_of(index)} {'up' if offset < 0 else 'down'}", after, None, uid
            )

    def move_selected(self, offset: int) -> None:
        row = self.selected_index()
        if row is not None:
            self.move(row, offset)

    def revert(self) -> None:
        if self.session is not None:
            self._push("revert to the loaded model", self.session.original)

    def _goto(self, arch: Architecture, select: int | None) -> None:
        """Undo commands land here: show ``arch`` and select the layer with uid ``select``."""
        assert self.session is not None
        self.session.goto(arch)
        if select is not None:
            self._selected_uid = select
        self._refresh()

    # ----------------------------------------------------------------------------------------------------------
    # Files

    def save_architecture(self, path: str | Path | None = None) -> Path | None:
        """Save the current architecture as spec JSON (asks for a file when ``path`` is None)."""
        from cnnviz.core.spec import save_spec

        if self.session is None:
            return None
        if path is None:
            name = str(self.session.current.meta.get("name") or "architecture")
            suggestion = str(Path(self._last_dir) / (_file_stem(name) + ".json"))
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save architecture", suggestion, "Architecture spec (*.json)"
            )
            if not chosen:
                return None
            path = chosen if chosen.lower().endswith(".json") else chosen + ".json"
        target = Path(path)
        try:
            save_spec(self.session.current.spec(), target)
        except CnnvizError as exc:
            self._say(str(exc), error=True)
            return None
        self._last_dir = str(target.parent)
        note = "" if self.session.table().ok else " (it still has an invalid layer)"
        self._say(f"Saved the architecture to {target}{note}.")
        return target

    def open_architecture(self, path: str | Path | None = None) -> bool:
        """Open a spec JSON as an undoable edit of the current model (asks for a file when ``path`` is None)."""
        from cnnviz.core.spec import load_spec

        if self.session is None:
            return False
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(
                self, "Open architecture", self._last_dir, "Architecture spec (*.json)"
            )
            if not chosen:
                return False
            path = chosen
        session = self.session
        before = session.current
        try:
            after = session.replace_spec(load_spec(path))
        except CnnvizError as exc:
            self._say(str(exc), error=True)
            return False
        finally:
            session.goto(before)
        self._last_dir = str(Path(path).parent)
        self._push(f"open {Path(path).name}", after)
        self._say(f"Opened {Path(path).name}.")
        return True

    # ----------------------------------------------------------------------------------------------------------
    # Apply

    def apply(self) -> bool:
        """Build the edited model in the background; ``applied`` is emitted when it is ready."""
        session = self.session
        if session is None:
            return False
        table = session.table()
        if not table.ok:
            self._say(f"Cannot apply: {table.error}", error=True)
            return False
        self.apply_action.setEnabled(False)
        self._say("Building the edited model…")
        build = session.builder()  # what is shown now, even if editing goes on
        self.runner.submit(
            "apply",
            lambda _token: build(),
            on_done=lambda result: self._applied(session, result),
            on_error=self._apply_failed,
            label="Building the edited model",
        )
        return True

    def _applied(self, session: EditSession, result: ApplyResult) -> None:
        if session is not self.session:
            return  # another model was loaded meanwhile
        session.commit(result)
        self._applied_model = result.model
        self.model = result.model
        self._refresh()
        fresh = result.reinitialised_names
        kept = len(result.kept)
        if fresh:
            text = (
                f"Applied: {', '.join(fresh)} got fresh weights; {kept} layer"
                f"{'s' if kept != 1 else ''} kept theirs."
            )
        else:
            text = f"Applied: every layer with weights kept them ({kept})."
        self._say(text)
        self.applied.emit(result.model)

    def _apply_failed(self, exc: BaseException) -> None:
        self._say(f"Could not apply: {describe_error(exc)}", error=True)
        self._update_actions()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Wait for background work (tests, shutdown)."""
        return self.runner.wait(timeout_ms)

    def shutdown(self) -> None:
        self.runner.shutdown(30000)

    # ----------------------------------------------------------------------------------------------------------
    # Showing

    def _say(self, text: str, error: bool = False) -> None:
        self.status.emit(text)
        if error:
            self.message.setText(text)
            self.message.setVisible(True)

    def selected_index(self) -> int | None:
        if self.session is None or self._selected_uid is None:
            return None
        return self.session.current.index_of(self._selected_uid)

    def select(self, index: int) -> None:
        """Select row ``index`` (and show its settings)."""
        self.view.selectRow(index)
        self.view.setCurrentIndex(self.table_model.index(index, 1))

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row = self.table_model.live_row(current.row()) if current.isValid() else None
        uid = row.uid if row is not None else None
        if uid != self._selected_uid:
            self._selected_uid = uid
            self._show_form(row)
            self._show_dense()
            self._update_actions()

    def _refresh(self) -> None:
        table = self.table
        self.table_model.set_table(table)
        self.view.clearSpans()
        if table is None:
            self.totals.setText("")
            self.dense.setText("")
            self.message.setVisible(False)
            self._show_form(None)
            self._update_actions()
            return
        columns = len(LiveTableModel.COLUMNS) - LiveTableModel.OUTPUT_COLUMN
        for row in table.rows:
            if not row.ok:
                self.view.setSpan(row.index, LiveTableModel.OUTPUT_COLUMN, 1, columns)
        if not getattr(self, "_sized", False) and table.rows:
            self.view.resizeColumnsToContents()
            for column, width in ((3, 90), (4, 90), (6, 120), (8, 120)):
                self.view.setColumnWidth(column, max(self.view.columnWidth(column), width))
            self._sized = True
        text = table.totals_text()
        if table.removed:
            text += f" · deleted: {', '.join(table.removed)}"
        self.totals.setText(text)
        if table.error:
            self.message.setText(table.error)
            self.message.setVisible(True)
        else:
            self.message.setVisible(False)
        index = self.selected_index()
        if index is None and table.rows:
            index = 0
            self._selected_uid = table.rows[0].uid
        if index is not None:
            current = self.view.currentIndex()
            if not current.isValid() or current.row() != index:
                self.view.blockSignals(True)
                self.view.selectionModel().blockSignals(True)
                self.view.selectRow(index)
                self.view.setCurrentIndex(self.table_model.index(index, 1))
                self.view.selectionModel().blockSignals(False)
                self.view.blockSignals(False)
            self.view.scrollTo(self.table_model.index(index, 1))
            self._show_form(table.rows[index])
        else:
            self._show_form(None)
        self._show_dense()
        self._update_actions()

    def _show_dense(self) -> None:
        table = self.table
        if table is None:
            self.dense.setText("")
            return
        lines = [table.dense.text()]
        index = self.selected_index()
        if index is not None and index < len(table.rows):
            line = dense_row_text(table.rows[index])
            if line:
                lines.append(line)
        self.dense.setText("\n".join(lines))

    def _update_actions(self) -> None:
        session = self.session
        editable = session is not None
        index = self.selected_index()
        arch = session.current if session is not None else None
        row_editable = arch is not None and index is not None and not arch.layers[index].locked
        self.kind_combo.setEnabled(editable)
        self.insert_action.setEnabled(editable)
        self.delete_action.setEnabled(row_editable)
        self.up_action.setEnabled(row_editable and index is not None and index > 0)
        self.down_action.setEnabled(
            row_editable
            and arch is not None
            and index is not None
            and index < arch.editable_count - 1
        )
        self.open_action.setEnabled(editable)
        self.save_action.setEnabled(editable)
        self.revert_action.setEnabled(
            editable and arch is not None and session is not None and arch != session.original
        )
        table = self.table
        self.apply_action.setEnabled(bool(table is not None and table.ok and not self.runner.busy))
        if table is not None and not table.ok:
            self.apply_action.setToolTip(f"Fix the red layer first: {table.error}")
        else:
            self.apply_action.setToolTip(
                "Build the edited model: unchanged layers keep their weights, changed ones start afresh"
            )

    # ----------------------------------------------------------------------------------------------------------
    # The form for the selected layer

    def _clear_form(self) -> None:
        # The combo that changed a layer's type may be the one emitting now: delete its row later, not here.
        while self.form.rowCount():
            taken = self.form.takeRow(0)
            for item in (taken.labelItem, taken.fieldItem):
                widget = item.widget() if item is not None else None
                if widget is not None:
                    widget.hide()
                    widget.deleteLater()
        self.editors = {}

    def _show_form(self, row: LiveRow | None) -> None:
        session = self.session
        if row is None or session is None:
            self._clear_form()
            self._form_key = None
            self.form_box.setTitle("Layer")
            return
        layer = session.current.layers[row.index]
        key = (layer.uid, layer.type, row.index)
        if key == self._form_key:
            self._update_form(row)
            return
        self._clear_form()
        self._form_key = key
        self.form_box.setTitle(f"{row.name} · {row.type}")
        if layer.locked:
            note = QLabel(
                "This layer belongs to the fixed part of the model: it is checked against your edits "
                "but cannot be changed."
            )
            note.setWordWrap(True)
            self.form.addRow(note)
            return
        self._build_editors(row, dict(layer.config))
        self._update_form(row)

    def _value(self, config: dict[str, Any], layer_type: str, key: str) -> Any:
        if key in config:
            return config[key]
        default = argument_default(layer_type, key)
        return None if default is _EMPTY else default

    def _build_editors(self, row: LiveRow, config: dict[str, Any]) -> None:
        t = row.type
        index = row.index
        value = lambda key: self._value(config, t, key)  # noqa: E731 - short local helper

        def int_spin(key: str, label: str, low: int, high: int, tip: str = "") -> None:
            spin = QSpinBox()
            spin.setRange(low, high)
            spin.setAccelerated(True)
            spin.setValue(int(value(key) or low))
            if tip:
                spin.setToolTip(tip)
            spin.valueChanged.connect(lambda v: self.set_param(self._row_of(index), key, int(v)))
            self.form.addRow(label, spin)
            self.editors[key] = spin

        def pair(key: str, label: str, low: int, high: int, none_text: str | None = None) -> None:
            edit = PairEdit(low, high, _as_pair(value(key)), none_text=none_text)
            edit.valueChanged.connect(
                lambda v: self.set_param(self._row_of(index), key, _from_pair(v))
            )
            self.form.addRow(label, edit)
            self.editors[key] = edit

        def check(key: str, label: str, tip: str = "") -> None:
            box = QCheckBox()
            box.setChecked(bool(value(key)))
            if tip:
                box.setToolTip(tip)
            box.toggled.connect(lambda on: self.set_param(self._row_of(index), key, bool(on)))
            self.form.addRow(label, box)
            self.editors[key] = box

        def real(key: str, label: str, low: float, high: float, step: float) -> None:
            spin = QDoubleSpinBox()
            spin.setRange(low, high)
            spin.setDecimals(3)
            spin.setSingleStep(step)
            spin.setValue(float(value(key) if value(key) is not None else low))
            spin.valueChanged.connect(
                lambda v: self.set_param(self._row_of(index), key, round(float(v), 6))
            )
            self.form.addRow(label, spin)
            self.editors[key] = spin

        def kind(label: str, choices: tuple[str, ...]) -> None:
            combo = QComboBox()
            combo.addItems(list(choices))
            combo.setCurrentText(t)
            combo.currentTextChanged.connect(lambda name: self.set_type(self._row_of(index), name))
            self.form.addRow(label, combo)
            self.editors["type"] = combo

        def inferred(label: str) -> None:
            note = QLabel("")
            note.setTextFormat(Qt.TextFormat.PlainText)
            note.setStyleSheet(f"color: {DIM_FG.name()};")
            self.form.addRow(label, note)
            self.editors["inferred"] = note

        if t in ("Conv2d", "ConvTranspose2d"):
            inferred("In channels")
            int_spin("out_channels", "Out channels", 1, 8192)
            pair("kernel_size", "Kernel", 1, 99)
            pair("stride", "Stride", 1, 64)
            padding = config.get("padding")
            pair(
                "padding",
                f'Padding (now "{padding}")' if isinstance(padding, str) else "Padding",
                0,
                99,
            )
            pair("dilation", "Dilation", 1, 64)
            if t == "ConvTranspose2d":
                pair("output_padding", "Output padding", 0, 63)
            int_spin(
                "groups",
                "Groups",
                1,
                8192,
                "Split the channels into groups that do not see each other (groups = channels: depthwise)",
            )
            check("bias", "Bias")
        elif t in POOLING_TYPES:
            kind("Pooling", POOLING_TYPES)
            pair("kernel_size", "Size", 1, 99)
            pair("stride", "Stride", 1, 64, none_text="= size")
            pair("padding", "Padding", 0, 49)
            check("ceil_mode", "Ceil mode", "Round the output size up instead of down")
        elif t in ADAPTIVE_TYPES:
            kind("Pooling", ADAPTIVE_TYPES)
            pair("output_size", "Output size", 1, 512)
        elif t in ACTIVATION_TYPES:
            kind("Activation", ACTIVATION_TYPES)
            if t == "LeakyReLU":
                real("negative_slope", "Negative slope", 0.0, 1.0, 0.01)
            elif t == "ELU":
                real("alpha", "Alpha", 0.0, 10.0, 0.1)
        elif t in DROPOUT_TYPES:
            kind("Dropout", DROPOUT_TYPES)
            real("p", "Drop probability", 0.0, 1.0, 0.05)
        elif t in ("BatchNorm2d", "BatchNorm1d"):
            inferred("Features")
            check("affine", "Learnable scale/shift")
        elif t == "Linear":
            inferred("In features")
            int_spin("out_features", "Out features", 1, 1_000_000)
            check("bias", "Bias")
        else:
            note = QLabel(
                _NO_FORM.get(t, "No settings to edit here; change them in the spec JSON.")
            )
            note.setWordWrap(True)
            self.form.addRow(note)

    def _row_of(self, index: int) -> int:
        """The row the form edits now (the form is rebuilt when its layer moves, so this is its index)."""
        current = self.selected_index()
        return current if current is not None else index

    def _update_form(self, row: LiveRow) -> None:
        """Show the current values (after undo, or propagation) without emitting edits."""
        assert self.session is not None
        layer = self.session.current.layers[row.index]
        config = dict(layer.config)
        for key, widget in self.editors.items():
            widget.blockSignals(True)
            try:
                if key == "inferred":
                    assert isinstance(widget, QLabel)
                    inferred_key = INFERRED.get(row.type)
                    number = (
                        row.layer.in_channels
                        if row.layer is not None and row.layer.in_channels is not None
                        else (row.input_shape[0] if row.input_shape else None)
                    )
                    if inferred_key and inferred_key in config:
                        widget.setText(f"{config[inferred_key]} (set in the spec)")
                    else:
                        widget.setText(
                            f"{number} (from the layer before)" if number is not None else "?"
                        )
                elif key == "type":
                    assert isinstance(widget, QComboBox)
                    widget.setCurrentText(row.type)
                else:
                    value = self._value(config, row.type, key)
                    if isinstance(widget, PairEdit):
                        widget.set_value(_as_pair(value))
                    elif isinstance(widget, QCheckBox):
                        widget.setChecked(bool(value))
                    elif isinstance(widget, QDoubleSpinBox):
                        widget.setValue(float(value) if value is not None else widget.minimum())
                    elif isinstance(widget, QSpinBox):
                        widget.setValue(int(value) if value is not None else widget.minimum())
            finally:
                widget.blockSignals(False)


_EMPTY = inspect.Parameter.empty

_NO_FORM = {
    "Flatten": "Flattens C×H×W into one vector of C·H·W values (for the Linear layers after it).",
    "Identity": "Passes its input through unchanged.",
    "Softmax": "Turns scores into probabilities; it has no settings to edit here.",
}


def _file_stem(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    return keep.strip("-.") or "architecture"
