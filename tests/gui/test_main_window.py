"""The main window, driven like a user would: select layers, click feature maps, keys, drops, exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gui_helpers import wait_idle
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage

from cnnviz.core.images import load_image


def sequential_rf(net, upto: int) -> tuple[int, int, int]:
    """Textbook receptive field of a chain of layers: (size r, stride S, padding P), one axis (square layers)."""
    r, s, p = 1, 1, 0
    for layer in list(net)[: upto + 1]:
        k = getattr(layer, "kernel_size", None)
        if k is None:
            continue
        k = k[0] if isinstance(k, tuple) else k
        st = layer.stride[0] if isinstance(layer.stride, tuple) else layer.stride
        pd = layer.padding[0] if isinstance(layer.padding, tuple) else layer.padding
        r += (k - 1) * s
        p += pd * s
        s *= st
    return r, s, p


def click_unit(qtbot, window, channel: int, y: int, x: int, double: bool = False) -> None:
    view = window.feature_view
    point = view.widget_point(channel, y, x)
    target = view.graphics.viewport()
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=point)
    if double:
        # A real double click: press, release, double-click, release.
        qtbot.mouseDClick(target, Qt.MouseButton.LeftButton, pos=point)
        qtbot.mouseRelease(target, Qt.MouseButton.LeftButton, pos=point)


def test_window_starts_with_default_model_and_sample(gui_window, qtbot):
    gui_window.start()
    wait_idle(gui_window)
    session = gui_window.session
    assert "cnnviz" in gui_window.windowTitle()
    assert session.model is not None and session.model.input_shape[0] == 1
    assert gui_window.feature_view.mosaic is not None
    assert session.layer == session.default_layer()
    assert len(gui_window.predictions.texts()) == 5
    assert gui_window.draw_dock.isVisible()  # one-channel model: the digit canvas is offered


def test_layer_list_lists_every_captured_layer(loaded_window):
    from cnnviz.core.analysis.capture import capture

    session = loaded_window.session
    keys = list(capture(session.model, session.image).keys())
    assert list(loaded_window.layer_list.items) == keys
    item = loaded_window.layer_list.items["3"]
    assert item.text(1) == "Conv2d"
    with torch.no_grad():
        out = session.model.module[:4](session.image.tensor)
    assert item.text(2) == "×".join(str(d) for d in out.shape[1:])


def test_select_layer_click_unit_draws_the_receptive_field(
    loaded_window, qtbot, gui_model, gui_photo
):
    window = loaded_window
    tree = window.layer_list.tree
    item = window.layer_list.items["3"]
    tree.setCurrentItem(item)  # what a click on the row does
    assert window.session.layer == "3"
    mosaic = window.feature_view.mosaic
    assert mosaic.maps.shape == (8, 8, 8)

    click_unit(qtbot, window, 5, 2, 6)
    sel = window.session.selection
    assert (sel.layer, sel.unit, sel.channel) == ("3", (2, 6), 5)

    # Truth: the textbook receptive field of the chain, mapped through the (independently loaded) geometry.
    r, s, p = sequential_rf(gui_model.module, 3)
    box = (2 * s - p, 6 * s - p, 2 * s - p + r - 1, 6 * s - p + r - 1)
    geometry = load_image(gui_photo, gui_model.preprocess).geometry
    expected = geometry.box_edges_to_original(box)
    assert window.input_view.rf_edges() == pytest.approx(expected)
    assert tuple(sel.box.box) == box
    assert sel.box.image_box == geometry.box_to_original(
        (max(box[0], 0), max(box[1], 0), min(box[2], 31), min(box[3], 31))
    )
    # The part inside the picture is drawn separately from the part in the padding.
    inside = window.input_view.inside_edges()
    area = geometry.box_edges_to_original((0, 0, 31, 31))
    assert inside == pytest.approx((max(expected[0], area[0]), max(expected[1], area[1]),
                                    min(expected[2], area[2]), min(expected[3], area[3])))  # fmt: skip
    # The unit is highlighted in the feature map.
    oy, ox = mosaic.layout.tile_origin(5)
    assert window.feature_view.chosen_rect() == (oy + 2, ox + 6, oy + 3, ox + 7)


def test_status_bar_names_unit_r_s_p_and_box(loaded_window, gui_model):
    window = loaded_window
    window.session.select_layer("3")
    window.session.select_unit(1, 1, channel=0)
    r, s, p = sequential_rf(gui_model.module, 3)
    text = window.unit_label.text()
    box = window.session.selection.box.image_box
    conv = gui_model.module[3]
    kh, kw = conv.kernel_size
    # a bare Sequential index is named with its type, as in the Layers list
    assert text.startswith(
        f"3 · Conv2d {kh}×{kw}, {conv.out_channels}   unit (y 1, x 1, channel 0)"
    )
    assert f"r = {r}" in text and f"S = {s}" in text and f"P = {p}" in text
    assert f"rows {box[0]}–{box[2]}, columns {box[1]}–{box[3]}" in text


def test_arrow_keys_move_the_unit_and_stay_inside(loaded_window, qtbot):
    window = loaded_window
    window.session.select_layer("3")
    click_unit(qtbot, window, 1, 3, 3)
    graphics = window.feature_view.graphics
    qtbot.keyClick(graphics, Qt.Key.Key_Right)
    assert window.session.selection.unit == (3, 4)
    qtbot.keyClick(graphics, Qt.Key.Key_Down)
    assert window.session.selection.unit == (4, 4)
    qtbot.keyClick(graphics, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert window.session.selection.unit == (4, 7)  # clamped at the last column
    qtbot.keyClick(graphics, Qt.Key.Key_Up)
    assert window.session.selection.unit == (3, 7)
    assert window.session.selection.channel == 1
    box = window.session.rf_index.box("3", (3, 7), window.session.image.geometry)
    assert window.input_view.rf_edges() == pytest.approx(
        window.session.image.geometry.box_edges_to_original(box.box)
    )


def test_double_click_enlarges_a_channel_and_clicks_still_pick_units(loaded_window, qtbot):
    window = loaded_window
    window.session.select_layer("0")
    click_unit(qtbot, window, 4, 10, 12, double=True)
    view = window.feature_view
    assert view.channel == 4
    assert view.mosaic.rgba.shape[:2] == (32, 32)
    click_unit(qtbot, window, 4, 20, 3)
    assert window.session.selection.unit == (20, 3) and window.session.selection.channel == 4
    qtbot.keyClick(view.graphics, Qt.Key.Key_Escape)
    assert view.channel is None


def test_sort_colormap_and_normalisation(loaded_window):
    window = loaded_window
    view = window.feature_view
    window.session.select_layer("0")
    view.cmap_box.setCurrentText("magma")
    assert view.mosaic.cmap == "magma" and window.prefs.get("cmap") == "magma"
    view.norm_box.setCurrentIndex(1)
    assert view.mosaic.norm == "layer"
    view.sort_box.setChecked(True)
    maps = window.session.activation("0")[0]
    means = maps.reshape(maps.shape[0], -1).mean(axis=1)
    assert view.mosaic.layout.order[0] == int(np.argmax(means))
    assert [a.text() for a in window.cmap_group.actions() if a.isChecked()] == ["magma"]


def test_hover_readout_reports_channel_unit_value(loaded_window, qtbot):
    window = loaded_window
    window.session.select_layer("0")
    view = window.feature_view
    scene_pos = view.vb.mapViewToScene(view.unit_center(2, 5, 7))
    view.readout_at(scene_pos)
    value = window.session.activation("0")[0, 2, 5, 7]
    assert view.readout.text().startswith(f"channel 2   y 5   x 7   value {value:.5g}")


def test_table_row_selects_layer_and_shows_formula(loaded_window, gui_model):
    window = loaded_window
    table = window.layer_table
    model = table.model
    row = model.row_of("3")
    table.table.selectRow(row)
    assert window.session.layer == "3"
    conv = gui_model.module[3]
    assert table.formula.text().endswith(f"= {sum(p.numel() for p in conv.parameters())}")
    # Table numbers against torch: parameters per layer and in total.
    assert model.value(row, 3) == sum(p.numel() for p in conv.parameters())
    total_row = model.rowCount() - 1
    assert model.value(total_row, 0) == "Total"
    assert model.value(total_row, 3) == sum(p.numel() for p in gui_model.module.parameters())
    # Selecting in the layer list moves the table too.
    window.session.select_layer("1")
    assert table.table.currentIndex().row() == model.row_of("1")


def test_predictions_are_the_softmax_top5(loaded_window, gui_model, gui_photo):
    x = load_image(gui_photo, gui_model.preprocess).tensor
    with torch.no_grad():
        probs = torch.softmax(gui_model.module(x), dim=1)[0]
    values, indices = torch.topk(probs, 4)
    expected = [
        (gui_model.labels[i], f"{v * 100:.1f} %")
        for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]
    assert loaded_window.predictions.texts() == expected


def test_effective_rf_heatmap_follows_the_unit(loaded_window):
    window = loaded_window
    session = window.session
    session.select_layer("3")
    window.act_erf.setChecked(True)
    session.select_unit(2, 3, channel=1)
    wait_idle(window)
    erf = session.erf
    assert erf is not None and window.input_view.erf_visible()
    x = session.image.tensor.clone().requires_grad_(True)
    session.model.module[:4](x)[0, 1, 2, 3].backward()
    np.testing.assert_allclose(erf.heatmap, x.grad[0].abs().sum(0).numpy(), rtol=1e-5, atol=1e-7)
    window.act_erf.setChecked(False)
    assert not window.input_view.erf_visible()


def test_changing_layer_keeps_looking_at_the_same_place(loaded_window):
    session = loaded_window.session
    session.select_layer("0")
    session.select_unit(20, 8)
    session.select_layer("3")
    # Unit (20, 8) of a stride-1 layer is centred on input (20, 8); layer 3 has stride 4 and r = 8, P = 3.
    assert session.selection.unit == (5, 2)


def test_input_view_click_picks_the_unit_looking_there(loaded_window):
    window = loaded_window
    session = window.session
    session.select_layer("3")
    geometry = session.image.geometry
    oy, ox = geometry.point_to_original(13.0, 21.0)  # model-input pixel (13, 21)
    window.input_view.pointClicked.emit(*geometry.point_from_original(oy, ox))
    row = session.row("3")
    r, s, p = row.rf.size[0], int(row.rf.stride[0]), int(row.rf.padding[0])
    expect = tuple(int(np.floor((v + p - (r - 1) / 2) / s + 0.5)) for v in (13.0, 21.0))
    assert session.selection.unit == expect


def test_model_input_mode_shows_what_the_network_sees(loaded_window):
    window = loaded_window
    window.act_model_input.setChecked(True)
    view = window.input_view
    assert view.mode == "model"
    assert view.shown_image.shape[:2] == (32, 32)
    window.session.select_layer("0")
    window.session.select_unit(0, 0)
    assert view.rf_edges() == pytest.approx(
        (-1.0, -1.0, 2.0, 2.0)
    )  # 3x3 kernel, padding 1, in model pixels
    window.act_model_input.setChecked(False)
    assert view.mode == "original"


def test_drop_an_image_file(loaded_window, tmp_path, qtbot):
    path = tmp_path / "dropped.png"
    Image.fromarray(np.full((30, 30, 3), 90, np.uint8)).save(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    pos = QPointF(loaded_window.width() / 2, loaded_window.height() / 2)
    enter = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    loaded_window.dropEvent(enter)
    wait_idle(loaded_window)
    assert loaded_window.session.image_name == "dropped.png"
    assert loaded_window.session.image.original_size == (30, 30)
    assert str(path.resolve()) in loaded_window.prefs.recent("recentImages")


def test_corrupt_image_is_reported_and_the_app_keeps_working(loaded_window, tmp_path, gui_photo):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    window = loaded_window
    window.open_image_path(str(bad))
    wait_idle(window)
    title, message = window.last_error
    assert "broken.png" in message and "\n" not in message
    assert window.session.image.path == str(gui_photo)  # still showing the last good picture
    window.open_image_path(str(gui_photo))
    wait_idle(window)
    window.session.select_unit(1, 1)
    assert window.input_view.rf_edges() is not None


def test_paste_an_image_from_the_clipboard(loaded_window):
    image = QImage(20, 12, QImage.Format.Format_RGB32)
    image.fill(0xFF336699)
    QGuiApplication.clipboard().setImage(image)
    assert loaded_window.paste_image()
    wait_idle(loaded_window)
    assert loaded_window.session.image.original_size == (12, 20)
    assert tuple(loaded_window.session.image.display[0, 0]) == (0x33, 0x66, 0x99)


def test_draw_a_digit_updates_maps_and_prediction(gui_window, qtbot):
    gui_window.start()
    wait_idle(gui_window)
    panel = gui_window.draw_panel
    panel.draw_line([(140, 40), (140, 240)])  # a "1"
    wait_idle(gui_window)
    session = gui_window.session
    assert session.image_name == "drawing"
    assert not panel.canvas.is_blank()
    # The model input is the drawing, inverted (ink light on dark), letterboxed to 28x28.
    seen = session.image.model_input_image[..., 0]
    assert seen[14, 14] > 128 and seen[14, 2] < 64
    assert gui_window.predictions.texts()


def test_untrusted_model_file_is_refused_until_confirmed(gui_window, tmp_path, gui_model):
    path = tmp_path / "whole_model.pt"
    torch.save(gui_model.module, path)
    gui_window.load_model(str(path))
    wait_idle(gui_window)
    assert gui_window.session.model is None
    title, message = gui_window.last_error
    assert "arbitrary code" in message
    gui_window.session.load_model(str(path), trust=True)
    wait_idle(gui_window)
    assert (
        gui_window.session.model is not None and gui_window.session.model.source == "pickled module"
    )


def test_unknown_model_name_is_a_message_not_a_crash(gui_window):
    gui_window.load_model("resnet1888")
    wait_idle(gui_window)
    assert "resnet18" in gui_window.last_error[1]


def test_exports_write_annotated_files(loaded_window, tmp_path):
    window = loaded_window
    session = window.session
    session.select_layer("3")
    session.select_unit(2, 3, channel=1)
    written = []
    window.exported.connect(written.append)
    for kind, name in [("grid_png", "grid.png"), ("grid_svg", "grid.svg"), ("channel_png", "channel.png"),
                       ("rf_png", "rf.png"), ("rf_svg", "rf.svg"), ("table_csv", "t.csv"), ("table_md", "t.md")]:  # fmt: skip
        window.export(kind, str(tmp_path / name))
    wait_idle(window)
    assert sorted(written) == sorted(str(tmp_path / n) for n in
                                     ["grid.png", "grid.svg", "channel.png", "rf.png", "rf.svg", "t.csv", "t.md"])  # fmt: skip
    with Image.open(tmp_path / "rf.png") as im:
        assert im.text["cnnviz.layer"] == "3" and im.text["cnnviz.unit"] == "2,3"
        assert str(list(session.selection.box.box)) == im.text["cnnviz.box"]
    with Image.open(tmp_path / "grid.png") as im:
        assert im.text["cnnviz.shape"] == "8x8x8"
    assert "tiny" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "rf.svg").read_text().count("<rect") >= 3
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_export_all_layers_with_progress(loaded_window, tmp_path):
    window = loaded_window
    window.session.select_layer("3")
    window.session.select_unit(1, 1)
    done = []
    window.exported.connect(done.append)
    window.export_all_layers(str(tmp_path / "all"))
    wait_idle(window)
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    assert [e["layer"] for e in manifest["layers"]] == list(window.session.activations)
    # One picture spot for every layer: the selected unit's own layer shows that very unit.
    entry = next(e for e in manifest["layers"] if e["layer"] == "3")
    assert manifest["point"] is not None and entry["unit"] == [1, 1]
    assert done == [str(tmp_path / "all")]


def test_export_without_a_unit_says_what_to_do(loaded_window, tmp_path):
    loaded_window.export("rf_png", str(tmp_path / "x.png"))
    assert "select a unit" in loaded_window.last_error[1]
    assert not (tmp_path / "x.png").exists()


def test_preferences_persist(gui_prefs, qtbot, tmp_path):
    from cnnviz.gui.main_window import MainWindow

    window = MainWindow(preferences=gui_prefs)
    qtbot.addWidget(window)
    window.feature_view.set_cmap("inferno")
    window.prefs.add_recent("recentImages", "/some/picture.png")
    window.close()
    from PySide6.QtCore import QSettings

    from cnnviz.gui.settings import Preferences

    again = MainWindow(
        preferences=Preferences(
            QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        )
    )
    qtbot.addWidget(again)
    assert again.feature_view.cmap == "inferno"
    assert again.prefs.recent("recentImages") == ["/some/picture.png"]
    again.close()


def test_unwritable_settings_fall_back_to_memory(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from cnnviz.gui.main_window import MainWindow
    from cnnviz.gui.settings import Preferences

    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "settings.ini").write_text("[General]\ncmap=magma\n")
    (locked / "settings.ini").chmod(0o444)
    locked.chmod(0o555)
    try:
        prefs = Preferences(QSettings(str(locked / "settings.ini"), QSettings.Format.IniFormat))
        window = MainWindow(preferences=prefs)
        qtbot.addWidget(window)
        window.feature_view.set_cmap("gray")
        assert window.prefs.get("cmap") == "gray"
        window.close()  # saving fails quietly
    finally:
        locked.chmod(0o755)


def test_about_lists_versions():
    import pyqtgraph
    import PySide6
    import torchvision

    from cnnviz.gui.dialogs import about_text

    text = about_text()
    for version in (
        torch.__version__,
        torchvision.__version__,
        PySide6.__version__,
        pyqtgraph.__version__,
    ):
        assert version in text


def test_ctrl_q_quits(gui_window, qtbot):
    assert gui_window.act_quit.shortcut().toString() == "Ctrl+Q"
    gui_window.act_quit.trigger()
    assert not gui_window.isVisible()


def test_widget_point_round_trip(loaded_window):
    view = loaded_window.feature_view
    loaded_window.session.select_layer("3")
    point = view.widget_point(6, 4, 5)
    scene = view.graphics.mapToScene(QPoint(int(point.x()), int(point.y())))
    local = view.vb.mapSceneToView(scene)
    assert view.mosaic.layout.locate(local.y(), local.x()) == (6, 4, 5)


def test_big_layers_are_drawn_in_the_background(loaded_window, qtbot, monkeypatch):
    window = loaded_window
    view = window.feature_view
    monkeypatch.setattr(view, "ASYNC_VALUES", 0)
    window.session.select_layer("0")
    window.session.select_layer("3")  # supersedes the drawing of layer 0
    assert view.wait_rendered()
    assert view.mosaic_layer == "3" and view.mosaic.maps.shape == (8, 8, 8)
    click_unit(qtbot, window, 2, 1, 1)
    assert window.session.selection.unit == (1, 1)


def test_state_dict_needs_an_architecture_then_loads_with_it(gui_window, tmp_path):
    from cnnviz.core.models.spec import save_spec, spec_from_sequential

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 16 * 16, 2)).eval()  # fmt: skip
    weights = tmp_path / "weights.pt"
    torch.save(net.state_dict(), weights)
    gui_window.load_model(str(weights))
    wait_idle(gui_window)
    assert gui_window.last_error[0] == "Which architecture?"
    spec = tmp_path / "arch.json"
    save_spec(spec_from_sequential(net, (3, 16, 16)), spec)
    gui_window.load_model(str(spec), str(weights))
    wait_idle(gui_window)
    model = gui_window.session.model
    assert torch.equal(model.module.state_dict()["0.weight"], net.state_dict()["0.weight"])


def test_tool_docks_follow_the_current_model_and_picture(loaded_window):
    window = loaded_window
    session = window.session
    assert window.editor_dock.model is session.model
    assert window.training_dock.model is session.model
    assert window.lab.summary is session.summary
    window.act_lab.trigger()
    np.testing.assert_array_equal(window.lab._image, session.image.display)
    # A model the editor applies becomes the app's model (and runs on the picture).
    from cnnviz.core.models import LoadedModel

    edited = LoadedModel(session.model.module, "tiny (edited)", session.model.input_shape, session.model.preprocess,
                         session.model.labels)  # fmt: skip
    window.editor_dock.applied.emit(edited)
    wait_idle(window)
    assert session.model is edited and window.feature_view.mosaic is not None


def test_apply_in_the_editor_ends_with_its_summary_in_the_status_bar(qtbot, gui_window, tmp_path):
    from cnnviz.core.models.spec import save_spec

    spec = {
        "name": "status net",
        "input_shape": [1, 12, 12],
        "layers": [
            {"type": "Conv2d", "out_channels": 3, "kernel_size": 3},
            {"type": "ReLU"},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 2},
        ],
    }
    path = tmp_path / "net.json"
    save_spec(spec, path)
    window = gui_window
    window.load_model(str(path), "none")
    wait_idle(window)
    dock = window.editor_dock
    rect = dock.view.visualRect(dock.table_model.index(0, 2))
    qtbot.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    dock.editors["out_channels"].setValue(5)
    with qtbot.waitSignal(window.session.modelChanged, timeout=60_000):
        dock.apply_action.trigger()
    wait_idle(window)
    assert window.session.model.module[0].out_channels == 5
    summary = dock.notice.text()
    assert summary.startswith("Applied: ")
    assert window.message_label.text() == summary
