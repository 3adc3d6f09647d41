"""Fixtures for the app's tests: offscreen Qt, a window with throw-away preferences, small models built in code."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["CNNVIZ_NO_DIALOGS"] = "1"  # errors go to the status bar instead of modal boxes

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from gui_helpers import wait_idle
from PIL import Image
from torch import nn

pg.setConfigOptions(imageAxisOrder="row-major")


def build_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


@pytest.fixture
def gui_model():
    """A LoadedModel: a small CNN for 3x32x32 pictures resized (shorter side 36) and centre-cropped."""
    from cnnviz.core.images import Preprocess
    from cnnviz.core.models import LoadedModel

    pre = Preprocess(3, (32, 32), "resize_crop", 36, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    return LoadedModel(
        build_net(), "tiny", (3, 32, 32), pre, ["cat", "dog", "bird", "fish"], source="module"
    )


@pytest.fixture
def gui_photo(tmp_path):
    """A 40x56 RGB PNG with structure (a bright square on a gradient)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:40, 0:56]
    rgb = np.stack([x * 4, y * 5, 255 - x * 4], axis=2).astype(np.uint8)
    rgb[10:20, 30:42] = 250
    rgb = np.clip(rgb.astype(int) + rng.integers(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def gui_prefs(tmp_path):
    from PySide6.QtCore import QSettings

    from cnnviz.gui.settings import Preferences

    return Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def gui_window(qtbot, gui_prefs):
    from cnnviz.gui.main_window import MainWindow

    window = MainWindow(preferences=gui_prefs)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.session.runner.shutdown()
    window.io_runner.shutdown()


@pytest.fixture
def loaded_window(gui_window, gui_model, gui_photo):
    """The window with the small model and the photo run, layer "3" (the strided conv) selected."""
    gui_window.session.open_image(
        str(gui_photo)
    )  # no model yet: remembered, run once the model is ready
    gui_window.session.set_model(gui_model)
    wait_idle(gui_window)
    assert gui_window.session.activations, "the model did not run"
    return gui_window


@pytest.fixture(autouse=True, scope="session")
def _garbage_collected_on_the_gui_thread(qapp):
    """As in the app: no cyclic collection on a worker thread, where freeing a widget deadlocks Qt."""
    from cnnviz.gui.app import collect_garbage_on_gui_thread

    collect_garbage_on_gui_thread()
