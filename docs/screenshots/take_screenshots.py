"""Take the screenshots of every screen of the real window, at 1366×768, on an X server (Xvfb here or in CI).

Usage (from the repository root):
    Xvfb :99 -screen 0 1366x768x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb python docs/screenshots/take_screenshots.py [NAME ...]

Each picture is the whole X screen captured with ImageMagick's ``import -window root`` after the app has drawn
the state described next to it; with NAMEs (file stems) only those are taken. The settings live in a fresh
temporary file, so the first picture shows what a first launch shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent
SIZE = (1366, 768)


def settle(app: Any, window: Any, seconds: float = 1.0) -> None:
    """Let every job finish and the window draw."""
    window.session.runner.wait(600_000)
    window.io_runner.wait(600_000)
    window.feature_view.wait_rendered(600_000)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    if not os.environ.get("DISPLAY"):
        print("set DISPLAY to an X server (e.g. Xvfb :99 -screen 0 1366x768x24)", file=sys.stderr)
        return 2
    from PySide6.QtCore import QSettings

    from cnnviz.core.models import load_model
    from cnnviz.core.resources import sample_images
    from cnnviz.gui.app import configure_threads, create_app
    from cnnviz.gui.dialogs import ZooDialog
    from cnnviz.gui.help import show_help
    from cnnviz.gui.main_window import MainWindow
    from cnnviz.gui.settings import Preferences

    wanted = set(argv)
    app = create_app()
    configure_threads()
    prefs = Preferences(
        QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.Format.IniFormat)
    )
    window = MainWindow(preferences=prefs)
    window.move(0, 0)
    window.resize(*SIZE)
    window.show()
    s = window.session
    photos = {p.stem: p for p in sample_images() if p.parent.name == "photos"}

    def shoot(name: str, prepare: Callable[[], Any], seconds: float = 1.5) -> None:
        if wanted and name not in wanted:
            return
        shown = prepare()
        settle(app, window, seconds)
        path = OUT / f"{name}.png"
        subprocess.run(["import", "-window", "root", str(path)], check=True)
        if shown is not None:
            shown.close()
        settle(app, window, 0.2)
        print(path)

    # The first launch: the bundled digits model on a sample picture, the hint over the first map.
    window.start()
    settle(app, window)
    shoot("01_first_launch", lambda: None)
    window.unit_hint.dismiss()

    def digits_unit() -> None:
        s.select_layer("4")
        s.set_erf_enabled(True)
        s.select_unit(6, 8, channel=5)

    shoot("02_digits_unit_and_effective_field", digits_unit, 2)

    def digits_output() -> None:
        s.select_layer(window.session.summary.rows[-1].name)

    shoot("03_digits_output_bars", digits_output)

    def editor() -> None:
        s.select_layer("4")
        window.show_tool(window.editor_dock)

    shoot("04_layer_editor", editor)
    shoot("05_training", lambda: window.show_tool(window.training_dock))

    def top_pictures() -> Any:
        from cnnviz.core.images.samples import copy_samples

        folder = Path(tempfile.mkdtemp()) / "samples"
        copy_samples(folder)
        s.select_layer("8")
        dock = window.top_pictures_dock
        dock.set_folder(str(folder))
        dock.wait(600_000)
        window.feature_view.show_channel(12)
        dock.wait(600_000)
        return dock  # closed again after the picture

    # Numbered after the lab's lessons, so that adding this screen renamed no other picture.
    top_name = f"{12 + len(window.lab_window.lab.lesson_keys())}_top_pictures_digits_samples"
    shoot(top_name, top_pictures, 2)
    window.feature_view.show_channel(None)
    window.table_dock.raise_()

    def help_page(page: str) -> Any:
        dialog = show_help(window, page)
        dialog.move(390, 60)
        return dialog

    shoot("06_getting_started", lambda: help_page("getting_started"))
    shoot("07_keyboard_shortcuts", lambda: help_page("shortcuts"))

    def zoo() -> Any:
        dialog = ZooDialog(window)
        dialog.move(400, 110)
        dialog.show()
        return dialog

    shoot("08_model_zoo", zoo)

    # ResNet-18 (random weights: nothing is downloaded) on a photo.
    def resnet_unit() -> None:
        window.table_dock.raise_()
        if "chelsea" in photos:
            s.open_image(str(photos["chelsea"]))
        s.set_model(load_model("resnet18", weights="none"))
        settle(app, window)
        s.select_layer("layer2")
        s.select_unit(12, 17, channel=3)
        settle(app, window)
        window.layer_table.set_current("layer2")

    shoot("09_resnet18_receptive_field", resnet_unit, 2)

    def resnet_channel() -> None:
        s.select_layer("layer1.0.conv1")
        window.feature_view.set_cmap("magma")
        window.feature_view.show_channel(11)
        s.select_unit(20, 30, channel=11)

    shoot("10_resnet18_channel", resnet_channel, 2)

    def resnet_table() -> None:
        from PySide6.QtCore import Qt

        window.feature_view.show_channel(None)
        window.feature_view.set_cmap("viridis")
        s.select_layer("fc")
        window.table_dock.raise_()
        macs = next(
            c
            for c in range(window.layer_table.model.columnCount())
            if window.layer_table.model.headerData(c, Qt.Orientation.Horizontal) == "MACs"
        )
        window.layer_table.sort_by(macs, Qt.SortOrder.DescendingOrder)
        window.layer_table.table.scrollToTop()

    shoot("11_resnet18_logits_and_table_by_macs", resnet_table, 2)

    # The convolution lab, in its own window, one picture per lesson.
    lab = window.lab_window.lab
    for number, key in enumerate(lab.lesson_keys(), start=12):

        def lesson(key: str = key) -> None:
            window.show_lab()
            window.lab_window.setGeometry(0, 0, *SIZE)
            lab.set_lesson(key)

        shoot(f"{number}_lab_{key}", lesson, 1.5)
    window.lab_window.close()

    # The layer editor on ResNet-18: a stride that breaks a residual addition, explained.
    def resnet_graph_editor() -> None:
        if "chelsea" in photos:
            s.open_image(str(photos["chelsea"]))
        s.set_model(load_model("resnet18", weights="none"))
        settle(app, window)
        s.select_layer("layer1.0.conv1")
        window.show_tool(window.editor_dock)
        editor = window.editor_dock.graph
        editor.wait(600_000)
        editor.select("layer1.0.conv1")
        editor.form.editors["stride"].h.setValue(2)
        editor.wait(600_000)
        # the broken addition and the rows after it in view
        from PySide6.QtWidgets import QAbstractItemView

        row = editor.table_model.row_of("layer1.0.add") or 0
        editor.view.scrollTo(
            editor.table_model.index(row, 0), QAbstractItemView.ScrollHint.PositionAtCenter
        )

    shoot(f"{number + 2}_resnet18_graph_editor", resnet_graph_editor, 2)  # after the top pictures
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
