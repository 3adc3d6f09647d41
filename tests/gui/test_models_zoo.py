"""Model zoo dialog and pretrained-weight downloads in the background: progress, cancel, offline message.

The network is replaced by a fake urlopen serving a real state_dict (squeezenet1_0 with its random
initialisation), so the real download, cache and loading code runs without internet.
"""

from __future__ import annotations

import io
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
import torchvision
from gui_helpers import wait_idle


class FakeResponse:
    def __init__(self, data: bytes, delay: float = 0.0, started: threading.Event | None = None):
        self.stream = io.BytesIO(data)
        self.headers = {"Content-Length": str(len(data))}
        self.delay = delay
        self.started = started

    def read(self, n: int) -> bytes:
        if self.started is not None:
            self.started.set()
        if self.delay:
            time.sleep(self.delay)
        return self.stream.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def squeezenet_bytes():
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(torchvision.models.squeezenet1_0(weights=None).state_dict(), buf)
    return buf.getvalue()


def test_download_with_progress_then_cached(gui_window, hub, monkeypatch, squeezenet_bytes):
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return FakeResponse(squeezenet_bytes)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    progress = []
    gui_window.session.runner.progressChanged.connect(
        lambda d, t, text: progress.append((d, t, text))
    )
    gui_window.session.load_model("squeezenet1_0", "IMAGENET1K_V1")
    wait_idle(gui_window)
    model = gui_window.session.model
    assert model is not None and model.name == "squeezenet1_0"
    assert "IMAGENET1K_V1" in model.metadata["weights"]
    assert progress and progress[-1][0] == progress[-1][1] == len(squeezenet_bytes)
    assert "downloading weights" in progress[0][2]
    assert [p.name for p in hub.iterdir()] == [calls[0].rsplit("/", 1)[-1]]
    # The weights are those served, and the picture ran through the model.
    served = torch.load(io.BytesIO(squeezenet_bytes), weights_only=True)
    assert torch.equal(model.module.state_dict()["features.0.weight"], served["features.0.weight"])
    assert gui_window.feature_view.mosaic is not None
    from cnnviz.core.models import torchvision as zoo

    entry = [w for w in zoo.weights_for("squeezenet1_0") if w.name == "IMAGENET1K_V1"][0]
    assert entry.cached and "cached" in entry.describe()


def test_download_can_be_cancelled(gui_window, hub, monkeypatch, squeezenet_bytes):
    started = threading.Event()
    monkeypatch.setattr(
        urllib.request,
        "urlopen",
        lambda url, timeout=None: FakeResponse(squeezenet_bytes, 0.02, started),
    )
    gui_window.session.load_model("squeezenet1_0", "IMAGENET1K_V1")
    assert started.wait(60)
    assert gui_window.cancel_button.isVisible()
    gui_window.cancel_button.click()
    wait_idle(gui_window)
    assert gui_window.session.model is None
    assert "cancelled" in gui_window.message_label.text().lower()
    assert not any(hub.glob("*")), "no partial download may stay behind"


def test_offline_download_says_what_to_do(gui_window, hub, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    gui_window.session.load_model("squeezenet1_0", "IMAGENET1K_V1")
    wait_idle(gui_window)
    title, message = gui_window.last_error
    assert "could not be downloaded" in message and "random weights" in message
    assert gui_window.session.model is None


def test_zoo_dialog_lists_models_and_weights(qtbot, hub):
    from cnnviz.gui.dialogs import ZooDialog

    dialog = ZooDialog(names=["alexnet", "resnet18", "squeezenet1_0"])
    qtbot.addWidget(dialog)
    assert dialog.list.currentItem().text() == "resnet18"
    names = [dialog.weights.itemData(i) for i in range(dialog.weights.count())]
    assert names[0] == "IMAGENET1K_V1" and "download" in dialog.weights.itemText(0)
    assert dialog.choice() == ("resnet18", "IMAGENET1K_V1")
    dialog.random.setChecked(True)
    assert dialog.choice() == ("resnet18", "none")
    dialog.filter.setText("squeeze")
    assert [dialog.list.item(i).isHidden() for i in range(3)] == [True, True, False]
