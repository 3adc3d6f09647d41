"""Hand-built ONNX graphs: the CNN operator set against onnxruntime, and bad files refused in one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from onnx_oracles import file_weight_count, onnx, run_onnxruntime

from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import CnnvizError
from cnnviz.core.models import load_model

helper, TP = onnx.helper, onnx.TensorProto


def _init(name: str, *shape: int) -> onnx.TensorProto:
    rng = np.random.default_rng(len(name))
    return onnx.numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.5, name)


def _ints(name: str, values: list[int]) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _floats(name: str, values: list[float]) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.array(values, dtype=np.float32), name)


def _save(tmp_path, nodes, inits, shape=(1, 3, 17, 19), opset=17, name="hand.onnx"):
    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TP.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


N = helper.make_node


def _common_ops_graph(tmp_path):
    bn = [_init("bn_s", 8), _init("bn_b", 8), _init("bn_m", 8), _floats("bn_v", [1.5] * 8)]
    nodes = [
        N("Conv", ["x", "w1", "b1"], ["c1"], "conv_asym", pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2]),
        N("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"], "bn", epsilon=1e-3),
        N("Relu", ["n1"], ["r1"], "relu"),
        N("Conv", ["r1", "w2"], ["c2"], "conv_group", group=2, pads=[1, 1, 1, 1]),
        N("Clip", ["c2", "lo", "hi"], ["k2"], "relu6"),
        N("LeakyRelu", ["k2"], ["l2"], "leaky", alpha=0.1),
        N("MaxPool", ["l2"], ["p1"], "maxpool_ceil", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        N("HardSwish", ["p1"], ["hs"], "hswish"),
        N("HardSigmoid", ["p1"], ["hg"], "hsig", alpha=1 / 6, beta=0.5),
        N("Mul", ["hs", "hg"], ["m1"], "gate"),
        N("Sigmoid", ["m1"], ["s1"], "sigmoid"),
        N("Add", ["s1", "m1"], ["a1"], "residual"),
        N("AveragePool", ["a1"], ["ap"], "avgpool_ceil", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        N("MaxPool", ["a1"], ["mp2"], "maxpool_asym", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
        N("Pad", ["ap", "pads"], ["pd"], "pad_reflect", mode="reflect"),
        N("Resize", ["pd", "", "scales"], ["up1"], "resize_nearest", mode="nearest",
          coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        N("Resize", ["up1", "", "", "sizes"], ["up2"], "resize_linear", mode="linear"),
        N("Resize", ["mp2", "", "", "sizes"], ["up3"], "resize_align", mode="linear",
          coordinate_transformation_mode="align_corners"),
        N("Concat", ["up2", "up3"], ["cat"], "concat", axis=1),
        N("Conv", ["cat", "w3", "b3"], ["c3"], "conv_same", auto_pad="SAME_UPPER", strides=[2, 2]),
        N("AveragePool", ["c3"], ["ap2"], "avgpool_pad", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
        N("Identity", ["ap2"], ["id"], "identity"),
        N("GlobalAveragePool", ["id"], ["g"], "gap"),
        N("Flatten", ["g"], ["f"], "flatten"),
        N("Gemm", ["f", "wg", "bg"], ["fc"], "fc", transB=1),
        N("Relu", ["fc"], ["rf"], "fc_relu"),
        N("Reshape", ["rf", "shape"], ["rs"], "reshape"),
        N("MatMul", ["rs", "wm"], ["mm"], "matmul"),
        N("Add", ["mm", "bm"], ["lg"], "bias"),
        N("Softmax", ["lg"], ["y"], "softmax", axis=1),
    ]  # fmt: skip
    inits = [
        _init("w1", 8, 3, 3, 3), _init("b1", 8), *bn, _init("w2", 8, 4, 3, 3),
        _floats("lo", [0.0]), _floats("hi", [6.0]), _ints("pads", [0, 0, 1, 2, 0, 0, 2, 1]),
        _floats("scales", [1, 1, 2, 2]), _ints("sizes", [1, 8, 13, 11]), _init("w3", 6, 16, 3, 3),
        _init("b3", 6), _init("wg", 10, 6), _init("bg", 10), _ints("shape", [1, -1]), _init("wm", 10, 5),
        _init("bm", 5),
    ]  # fmt: skip
    return _save(tmp_path, nodes, inits)


def test_common_cnn_operators_match_onnxruntime(tmp_path):
    path = _common_ops_graph(tmp_path)
    loaded = load_model(path)
    x = torch.randn(1, 3, 17, 19) * 2
    with torch.no_grad():
        ours = loaded.module(x).numpy()
    truth = run_onnxruntime(path, x)
    assert ours.shape == truth.shape
    assert abs(ours - truth).max() < 1e-4
    summary = summarize(loaded)
    assert summary.total_params == file_weight_count(path)
    types = {loaded.metadata["onnx_names"].get(r.name): r.type for r in summary.rows}
    assert types["conv_group"] == "Conv2d" and types["fc"] == "Linear" and types["relu6"] == "ReLU6"
    assert types["maxpool_ceil"] == "MaxPool2d" and types["bn"] == "BatchNorm2d"


def _bad_files(tmp_path):
    good = _save(tmp_path, [N("Relu", ["x"], ["y"], "r")], [], name="good.onnx")
    data = good.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.onnx").write_bytes(b"\xff\x00garbage" * 50)
    lstm = _save(tmp_path, [N("LSTM", ["x", "w", "r"], ["y"], "l", hidden_size=2),
                            N("NonMaxSuppression", ["x", "x"], ["z"], "nms")],
                 [_init("w", 1, 8, 19), _init("r", 1, 8, 2)], name="lstm.onnx")  # fmt: skip
    ext = _save(
        tmp_path, [N("Conv", ["x", "w"], ["y"], "c")], [_init("w", 4, 3, 3, 3)], name="ext.onnx"
    )
    model = onnx.load(str(ext))
    tensor = model.graph.initializer[0]
    tensor.data_location = TP.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    for k, v in (("location", "../outside.bin"), ("offset", "0"), ("length", str(4 * 3 * 9 * 4))):
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(ext))
    huge = _save(
        tmp_path, [N("Conv", ["x", "w"], ["y"], "c")], [_init("w", 4, 3, 3, 3)], name="huge.onnx"
    )
    model = onnx.load(str(huge))
    model.graph.initializer[0].dims[:] = [4000, 3000, 3, 3]  # declares 432 MB
    onnx.save(model, str(huge))
    dynamic = _save(
        tmp_path, [N("Relu", ["x"], ["y"], "r")], [], shape=("N", 3, "H", "W"), name="dyn.onnx"
    )
    return {
        "truncated": (tmp_path / "truncated.onnx", "damaged"),
        "garbage": (tmp_path / "garbage.onnx", "damaged"),
        "lstm": (lstm, "uses LSTM, NonMaxSuppression: not supported"),
        "external": (ext, "outside the model's folder"),
        "huge": (huge, "memory budget"),
        "dynamic": (dynamic, "--input-size"),
    }


@pytest.mark.parametrize("case", ["truncated", "garbage", "lstm", "external", "huge", "dynamic"])
def test_bad_files_one_line(tmp_path, monkeypatch, case):
    path, words = _bad_files(tmp_path)[case]
    monkeypatch.setenv("CNNVIZ_MEMORY_BUDGET", "64MiB")
    with pytest.raises(CnnvizError) as info:
        load_model(path)
    assert words in str(info.value) and "\n" not in str(info.value)
    run = subprocess.run(
        [sys.executable, "-m", "cnnviz", "summary", "--model", str(path)],
        capture_output=True, text=True, env={**__import__("os").environ, "CNNVIZ_MEMORY_BUDGET": "64MiB"},
    )  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnviz: error: ") and words in lines[0]


def test_dynamic_input_with_input_size(tmp_path):
    path = _bad_files(tmp_path)["dynamic"][0]
    loaded = load_model(path, input_shape=(3, 20, 30))
    assert loaded.input_shape == (3, 20, 30)
    x = torch.randn(1, 3, 20, 30)
    assert torch.equal(loaded.module(x), torch.relu(x))


def test_commands_on_an_onnx_file(tmp_path):
    path = _common_ops_graph(tmp_path)
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
        picture
    )
    for args in (
        ["predict", "--model", str(path), str(picture)],
        ["rf", "--model", str(path), "--layer", "conv_same", "--unit", "1,1"],
        ["export", "--model", str(path), "--image", str(picture), "--layer", "conv_same"]
        + ["--unit", "1,1", "--out", str(tmp_path / "out")],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "cnnviz", *args], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_opset9_operators_match_onnxruntime(tmp_path):
    """Before opset 10/11/13: Upsample, Clip and Pad by attributes, Softmax over the flattened axes."""
    bn = [_init("s", 3), _init("b", 3), _init("m", 3), _floats("v", [2.0] * 3)]
    nodes = [
        N("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"], "bn"),
        N("Clip", ["n"], ["c"], "clip", min=-0.5, max=0.75),
        N("Pad", ["c"], ["p"], "pad", pads=[0, 0, 1, 2, 0, 0, 0, 1], value=0.25),
        N("Upsample", ["p", "scales"], ["u"], "upsample", mode="nearest"),
        N("Softmax", ["u"], ["y"], "softmax", axis=1),
    ]
    path = _save(
        tmp_path, nodes, [*bn, _floats("scales", [1, 1, 2, 3])], shape=(1, 3, 5, 4), opset=9
    )
    loaded = load_model(path)
    x = torch.randn(1, 3, 5, 4)
    with torch.no_grad():
        ours = loaded.module(x).numpy()
    truth = run_onnxruntime(path, x)
    assert ours.shape == truth.shape and abs(ours - truth).max() < 1e-5
