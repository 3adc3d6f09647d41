"""Every entry point of the window that takes a file, a path or a typed value, fed bad input.

A bad input must end as a message (``window.last_error``, the status line or a dock's message) with the
previous model, picture and maps kept; never as a raw exception in a Qt slot or event handler, which PySide
prints as a traceback (sys.excepthook) and which can abort the app. The files are real ones written here.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gui_helpers import wait_idle
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QFileDialog

from cnnviz.core.models import load_model
from cnnviz.core.models.spec import save_spec
from cnnviz.core.present.export import default_file_name

SPEC: dict[str, Any] = {
    "name": "bad input net",
    "input_shape": [3, 16, 16],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


# --------------------------------------------------------------------------------------------------------------
# What counts as a failure: anything that reached the exception hooks or printed a traceback


@pytest.fixture(autouse=True)
def raw_exceptions(monkeypatch, capsys):
    """Record what reaches sys.excepthook / threading.excepthook (chained to pytest-qt's capture)."""
    seen: list[BaseException] = []
    previous, previous_thread = sys.excepthook, threading.excepthook

    def hook(kind: Any, value: BaseException, tb: Any) -> None:
        seen.append(value)
        previous(kind, value, tb)

    def thread_hook(args: Any) -> None:
        seen.append(args.exc_value)
        previous_thread(args)

    monkeypatch.setattr(sys, "excepthook", hook)
    monkeypatch.setattr(threading, "excepthook", thread_hook)
    yield seen
    err = capsys.readouterr().err
    assert not seen, f"raw exceptions reached the event loop: {seen!r}"
    assert "Traceback" not in err, err


def _fresh(window: Any) -> None:
    window.last_error = None
    window.message("")


def _problem(window: Any, what: Any = "") -> str:
    """The error the window showed since the last :func:`_fresh`, as one line."""
    status = window.message_label.text()
    assert window.last_error is not None, f"{what}: no error shown; status: {status!r}"
    title, message = window.last_error
    text = f"{title}: {message}"
    assert "unexpected" not in text and "Traceback" not in text, text
    assert "\n" not in message
    return text


def _state(window: Any) -> tuple[Any, Any, Any, Any]:
    s = window.session
    return (s.model, s.image, s.activations, s.layer)


def _kept(window: Any, before: tuple[Any, Any, Any, Any]) -> None:
    now = _state(window)
    for was, is_ in zip(before, now, strict=True):
        assert is_ is was, "the previous state was not kept"
    assert window.feature_view.mosaic is not None


# --------------------------------------------------------------------------------------------------------------
# Hostile files on disk


def bad_files(folder: Path, suffix: str) -> dict[str, Path]:
    """Files a user might name by mistake, each one real, all with ``suffix``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    p = folder / f"noise{suffix}"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out["noise"] = p
    p = folder / f"pipe{suffix}"
    os.mkfifo(p)
    out["fifo"] = p
    p = folder / f"folder{suffix}"
    p.mkdir()
    out["folder"] = p
    a, b = folder / f"loop_a{suffix}", folder / f"loop_b{suffix}"
    a.symlink_to(b)
    b.symlink_to(a)
    out["loop"] = a
    p = folder / f"broken{suffix}"
    p.symlink_to(folder / f"nowhere{suffix}")
    out["broken"] = p
    p = folder / f"empty{suffix}"
    p.write_bytes(b"")
    out["empty"] = p
    out["missing"] = folder / f"missing{suffix}"
    return out


def truncated_png(folder: Path) -> Path:
    whole = folder / "whole.png"
    rgb = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(whole)
    data = whole.read_bytes()
    p = folder / "truncated.png"
    p.write_bytes(data[: len(data) // 2])
    return p


def non_utf8_png(folder: Path) -> Path | None:
    """A valid PNG whose name is not UTF-8 (None where the filesystem refuses such names)."""
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    try:
        fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    except (OSError, UnicodeError):
        return None
    os.close(fd)
    name = os.fsdecode(raw)
    Image.new("RGB", (20, 20), (200, 10, 10)).save(raw, format="PNG")
    return Path(name)


# --------------------------------------------------------------------------------------------------------------
# File > Open picture, drag and drop, recent pictures


def test_bad_pictures_are_refused_and_the_picture_is_kept(loaded_window, tmp_path):
    w = loaded_window
    files = bad_files(tmp_path / "pics", ".png")
    files["truncated"] = truncated_png(tmp_path)
    odd = non_utf8_png(tmp_path)
    if odd is not None:
        files["non-utf8"] = odd
    for kind, path in files.items():
        before = _state(w)
        _fresh(w)
        w.open_image_path(str(path))
        wait_idle(w)
        if kind == "non-utf8":
            # A readable picture under an odd name is simply opened.
            assert w.last_error is None and w.session.image is not before[1]
            assert w.prefs.writable and str(path) in w.prefs.recent("recentImages")
            continue
        text = _problem(w, kind)
        _kept(w, before)
        assert path.name in text or kind in ("loop",), (kind, text)
    # The window still works: a good picture replaces the old one.
    good = tmp_path / "good.png"
    Image.new("RGB", (30, 30), (0, 128, 255)).save(good)
    _fresh(w)
    w.open_image_path(str(good))
    wait_idle(w)
    assert w.last_error is None and w.session.image is not None


def _drop(window: Any, mime: QMimeData) -> QDropEvent:
    """Drag ``mime`` over the window and drop it (Qt delivers a drop to whoever accepted the drag)."""
    where = QPoint(window.width() // 2, window.height() // 2)
    copy, left, none = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(where, copy, mime, left, none)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(where), copy, mime, left, none)
    QApplication.sendEvent(window, event)
    return event


def test_dropping_bad_files_of_every_kind_keeps_the_state(loaded_window, tmp_path):
    w = loaded_window
    files: dict[str, Path] = {}
    for suffix in (".png", ".bin", ".pt", ".json"):
        for kind, path in bad_files(tmp_path / suffix[1:], suffix).items():
            files[f"{kind}{suffix}"] = path
    files["truncated.png"] = truncated_png(tmp_path)
    odd = non_utf8_png(tmp_path)
    for kind, path in files.items():
        before = _state(w)
        _fresh(w)
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        _drop(w, mime)
        wait_idle(w)
        _problem(w, kind)
        _kept(w, before)
    if odd is not None:
        # Qt cannot spell a name that is not UTF-8: the drop opens it or says it cannot be found.
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(odd))])
        _fresh(w)
        _drop(w, mime)
        wait_idle(w)
        if w.last_error is not None:
            _problem(w, "non-utf8")
        assert w.prefs.writable
    # Text that is no file and no picture.
    before = _state(w)
    mime = QMimeData()
    mime.setText("not a picture")
    mime.setUrls([QUrl("https://example.invalid/x.png")])
    _drop(w, mime)
    wait_idle(w)
    _kept(w, before)


def test_recent_entries_that_became_hostile_are_reported(loaded_window, tmp_path):
    w = loaded_window
    for key, menu, suffix in (
        ("recentImages", w.recent_images_menu, ".png"),
        ("recentModels", w.recent_models_menu, ".pt"),
    ):
        files = bad_files(tmp_path / key, suffix)
        w.prefs.set(key, [str(p) for p in files.values()])
        w._fill_recent(menu, key)
        actions = [a for a in menu.actions() if a.toolTip() in {str(p) for p in files.values()}]
        assert len(actions) == len(files)
        for action in actions:
            before = _state(w)
            _fresh(w)
            action.trigger()
            wait_idle(w)
            _problem(w)
            _kept(w, before)


def test_clipboard_without_a_picture(loaded_window, tmp_path, monkeypatch):
    w = loaded_window
    clipboard = QGuiApplication.clipboard()
    before = _state(w)
    clipboard.setText("just some text")
    _fresh(w)
    assert not w.paste_image()
    assert "no picture" in w.message_label.text()
    mime = QMimeData()
    mime.setData("application/octet-stream", b"\x00\xff" * 100)
    mime.setData("image/png", b"\x89PNG\r\n\x1a\n not really")
    clipboard.setMimeData(mime)
    assert not w.paste_image()
    wait_idle(w)
    _kept(w, before)
    # A clipboard picture arrives decoded: its size is checked against the picture budget first.
    big = QImage(400, 300, QImage.Format.Format_RGB32)
    big.fill(0x336699)
    clipboard.setImage(big)
    for budget, words in (("100000", "400×300"), ("lots", "CNNVIZ_MAX_IMAGE_BYTES")):
        monkeypatch.setenv("CNNVIZ_MAX_IMAGE_BYTES", budget)
        _fresh(w)
        assert w.paste_image()
        wait_idle(w)
        assert words in _problem(w, budget)
        _kept(w, before)
    monkeypatch.delenv("CNNVIZ_MAX_IMAGE_BYTES")
    fifo = bad_files(tmp_path, ".png")["fifo"]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(fifo))])
    clipboard.setMimeData(mime)
    _fresh(w)
    w.paste_image()
    wait_idle(w)
    assert "FIFO" in _problem(w)
    _kept(w, before)


# --------------------------------------------------------------------------------------------------------------
# File > Open model


def hostile_json(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    out["nested"] = folder / "nested.json"
    out["nested"].write_text('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    out["nan"] = folder / "nan.json"
    out["nan"].write_text(
        json.dumps(dict(SPEC, layers=[{"type": "Dropout", "p": float("nan")}]), allow_nan=True)
    )
    out["digits"] = folder / "digits.json"
    out["digits"].write_text(
        json.dumps(SPEC).replace('"out_channels": 4', '"out_channels": ' + "9" * 5000)
    )
    out["huge"] = folder / "huge.json"
    out["huge"].write_text(
        json.dumps(SPEC).replace('"out_channels": 4', '"out_channels": 10000000')
    )
    out["latin1"] = folder / "latin1.json"
    out["latin1"].write_bytes(b'{"name": "caf\xe9", "layers": []}')
    out["list"] = folder / "list.json"
    out["list"].write_text("[1, 2, 3]")
    return out


def test_bad_model_files_are_refused_and_the_model_is_kept(loaded_window, tmp_path):
    w = loaded_window
    files = {}
    for suffix in (".pt", ".json", ".pt2", ".ts"):
        for kind, path in bad_files(tmp_path / suffix[1:], suffix).items():
            files[f"{kind}{suffix}"] = path
    files.update(hostile_json(tmp_path / "hostile"))
    for kind, path in files.items():
        before = _state(w)
        _fresh(w)
        w.load_model(str(path))
        wait_idle(w)
        text = _problem(w, kind)
        _kept(w, before)
        if kind == "huge":
            assert "memory" in text or "budget" in text, text


def test_bogus_zoo_names_and_weights(loaded_window):
    from cnnviz.gui.dialogs import OpenModelDialog, ZooDialog

    w = loaded_window
    for name, weights in (
        ("no_such_network", "default"),
        ("resnet18", "NO_SUCH_WEIGHTS"),
        ("", "default"),
        ("../../etc/passwd", "none"),
    ):
        before = _state(w)
        _fresh(w)
        w.load_zoo_model(name, weights)
        wait_idle(w)
        _problem(w)
        _kept(w, before)
    dialog = ZooDialog(w, names=["no_such_network", "resnet18"])
    dialog.list.setCurrentRow(0)
    assert dialog.choice() == ("no_such_network", "none")
    dialog.filter.setText("\0[(*")
    dialog.deleteLater()
    opener = OpenModelDialog(w, "resnet18", "/proc/nonexistent.pt")
    assert opener.choice() == ("resnet18", "/proc/nonexistent.pt")
    opener.deleteLater()
    before = _state(w)
    _fresh(w)
    w.load_model("resnet18", "/proc/nonexistent.pt")
    wait_idle(w)
    _problem(w)
    _kept(w, before)


# --------------------------------------------------------------------------------------------------------------
# Exports


def test_exports_into_an_unwritable_place(loaded_window, tmp_path):
    w = loaded_window
    w.session.select_unit(1, 1, channel=0)
    wait_idle(w)
    for kind in (
        "grid_png",
        "grid_svg",
        "channel_png",
        "rf_png",
        "rf_svg",
        "table_csv",
        "table_md",
    ):
        for target in ("/proc/cnnviz-test.png", str(tmp_path / "nowhere" / "x.png"), str(tmp_path)):
            before = _state(w)
            _fresh(w)
            w.export(kind, target)
            wait_idle(w)
            _problem(w)
            _kept(w, before)
    for folder in ("/proc/cnnviz-test", str(bad_files(tmp_path / "f", ".png")["noise"])):
        _fresh(w)
        w.export_all_layers(folder)
        wait_idle(w)
        _problem(w)


# --------------------------------------------------------------------------------------------------------------
# The layer editor


@pytest.fixture
def spec_window(loaded_window, tmp_path):
    path = tmp_path / "model.json"
    save_spec(SPEC, path)
    torch.manual_seed(0)
    loaded_window.session.set_model(load_model(str(path)))
    wait_idle(loaded_window)
    assert loaded_window.editor_dock.session is not None
    return loaded_window


def test_editor_open_and_save_hostile_specs(spec_window, tmp_path):
    w = spec_window
    dock = w.editor_dock
    messages: list[str] = []
    dock.status.connect(messages.append)
    shown = dock.table_model.texts()
    files = dict(hostile_json(tmp_path / "hostile"))
    files.update(bad_files(tmp_path / "bad", ".json"))
    for kind, path in files.items():
        messages.clear()
        if kind == "huge":
            # A spec can be opened as work in progress; what matters is that nothing is allocated.
            dock.open_architecture(path)
            assert not dock.table.ok
            assert "memory" in dock.message.text() or "budget" in dock.message.text()
            assert not dock.apply()
            dock.undo_stack.undo()
            continue
        assert not dock.open_architecture(path), kind
        assert messages and "unexpected" not in messages[-1], (kind, messages)
        assert dock.table_model.texts() == shown
    for target in ("/proc/cnnviz-test.json", str(tmp_path / "missing" / "x.json"), str(tmp_path)):
        messages.clear()
        assert dock.save_architecture(target) is None
        assert messages and "unexpected" not in messages[-1], messages


# --------------------------------------------------------------------------------------------------------------
# The training dock


def test_training_data_folders_that_hold_nothing_useful(spec_window, tmp_path):
    dock = spec_window.training_dock
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    for cls in ("a", "b"):
        (broken / cls).mkdir(parents=True)
        for i in range(3):
            (broken / cls / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    odd = bad_files(tmp_path / "odd", ".png")
    dock.data_combo.setCurrentIndex(dock.data_combo.findData("folder"))
    for folder in (
        empty,
        broken,
        odd["fifo"],
        odd["loop"],
        odd["noise"],
        tmp_path / "nope",
        Path("/proc/self/fd"),
    ):
        dock.folder_edit.setText(str(folder))
        model = spec_window.session.model
        assert dock.start()
        assert dock.wait()
        text = dock.message.text()
        assert text.startswith("Cannot train"), (folder, text)
        assert spec_window.session.model is model


def test_checkpoint_into_an_unwritable_place(gui_window, tmp_path):
    digits = dict(
        SPEC,
        input_shape=[1, 12, 12],
        layers=[*SPEC["layers"][:-1], {"type": "Linear", "out_features": 10}],
    )
    path = tmp_path / "digits.json"
    save_spec(digits, path)
    dock = gui_window.training_dock
    dock.set_model(load_model(str(path)))
    dock.data_combo.setCurrentIndex(dock.data_combo.findData("synthetic-digits"))
    dock.samples_spin.setValue(dock.samples_spin.minimum())
    dock.epochs_spin.setValue(1)
    assert dock.start()
    assert dock.wait()
    assert dock.result is not None, dock.message.text()
    wait_idle(gui_window)
    for target in ("/proc/x.pt", str(tmp_path / "missing" / "x.pt"), str(tmp_path)):
        assert dock.save_checkpoint(target) is None
        assert "Could not save" in dock.message.text() and "unexpected" not in dock.message.text()


# --------------------------------------------------------------------------------------------------------------
# The convolution lab


def test_lab_kernel_entry_and_picture_input(loaded_window, tmp_path, monkeypatch):
    w = loaded_window
    w.show_lab()
    lab = w.lab
    lesson = lab.lesson("playground")
    lab.set_lesson("playground")
    grid = lesson.kernel_grid
    for text in ("abc", "", "nan", "inf", "-1e999", "1e308", "9" * 5000, "0x10", "1,5"):
        kernel = lesson.kernel()
        grid.item(1, 1).setText(text)
        after = lesson.kernel()
        assert np.isfinite(after).all()
        if text not in ("1e308", "9" * 5000):
            assert np.array_equal(after, kernel), text
    # Tiny and extreme pictures reach the lab through the window.
    for size in ((1, 1), (1, 300), (2, 2)):
        p = tmp_path / f"pic{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (10, 200, 30)).save(p)
        _fresh(w)
        w.open_image_path(str(p))
        wait_idle(w)
        for key in lab.lesson_keys():
            lab.set_lesson(key)
    # Export of a lesson into /proc: a message, never a modal box while tests run.
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("/proc/x.png", ""))
    )
    lab._export_clicked()
    assert lab.last_error and "/proc/x.png" in lab.last_error


# --------------------------------------------------------------------------------------------------------------
# Preferences holding garbage


def test_garbage_preferences_fall_back_to_defaults(qtbot, tmp_path):
    from cnnviz.gui.main_window import MainWindow
    from cnnviz.gui.settings import Preferences

    ini = tmp_path / "settings.ini"
    ini.write_text(
        "[General]\n"
        "recentImages=5\n"
        "recentModels=@Variant(\\0\\0\\0\\x7f\\0\\0\\0\\x4garbage)\n"
        "geometry=@ByteArray(not a geometry at all)\n"
        "windowState=12345\n"
        "cmap=no_such_colormap\n"
        "norm=@Invalid()\n"
        "sort=maybe\n"
        "erf=1, 2, 3\n"
        "drawDockAuto=@Variant(\\xff\\xff)\n"
        "imageDir=1, 2\n"
        "modelDir=\\0\n"
        "exportDir=@Rect(1 2 3 4)\n"
    )
    prefs = Preferences(QSettings(str(ini), QSettings.Format.IniFormat))
    window = MainWindow(preferences=prefs)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    try:
        assert window.width() >= 800 and window.height() >= 600
        assert window.feature_view.cmap == "viridis"
        assert window.feature_view.norm == "channel"
        assert window.feature_view.sorted is False
        assert prefs.recent("recentImages") == []
        assert prefs.recent("recentModels") == []
        window._fill_recent(window.recent_images_menu, "recentImages")
        window._fill_recent(window.recent_models_menu, "recentModels")
        for key in ("imageDir", "modelDir", "exportDir"):
            value = prefs.get(key, "", str)
            assert isinstance(value, str)
        assert default_file_name("grid_png", window._snapshot()).endswith(".png")
        window.save_settings()
    finally:
        window.session.runner.shutdown()
        window.io_runner.shutdown()
