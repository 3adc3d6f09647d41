"""The Prediction panel says when predictions come from random weights, and only then."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cnnviz.core.models import load_model  # noqa: E402
from cnnviz.gui.state import Session  # noqa: E402
from cnnviz.gui.views.predictions import PredictionPanel  # noqa: E402
from cnnviz.gui.workers import JobRunner  # noqa: E402

SPEC = {
    "name": "random net",
    "input_shape": [1, 16, 16],
    "labels": ["zero", "one", "two"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


def _run(qtbot, tmp_path, spec_or_model):
    picture = tmp_path / "p.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(picture)
    session = Session(JobRunner())
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.show()
    session.predictionsChanged.connect(panel.set_predictions)
    session.queue_image(str(picture))
    if isinstance(spec_or_model, str):
        session.load_model(spec_or_model)
    else:
        session.set_model(spec_or_model)
    assert session.runner.wait(60_000) and session.predictions
    session.shutdown()
    return panel


def test_random_weights_are_named_in_the_panel(qtbot, tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(SPEC))
    assert load_model(str(spec)).weights_origin == "random"
    panel = _run(qtbot, tmp_path, str(spec))
    assert panel.caveat.isVisible()
    assert "Random weights" in panel.caveat.text()
    assert len(panel.texts()) == 3


def test_weights_from_a_file_carry_no_warning(qtbot, tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(SPEC))
    trained = load_model(str(spec))
    weights = tmp_path / "w.pt"
    torch.save(trained.module.state_dict(), weights)
    loaded = load_model(str(spec), weights=str(weights))
    assert loaded.weights_origin == "file"
    panel = _run(qtbot, tmp_path, loaded)
    assert not panel.caveat.isVisible()
    assert panel.note.text() == "Most likely classes"


def test_weights_origin_of_the_sources():
    import torchvision

    assert (
        load_model("resnet18", weights="none", input_shape=(3, 64, 64)).weights_origin == "random"
    )
    given = load_model(torchvision.models.resnet18(), input_shape=(3, 64, 64))
    assert given.weights_origin == "given"
