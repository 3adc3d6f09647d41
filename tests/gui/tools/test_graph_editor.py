"""The graph editor (the layer editor on ResNet, MobileNet and other traced networks) driven as a user would.

Every number it shows is checked against an independently edited copy of the torchvision model run in torch.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from torch import nn  # noqa: E402

from cnnviz.core.images import Preprocess  # noqa: E402
from cnnviz.core.models import LoadedModel, load_model  # noqa: E402
from cnnviz.gui.tools.editor import LayerEditorDock  # noqa: E402
from cnnviz.gui.tools.editor.graph_dock import GraphEditor  # noqa: E402
from cnnviz.gui.tools.editor.graph_table import SHAPE_BG, GraphTableModel  # noqa: E402
from cnnviz.gui.tools.editor.widgets import PairEdit  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major")

SIZE = (3, 64, 64)
OUTPUT, PARAMS, CHANGE = GraphTableModel.OUTPUT, GraphTableModel.PARAMS, GraphTableModel.CHANGE


def resnet() -> LoadedModel:
    torch.manual_seed(0)
    return load_model("resnet18", weights="none", input_shape=SIZE)


def module_shapes(module: nn.Module, shape: tuple[int, ...] = SIZE) -> dict[str, tuple[int, ...]]:
    """Output shape (without the batch) of every call of every leaf module, from a real forward pass.

    A module called twice (ResNet's shared ReLU) has the rows ``name`` and ``name@1``, as the table names them.
    """
    calls: dict[str, list[tuple[int, ...]]] = {}
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out, name=name: calls.setdefault(name, []).append(tuple(out.shape[1:]))
        )
        for name, m in module.named_modules()
        if name and not list(m.children())
    ]
    try:
        with torch.no_grad():
            module.eval()(torch.randn(1, *shape))
    finally:
        for hook in hooks:
            hook.remove()
    return {
        (name if k == 0 else f"{name}@{k}"): out
        for name, outs in calls.items()
        for k, out in enumerate(outs)
    }


def params_of(module: nn.Module, name: str) -> int:
    return sum(p.numel() for p in module.get_submodule(name.split("@")[0]).parameters())


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def torchvision_resnet() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18()


@pytest.fixture
def editor_dock(qtbot) -> LayerEditorDock:
    dock = LayerEditorDock()
    qtbot.addWidget(dock)
    dock.resize(1300, 560)
    dock.set_model(resnet())
    dock.show()
    qtbot.waitExposed(dock)
    assert dock.graph.wait()
    yield dock
    dock.shutdown()


def click_module(qtbot, editor: GraphEditor, name: str) -> None:
    item = editor.tree.items[name]
    editor.tree.scrollToItem(item)
    rect = editor.tree.visualItemRect(item)
    qtbot.mouseClick(editor.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert editor.selected == name


def row_texts(editor: GraphEditor) -> dict[str, list[str]]:
    assert editor.wait()
    texts = editor.table_model.texts()
    return {row.name: texts[i] for i, row in enumerate(editor.table_model.rows)}


def assert_rows_match(editor: GraphEditor, edited: nn.Module) -> None:
    """Every leaf module's row shows the shape torch computes and the parameters torch counts."""
    texts = row_texts(editor)
    shapes = module_shapes(edited)
    for name, shape in shapes.items():
        assert texts[name][OUTPUT] == shape_text(shape), name
        assert texts[name][PARAMS] == f"{params_of(edited, name):,}", name


def test_the_dock_gives_resnet_the_graph_editor_with_the_layers_tree(
    qtbot, editor_dock: LayerEditorDock, gui_model
) -> None:
    editor = editor_dock.graph
    assert editor_dock.pages.currentWidget() is editor
    names = [n for n, _ in torchvision_resnet().named_modules() if n]
    assert list(editor.tree.items) == names
    # nested as named_modules() nests them: layer2.0.conv1 under layer2.0 under layer2
    item = editor.tree.items["layer2.0.conv1"]
    assert item.text(0) == "conv1" and item.text(1) == "Conv2d"
    assert item.parent() is editor.tree.items["layer2.0"]
    assert item.parent().parent() is editor.tree.items["layer2"]
    assert not editor.banner.isVisible() and editor.apply_action.isEnabled()
    assert_rows_match(editor, torchvision_resnet())
    # a sequential model still gets the sequential editor, as before
    editor_dock.set_model(gui_model)
    assert editor_dock.pages.currentIndex() == 0 and editor_dock.session is not None


def test_stride_one_in_layer2_breaks_the_addition_until_the_downsample_follows(
    qtbot, editor_dock: LayerEditorDock
) -> None:
    editor = editor_dock.graph
    click_module(qtbot, editor, "layer2.0.conv1")
    assert editor.form.title() == "layer2.0.conv1 · Conv2d"
    stride = editor.form.editors["stride"]
    assert isinstance(stride, PairEdit) and stride.value() == (2, 2)
    stride.h.setValue(1)  # linked: 1×1
    texts = row_texts(editor)
    # the residual addition now adds 16×16 to the downsample's 8×8: the editor says so, naming both sides
    assert editor.banner.isVisible() and editor.table.error.node == "layer2.0.add"
    for part in ("layer2.0.add", "128×16×16", "128×8×8", "layer2.0.downsample"):
        assert part in editor.banner.text()
    assert texts["layer2.0.conv1"][OUTPUT] == "128×16×16"
    assert not editor.apply_action.isEnabled()
    # fix it as a user would: the downsample convolution also gets stride 1
    click_module(qtbot, editor, "layer2.0.downsample.0")
    editor.form.editors["stride"].h.setValue(1)
    texts = row_texts(editor)
    assert not editor.banner.isVisible() and editor.apply_action.isEnabled()
    original = module_shapes(torchvision_resnet())
    edited = torchvision_resnet()
    edited.layer2[0].conv1.stride = (1, 1)
    edited.layer2[0].downsample[0].stride = (1, 1)
    assert_rows_match(editor, edited)
    shapes = module_shapes(edited)
    # marked in words as well as colour: edited modules, and rows whose output shape changed
    assert texts["layer2.0.conv1"][CHANGE] == "edited · shape"
    assert texts["layer2.0.downsample.0"][CHANGE] == "edited · shape"
    for name, shape in shapes.items():
        assert ("shape" in texts[name][CHANGE]) == (shape != original[name]), name
    model = editor.table_model
    row = model.row_of("layer3.0.conv1")
    assert model.data(model.index(row, CHANGE), Qt.ItemDataRole.BackgroundRole).color() == SHAPE_BG
    assert "was 256×4×4" in model.data(model.index(row, OUTPUT), Qt.ItemDataRole.ToolTipRole)
    # MACs grow four-fold in layer2.0.conv1 (four times the positions), and the delta says so
    macs = editor.table.rows[model.row_of("layer2.0.conv1")].macs
    assert macs == 128 * 64 * 9 * 16 * 16
    assert texts["layer2.0.conv1"][GraphTableModel.DMACS].startswith("+")


def test_a_broken_merge_point_is_explained_and_undo_restores_the_table(
    qtbot, editor_dock: LayerEditorDock
) -> None:
    editor = editor_dock.graph
    original = editor.table_model.texts()
    loaded = [r.name for r in editor.table_model.rows]
    click_module(qtbot, editor, "layer1.0.conv1")
    editor.form.editors["stride"].h.setValue(2)
    texts = row_texts(editor)
    # no row disappears: layer1 and layer1.0, around the break, read "not computed" too
    assert [r.name for r in editor.table_model.rows] == loaded
    assert texts["layer1"][OUTPUT] == texts["layer1.0"][OUTPUT] == "not computed"
    assert "deleted" not in editor.totals.text()  # the containers are there, not computed
    error = editor.table.error
    assert error is not None and error.node == "layer1.0.add"
    assert "residual addition" in error.message and "64×8×8" in error.message
    assert "64×16×16" in error.message and "layer1.0.conv1" in error.message
    assert editor.banner.isVisible() and not editor.apply_action.isEnabled()
    assert texts["layer1.0.add"][CHANGE] == "✗ error"
    # rows after the break stay, saying they are not computed; rows before it keep their figures
    names = [r.name for r in editor.table_model.rows]
    after = names[names.index("layer1.0.add") + 1 :]
    assert "fc" in after and all(texts[n][OUTPUT] == "not computed" for n in after)
    assert texts["conv1"][OUTPUT] == "64×32×32"
    # clicking the banner selects the node it names
    qtbot.mouseClick(editor.banner, Qt.MouseButton.LeftButton)
    assert editor.selected == "layer1.0.add"
    assert editor.view.currentIndex().row() == editor.table_model.row_of("layer1.0.add")
    assert editor.tree.current_name() == "layer1.0"
    # Ctrl+Z in the dock restores the loaded model's table exactly
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert editor.wait()
    assert editor.table_model.texts() == original and not editor.banner.isVisible()
    qtbot.keyClick(
        editor.view,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert editor.wait() and editor.table.error is not None


def test_typing_queues_the_tables_and_makes_one_undo_step(
    qtbot, editor_dock: LayerEditorDock
) -> None:
    editor = editor_dock.graph
    click_module(qtbot, editor, "layer3.0.conv2")
    spin = editor.form.editors["out_channels"]
    for value in (2, 25, 256 + 1, 255):  # keystrokes: none waits for the table of the one before
        spin.setValue(value)
    assert editor.busy  # the tables are computed on the worker thread
    assert editor.wait()
    assert editor.undo_stack.count() == 1
    assert editor.table.error is not None  # 255 channels meet the downsample's 256 at layer3.0.add
    assert editor.table.error.node == "layer3.0.add"
    assert (
        editor.table_model.texts()[editor.table_model.row_of("layer3.0.conv2")][OUTPUT] == "255×4×4"
    )
    editor.undo_action.trigger()
    assert editor.wait() and editor.table.error is None


def test_a_refused_value_shows_its_reason_and_keeps_the_previous_table(
    qtbot, editor_dock: LayerEditorDock
) -> None:
    editor = editor_dock.graph
    click_module(qtbot, editor, "layer1.0.conv1")
    before = editor.table_model.texts()
    editor.form.editors["groups"].setValue(3)
    assert editor.wait()
    reason = editor.form.error_text("groups")
    assert "3" in reason and "64" in reason and "divide" in reason and "\n" not in reason
    assert editor.form.editors["groups"].value() == 1  # back to the value in force
    assert editor.table_model.texts() == before and editor.undo_stack.count() == 0
    # an edit queued just before a refused one still happens, and its table is shown
    editor.form.editors["out_channels"].setValue(64)  # unchanged: nothing to do
    editor.form.editors["kernel_size"].h.setValue(5)
    editor.form.editors["groups"].setValue(3)
    assert editor.wait()
    assert editor.form.error_text("groups") and editor.form.editors["kernel_size"].value() == (5, 5)
    assert row_texts(editor)["layer1.0.conv1"][GraphTableModel.SETTINGS].startswith("5×5")
    editor.undo_action.trigger()
    assert editor.wait() and editor.table_model.texts() == before
    click_module(qtbot, editor, "layer1.0.conv1")
    editor.form.editors["groups"].setValue(4)  # a valid value clears the reason
    assert editor.wait() and editor.form.error_text("groups") == ""
    edited = torchvision_resnet()
    old = edited.layer1[0].conv1
    edited.layer1[0].conv1 = nn.Conv2d(64, 64, 3, padding=1, groups=4, bias=False)
    assert old.weight.shape != edited.layer1[0].conv1.weight.shape
    assert_rows_match(editor, edited)


def test_channels_propagate_and_can_be_turned_off(qtbot, editor_dock: LayerEditorDock) -> None:
    editor = editor_dock.graph
    click_module(qtbot, editor, "layer1.0.conv1")
    assert not editor.form.editors[
        "in_channels"
    ].isEnabled()  # taken from the input while propagating
    editor.form.editors["out_channels"].setValue(32)
    assert editor.wait() and editor.table.error is None
    edited = torchvision_resnet()
    block = edited.layer1[0]
    block.conv1 = nn.Conv2d(64, 32, 3, padding=1, bias=False)
    block.bn1 = nn.BatchNorm2d(32)
    block.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
    assert_rows_match(editor, edited)
    click_module(qtbot, editor, "layer1.0.bn1")
    label = editor.form.form.labelForField(editor.form.editors["num_features"])
    assert label.text() == "Features (follows)"
    assert editor.form.editors["num_features"].value() == 32
    # propagation off: the next change is not followed, and the batch norm says why
    editor.undo_action.trigger()
    assert editor.wait()
    editor.propagate_box.setChecked(False)
    click_module(qtbot, editor, "layer1.0.conv1")
    assert editor.form.editors["in_channels"].isEnabled()
    editor.form.editors["out_channels"].setValue(32)
    assert editor.wait()
    assert editor.table.error is not None and editor.table.error.node == "layer1.0.bn1"
    assert editor.banner.isVisible()


def test_replace_insert_and_delete_inside_sequential_containers(
    qtbot, editor_dock: LayerEditorDock
) -> None:
    editor = editor_dock.graph
    click_module(qtbot, editor, "layer1.0.conv1")  # inside a BasicBlock: no insert or delete
    assert editor.replace_action.isEnabled()
    assert not editor.insert_action.isEnabled() and not editor.delete_action.isEnabled()
    click_module(qtbot, editor, "layer1.1")  # a block inside the Sequential layer1
    assert editor.insert_action.isEnabled() and editor.delete_action.isEnabled()
    editor.delete_action.trigger()
    assert editor.wait() and editor.table.error is None
    assert "layer1.1" not in editor.tree.items and "layer1.1.conv1" not in editor.tree.items
    assert "deleted" in editor.totals.text()
    click_module(qtbot, editor, "maxpool")
    editor.kind_combo.setCurrentText("Identity")
    editor.replace_action.trigger()
    assert editor.wait()
    assert editor.tree.items["maxpool"].text(1) == "Identity"
    edited = torchvision_resnet()
    del edited.layer1[1]
    edited.maxpool = nn.Identity()
    assert_rows_match(editor, edited)
    texts = row_texts(editor)
    assert texts["maxpool"][CHANGE] == "edited · shape"
    # insert a dropout after layer1.0: a new row, marked new, that changes nothing else
    click_module(qtbot, editor, "layer1.0")
    editor.kind_combo.setCurrentText("Dropout")
    editor.insert_action.trigger()
    assert editor.wait()
    texts = row_texts(editor)
    assert editor.tree.items["layer1.1"].text(1) == "Dropout" and texts["layer1.1"][CHANGE] == "new"
    edited.layer1.append(nn.Dropout())
    assert_rows_match(editor, edited)
    for _ in range(3):
        editor.undo_action.trigger()
        assert editor.wait()
    assert_rows_match(editor, torchvision_resnet())


def test_save_an_edit_and_open_it_again(
    qtbot, editor_dock: LayerEditorDock, tmp_path: Path
) -> None:
    editor = editor_dock.graph
    click_module(qtbot, editor, "layer2.0.conv1")
    editor.form.editors["stride"].h.setValue(1)
    click_module(qtbot, editor, "layer2.0.downsample.0")
    editor.form.editors["stride"].h.setValue(1)
    shown = row_texts(editor)
    path = editor.save_patch(tmp_path / "edit.json")
    assert path is not None and json.loads(path.read_text())["base"]
    # the patch opens as a model (as File > Open model… opens it): the edited resnet18
    model = load_model(str(path), weights="none", input_shape=SIZE)
    assert model.module.layer2[0].conv1.stride == (1, 1)
    assert model.module.layer2[0].downsample[0].stride == (1, 1)
    # and as an edit in another editor: the same table, one undo step
    other = LayerEditorDock()
    qtbot.addWidget(other)
    other.set_model(resnet())
    assert other.graph.wait()
    with qtbot.waitSignal(other.graph.status) as said:
        assert other.graph.open_patch(path)
    assert said.args == ["Opened edit.json."]
    assert row_texts(other.graph) == shown
    assert other.graph.undo_stack.count() == 1
    # a file that is not a patch: one line, nothing changes
    bad = tmp_path / "bad.json"
    bad.write_text('{"base": "resnet18", "edits": [{"module": "nope", "set": {}}]}')
    assert not other.graph.open_patch(bad) or other.graph.wait()
    assert row_texts(other.graph) == shown
    assert not other.graph.message.isHidden() and "\n" not in other.graph.message.text()
    assert "nope" in other.graph.message.text()
    other.shutdown()


def test_batchnorm_off_and_activation_type_from_the_fields(
    qtbot, editor_dock: LayerEditorDock
) -> None:
    editor = editor_dock.graph
    click_module(qtbot, editor, "layer2.1.bn1")
    editor.form.editors["enabled"].setChecked(
        False
    )  # BatchNorm off: the module becomes an Identity
    assert editor.wait()
    assert editor.tree.items["layer2.1.bn1"].text(1) == "Identity"
    assert editor.form.title() == "layer2.1.bn1 · Identity"
    assert not editor.form.editors["enabled"].isChecked()
    click_module(qtbot, editor, "layer3.1.relu")
    combo = editor.form.editors["type"]
    combo.setCurrentText("Hardswish")
    combo.activated.emit(combo.currentIndex())  # what a user's choice in the list emits
    assert editor.wait()
    assert editor.tree.items["layer3.1.relu"].text(1) == "Hardswish"
    edited = torchvision_resnet()
    edited.layer2[1].bn1 = nn.Identity()
    edited.layer3[1].relu = nn.Hardswish()
    assert_rows_match(editor, edited)
    texts = row_texts(editor)
    assert texts["layer2.1.bn1"][PARAMS] == "0" and texts["layer2.1.bn1"][CHANGE] == "edited"
    # on again: a BatchNorm with the channels it meets
    click_module(qtbot, editor, "layer2.1.bn1")
    editor.form.editors["enabled"].setChecked(True)
    assert editor.wait()
    assert editor.tree.items["layer2.1.bn1"].text(1) == "BatchNorm2d"
    assert row_texts(editor)["layer2.1.bn1"][PARAMS] == f"{2 * 128:,}"


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.conv(x)
        return self.conv(-x)


def test_a_model_that_cannot_be_traced_says_why_in_one_line(qtbot) -> None:
    pre = Preprocess(3, (16, 16), "resize", 16, (0.5,) * 3, (0.25,) * 3)
    model = LoadedModel(_Branchy().eval(), "branchy", (3, 16, 16), pre, None, source="module")
    dock = LayerEditorDock()
    qtbot.addWidget(dock)
    dock.set_model(model)
    assert dock.graph.wait()
    header = dock.graph.header.text()
    assert header.startswith("branchy") and "\n" not in header and "read-only" in header
    assert not dock.graph.splitter.isVisible() and not dock.graph.apply_action.isEnabled()
    dock.shutdown()


def test_mobilenet_edits_follow_torch(qtbot) -> None:
    import torchvision

    dock = LayerEditorDock()
    qtbot.addWidget(dock)
    dock.resize(1300, 560)
    dock.show()
    torch.manual_seed(0)
    dock.set_model(load_model("mobilenet_v3_small", weights="none", input_shape=SIZE))
    editor = dock.graph
    assert editor.wait()
    reference = torchvision.models.mobilenet_v3_small()
    assert list(editor.tree.items) == [n for n, _ in reference.named_modules() if n]
    click_module(qtbot, editor, "features.0.0")
    editor.form.editors["stride"].h.setValue(1)
    assert editor.wait() and editor.table.error is None
    reference.features[0][0].stride = (1, 1)
    assert_rows_match(editor, reference)
    dock.shutdown()


@pytest.mark.slow
def test_apply_hands_the_edited_model_to_the_window(loaded_window, tmp_path: Path) -> None:
    from gui_helpers import wait_idle

    window = loaded_window
    window.session.set_model(resnet())
    wait_idle(window)
    base = window.session.model
    window.show_tool(window.editor_dock)
    editor = window.editor_dock.graph
    assert editor.wait() and window.editor_dock.pages.currentWidget() is editor
    editor.select("layer1.0.conv1")
    editor.form.editors["kernel_size"].h.setValue(5)
    editor.form.editors["padding"].h.setValue(2)
    assert editor.wait() and editor.table.error is None
    window.session.select_layer("layer1.0.conv1")
    wait_idle(window)
    before = np.array(window.session.activations["layer1.0.conv1"], copy=True)
    assert editor.apply()
    assert editor.wait()
    wait_idle(window)
    model = window.session.model
    assert model is not base and model.module.layer1[0].conv1.weight.shape == (64, 64, 5, 5)
    # unchanged modules kept their weights; the changed one was re-initialised, and the editor says so
    assert torch.equal(model.module.layer1[0].conv2.weight, base.module.layer1[0].conv2.weight)
    assert "layer1.0.conv1" in editor.notice.text()
    # the maps follow: the picture ran through the edited model
    after = window.session.activations["layer1.0.conv1"]
    assert after.shape == before.shape and not np.array_equal(after, before)
    # the editor keeps its history for the model it applied
    assert window.editor_dock.graph.undo_stack.count() >= 1
    # a second Apply keeps the weights the first one gave the module edited before
    first = model.module.layer1[0].conv1.weight.detach().clone()
    assert editor.wait()
    editor.select("layer2.0.conv2")
    editor.form.editors["kernel_size"].h.setValue(5)
    editor.form.editors["padding"].h.setValue(2)
    assert editor.wait() and editor.table.error is None
    assert editor.apply()
    assert editor.wait()
    wait_idle(window)
    model = window.session.model
    assert model.module.layer2[0].conv2.weight.shape == (128, 128, 5, 5)
    assert torch.equal(model.module.layer1[0].conv1.weight, first)
    assert "layer2.0.conv2" in editor.notice.text() and "layer1.0.conv1" not in editor.notice.text()
    # File > Open model… on the saved edit opens the edited model (base weights: none, as loaded here)
    path = editor.save_patch(tmp_path / "kernel5.json")
    assert path is not None
    window.load_model(str(path), weights="none")
    wait_idle(window)
    opened = window.session.model
    assert opened is not model and "edited" in opened.name
    assert opened.module.layer1[0].conv1.weight.shape == (64, 64, 5, 5)
    assert editor.wait() and window.editor_dock.pages.currentWidget() is editor
    assert editor.table.error is None and editor.undo_stack.count() == 0


def test_a_timm_network_breaks_with_the_rows_of_the_loaded_model(qtbot) -> None:
    dock = LayerEditorDock()
    qtbot.addWidget(dock)
    dock.set_model(load_model("timm:efficientnet_b0", weights="none", input_shape=SIZE))
    editor = dock.graph
    assert editor.wait() and dock.pages.currentWidget() is editor
    loaded = [r.name for r in editor.table_model.rows]
    editor.select("conv_stem")
    editor.form.editors["out_channels"].setValue(40)  # timm's BatchNormAct2d does not follow
    assert editor.wait()
    error = editor.table.error
    assert error is not None and error.node.startswith("bn1") and "40" in error.message
    # the rows are the loaded model's rows, those after the break not computed: none come or go
    assert [r.name for r in editor.table_model.rows] == loaded
    texts = row_texts(editor)
    assert texts["conv_stem"][CHANGE] == "edited · shape"
    assert sum(1 for t in texts.values() if t[CHANGE] in ("edited", "new", "shape")) == 0
    dock.shutdown()
