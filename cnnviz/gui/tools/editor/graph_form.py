"""The fields of the module selected in the graph editor: one editor per constructor argument.

Built from the session's ``EditField`` list: ``int`` fields get a spin box, ``pair`` fields a
:class:`~cnnviz.gui.tools.editor.widgets.PairEdit`, ``bool`` a check box and ``choice`` a combo box. A field that
follows another module while channel propagation is on is shown read-only with what it follows. A refused
value shows its one-line reason under the field, and the field goes back to the value in force.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnnviz.gui.tools.editor.model import DIM_FG, ERROR_FG
from cnnviz.gui.tools.editor.widgets import PairEdit, _as_pair, _from_pair

_LABELS = {
    "in_channels": "In channels",
    "out_channels": "Out channels",
    "kernel_size": "Kernel",
    "stride": "Stride",
    "padding": "Padding",
    "dilation": "Dilation",
    "groups": "Groups",
    "bias": "Bias",
    "ceil_mode": "Ceil mode",
    "in_features": "In features",
    "out_features": "Out features",
    "num_features": "Features",
    "output_size": "Output size",
    "output_padding": "Output padding",
    "type": "Type",
    "batchnorm": "BatchNorm",
    "affine": "Learnable scale/shift",
    "enabled": "On",
}

_TIPS = {
    "groups": "Split the channels into groups that do not see each other (groups = channels: depthwise)",
    "ceil_mode": "Round the output size up instead of down",
}

FROM_INPUT = frozenset({"in_channels", "in_features", "num_features"})
"""Fields a module takes from its input: propagation sets them, so they are read-only while it is on."""

INT_MAX = 1_000_000
PAIR_MAX = 999


def field_label(key: str) -> str:
    """The label of field ``key`` in words."""
    return _LABELS.get(key) or key.replace("_", " ").capitalize()


class GraphFieldForm(QGroupBox):
    """The editable fields of one module; emits ``fieldChanged(key, value)`` as the user types.

    ``editingFinished`` is emitted when an edit is committed (Enter, leaving the box, a toggle), so that the
    dock can end one undo step there.
    """

    fieldChanged = Signal(str, object)
    editingFinished = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Module", parent)
        self.editors: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self.kinds: dict[str, str] = {}
        self._signature: tuple[Any, ...] | None = None
        self._note = ""
        self.locked = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note.setStyleSheet(f"color: {DIM_FG.name()};")
        self.note.setVisible(False)
        self.body = QWidget()
        self.form = QFormLayout(self.body)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        outer.addWidget(self.note)
        outer.addWidget(self.body)
        outer.addStretch(1)

    # -- building --------------------------------------------------------------------------------------------
    def clear(self, title: str = "Module", note: str = "") -> None:
        """No fields: only ``note`` (why the module has none, or what to do)."""
        self._clear_rows()
        self._signature = None
        self.setTitle(title)
        self._set_note(note)

    def _set_note(self, note: str) -> None:
        self._note = note
        self.note.setText(note)
        self.note.setStyleSheet(f"color: {DIM_FG.name()};")
        self.note.setVisible(bool(note))

    def _clear_rows(self) -> None:
        # The widget that emitted the change may be the one being replaced: delete it later, not now.
        while self.form.rowCount():
            taken = self.form.takeRow(0)
            for item in (taken.labelItem, taken.fieldItem):
                widget = item.widget() if item is not None else None
                if widget is not None:
                    widget.hide()
                    widget.deleteLater()
        self.editors = {}
        self.errors = {}
        self.kinds = {}

    def show_fields(
        self, title: str, fields: list[Any], note: str = "", *, locked: bool = False
    ) -> None:
        """Show ``fields`` (EditField list); rebuilt only when the set of fields changes, else just updated.

        ``locked`` (channel propagation is on): the fields a module takes from its input are read-only.
        """
        self.locked = locked
        signature = (title, tuple((f.key, f.kind, tuple(f.choices or ())) for f in fields))
        self.setTitle(title)
        self._set_note(note)
        if signature != self._signature:
            self._clear_rows()
            self._signature = signature
            for field in fields:
                self._add(field)
        self.update_values(fields)

    def _add(self, field: Any) -> None:
        key, kind = field.key, field.kind
        low = int(field.minimum) if getattr(field, "minimum", None) is not None else 0
        editor: QWidget
        if kind == "int":
            spin = QSpinBox()
            spin.setRange(low, INT_MAX)
            spin.setAccelerated(True)
            spin.valueChanged.connect(lambda v, k=key: self.fieldChanged.emit(k, int(v)))
            spin.editingFinished.connect(self.editingFinished)
            editor = spin
        elif kind == "pair":
            none_text = "= kernel" if field.value is None else None
            pair = PairEdit(low, PAIR_MAX, _as_pair(field.value), none_text=none_text)
            pair.valueChanged.connect(lambda v, k=key: self.fieldChanged.emit(k, _from_pair(v)))
            pair.editingFinished.connect(self.editingFinished)
            editor = pair
        elif kind == "bool":
            box = QCheckBox()
            box.toggled.connect(lambda on, k=key: self._toggled(k, on))
            editor = box
        elif kind == "choice":
            combo = QComboBox()
            combo.addItems([str(c) for c in field.choices or ()])
            combo.activated.connect(lambda _i, k=key, c=combo: self._chosen(k, c))
            editor = combo
        else:  # a kind this form does not know: show the value, read-only
            editor = QLabel(str(field.value))
        tip = _TIPS.get(key)
        if tip:
            editor.setToolTip(tip)
        error = QLabel("")
        error.setWordWrap(True)
        error.setTextFormat(Qt.TextFormat.PlainText)
        error.setStyleSheet(f"color: {ERROR_FG.name()};")
        error.setVisible(False)
        self.form.addRow(field_label(key), editor)
        self.form.addRow(
            error
        )  # a row of its own under the field: a long reason wraps at full width
        self.editors[key] = editor
        self.errors[key] = error
        self.kinds[key] = kind

    def _toggled(self, key: str, on: bool) -> None:
        self.fieldChanged.emit(key, bool(on))
        self.editingFinished.emit()

    def _chosen(self, key: str, combo: QComboBox) -> None:
        self.fieldChanged.emit(key, combo.currentText())
        self.editingFinished.emit()

    # -- values ----------------------------------------------------------------------------------------------
    def update_values(self, fields: list[Any]) -> None:
        """Show the values in force (after an edit, undo or propagation) without emitting edits."""
        for field in fields:
            editor = self.editors.get(field.key)
            if editor is None:
                continue
            follows = bool(getattr(field, "follows", False))
            fixed = self.locked and field.key in FROM_INPUT
            editor.blockSignals(True)
            try:
                if isinstance(editor, PairEdit):
                    editor.set_value(_as_pair(field.value))
                    editor.link.setChecked(editor.h.value() == editor.w.value())
                elif isinstance(editor, QCheckBox):
                    editor.setChecked(bool(field.value))
                elif isinstance(editor, QComboBox):
                    editor.setCurrentText(str(field.value))
                elif isinstance(editor, QSpinBox):
                    if field.value is not None:
                        editor.setValue(int(field.value))
                elif isinstance(editor, QLabel):
                    editor.setText(str(field.value))
            finally:
                editor.blockSignals(False)
            editor.setEnabled(not fixed)
            if fixed:
                editor.setToolTip(
                    "Taken from the module before it while channel propagation is on; turn "
                    "propagation off to set it yourself."
                )
            else:
                editor.setToolTip(_TIPS.get(field.key, ""))
            label = self.form.labelForField(editor)
            if isinstance(label, QLabel):
                label.setText(field_label(field.key) + (" (follows)" if follows else ""))
                label.setEnabled(not fixed)

    def show_error(self, key: str | None, message: str) -> None:
        """The one-line reason ``key``'s value was refused (``key`` None or unknown: under the title)."""
        self.clear_errors()
        label = self.errors.get(key) if key else None
        if label is None:
            self.note.setText(message)
            self.note.setStyleSheet(f"color: {ERROR_FG.name()};")
            self.note.setVisible(True)
            return
        label.setText(message)
        label.setVisible(True)

    def clear_errors(self) -> None:
        for label in self.errors.values():
            label.clear()
            label.setVisible(False)
        self._set_note(self._note)

    def error_text(self, key: str) -> str:
        label = self.errors.get(key)
        return label.text() if label is not None and label.isVisible() else ""
