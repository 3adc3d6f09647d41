"""The Top pictures dock on the bundled digits model over folders written by the tests.

Truth comes from the core's own run on the same model and folder (``top_units``), from the pictures' pixels and
from the files the tests write; the dock is driven like a user does (its buttons, a click on a crop).
"""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import wait_idle
from PIL import Image
from PySide6.QtCore import QPoint, Qt, QTimer

LAYER = "4"  # the digits model's second convolution: 32 maps of 14×14


def _digit_like(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A gray picture with a dark stroke on light paper (varied, so every channel has clear winners)."""
    h, w = size
    arr = np.full((h, w), 235, np.uint8)
    for _ in range(3):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = rng.integers(0, h), rng.integers(0, w)
        n = max(h, w) * 2
        ys = np.linspace(y0, y1, n).astype(int)
        xs = np.linspace(x0, x1, n).astype(int)
        t = max(1, min(h, w) // 10)
        for y, x in zip(ys, xs, strict=True):
            arr[max(0, y - t) : y + t, max(0, x - t) : x + t] = 20
    return Image.fromarray(arr)


def _folder(root, count: int, seed: int = 0, sizes=((28, 28), (40, 56), (64, 48))):
    """``count`` readable PNGs (some in a sub-folder) and one file that is not a picture; returns the paths."""
    rng = np.random.default_rng(seed)
    (root / "more").mkdir(parents=True)
    paths = []
    for i in range(count):
        where = root / "more" if i % 3 == 0 else root
        path = where / f"p{i:04d}.png"
        _digit_like(rng, sizes[i % len(sizes)]).save(path)
        paths.append(path)
    (root / "broken.png").write_bytes(b"this is not a picture")
    return paths


@pytest.fixture
def digits_window(gui_window):
    gui_window.load_model("default")
    wait_idle(gui_window)
    gui_window.session.select_layer(LAYER)
    return gui_window


def _run(window, folder):
    dock = window.top_pictures_dock
    dock.set_folder(str(folder))
    assert dock.wait(), "the top pictures did not finish"
    return dock


def _core(window, folder, layer=LAYER, k=9):
    from cnnviz.core.analysis.dataset import top_units

    return top_units(window.session.model, str(folder), layer, k=k)


def _busy_starts(window):
    """Count the jobs started from now on, on the model thread and the I/O thread."""
    started = []
    for runner in (window.session.runner, window.io_runner):
        runner.busyChanged.connect(lambda busy, label: started.append(label) if busy else None)
    return started


def test_a_run_shows_the_k_crops_of_the_channel_as_the_core_finds_them(digits_window, tmp_path):
    window = digits_window
    paths = _folder(tmp_path / "pics", 12)
    dock = _run(window, tmp_path / "pics")
    view = dock.view
    assert view.error.text() == ""
    assert view.counts.text().startswith(f"{len(paths)} pictures, 1 skipped")
    truth = _core(window, tmp_path / "pics")
    assert truth.images == len(paths) and len(truth.skipped) == 1
    for channel in (0, 5):
        dock.show_channel(channel)
        assert dock.wait()
        tiles = view.grid.tiles
        assert len(tiles) == 9 == view.k_spin.value()
        expected = truth.channels[channel]
        shown = dock.shown[1].channels[channel]
        assert [(u.image, u.unit, u.image_box) for u in shown] == [
            (u.image, u.unit, u.image_box) for u in expected
        ]
        for tile, unit in zip(tiles, expected, strict=True):
            assert tile.name == unit.image.rsplit("/", 1)[-1] and tile.path == unit.image
            assert tile.image is not None and tile.problem is None
            assert str(unit.image) in tile.tooltip
            assert f"y {unit.unit[0]}, x {unit.unit[1]}" in tile.tooltip
            # Where the picture part sits in the field: the field's edges clipped to the picture.
            y0, x0, y1, x1 = unit.edges
            height, width = unit.size
            top, left = (max(y0, 0) - y0) / (y1 - y0), (max(x0, 0) - x0) / (x1 - x0)
            bottom, right = (min(y1, height) - y0) / (y1 - y0), (min(x1, width) - x0) / (x1 - x0)
            assert tile.inner == pytest.approx((top, left, bottom, right))
            assert tile.aspect == pytest.approx((x1 - x0) / (y1 - y0))


def _pixels(image) -> np.ndarray:
    """A QImage's pixels as a gray array (rows of values 0..255)."""
    gray = image.convertToFormat(image.Format.Format_Grayscale8)
    return np.array(
        [[gray.pixelColor(x, y).red() for x in range(gray.width())] for y in range(gray.height())]
    )


def _tile_of(dock, unit):
    channel = next(c for c, units in dock.shown[1].channels.items() if unit in units)
    dock.show_channel(channel)
    assert dock.wait()
    return dock.view.grid.tiles[dock.shown[1].channels[channel].index(unit)]


def test_a_crop_shows_the_pixels_of_its_receptive_field_and_hatches_the_padding(
    digits_window, tmp_path
):
    window = digits_window
    window.session.select_layer(
        "8"
    )  # fields of 18 pixels on a 28-pixel input: many reach the border
    _folder(tmp_path / "pics", 9)
    dock = _run(window, tmp_path / "pics")
    units = [u for entries in dock.shown[1].channels.values() for u in entries]
    inside = next(u for u in units if not u.padding and u.image_box)
    crop = _pixels(_tile_of(dock, inside).image)
    top, left, bottom, right = inside.image_box
    original = np.asarray(Image.open(inside.image).convert("L"))[top : bottom + 1, left : right + 1]
    assert crop.shape[0] / crop.shape[1] == pytest.approx(
        original.shape[0] / original.shape[1], rel=0.1
    )
    assert crop.mean() == pytest.approx(original.mean(), abs=12)
    # A field reaching past the picture's top-left corner: the rows above the picture are hatched grey
    # (two tones in stripes, never a tone of the picture's paper or ink).
    corner = next(u for u in units if u.edges[0] < -2 and u.edges[1] < -2 and u.image_box)
    crop = _pixels(_tile_of(dock, corner).image)
    above = round(-corner.edges[0] / (corner.edges[2] - corner.edges[0]) * crop.shape[0])
    margin = crop[: max(1, above - 1)]
    assert set(np.unique(margin)) <= {128, 176} and len(np.unique(margin)) == 2
    paper = np.asarray(Image.open(corner.image).convert("L"))
    # the generated pictures hold ink and paper only
    assert set(np.unique(paper)) == {20, 235}


def test_another_channel_shows_at_once_without_running_the_folder_again(digits_window, tmp_path):
    window = digits_window
    _folder(tmp_path / "pics", 9)
    dock = _run(window, tmp_path / "pics")
    result = dock.shown[1]
    started = _busy_starts(window)
    window.feature_view.show_channel(7)  # the feature maps' channel choice drives the panel
    assert dock.wait()
    assert dock.view.channel_spin.value() == 7 and dock.channel == 7
    dock.view.channel_spin.setValue(3)  # and the panel's own
    assert dock.wait()
    assert started == []
    assert dock.shown[1] is result
    assert [t.name for t in dock.view.grid.tiles] == [
        u.image.rsplit("/", 1)[-1] for u in result.channels[3]
    ]
    # Another layer does run the folder again.
    window.session.select_layer("8")
    assert dock.wait()
    assert started and dock.shown[1] is not result and dock.shown[1].layer == "8"
    # Back to the first layer: its result was kept, nothing runs.
    before = len(started)
    window.session.select_layer(LAYER)
    assert dock.wait()
    assert len(started) == before and dock.shown[1] is result


def test_clicking_a_crop_opens_its_picture_with_its_unit_selected(digits_window, qtbot, tmp_path):
    window = digits_window
    _folder(tmp_path / "pics", 9)
    dock = _run(window, tmp_path / "pics")
    dock.show_channel(4)
    assert dock.wait()
    grid = dock.view.grid
    index = 2
    unit = dock.shown[1].channels[4][index]
    assert unit.image != window.session.image_source
    qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.cell_rect(index).center())
    wait_idle(window)
    qtbot.waitUntil(lambda: window.session.selection is not None, timeout=10_000)
    s = window.session
    assert s.image_source == unit.image
    assert (s.layer, s.selection.unit, s.selection.channel) == (LAYER, unit.unit, 4)
    assert s.selection.box.image_box == unit.image_box
    assert window.feature_view.channel == 4
    qtbot.waitUntil(
        lambda: grid.selected == index, timeout=5000
    )  # the crop of the selected unit stands out
    window.session.move_unit(0, 1)
    assert grid.selected != index


def test_cancel_stops_a_large_run_and_keeps_the_previous_result(digits_window, qtbot, tmp_path):
    window = digits_window
    _folder(tmp_path / "small", 9)
    dock = _run(window, tmp_path / "small")
    previous = dock.shown[1]
    tiles = [t.name for t in dock.view.grid.tiles]
    _folder(tmp_path / "large", 1500, seed=3, sizes=((96, 96),))
    dock.set_folder(str(tmp_path / "large"))
    view = dock.view
    qtbot.waitUntil(
        lambda: view.progress.maximum() > 0 and view.progress.value() > 0, timeout=60_000
    )
    # Both the panel and the window offer Cancel; handing the copied model on to the run was no cancel.
    assert view.cancel_button.isVisible() and window.cancel_button.isVisible()
    assert view.error.text() == ""
    # The folder runs on a copy of the model: a picture opened meanwhile runs at once, and the count stays.
    other = str(tmp_path / "small" / "p0001.png")
    window.open_image_path(other)
    qtbot.waitUntil(lambda: window.session.image_source == other, timeout=20_000)
    assert window.io_runner.busy and view.progress.maximum() > 0
    qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    assert dock.wait()
    assert not view.cancel_button.isVisible() and not window.progress.isVisible()
    assert dock.shown[1] is previous
    assert [t.name for t in view.grid.tiles] == tiles
    assert "Cancelled" in view.error.text()
    # Not started again by itself; Run starts it, and the window's own Cancel stops it too.
    qtbot.wait(600)
    assert not window.io_runner.busy
    qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.progress.value() > 0, timeout=60_000)
    window.cancel_button.click()
    assert dock.wait()
    assert dock.shown[1] is previous and "Cancelled" in view.error.text()


@pytest.mark.parametrize("kind", ["empty", "unreadable"])
def test_a_folder_without_usable_pictures_says_so_in_one_line_and_keeps_the_result(
    digits_window, tmp_path, kind
):
    window = digits_window
    _folder(tmp_path / "pics", 9)
    dock = _run(window, tmp_path / "pics")
    previous, tiles = dock.shown[1], [t.name for t in dock.view.grid.tiles]
    bad = tmp_path / kind
    bad.mkdir()
    if kind == "unreadable":
        for i in range(3):
            (bad / f"bad{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    _run(window, bad)
    text = dock.view.error.text()
    assert dock.view.error.isVisible() and "\n" not in text
    assert (
        "holds no picture files" if kind == "empty" else "None of the 3 picture file(s)"
    ) in text
    assert "Traceback" not in text
    assert dock.shown[1] is previous and [t.name for t in dock.view.grid.tiles] == tiles
    assert (
        "skipped in pics" in dock.view.counts.text()
    )  # the result shown says which folder it is from


def test_a_vector_layer_shows_whole_pictures_and_a_too_large_k_is_one_line(digits_window, tmp_path):
    window = digits_window
    paths = _folder(tmp_path / "pics", 5)
    output = window.session.summary.rows[-1].name
    window.session.select_layer(output)  # the ten class scores: no spatial map
    dock = _run(window, tmp_path / "pics")
    assert dock.view.k_spin.value() == 9
    # Nine top pictures of five: the core refuses, the panel says why in one line.
    text = dock.view.error.text()
    assert text.startswith("k = 9 is more than the") and "use k" in text and "\n" not in text
    # five pictures read of the six files listed: the units are the pictures read, the broken one is counted
    assert "the 5 units" in text and "5 pictures read" in text and "1 file skipped" in text, text
    dock.view.k_spin.setValue(5)
    assert dock.wait()
    assert dock.view.error.text() == ""
    assert "whole pictures (no spatial map)" in dock.view.counts.text()
    tiles = dock.view.grid.tiles
    assert len(tiles) == len(paths) == 5
    assert all(t.inner == pytest.approx((0, 0, 1, 1)) for t in tiles)
    truth = _core(window, tmp_path / "pics", layer=output, k=5)
    assert [u.image for u in dock.shown[1].channels[0]] == [u.image for u in truth.channels[0]]
    # A channel out of range is one line too, and changes nothing.
    dock.show_channel(10)
    assert "Channel 10 is out of range" in dock.view.error.text() and dock.channel == 0
    dock.show_channel(3)
    assert dock.view.error.text() == "" and dock.channel == 3


def test_the_folder_is_remembered_for_the_next_window(gui_prefs, qtbot, tmp_path):
    from cnnviz.gui.main_window import MainWindow
    from cnnviz.gui.settings import recent_path

    (tmp_path / "pics").mkdir()
    first = MainWindow(preferences=gui_prefs)
    qtbot.addWidget(first)
    first.top_pictures_dock.set_folder(str(tmp_path / "pics"))
    first.close()
    second = MainWindow(preferences=gui_prefs)
    qtbot.addWidget(second)
    expected = recent_path(tmp_path / "pics")
    assert second.top_pictures_dock.folder == expected
    title = second.top_pictures_dock.view.title
    assert title.text() == "Top pictures of pics" and expected in title.toolTip()
    second.top_pictures_dock.recent_menu.aboutToShow.emit()
    assert [a.toolTip() for a in second.top_pictures_dock.recent_menu.actions()][0] == expected
    file_menu = second.menuBar().actions()[0].menu()
    assert second.top_pictures_dock.act_open_folder in file_menu.actions()
    for window in (first, second):
        window.session.runner.shutdown()
        window.io_runner.shutdown()


def test_grid_columns_follow_the_width(qtbot):
    from cnnviz.gui.views.top_pictures import MIN_TILE, TopPicturesView

    view = TopPicturesView()
    qtbot.addWidget(view)
    view.set_tiles(
        [
            {"name": f"p{i}.png", "caption": "1", "tooltip": "t", "path": f"/x/p{i}.png"}
            for i in range(9)
        ]
    )
    grid = view.grid
    wide, narrow = grid.columns(1000), grid.columns(3 * MIN_TILE + 40)
    assert wide == 9 and narrow == 3
    assert grid.heightForWidth(3 * MIN_TILE + 40) > grid.heightForWidth(1000)
    view.resize(320, 400)
    view.show()
    cells = [grid.cell_rect(i) for i in range(9)]
    assert all(not a.intersects(b) for i, a in enumerate(cells) for b in cells[i + 1 :])
    assert grid.index_at(cells[4].center()) == 4 and grid.index_at(QPoint(-5, -5)) is None
    # The keyboard: arrows move between the tiles (Down is one row), Enter opens the tile it is on.
    opened = []
    view.tileClicked.connect(opened.append)
    grid.setFocus()
    cols = grid.columns()
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_Return):
        qtbot.keyClick(grid, key)
    assert opened == [1 + cols]
    # The context menu of a crop: open it, or copy its file's path.
    from PySide6.QtGui import QContextMenuEvent, QGuiApplication
    from PySide6.QtWidgets import QApplication

    def choose(text: str) -> None:
        menu = QApplication.activePopupWidget()
        next(a for a in menu.actions() if a.text() == text).trigger()
        menu.close()

    for text in ("Copy File Path", "Open with This Unit Selected"):
        QTimer.singleShot(50, lambda text=text: choose(text))
        where = cells[2].center()
        QApplication.sendEvent(
            grid, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, where, grid.mapToGlobal(where))
        )
    assert QGuiApplication.clipboard().text() == "/x/p2.png"
    assert opened == [1 + cols, 2]


def test_save_writes_the_mosaics_and_the_json_of_the_shown_result(digits_window, qtbot, tmp_path):
    import json

    window = digits_window
    _folder(tmp_path / "pics", 9)
    dock = _run(window, tmp_path / "pics")
    assert dock.view.save_button.isEnabled()
    with qtbot.waitSignal(dock.saved, timeout=60_000):
        dock.save(str(tmp_path / "out"))
    doc = json.loads((tmp_path / "out" / "top_units.json").read_text())
    result = dock.shown[1]
    assert doc["layer"] == LAYER and doc["images"] == result.images == 9
    assert doc["channels"]["5"][0]["image"] == result.channels[5][0].image
    mosaics = sorted(p.name for p in (tmp_path / "out").glob("channel_*.png"))
    assert len(mosaics) == result.map_shape[0] == 32
    with Image.open(tmp_path / "out" / mosaics[0]) as png:
        assert png.width > 3 * 64
