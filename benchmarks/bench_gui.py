"""Desktop-app figures, measured side by side in one run; prints JSON.

- select_ms[layer] / select_ratio_to_budget: selecting a layer until its grid is painted (session.select_layer,
  then a synchronous repaint of the feature-map view), resnet18 ``layer1`` (64x56x56) and ``layer4`` (512x7x7);
  budget 50 ms.
- click_ms: a mouse click on a feature-map pixel until the receptive-field box is painted on the input view
  (effective RF off: it is computed in the background); budget 16 ms.
- erf_ratio: the effective receptive field of a unit of ``layer3`` and ``layer4`` (core function the app calls) vs
  a plain forward + backward of the whole network to the input, interleaved; budget 1.3.
- startup_ratio: a fresh process that opens the window with the default model and a sample, until the first
  feature maps are painted, vs a fresh process that only runs ``import torch, torchvision, PySide6.QtWidgets,
  pyqtgraph``; interleaved, medians; budget 1.5.
- max_gui_gap_ms: the largest gap between ticks of a 5 ms QTimer on the GUI thread while resnet18 runs (capture
  of every layer, predictions) and an effective RF is computed in the background; budget 100 ms.

Runs offscreen (QT_QPA_PLATFORM=offscreen) unless a display is configured. CPU only.
Usage: python benchmarks/bench_gui.py [--repeats 9] [--startup-repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CNNVIZ_NO_DIALOGS", "1")

BARE_IMPORT = "import torch, torchvision, PySide6.QtWidgets, pyqtgraph"

STARTUP_SCRIPT = r"""
import os, sys, tempfile
from cnnviz.gui.app import create_app
from PySide6.QtCore import QSettings, QTimer
from cnnviz.gui.settings import Preferences
from cnnviz.gui.main_window import MainWindow
app = create_app()
from cnnviz.gui.app import configure_threads
configure_threads()
prefs = Preferences(QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.Format.IniFormat))
window = MainWindow(preferences=prefs)
window.feature_view.painted.connect(lambda: (print("painted", flush=True), app.exit(0)))
window.show()
window.start()
QTimer.singleShot(300000, lambda: app.exit(3))
code = app.exec()
window.session.runner.shutdown()
os._exit(code)
"""


def _timed_process(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def startup(repeats: int) -> dict:
    bare, app = [], []
    env_python = [sys.executable, "-c"]
    _timed_process([*env_python, BARE_IMPORT])  # warm the file cache for both
    for _ in range(repeats):
        bare.append(_timed_process([*env_python, BARE_IMPORT]))
        app.append(_timed_process([*env_python, STARTUP_SCRIPT]))
    b, a = statistics.median(bare), statistics.median(app)
    return {"bare_import_s": round(b, 3), "app_first_paint_s": round(a, 3), "startup_ratio": round(a / b, 3),
            "bare_import_all_s": [round(v, 3) for v in bare], "app_all_s": [round(v, 3) for v in app]}  # fmt: skip


def in_process(repeats: int) -> dict:
    import torch
    from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest

    from cnnviz.core.analysis.receptive import effective_receptive_field
    from cnnviz.core.images.samples import fallback_picture
    from cnnviz.core.models import load_model
    from cnnviz.gui.app import create_app
    from cnnviz.gui.main_window import MainWindow
    from cnnviz.gui.settings import Preferences

    app = create_app()
    import tempfile

    from cnnviz.gui.app import configure_threads

    configure_threads()  # as the app does: one core stays free for the interface

    prefs = Preferences(
        QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.Format.IniFormat)
    )
    window = MainWindow(preferences=prefs)
    window.resize(1440, 900)
    window.show()
    session = window.session
    model = load_model("resnet18", weights="none")
    from cnnviz.core.resources import sample_images

    photos = [p for p in sample_images() if p.parent.name != "digits"]
    if photos:
        session.open_image(str(photos[0]))
    else:
        session.open_image(fallback_picture(3), name="gradient")
    session.set_model(model)
    session.runner.wait(600_000)
    app.processEvents()
    fv, iv = window.feature_view, window.input_view

    # -- layer selection -> painted grid --------------------------------------------------------------------------
    select: dict[str, list[float]] = {"layer1": [], "layer4": []}
    for _ in range(repeats):
        for name in select:
            session.select_layer("conv1")
            fv.wait_rendered()
            fv.graphics.repaint()
            t0 = time.perf_counter()
            session.select_layer(name)
            fv.graphics.repaint()
            select[name].append(time.perf_counter() - t0)

    # -- click -> box drawn ---------------------------------------------------------------------------------------
    session.set_erf_enabled(False)
    session.select_layer("layer3")
    fv.graphics.repaint()
    clicks = []
    hh, ww = session.map_size()
    for i in range(repeats):
        y, x = (3 + i) % hh, (5 + 2 * i) % ww
        point = fv.widget_point(7, y, x)
        t0 = time.perf_counter()
        QTest.mouseClick(
            fv.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point
        )
        iv.graphics.repaint()
        clicks.append(time.perf_counter() - t0)
        assert session.selection.unit == (y, x), (session.selection.unit, (y, x))

    # -- effective RF vs forward + backward -----------------------------------------------------------------------
    image = session.image
    erf_ratio = {}
    for layer, unit in (("layer3", (7, 7)), ("layer4", (3, 3))):
        erf_t, fb_t = [], []
        for _ in range(max(3, repeats // 2)):
            t0 = time.perf_counter()
            effective_receptive_field(model, image, layer, unit)
            erf_t.append(time.perf_counter() - t0)
            xg = image.tensor.clone().requires_grad_(True)
            t0 = time.perf_counter()
            out = model.module(xg)
            (grad,) = torch.autograd.grad(out[0].sum(), xg)
            fb_t.append(time.perf_counter() - t0)
        erf_ratio[layer] = {"erf_ms": round(1000 * statistics.median(erf_t), 1),
                            "forward_backward_ms": round(1000 * statistics.median(fb_t), 1),
                            "ratio": round(statistics.median(erf_t) / statistics.median(fb_t), 3)}  # fmt: skip

    # -- GUI thread responsiveness while the model runs -----------------------------------------------------------
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    timer.start(5)
    session.set_erf_enabled(True)
    t_run = time.perf_counter()
    for _ in range(2):
        session.run()
        while session.runner.busy:
            app.processEvents()
        session.select_layer("layer4")
        session.select_unit(3, 3, channel=1)
        while session.runner.busy:
            app.processEvents()
    busy_s = time.perf_counter() - t_run
    timer.stop()
    # The first tick after start measures nothing; the handlers of finished jobs (redraws) are part of the gaps.
    gaps = gaps[1:]
    window.close()

    def ms(values: list[float]) -> float:
        return round(1000 * statistics.median(values), 2)

    return {
        "select_ms": {k: ms(v) for k, v in select.items()},
        "select_max_ms": {k: round(1000 * max(v), 2) for k, v in select.items()},
        "click_ms": ms(clicks),
        "click_max_ms": round(1000 * max(clicks), 2),
        "erf": erf_ratio,
        "max_gui_gap_ms": round(max(gaps), 1) if gaps else None,
        "median_gui_gap_ms": round(statistics.median(gaps), 2) if gaps else None,
        "watched_s": round(busy_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--startup-repeats", type=int, default=3)
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    import torch

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "qpa": os.environ.get("QT_QPA_PLATFORM"),
        },  # fmt: skip
        "budgets": {
            "select_ms": 50,
            "click_ms": 16,
            "erf_ratio": 1.3,
            "startup_ratio": 1.5,
            "max_gui_gap_ms": 100,
        },
    }
    result.update(in_process(args.repeats))
    result["machine"]["app_torch_threads"] = torch.get_num_threads()  # after configure_threads()
    if not args.skip_startup:
        result.update(startup(args.startup_repeats))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
