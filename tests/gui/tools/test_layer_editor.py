"""The layer editor dock driven like a student would; every number it shows is checked against torch here."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from oracles import gradient_rf  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from torch import nn  # noqa: E402

from cnnviz.core.images import Preprocess  # noqa: E402
from cnnviz.core.models import LoadedModel, load_model  # noqa: E402
from cnnviz.core.models.spec import build_model, save_spec  # noqa: E402
from cnnviz.gui.tools.editor import ERROR_BG, NEW_BG, LayerEditorDock  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major")

SPEC = {
    "name": "editor test net",
    "input_shape": [1, 20, 20],
    "labels": ["a", "b", "c"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d"},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 6, "kernel_size": 3},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}
PARAMS, DELTA, MACS, RF, WEIGHTS = 5, 6, 7, 9, 11


def spec_model(tmp_path: Path, spec: dict = SPEC) -> LoadedModel:
    path = tmp_path / "model.json"
    save_spec(spec, path)
    torch.manual_seed(0)
    return load_model(str(path))


def real_shapes(model: nn.Sequential, input_shape: list[int]) -> list[tuple[int, ...]]:
    x = torch.randn(1, *input_shape)
    shapes = []
    with torch.no_grad():
        for module in model.eval():
            x = module(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


@pytest.fixture
def dock(qtbot, tmp_path: Path) -> LayerEditorDock:
    widget = LayerEditorDock()
    qtbot.addWidget(widget)
    widget.resize(1100, 500)
    widget.set_model(spec_model(tmp_path))
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def click_row(qtbot, dock: LayerEditorDock, row: int) -> None:
    rect = dock.view.visualRect(dock.table_model.index(row, 2))
    qtbot.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dock.selected_index() == row


def test_kernel_edit_updates_the_row_as_torch_computes_it(qtbot, dock: LayerEditorDock) -> None:
    click_row(qtbot, dock, 4)
    assert dock.form_box.title() == "4 · Conv2d"
    with qtbot.waitSignal(dock.table_model.updated):
        dock.editors["kernel_size"].h.setValue(5)  # linked: 5×5
    spec = dock.session.current.spec()
    assert spec["layers"][4]["kernel_size"] == 5
    model = build_model(spec)
    shapes = real_shapes(model, spec["input_shape"])
    texts = dock.table_model.texts()
    for row, module, shape in zip(texts, model, shapes, strict=True):
        assert row[4] == "×".join(map(str, shape))
        params = sum(p.numel() for p in module.parameters())
        assert row[PARAMS] == f"{params:,}"
    rf = gradient_rf(model, spec["input_shape"], 4)
    assert texts[4][RF] == (str(rf[0]) if rf[0] == rf[1] else f"{rf[0]}×{rf[1]}")
    before = 3 * 3 * 4 * 6 + 6
    after = 5 * 5 * 4 * 6 + 6
    assert texts[4][DELTA].startswith(f"+{after - before}")
    assert texts[4][WEIGHTS] == "new on Apply"
    # the Linear layer after it followed (its in_features are inferred) and says so
    assert texts[7][WEIGHTS] == "new on Apply"
    assert dock.table.rows[7].params == sum(p.numel() for p in model[7].parameters())
    # non-square kernels: unlink, change the width only
    dock.editors["kernel_size"].link.setChecked(False)
    dock.editors["kernel_size"].w.setValue(3)
    assert dock.session.current.layers[4].config["kernel_size"] == (5, 3)
    model = build_model(dock.session.current.spec())
    assert dock.table.rows[4].output_shape == real_shapes(model, SPEC["input_shape"])[4]


def test_impossible_edit_turns_the_row_red_and_the_app_stays_usable(
    qtbot, dock: LayerEditorDock
) -> None:
    click_row(qtbot, dock, 4)
    dock.editors["kernel_size"].h.setValue(40)
    model = dock.table_model
    assert model.data(model.index(4, 4), Qt.ItemDataRole.BackgroundRole).color() == ERROR_BG
    reason = "kernel 40×40 is larger than its 10×10 input plus padding 0"
    assert model.texts()[4][4] == f"✗ {reason}"
    assert dock.view.columnSpan(4, 4) == len(model.COLUMNS) - 4
    assert dock.message.isVisible() and dock.message.text() == f"layer 4 (Conv2d): {reason}"
    assert all(row[4].startswith("not checked") for row in model.texts()[5:])
    assert model.texts()[0][PARAMS] == "40"  # rows before the error keep their numbers
    assert not dock.apply_action.isEnabled()
    assert "valid layers only" in dock.totals.text()
    # still usable: fix it and everything is valid again
    dock.editors["kernel_size"].h.setValue(3)
    assert dock.table.ok and not dock.message.isVisible() and dock.apply_action.isEnabled()
    assert dock.view.columnSpan(4, 4) == 1


def test_undo_and_redo_restore_the_table_exactly(qtbot, dock: LayerEditorDock) -> None:
    original = dock.table_model.texts()
    click_row(qtbot, dock, 0)
    spin = dock.editors["out_channels"]
    for value in (5, 6, 7):  # typing in one box is one undo step
        spin.setValue(value)
    assert dock.undo_stack.count() == 1
    dock.kind_combo.setCurrentText("Dropout2d")
    dock.insert_action.trigger()
    assert dock.selected_index() == 1
    assert dock.table_model.data(dock.table_model.index(1, 1), Qt.ItemDataRole.BackgroundRole).color() == NEW_BG  # fmt: skip
    click_row(qtbot, dock, 5)
    dock.delete_action.trigger()
    edited = dock.table_model.texts()
    assert edited != original and len(edited) == len(original)
    dock.view.setFocus()
    for _ in range(3):
        qtbot.keyClick(dock.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert dock.table_model.texts() == original
    assert dock.editors["out_channels"].value() == 4
    for _ in range(3):
        qtbot.keyClick(
            dock.view,
            Qt.Key.Key_Z,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
        )
    assert dock.table_model.texts() == edited
    dock.revert_action.trigger()
    assert dock.table_model.texts() == original
    dock.undo_action.trigger()
    assert dock.table_model.texts() == edited


def test_type_combos_move_and_delete(qtbot, dock: LayerEditorDock) -> None:
    click_row(qtbot, dock, 3)
    dock.editors["type"].setCurrentText("AvgPool2d")
    assert dock.session.current.layers[3].type == "AvgPool2d"
    assert dock.form_box.title() == "3 · AvgPool2d"
    dock.editors["stride"].h.setValue(1)  # from "= size" to 1: overlapping pooling
    assert dock.session.current.layers[3].config["stride"] == 1
    assert dock.table.rows[3].output_shape == real_shapes(build_model(dock.session.current.spec()), SPEC["input_shape"])[3]  # fmt: skip
    click_row(qtbot, dock, 2)
    dock.editors["type"].setCurrentText("LeakyReLU")
    dock.editors["negative_slope"].setValue(0.2)
    assert dict(dock.session.current.layers[2].config) == {
        "type": "LeakyReLU",
        "negative_slope": 0.2,
    }
    dock.up_action.trigger()
    assert dock.session.current.layers[1].type == "LeakyReLU" and dock.selected_index() == 1
    dock.down_action.trigger()
    assert dock.session.current.layers[2].type == "LeakyReLU"
    click_row(qtbot, dock, 7)
    assert not dock.down_action.isEnabled()


def test_save_then_open_gives_an_identical_table(
    qtbot, dock: LayerEditorDock, tmp_path: Path
) -> None:
    click_row(qtbot, dock, 0)
    dock.editors["stride"].h.setValue(2)
    dock.kind_combo.setCurrentText("Conv2d 1×1")
    dock.insert_action.trigger()
    shown = dock.table_model.texts()
    path = dock.save_architecture(tmp_path / "edited.json")
    assert path is not None and path.is_file()

    other = LayerEditorDock()
    qtbot.addWidget(other)
    other.set_model(spec_model(tmp_path))
    assert other.open_architecture(path)
    assert other.table_model.texts() == shown
    other.undo_action.trigger()  # opening is an edit like any other
    assert other.table_model.texts() != shown

    wrong = dict(SPEC, input_shape=[3, 20, 20])
    save_spec(wrong, tmp_path / "wrong.json")
    messages = []
    other.status.connect(messages.append)
    assert not other.open_architecture(tmp_path / "wrong.json")
    assert not other.message.isHidden() and "takes 3×20×20 inputs" in other.message.text()
    assert messages and "takes 3×20×20 inputs" in messages[-1]


def test_apply_builds_the_model_the_table_describes(qtbot, dock: LayerEditorDock) -> None:
    before = dock.model.module
    click_row(qtbot, dock, 4)
    dock.editors["out_channels"].setValue(9)
    dock.kind_combo.setCurrentText("BatchNorm2d")
    dock.insert_action.trigger()  # after row 4
    table = dock.table
    with qtbot.waitSignal(dock.applied, timeout=30000) as blocker:
        dock.apply_action.trigger()
    model = blocker.args[0]
    assert model.name == "editor test net (edited)"
    x = torch.randn(1, *SPEC["input_shape"])
    with torch.no_grad():
        out = model.module(x)
    assert tuple(out.shape[1:]) == table.output_shape == (3,)
    assert real_shapes(model.module, SPEC["input_shape"]) == [r.output_shape for r in table.rows]
    assert torch.equal(model.module[0].weight, before[0].weight)  # unchanged: kept
    texts = dock.table_model.texts()
    assert [texts[i][WEIGHTS] for i in (0, 1, 4, 5, 8)] == [
        "kept",
        "kept",
        "re-initialised",
        "re-initialised",
        "re-initialised",
    ]
    # the main window hands the applied model back: the history stays
    dock.set_model(model)
    assert dock.undo_stack.canUndo()
    dock.undo_action.trigger()  # the insertion
    assert dock.table_model.texts()[4][WEIGHTS] == "re-initialised"  # as applied: 9 channels
    dock.undo_action.trigger()  # back to 6 channels: not what the applied model has
    assert dock.table_model.texts()[4][WEIGHTS] == "new on Apply"


def test_vgg_features_are_editable_the_classifier_is_not(qtbot) -> None:
    widget = LayerEditorDock()
    qtbot.addWidget(widget)
    torch.manual_seed(0)
    vgg = LoadedModel(torchvision.models.vgg11(weights=None).eval(), "vgg11", (3, 64, 64), Preprocess.imagenet(size=64), source="torchvision")  # fmt: skip
    widget.set_model(vgg)
    assert "features.0 to features.20" in widget.header.text()
    names = [row[1] for row in widget.table_model.texts()]
    assert names[21:24] == ["avgpool", "flatten", "classifier.0"]
    click_row(qtbot, widget, 23)
    assert not widget.delete_action.isEnabled()
    assert "fixed part" in widget.form.itemAt(0).widget().text()
    click_row(qtbot, widget, 18)
    widget.editors["out_channels"].setValue(256)
    assert widget.table.rows[widget.table.error_index].name == "classifier.0"
    assert "Linear expects 25088 inputs but receives 12544" in widget.message.text()
    widget.undo_action.trigger()
    assert widget.table.ok


def test_read_only_models_are_explained(qtbot) -> None:
    widget = LayerEditorDock()
    qtbot.addWidget(widget)
    resnet = LoadedModel(torchvision.models.resnet18(weights=None), "resnet18", (3, 64, 64), Preprocess.imagenet(size=64))  # fmt: skip
    widget.set_model(resnet)
    assert widget.header.text().startswith("resnet18 is read-only: its blocks add their input")
    assert widget.session is None and not widget.apply_action.isEnabled()
    assert not widget.insert_action.isEnabled()
    widget.set_model(None)
    assert widget.header.text() == "Load a model to edit its layers."


def test_apply_builds_what_was_shown_when_clicked(qtbot, dock: LayerEditorDock) -> None:
    click_row(qtbot, dock, 0)
    dock.editors["out_channels"].setValue(5)
    shown = dock.session.current.spec()
    with qtbot.waitSignal(dock.applied, timeout=30000) as blocker:
        assert dock.apply()
        assert not dock.apply_action.isEnabled()  # one Apply at a time
        dock.editors["out_channels"].setValue(7)  # editing goes on while it builds
    assert blocker.args[0].spec == shown
    assert dock.table_model.texts()[0][WEIGHTS] == "new on Apply"  # 7 channels: not applied yet


def type_into(qtbot, spin, text: str) -> None:
    """Select the box's number and type ``text`` key by key, then press Enter (a committed edit)."""
    spin.setFocus()
    spin.selectAll()
    for ch in text:
        qtbot.keyClick(spin, ch)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


def test_undo_names_the_committed_value_one_step_per_commit(qtbot, dock: LayerEditorDock) -> None:
    click_row(qtbot, dock, 0)
    spin = dock.editors["out_channels"]
    type_into(qtbot, spin, "48")
    assert dock.table.rows[0].output_shape[0] == 48
    assert dock.undo_stack.count() == 1  # two keystrokes, one step
    assert dock.undo_stack.undoText() == "0: out_channels = 48"
    assert dock.undo_action.toolTip() == "Undo 0: out_channels = 48"
    type_into(qtbot, dock.editors["out_channels"], "32")  # a second committed edit: its own step
    assert dock.undo_stack.count() == 2
    assert dock.undo_stack.undoText() == "0: out_channels = 32"
    dock.undo_action.trigger()
    assert dock.editors["out_channels"].value() == 48
    assert dock.undo_stack.undoText() == "0: out_channels = 48"
    dock.undo_action.trigger()
    assert dock.editors["out_channels"].value() == SPEC["layers"][0]["out_channels"]
    # typing after an undo starts a new step instead of rewriting the undone one
    type_into(qtbot, dock.editors["out_channels"], "7")
    assert dock.undo_stack.count() == 1 and dock.undo_stack.undoText() == "0: out_channels = 7"


def test_totals_name_deleted_layers_by_what_they_were(qtbot, dock: LayerEditorDock) -> None:
    click_row(qtbot, dock, 4)
    dock.delete_action.trigger()
    # the row now at position 4 is the old ReLU 5; the deleted one was the second convolution
    assert dock.table_model.texts()[4][2] == SPEC["layers"][5]["type"]
    removed = f"{SPEC['layers'][4]['type']} (was 4)"
    assert dock.totals.text().endswith(f" · deleted: {removed}")
    click_row(qtbot, dock, 0)
    dock.delete_action.trigger()
    assert dock.totals.text().endswith(
        f" · deleted: {SPEC['layers'][0]['type']} (was 0), {removed}"
    )
    dock.undo_action.trigger()
    dock.undo_action.trigger()
    assert "deleted" not in dock.totals.text()


def test_apply_summary_stays_in_the_editor(qtbot, dock: LayerEditorDock, tmp_path: Path) -> None:
    messages: list[str] = []
    dock.status.connect(messages.append)
    click_row(qtbot, dock, 4)
    dock.editors["out_channels"].setValue(9)
    with qtbot.waitSignal(dock.applied, timeout=30000) as blocker:
        dock.apply_action.trigger()
    summary = messages[-1]
    assert summary.startswith("Applied: ") and "4" in summary and "got fresh weights" in summary
    assert dock.notice.isVisible() and dock.notice.text() == summary
    # The app takes the applied model and reports its own "Loaded ..." line; the editor keeps the summary.
    dock.set_model(blocker.args[0])
    dock.status.emit(f"Loaded {blocker.args[0].name}.")
    assert dock.notice.isVisible() and dock.notice.text() == summary
    # A different model is a fresh start.
    (tmp_path / "other").mkdir()
    other = spec_model(tmp_path / "other", SPEC)
    dock.set_model(other)
    assert not dock.notice.isVisible()
