"""The form for the selected layer of the layer editor."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSpinBox,
    QWidget,
)

from cnnviz.core.editing import (
    ACTIVATION_TYPES,
    ADAPTIVE_TYPES,
    DROPOUT_TYPES,
    INFERRED,
    POOLING_TYPES,
    EditSession,
    LiveRow,
    argument_default,
)
from cnnviz.gui.tools.editor.model import DIM_FG
from cnnviz.gui.tools.editor.widgets import PairEdit, _as_pair, _from_pair

_EMPTY = inspect.Parameter.empty

_NO_FORM = {
    "Flatten": "Flattens C×H×W into one vector of C·H·W values (for the Linear layers after it).",
    "Identity": "Passes its input through unchanged.",
    "Softmax": "Turns scores into probabilities; it has no settings to edit here.",
}


class FormMixin:
    """The form of the selected layer: one editor per argument, rebuilt when the layer changes.

    Mixed into :class:`~cnnviz.gui.tools.editor.dock.LayerEditorDock`, which owns the attributes used here.
    """

    if TYPE_CHECKING:
        session: EditSession | None
        editors: dict[str, QWidget]
        form: QFormLayout
        form_box: QGroupBox
        _form_key: tuple[Any, ...] | None

        def set_param(self, index: int, key: str, value: Any) -> None: ...
        def set_type(self, index: int, new_type: str) -> None: ...
        def commit_edit(self) -> None: ...
        def selected_index(self) -> int | None: ...

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
            spin.editingFinished.connect(self.commit_edit)
            self.form.addRow(label, spin)
            self.editors[key] = spin

        def pair(key: str, label: str, low: int, high: int, none_text: str | None = None) -> None:
            edit = PairEdit(low, high, _as_pair(value(key)), none_text=none_text)
            edit.valueChanged.connect(
                lambda v: self.set_param(self._row_of(index), key, _from_pair(v))
            )
            edit.editingFinished.connect(self.commit_edit)
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
            spin.editingFinished.connect(self.commit_edit)
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
