"""The graph editor: edit any traceable network's modules and watch the whole graph's table follow.

Everything it computes comes from :class:`cnnviz.core.editing.graph_session.GraphEditSession`; this module shows
the module tree (the Layers dock's tree), the fields of the selected module, the live table and the explained
error of a broken graph, and keeps the undo stack (each step holds the session's edits before and after).
Building the edited model (Apply) runs on a background thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.editing import INSERTABLE
from cnnviz.core.errors import CnnvizError, describe_error
from cnnviz.gui.tools.editor.graph_form import GraphFieldForm
from cnnviz.gui.tools.editor.graph_state import Snapshot, UndoStep, take_snapshot, totals_text
from cnnviz.gui.tools.editor.graph_table import GraphTableModel
from cnnviz.gui.tools.editor.graph_tree import ModuleTree
from cnnviz.gui.tools.editor.model import ERROR_FG, _TintedSelection
from cnnviz.gui.tools.editor.widgets import ErrorBanner
from cnnviz.gui.workers import JobRunner

REPLACEMENTS: tuple[str, ...] = ("Identity", *(t for t in INSERTABLE if t != "Identity"))
"""What a module can be replaced by (Identity first: the usual "what if this block were gone")."""

_APPLY_TIP = (
    "Build the edited model: modules whose parameter shapes did not change keep their weights"
)


class GraphEditor(QWidget):
    """The graph editor's body: toolbar, module tree, live table, fields of the selected module.

    Interface: :meth:`set_model` (raises ``NotEditableError`` with the reason), signals ``applied(LoadedModel)``
    and ``status(str)``; ``notice`` holds what the last Apply did.
    """

    applied = Signal(object)
    status = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session: Any = None
        self.model: Any = None
        self.selected: str | None = None
        self.snapshot: Snapshot | None = None
        self.runner = JobRunner(self)  # the session's edits, one at a time
        self.apply_runner = JobRunner(self)
        self._serial = 0
        self._received: Snapshot | None = None  # the newest snapshot from the worker, shown or not
        self.undo_stack = QUndoStack(self)
        self._edit_epoch = 0
        self._pushing = False
        self._last_dir = str(Path.home())
        self._sized = False

        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._build_actions()
        self.toolbar = self._build_toolbar()

        self.tree = ModuleTree()
        self.tree.moduleSelected.connect(self.select)

        self.table_model = GraphTableModel(self)
        self.view = QTableView()
        self.view.setModel(self.table_model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.horizontalHeader().setHighlightSections(False)
        self.view.setItemDelegate(_TintedSelection(self.view))
        self.view.selectionModel().currentRowChanged.connect(self._row_changed)

        self.form = GraphFieldForm()
        self.form.fieldChanged.connect(self.set_field)
        self.form.editingFinished.connect(self.commit_edit)
        self.form.setMinimumWidth(250)
        form_scroll = QScrollArea()
        form_scroll.setWidget(self.form)
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        form_scroll.setMinimumWidth(262)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(form_scroll)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setChildrenCollapsible(False)
        self.tree.setMinimumWidth(180)
        self.splitter.setSizes([250, 760, 290])

        self.banner = ErrorBanner()
        self.banner.clicked.connect(self.select_error_node)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message.setStyleSheet(f"QLabel {{ color: {ERROR_FG.name()}; padding: 2px; }}")
        self.message.setVisible(False)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.notice.setStyleSheet("QLabel { background: #e6f2e6; color: #1b4d1b; padding: 3px; }")
        self.notice.setVisible(False)
        self.totals = QLabel("")
        self.totals.setTextFormat(Qt.TextFormat.PlainText)
        self.totals.setWordWrap(True)
        self.totals.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.totals.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.header)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.notice)
        layout.addWidget(self.totals)

        self.undo_stack.indexChanged.connect(self._history_moved)
        for runner in (self.runner, self.apply_runner):
            runner.busyChanged.connect(lambda _busy, _label: self._update_actions())
        self._update_actions()

    # ----------------------------------------------------------------------------------------------------------
    # Construction

    def _build_actions(self) -> None:
        stack = self.undo_stack

        def action(text: str, slot: Any, tip: str, *shortcuts: Any) -> QAction:
            act = QAction(text, self)
            act.setToolTip(tip)
            act.triggered.connect(slot)
            if shortcuts:
                act.setShortcuts([QKeySequence(s) for s in shortcuts])
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(act)
            return act

        self.apply_action = action("Apply", self.apply, _APPLY_TIP, "Ctrl+Return")
        self.undo_action = action(
            "Undo", stack.undo, "Undo the last edit", QKeySequence.StandardKey.Undo
        )
        self.redo_action = action(
            "Redo",
            stack.redo,
            "Redo the edit undone last",
            "Ctrl+Shift+Z",
            QKeySequence.StandardKey.Redo,
        )
        stack.undoTextChanged.connect(lambda text: self.undo_action.setToolTip(f"Undo {text}"))
        stack.redoTextChanged.connect(lambda text: self.redo_action.setToolTip(f"Redo {text}"))
        self.replace_action = action(
            "Replace", self.replace_selected, "Replace the selected module by the chosen type"
        )
        self.insert_action = action(
            "Insert",
            self.insert_selected,
            "Insert the chosen module after the selected one (inside a Sequential container)",
        )
        self.delete_action = action(
            "Delete",
            self.delete_selected,
            "Delete the selected module (inside a Sequential container)",
            "Del",
        )
        self.revert_action = action(
            "Revert", self.revert, "Go back to the model as it was loaded (undoable)"
        )
        self.open_action = action(
            "Open edit…", lambda: self.open_patch(), "Open an edit (a JSON patch) of this model"
        )
        self.save_action = action(
            "Save edit…",
            lambda: self.save_patch(),
            "Save the edits as a JSON patch (File > Open model… opens it as the edited model)",
        )

    def _build_toolbar(self) -> QToolBar:
        bar = QToolBar()
        bar.addAction(self.apply_action)
        button = bar.widgetForAction(self.apply_action)
        if button is not None:
            font = button.font()
            font.setBold(True)
            button.setFont(font)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)
        bar.addSeparator()
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(list(REPLACEMENTS))
        self.kind_combo.setToolTip("The type Replace and Insert use")
        self.kind_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        bar.addWidget(self.kind_combo)
        bar.addAction(self.replace_action)
        bar.addAction(self.insert_action)
        bar.addAction(self.delete_action)
        bar.addSeparator()
        self.propagate_box = QCheckBox("Propagate channels")
        self.propagate_box.setChecked(True)
        self.propagate_box.setToolTip(
            "When a module's output channels change, the modules that must follow (the next BatchNorm, "
            "convolution or Linear) follow where that is unambiguous"
        )
        self.propagate_box.toggled.connect(self.set_propagate)
        bar.addWidget(self.propagate_box)
        bar.addSeparator()
        bar.addAction(self.revert_action)
        bar.addAction(self.open_action)
        bar.addAction(self.save_action)
        return bar

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        # Narrow (a small screen): the table says each row's type, the tree gives its room to the names.
        self.tree.setColumnHidden(1, self.width() < 1200)

    # ----------------------------------------------------------------------------------------------------------
    # The model

    def set_model(self, model: Any) -> None:
        """Edit ``model`` (a LoadedModel): its graph is traced in the background.

        A model that cannot be traced shows why in the header, in one line.
        """
        from cnnviz.core.editing.graph_session import GraphEditSession

        self.runner.cancel_all()
        self.session = None
        self.snapshot = self._received = None
        self.model = model
        self.undo_stack.clear()
        self.selected = None
        self._sized = False
        for label in (self.notice, self.message, self.banner):
            label.setVisible(False)
        self.notice.clear()
        self.tree.fill([])
        self.table_model.set_table(None)
        self.form.clear("Module", "")
        self.totals.clear()
        self.splitter.setVisible(True)
        self.header.setText(f"Reading the graph of {model.name}…")
        self._update_actions()

        def open_session(_token: Any) -> tuple[Any, Snapshot]:
            session = GraphEditSession.from_model(model)
            return session, take_snapshot(session)

        self.runner.submit(
            "open",
            open_session,
            on_done=lambda result: self._opened(model, *result),
            on_error=lambda exc: self._not_editable(model, exc),
            label=f"Reading the graph of {model.name}",
        )

    def _opened(self, model: Any, session: Any, snapshot: Snapshot) -> None:
        if model is not self.model:
            return
        self.session = session
        self.propagate_box.blockSignals(True)
        self.propagate_box.setChecked(bool(session.propagate))
        self.propagate_box.blockSignals(False)
        self.header.setText(
            f"Editing {model.name}: change any module; the whole graph's table follows. "
            "Apply runs the picture through the edited model."
        )
        self._show(snapshot)
        first = next(
            (m.name for m in snapshot.modules if m.name and snapshot.fields.get(m.name)), None
        )
        self.select(first)

    def _not_editable(self, model: Any, exc: BaseException) -> None:
        if model is not self.model:
            return
        text = describe_error(exc).rstrip(".")
        self.header.setText(f"{text}." if text.startswith(model.name) else f"{model.name}: {text}.")
        self.splitter.setVisible(False)
        self._update_actions()

    def release(self) -> None:
        """Forget the model and its session (another editor took over)."""
        self.runner.cancel_all()
        self.session = self.snapshot = self._received = self.model = None
        self.undo_stack.clear()
        self.tree.fill([])
        self.table_model.set_table(None)
        self._update_actions()

    def keep_model(self, model: Any) -> None:
        """The model this editor applied came back from the app: keep the edit history."""
        self.model = model

    @property
    def table(self) -> Any:
        return self.snapshot.table if self.snapshot is not None else None

    @property
    def busy(self) -> bool:
        """An edit is being computed (its table is not shown yet)."""
        return self.runner.busy

    # ----------------------------------------------------------------------------------------------------------
    # Selection

    def select(self, name: str | None) -> None:
        """Select module or node ``name`` in the tree and the table and show its fields."""
        self.selected = name
        self.tree.show_module(name)
        self._select_row(name)
        self._show_fields()
        self._update_actions()

    def _select_row(self, name: str | None) -> None:
        row = self.table_model.row_of(name)
        selection = self.view.selectionModel()
        selection.blockSignals(True)
        if row is None:
            self.view.clearSelection()
        else:
            index = self.table_model.index(row, GraphTableModel.NAME)
            self.view.selectRow(row)
            self.view.setCurrentIndex(index)
            # scrolled by its first column: the Change marks stay in view in a narrow dock
            self.view.scrollTo(self.table_model.index(row, GraphTableModel.CHANGE))
        selection.blockSignals(False)
        self.view.viewport().update()

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row = self.table_model.graph_row(current.row()) if current.isValid() else None
        if row is not None and row.name != self.selected:
            self.select(row.name)

    def select_error_node(self) -> None:
        """Select the node the graph breaks at (a click on the banner)."""
        error = self.table.error if self.table is not None else None
        if error is not None:
            self.select(error.node)

    def _show_fields(self) -> None:
        name = self.selected
        snapshot = self.snapshot
        module = self.tree.modules.get(name) if name is not None else None
        if snapshot is None or name is None:
            self.form.clear("Module", "Select a module in the tree." if snapshot else "")
            return
        if module is None:
            scope = self.tree.module_of(name)
            where = f" inside {scope}" if scope else ""
            self.form.clear(
                name,
                f"{name} is an operation of the forward pass{where}, not a module: it has no settings. "
                "Edit the modules that feed it.",
            )
            return
        title = f"{name} · {module.type}"
        if module.is_container:
            note = "A container: select one of its modules to edit it."
            if module.type == "Sequential":
                note += " Insert adds a module at its end."
            elif module.in_sequential:
                note += " Delete removes it from its Sequential."
            self.form.clear(title, note)
            return
        if not module.editable:
            self.form.clear(title, module.why_not or "This module cannot be edited.")
            return
        fields = snapshot.fields.get(name, [])
        note = "" if fields else "No settings to edit; Replace can swap it for another type."
        self.form.show_fields(title, fields, note, locked=self.propagate_box.isChecked())

    # ----------------------------------------------------------------------------------------------------------
    # Edits: each runs on the worker thread, in order; its result becomes an undo step

    def _edit(
        self,
        text: str,
        fn: Any,
        merge_key: tuple[Any, ...] | None = None,
        select: str | None = None,
        field: str | None = None,
        undoable: bool = True,
        said: str | None = None,
    ) -> bool:
        """Queue the session edit ``fn(session)``; a refused edit shows its reason and changes nothing."""
        session = self.session
        if session is None:
            return False
        propagate = self.propagate_box.isChecked()
        self._serial += 1
        serial = self._serial

        def job(_token: Any) -> tuple[tuple[Any, ...], Snapshot]:
            before = session.edits
            session.propagate = propagate
            fn(session)
            return before, take_snapshot(session)

        # Every edit runs (a kind of its own), in order; only the newest one's table is shown.
        self.runner.submit(
            f"edit {serial}",
            job,
            on_done=lambda result: self._edited(
                session, serial, text, merge_key, select, undoable, said, *result
            ),
            on_error=lambda exc: self._refused(describe_error(exc), field, serial),
            label="Updating the table",
        )
        self._update_actions()
        return True

    def _edited(
        self,
        session: Any,
        serial: int,
        text: str,
        merge_key: tuple[Any, ...] | None,
        select: str | None,
        undoable: bool,
        said: str | None,
        before: tuple[Any, ...],
        snapshot: Snapshot,
    ) -> None:
        if session is not self.session:
            return
        if said:
            self.status.emit(said)
        if undoable and snapshot.edits != before:
            self._pushing = True
            try:
                self.undo_stack.push(
                    UndoStep(self, text, before, snapshot.edits, merge_key, select)
                )
            finally:
                self._pushing = False
        self._received = snapshot
        if serial != self._serial:
            self._update_actions()
            return  # a newer edit is on its way: show that one
        self.form.clear_errors()
        self.message.setVisible(False)
        self._show(snapshot)
        self.select(self._present(select if select is not None else self.selected))

    def _present(self, name: str | None) -> str | None:
        """``name`` if the edited model still has it, else the closest container that it has."""
        while name:
            if name in self.tree.modules or self.table_model.row_of(name) is not None:
                return name
            name = name.rsplit(".", 1)[0] if "." in name else None
        return None

    def _refused(self, message: str, field: str | None, serial: int | None = None) -> None:
        self.status.emit(message)
        self._update_actions()
        if serial is not None and serial != self._serial:
            return
        if self._received is not None and self._received is not self.snapshot:
            self._show(self._received)  # the edits before the refused one did happen
        if field is not None:
            self._show_fields()  # back to the value in force, the reason beside the field
            # beside the field, the reason alone: "edit 3 (layer1.0.conv1 now has groups 3): layer1.0.conv1: …"
            name = self.selected or ""
            short = message.split(f"): {name}: ", 1)[-1] if name else message
            self.form.show_error(field, short[:1].upper() + short[1:])
        else:
            self.message.setText(message)
            self.message.setVisible(True)

    def set_field(self, key: str, value: Any) -> None:
        """Set field ``key`` of the selected module (typing in one field merges into one undo step)."""
        name = self.selected
        if name is None:
            return
        shown = "×".join(map(str, value)) if isinstance(value, list | tuple) else value
        self._edit(
            f"{name}: {key} = {shown}",
            lambda session: session.set(name, key, value),
            ("set", name, key, self._edit_epoch),
            field=key,
        )

    def commit_edit(self) -> None:
        """End the current typing: the next change of the same field is a new undo step."""
        self._edit_epoch += 1

    def _history_moved(self, _index: int) -> None:
        if not self._pushing:
            self.commit_edit()
        self._update_actions()

    def replace_selected(self, type_name: str | None = None) -> bool:
        """Replace the selected module by ``type_name`` (default: the type chosen in the toolbar)."""
        name = self.selected
        if name is None:
            return False
        kind = type_name or self.kind_combo.currentText()
        return self._edit(
            f"{name}: {kind}", lambda session: session.replace(name, kind), select=name
        )

    def insert_selected(self, type_name: str | None = None) -> bool:
        """Insert the chosen type after the selected module (or at the end of a selected Sequential)."""
        name = self.selected
        module = self.tree.modules.get(name) if name is not None else None
        if module is None or name is None:
            return False
        kind = type_name or self.kind_combo.currentText()
        if module.is_container and module.type == "Sequential":
            container, index = name, len(self.tree.children_of(name))
        elif module.in_sequential:
            container, index = self.tree.position(name)
            index += 1
        else:
            self._refused(
                f"{name} is not inside a Sequential container: modules are inserted there.", None
            )
            return False
        new = f"{container}.{index}" if container else str(index)
        return self._edit(
            f"insert {kind} into {container or 'the model'}",
            lambda session: session.insert(container, index, kind),
            select=new,
        )

    def delete_selected(self) -> bool:
        """Delete the selected module from the Sequential holding it."""
        name = self.selected
        module = self.tree.modules.get(name) if name is not None else None
        if module is None or name is None or not module.in_sequential:
            return False
        container, index = self.tree.position(name)
        siblings = self.tree.children_of(container)
        # what takes its place: the next sibling (renumbered into its position), else the one before
        if len(siblings) > 1:
            after = name if index < len(siblings) - 1 else siblings[index - 1]
        else:
            after = container
        return self._edit(
            f"delete {name} ({module.type})", lambda session: session.delete(name), select=after
        )

    def revert(self) -> None:
        """Back to the model as it was loaded (undoable)."""
        if self.snapshot is not None and self.snapshot.edits:
            self._edit("revert to the loaded model", lambda session: session.goto(()))

    def set_propagate(self, on: bool) -> None:
        """Channel propagation on or off (for the edits that follow)."""
        self._show_fields()
        self.status.emit(
            "Channel propagation is on: the modules after a changed one follow its channels."
            if on
            else "Channel propagation is off: every module keeps the channels you give it."
        )

    def _goto(self, edits: tuple[Any, ...], select: str | None) -> None:
        """Undo and redo land here: the session at ``edits``, ``select`` selected."""
        self._edit("", lambda session: session.goto(edits), select=select, undoable=False)

    # ----------------------------------------------------------------------------------------------------------
    # Files

    def save_patch(self, path: str | Path | None = None) -> Path | None:
        """Save the edits as a JSON patch (asks for a file when ``path`` is None)."""
        session = self.session
        if session is None or self.snapshot is None:
            return None
        if path is None:
            stem = _file_stem(str(getattr(self.model, "name", "model"))) + "-edit.json"
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save edit", str(Path(self._last_dir) / stem), "Edit patch (*.json)"
            )
            if not chosen:
                return None
            path = chosen if chosen.lower().endswith(".json") else chosen + ".json"
        target = Path(path)
        # After the edits queued before it: the worker owns the session while they run.
        self.wait()
        try:
            session.save_patch(target)
        except CnnvizError as exc:
            self._refused(str(exc), None)
            return None
        self._last_dir = str(target.parent)
        note = " (the graph is still broken)" if self.table is not None and self.table.error else ""
        self.status.emit(f"Saved the edit to {target}{note}.")
        return target

    def open_patch(self, path: str | Path | None = None) -> bool:
        """Open a JSON patch as one undoable edit of this model (asks for a file when ``path`` is None)."""
        from cnnviz.core.models.edits import read_patch

        if self.session is None:
            return False
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(
                self, "Open edit", self._last_dir, "Edit patch (*.json)"
            )
            if not chosen:
                return False
            path = chosen
        source = Path(path)
        try:
            patch = read_patch(source)
        except CnnvizError as exc:
            self._refused(str(exc), None)
            return False
        self._last_dir = str(source.parent)
        edits = tuple(patch.edits)
        said = f"Opened {source.name}."
        model = self.model
        meta = getattr(model, "metadata", None) or {}
        names = {str(getattr(model, "name", ""))} | {str(meta.get(k)) for k in ("path", "base")}
        if patch.base not in names and Path(patch.base).name not in {Path(n).name for n in names}:
            # the edits are made by module name: they fit any model with those modules
            said = f"Opened {source.name} (made for {patch.base}, applied to {model.name})."
        return self._edit(f"open {source.name}", lambda session: session.goto(edits), said=said)

    # ----------------------------------------------------------------------------------------------------------
    # Apply

    def apply(self) -> bool:
        """Build the edited model in the background; ``applied`` is emitted when it is ready."""
        session, snapshot = self.session, self.snapshot
        if session is None or snapshot is None or self.runner.busy:
            return False
        if snapshot.table.error is not None:
            self._refused(f"Cannot apply: {snapshot.table.error.message}", None)
            return False
        if tuple(snapshot.edits) != tuple(session.edits):
            return False  # an edit is being computed: its table decides whether it can be built
        build = session.builder()
        self.status.emit("Building the edited model…")
        # Its own runner: building copies the real model and never touches the session, so editing goes on.
        self.apply_runner.submit(
            "apply",
            lambda _token: build(),
            on_done=lambda result: self._applied(session, result),
            on_error=self._apply_failed,
            label="Building the edited model",
        )
        self._update_actions()
        return True

    def _applied(self, session: Any, result: Any) -> None:
        self._update_actions()
        if session is not self.session:
            return
        session.commit(result)  # the next Apply keeps these weights where shapes still agree
        fresh = list(result.reinitialised)
        if fresh:
            shown = ", ".join(fresh[:8]) + (f" and {len(fresh) - 8} more" if len(fresh) > 8 else "")
            text = f"Applied: {shown} got fresh weights; every other module kept its weights."
        else:
            text = "Applied: every module kept its weights."
        self.notice.setText(text)
        self.notice.setVisible(True)
        self.model = result.model
        self.applied.emit(result.model)
        self.status.emit(text)

    def _apply_failed(self, exc: BaseException) -> None:
        self._refused(f"Could not apply: {describe_error(exc)}", None)

    def wait(self, timeout_ms: int = 60000) -> bool:
        """Wait for background work (tests, shutdown)."""
        return self.runner.wait(timeout_ms) and self.apply_runner.wait(timeout_ms)

    def shutdown(self) -> None:
        self.runner.shutdown(30000)
        self.apply_runner.shutdown(30000)

    # ----------------------------------------------------------------------------------------------------------
    # Showing

    def _show(self, snapshot: Snapshot) -> None:
        """Show ``snapshot``: its tree (when the modules changed), table, banner and totals."""
        self.snapshot = snapshot
        if not self.tree.shows(snapshot.modules):
            self.tree.fill(snapshot.modules)
        self.table_model.set_table(snapshot.table, snapshot.rows)
        table = snapshot.table
        if not self._sized and table.rows:
            self.view.resizeColumnsToContents()
            for column, width in (
                (GraphTableModel.CHANGE, 100),
                (GraphTableModel.OUTPUT, 100),
                (GraphTableModel.DPARAMS, 110),
                (GraphTableModel.DMACS, 110),
            ):  # room for the deltas that edits bring
                self.view.setColumnWidth(column, max(self.view.columnWidth(column), width))
            for column, width in ((GraphTableModel.NAME, 170), (GraphTableModel.SETTINGS, 170)):
                self.view.setColumnWidth(column, min(self.view.columnWidth(column), width))
            self._sized = True
        self.view.resizeColumnToContents(GraphTableModel.CHANGE)
        error = table.error
        self.view.clearSpans()
        broken = self.table_model.row_of(error.node) if error is not None else None
        if broken is not None:  # the explanation reads across the figures the node does not have
            columns = len(GraphTableModel.COLUMNS) - GraphTableModel.OUTPUT
            self.view.setSpan(broken, GraphTableModel.OUTPUT, 1, columns)
        if error is not None:
            self.banner.setText(f"✗ {error.message}")
            self.banner.setToolTip(f"Click to select {error.node} in the table")
        self.banner.setVisible(error is not None)
        self.totals.setText(totals_text(table, snapshot.rows))
        self._update_actions()

    def _update_actions(self) -> None:
        ready = self.session is not None and self.snapshot is not None
        idle = ready and not self.runner.busy
        name = self.selected
        module = self.tree.modules.get(name) if name is not None else None
        # Undo and redo wait for queued edits, so that each step lands on the state it was made from.
        self.undo_action.setEnabled(idle and self.undo_stack.canUndo())
        self.redo_action.setEnabled(idle and self.undo_stack.canRedo())
        leaf = module is not None and not module.is_container and bool(module.name)
        self.replace_action.setEnabled(ready and leaf and bool(module and module.editable))
        sequential = module is not None and module.is_container and module.type == "Sequential"
        self.insert_action.setEnabled(
            ready and module is not None and (module.in_sequential or sequential)
        )
        self.delete_action.setEnabled(ready and module is not None and module.in_sequential)
        self.kind_combo.setEnabled(ready)
        self.propagate_box.setEnabled(ready)
        edited = bool(self.snapshot is not None and self.snapshot.edits)
        self.revert_action.setEnabled(ready and edited)
        self.open_action.setEnabled(ready)
        self.save_action.setEnabled(ready and edited)
        error = self.table.error if self.table is not None else None
        self.apply_action.setEnabled(
            idle and error is None and not self.apply_runner.busy and bool(self.table is not None)
        )
        self.apply_action.setToolTip(
            f"Fix the graph first: {error.message}" if error is not None else _APPLY_TIP
        )


def _file_stem(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    return keep.strip("-.") or "model"
