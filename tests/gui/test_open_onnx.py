"""The app opens ONNX files: Open model offers them, the maps speak the file's node names, a bad one keeps the model."""

from __future__ import annotations

import warnings

import pytest
import torch
from gui_helpers import wait_idle
from torch import nn

onnx = pytest.importorskip("onnx")


def _export(path) -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 16 * 16, 5),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17
        )


def test_open_model_filter_offers_onnx():
    from cnnviz.gui import dialogs

    assert "*.onnx" in dialogs.model_filter()


def test_an_onnx_file_opens_with_its_node_names(loaded_window, tmp_path):
    window, session = loaded_window, loaded_window.session
    path = tmp_path / "net.onnx"
    _export(path)
    window.load_model(str(path))
    wait_idle(window)
    assert getattr(window, "last_error", None) is None
    assert session.model.source == "onnx" and session.model.input_shape == (3, 32, 32)
    names = session.model.metadata["onnx_names"]
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    assert any(names.get(key) == convs[0] for key in session.activations)

    # an unsupported file: one line, and the ONNX model stays
    model = session.model
    bad = tmp_path / "lstm.onnx"
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2)], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )  # fmt: skip
    onnx.save(onnx.helper.make_model(graph), str(bad))
    window.load_model(str(bad))
    wait_idle(window)
    assert window.last_error is not None and "uses LSTM: not supported" in window.last_error[1]
    assert session.model is model
