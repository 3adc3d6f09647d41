"""Take the README screenshots of the real window on an X server (Xvfb in CI or here).

Usage (from the repository root):
    Xvfb :99 -screen 0 1600x1000x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb python docs/screenshots/take_screenshots.py

Each picture is the whole X screen captured with ImageMagick's ``import -window root`` after the app has drawn
the state described next to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent


def settle(app, window, seconds: float = 1.0) -> None:
    window.session.runner.wait(600_000)
    window.io_runner.wait(600_000)
    window.feature_view.wait_rendered(600_000)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(name: str) -> None:
    path = OUT / name
    subprocess.run(["import", "-window", "root", str(path)], check=True)
    print(path)


def main() -> int:
    if not os.environ.get("DISPLAY"):
        print("set DISPLAY to an X server (e.g. Xvfb :99)", file=sys.stderr)
        return 2
    from PySide6.QtCore import QSettings

    from cnnviz.core.models import load_model
    from cnnviz.core.resources import sample_images
    from cnnviz.gui.app import configure_threads, create_app
    from cnnviz.gui.main_window import MainWindow
    from cnnviz.gui.settings import Preferences

    app = create_app()
    configure_threads()
    prefs = Preferences(
        QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.Format.IniFormat)
    )
    window = MainWindow(preferences=prefs)
    window.move(0, 0)
    window.resize(1600, 1000)
    window.show()
    s = window.session

    # 1. The first screen: the bundled digits model on a sample, a unit of the second convolution selected.
    window.start()
    settle(app, window)
    s.select_layer("4")
    s.set_erf_enabled(True)
    s.select_unit(6, 8, channel=5)
    settle(app, window, 2)
    shoot("digits.png")

    # 2. ResNet-18 on a photo: a unit of layer2 with its receptive field and the effective-RF heatmap.
    photos = [p for p in sample_images() if p.parent.name == "photos"]
    chelsea = next((p for p in photos if p.stem == "chelsea"), photos[0] if photos else None)
    if chelsea is not None:
        s.open_image(str(chelsea))
    s.set_model(load_model("resnet18", weights="none"))
    settle(app, window)
    s.select_layer("layer2")
    s.select_unit(12, 17, channel=3)
    settle(app, window, 2)
    window.table_dock.raise_()
    window.layer_table.set_current("layer2")
    settle(app, window)
    shoot("resnet18_receptive_field.png")

    # 3. One channel enlarged, magma, per-layer normalisation, sorted.
    s.select_layer("layer1.0.conv1")
    window.feature_view.set_cmap("magma")
    window.feature_view.show_channel(11)
    s.select_unit(20, 30, channel=11)
    settle(app, window, 2)
    shoot("resnet18_channel.png")

    # 4. The convolution lab in its own window, over the maps.
    window.feature_view.show_channel(None)
    window.show_lab()
    settle(app, window, 2)
    shoot("convolution_lab.png")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
