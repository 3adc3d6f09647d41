"""The layer editor dock: change a model's layers and watch shapes, parameters, MACs and receptive fields follow.

Everything it computes comes from :mod:`cnnviz.core.editing` (an :class:`EditSession` of immutable snapshots);
this module draws the live table, offers the controls and keeps the undo stack (each command holds the
snapshot before and after). Table updates run on the GUI thread because they take a few milliseconds; building
the edited model with real weights (Apply) runs on a background thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.editing import (
    INSERTABLE,
    ApplyResult,
    Architecture,
    EditSession,
    LiveTable,
    NotEditableError,
    dense_row_text,
)
from cnnviz.core.errors import CnnvizError, describe_error
from cnnviz.gui.tools.editor.form import FormMixin
from cnnviz.gui.tools.editor.graph_dock import GraphEditor
from cnnviz.gui.tools.editor.model import ERROR_BG, ERROR_FG, LiveTableModel, _TintedSelection
from cnnviz.gui.workers import JobRunner


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
        # The step is named by the value it ends with (typing 4 then 8 commits 48, not 4).
        self.setText(other.text())
        return True

    def redo(self) -> None:
        self.dock._goto(self.after, self.select_after)

    def undo(self) -> None:
        self.dock._goto(self.before, self.select_before)


# --------------------------------------------------------------------------------------------------------------
# The dock


class LayerEditorDock(FormMixin, QDockWidget):
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
        # Keystrokes in one box merge into one undo step until the edit is committed (Enter, leaving the
        # box) or the history moves (undo/redo); each commit starts a new step.
        self._edit_epoch = 0
        self._pushing = False

        # Two editors: this one for sequential models, the graph editor for any other traceable network.
        body = QWidget()
        self.pages = QStackedWidget()
        self.pages.addWidget(body)
        self.graph = GraphEditor()
        self.graph.applied.connect(self._graph_applied)
        self.graph.status.connect(self.status)
        self.pages.addWidget(self.graph)
        self.setWidget(self.pages)
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
        # What the last Apply did stays here: the status bar's line is soon replaced by the app's own.
        self.notice = QLabel("")
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setStyleSheet("QLabel { background: #e6f2e6; color: #1b4d1b; padding: 3px; }")
        self.notice.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.notice.setVisible(False)
        for label in (self.totals, self.dense, self.header):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(3)
        layout.addWidget(self.header)
        layout.addWidget(self.toolbar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.notice)
        layout.addWidget(self.totals)
        layout.addWidget(self.dense)

        self.undo_stack.cleanChanged.connect(lambda _clean: self._update_actions())
        self.undo_stack.indexChanged.connect(self._history_moved)
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
            self.graph.keep_model(model)
            return
        self.model = model
        self._applied_model = None
        graph = False
        self.notice.clear()
        self.notice.setVisible(False)
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
                graph = self._use_graph(model)
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
        self.pages.setCurrentIndex(1 if graph else 0)
        if not graph:
            self.graph.release()

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
        self._pushing = True
        try:
            self.undo_stack.push(_EditCommand(self, text, before, after, merge_key, select))
        finally:
            self._pushing = False

    def commit_edit(self) -> None:
        """End the current typing: the next change of the same argument is a new undo step."""
        self._edit_epoch += 1

    def _history_moved(self, _index: int) -> None:
        if not self._pushing:
            self.commit_edit()  # after undo/redo, typing again must not merge into an older step
        self._update_actions()

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
                ("param", layer.uid, key, self._edit_epoch),
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

    def move_layer(self, index: int, offset: int) -> None:
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
            self.move_layer(row, offset)

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
        from cnnviz.core.models.spec import save_spec

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
        from cnnviz.core.models.spec import load_spec

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
        self.notice.setText(text)
        self.notice.setVisible(True)
        self.applied.emit(result.model)
        # After the model is handed over, so that this line, not the app's "Loaded ...", is the last word.
        self._say(text)

    def _apply_failed(self, exc: BaseException) -> None:
        self._say(f"Could not apply: {describe_error(exc)}", error=True)
        self._update_actions()

    def _use_graph(self, model: Any) -> bool:
        """Edit ``model`` in the graph editor; False (with the reason in the header) when it cannot be traced."""
        try:
            self.graph.set_model(model)
        except CnnvizError as exc:
            text = str(exc).rstrip(".")
            self.header.setText(
                f"{text}." if text.startswith(model.name) else f"{model.name}: {text}."
            )
            return False
        return True

    def _graph_applied(self, model: Any) -> None:
        self._applied_model = self.model = model
        self.notice.setText(self.graph.notice.text())  # the window reads the summary of Apply here
        self.applied.emit(model)

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Wait for background work (tests, shutdown)."""
        return self.runner.wait(timeout_ms) and self.graph.wait(timeout_ms)

    def shutdown(self) -> None:
        self.runner.shutdown(30000)
        self.graph.shutdown()

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
        deleted = self.deleted_layers()
        if deleted:
            text += f" · deleted: {', '.join(deleted)}"
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

    def deleted_layers(self) -> list[str]:
        """The layers of the baseline that are gone, by what they were: ``"Conv2d (was 2)"``.

        Named by their type and old name, since a current row may carry the same name now (spec rows are
        named by position).
        """
        session = self.session
        if session is None:
            return []
        present = {layer.uid for layer in session.current.layers}
        return [
            f"{row.type} (was {row.name})"
            for row in session.baseline.rows
            if row.uid not in present
        ]

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


def _file_stem(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    return keep.strip("-.") or "architecture"
