"""ONNX details: shared and external weights, the preprocessing sidecar, the notes, onnx not installed."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from onnx_oracles import file_weight_count, onnx, run_onnxruntime

from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import CnnvizError
from cnnviz.core.models import load_model

helper, TP = onnx.helper, onnx.TensorProto


def _two_convs(tmp_path, name="shared.onnx"):
    rng = np.random.default_rng(3)
    w = onnx.numpy_helper.from_array(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), "w")
    bias = onnx.numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c1"], "first", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r"], "relu"),
        helper.make_node("Identity", ["w"], ["w_again"], "share"),
        helper.make_node("Conv", ["r", "w_again", "b"], ["y"], "second", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3, 9, 9])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)], [w, bias],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_a_shared_initializer_counts_once(tmp_path):
    path = _two_convs(tmp_path)
    loaded = load_model(path)
    summary = summarize(loaded)
    assert summary.total_params == file_weight_count(path) == 3 * 3 * 3 * 3 + 3
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        assert abs(loaded.module(x).numpy() - run_onnxruntime(path, x)).max() < 1e-4
    assert (
        "batch normalisation" in loaded.note
    )  # no BatchNormalization: the count may be below torch's


def test_external_data_next_to_the_file(tmp_path):
    path = _two_convs(tmp_path)
    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)  # fmt: skip
    assert (tmp_path / "weights.bin").is_file()
    loaded = load_model(path)
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        assert abs(loaded.module(x).numpy() - run_onnxruntime(path, x)).max() < 1e-4
    (tmp_path / "weights.bin").write_bytes(b"\0" * 10)  # truncated
    with pytest.raises(CnnvizError, match="truncated"):
        load_model(path)


def test_preprocessing_none_unless_a_sidecar_gives_it(tmp_path):
    path = _two_convs(tmp_path, "net.onnx")
    plain = load_model(path)
    assert plain.preprocess.mean == (0.0,) and plain.preprocess.std == (1.0,)
    assert "none is applied" in plain.note and "net.preprocess.json" in plain.note
    side = tmp_path / "net.preprocess.json"
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    side.write_text(json.dumps({"mean": mean, "std": std, "mode": "resize_crop", "resize_size": 10,
                                "labels": ["a", "b", "c"]}))  # fmt: skip
    loaded = load_model(path)
    assert loaded.preprocess.mean == tuple(mean) and loaded.preprocess.std == tuple(std)
    assert loaded.preprocess.mode == "resize_crop" and loaded.labels == ["a", "b", "c"]
    assert loaded.note is None or "none is applied" not in loaded.note
    side.write_text('{"mean": [0.5], "colour": "red"}')
    with pytest.raises(CnnvizError, match="net.preprocess.json"):
        load_model(path)


def test_weights_file_refused_for_onnx(tmp_path):
    path = _two_convs(tmp_path)
    with pytest.raises(CnnvizError, match="carries its own weights"):
        load_model(path, weights=str(path))


def test_without_the_onnx_package_the_error_says_how_to_install(tmp_path, monkeypatch):
    path = _two_convs(tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(CnnvizError, match=r"pip install 'cnnviz\[onnx\]'"):
        load_model(path)


def test_node_names_that_clash_with_module_attributes(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], "graph"),
        helper.make_node("Sigmoid", ["a"], ["b"], "forward"),
        helper.make_node("Relu", ["b"], ["y"], "/forward"),  # the same attribute name once cleaned
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "names.onnx"
    onnx.save(model, str(path))
    loaded = load_model(path)
    assert sorted(loaded.metadata["onnx_names"].values()) == ["/forward", "forward", "graph"]
    x = torch.randn(1, 3, 4, 4)
    assert torch.allclose(loaded.module(x), torch.relu(torch.sigmoid(torch.relu(x))))
    assert [r.name for r in summarize(loaded).rows if r.kind == "module"] == list(
        loaded.metadata["onnx_names"]
    )
