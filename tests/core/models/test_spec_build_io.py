"""Building, converting, saving and loading specs, checked against torch's real modules."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from spec_strategies import (
    REPO,
    torch_truth,
    valid_spec,
)
from torch import nn

from cnnviz.core.errors import SpecError
from cnnviz.core.models.spec import (
    build_model,
    infer_output_shape,
    load_spec,
    save_spec,
    spec_from_sequential,
    validate_spec,
)

# --------------------------------------------------------------------------------------------
# spec_from_sequential


def assert_round_trip(model: nn.Sequential, input_shape, batch: int = 2) -> dict:
    spec = spec_from_sequential(model, input_shape)
    json.dumps(spec)
    rebuilt = build_model(spec)
    original = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == original
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    x = torch.randn(batch, *input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
    for a, b in zip(model, rebuilt, strict=True):
        assert repr(a) == repr(b)
    return spec


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_spec)
def test_spec_from_sequential_round_trips_random_specs(spec):
    assume(validate_spec(spec).ok)
    assert_round_trip(build_model(spec), spec["input_shape"])


def test_spec_from_sequential_keeps_non_default_arguments():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 2), bias=False, padding_mode="reflect"),
        nn.BatchNorm2d(8, eps=1e-3, momentum=None, affine=False),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
        nn.AvgPool2d(2, count_include_pad=False, divisor_override=3),
        nn.ConvTranspose2d(8, 4, 2, stride=2, groups=2),
        nn.ZeroPad2d((1, 0, 2, 0)),
        nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
        nn.GELU(approximate="tanh"),
        nn.AdaptiveMaxPool2d((3, None)),
        nn.Dropout2d(0.3),
        nn.Flatten(),
        nn.BatchNorm1d(4 * 3 * 2),
        nn.ELU(alpha=0.5),
        nn.Linear(24, 5, bias=False),
        nn.Softmax(dim=1),
    )
    # Random running statistics, so eval outputs depend on them being copied.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.running_mean is not None:
            module.running_mean.uniform_(-1, 1)
    spec = assert_round_trip(model, (3, 10, 10))
    conv = spec["layers"][0]
    assert conv == {
        "type": "Conv2d",
        "out_channels": 8,
        "kernel_size": [3, 5],
        "stride": [1, 2],
        "padding": [1, 2],
        "bias": False,
        "padding_mode": "reflect",
    }
    assert spec["layers"][3] == {
        "type": "MaxPool2d",
        "kernel_size": 3,
        "stride": 1,
        "padding": 1,
        "ceil_mode": True,
    }
    assert spec["layers"][2] == {"type": "LeakyReLU", "negative_slope": 0.2}


def torchvision_features(name: str) -> nn.Sequential:
    """A torchvision model's real ``features`` with random weights.

    Built on the meta device first, so the huge classifier is never initialised on the CPU.
    """
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None)
    features = model.features.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in [*features.parameters(), *features.buffers()]:
            tensor.copy_(
                torch.rand_like(tensor.float()).to(tensor.dtype)
                if tensor.is_floating_point()
                else tensor.zero_()
            )
    return features


@pytest.mark.parametrize(("name", "side"), [("vgg11", 32), ("vgg11_bn", 32), ("alexnet", 64)])
def test_torchvision_features_round_trip(name, side):
    features = torchvision_features(name)
    spec = assert_round_trip(features, (3, side, side), batch=1)
    assert len(spec["layers"]) == len(features)
    with torch.no_grad():
        expected = tuple(features.eval()(torch.zeros(1, 3, side, side)).shape[1:])
    assert infer_output_shape(spec) == expected
    report = validate_spec(spec)
    assert report.params == sum(p.numel() for p in features.parameters())
    if name == "alexnet":
        assert spec["layers"][0]["kernel_size"] == 11 and spec["layers"][0]["stride"] == 4


def test_spec_from_sequential_names_the_first_unsupported_module():
    class MyConv(nn.Conv2d):
        pass

    for odd, name in [
        (nn.LSTM(4, 4), "LSTM"),
        (MyConv(4, 4, 1), "MyConv"),
        (nn.Sequential(), "Sequential"),
    ]:
        model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), odd)
        with pytest.raises(SpecError) as caught:
            spec_from_sequential(model, (3, 8, 8))
        assert (caught.value.index, caught.value.layer_type) == (2, name)
        assert str(caught.value).startswith(f"layer 2 ({name}): ")


def test_spec_from_sequential_checks_the_input_shape():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(SpecError) as caught:
        spec_from_sequential(model, (1, 8, 8))
    assert caught.value.index == 0 and "in_channels 3" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        spec_from_sequential(model, (3, 2, 2))
    assert "kernel 3×3 is larger than its 2×2 input" in str(caught.value)
    with pytest.raises(SpecError):
        spec_from_sequential(nn.Conv2d(3, 4, 3), (3, 8, 8))


def test_spec_from_sequential_names_and_labels():
    spec = spec_from_sequential(
        nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), [1, 2, 2], labels=["a", "b"], name="tiny"
    )
    assert spec == {
        "name": "tiny",
        "input_shape": [1, 2, 2],
        "labels": ["a", "b"],
        "layers": [{"type": "Flatten"}, {"type": "Linear", "out_features": 2}],
    }


# --------------------------------------------------------------------------------------------
# Files


def test_save_and_load_round_trip(tmp_path):
    spec = {
        "layers": [{"type": "Conv2d", "out_channels": 2, "kernel_size": (3, 3)}, {"type": "ReLU"}],
        "input_shape": (1, 8, 8),
        "name": "Ünïcode net",
        "labels": [],
    }
    path = tmp_path / "net.json"
    save_spec(spec, path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert '    {"type": "ReLU"}' in text.splitlines()
    assert text.index('"name"') < text.index('"input_shape"') < text.index('"layers"')
    loaded = load_spec(path)
    assert loaded == json.loads(json.dumps(spec))
    assert "Ünïcode" in loaded["name"]
    assert [p.name for p in tmp_path.iterdir()] == ["net.json"]  # no temp file left behind
    # Overwrite in place.
    save_spec({**loaded, "name": "second"}, path)
    assert load_spec(path)["name"] == "second"
    assert len(list(tmp_path.iterdir())) == 1


def test_save_refuses_what_json_cannot_hold(tmp_path):
    path = tmp_path / "bad.json"
    with pytest.raises(SpecError):
        save_spec(
            {"input_shape": [1, 2, 2], "layers": [{"type": "Dropout", "p": float("nan")}]}, path
        )
    with pytest.raises(SpecError):
        save_spec({"input_shape": [1, 2, 2], "layers": [object()]}, path)
    with pytest.raises(SpecError) as caught:
        save_spec({"input_shape": [1, 2, 2], "layers": []}, tmp_path / "missing" / "net.json")
    assert "does not exist" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_load_reports_bad_json_with_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "input_shape": [1, 28, 28],\n  "layers": [}\n', encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "broken.json is not valid JSON" in message
    assert "line 3, column" in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ("", "is not valid JSON"),
        (b"\xff\xfe\x00", "not a text file"),
    ],
)
def test_load_rejects_files_that_are_not_specs(tmp_path, content, words):
    path = tmp_path / "x.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert words in str(caught.value)


def test_load_missing_file_and_folder(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.json")
    assert "nope.json" in str(caught.value) and "does not exist" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert "is a folder" in str(caught.value)


def test_bundled_tiny_cnn_example():
    spec = load_spec(REPO / "resources" / "models" / "tiny_cnn.json")
    assert spec["input_shape"] == [1, 28, 28]
    assert spec["labels"] == [str(i) for i in range(10)]
    report = validate_spec(spec)
    assert report.ok, report.message
    model = build_model(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, len(spec["labels"]))
    assert report.params == sum(p.numel() for p in model.parameters())


def test_spec_module_is_qt_free():
    for path in (REPO / "cnnviz" / "core" / "models" / "spec").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for name in ("PySide6", "pyqtgraph", "cnnviz.gui"):
            assert f"import {name}" not in source and f"from {name}" not in source


def test_warm_up_runs_a_valid_spec_of_every_meta_run_layer():
    from cnnviz.core.models.spec import build as spec_module

    report = validate_spec(spec_module._WARM_UP_SPEC)
    assert report.ok, report.message
    meta_run = {"Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"}
    meta_run |= {"AdaptiveMaxPool2d", "Flatten", "Upsample", "ZeroPad2d"}
    assert meta_run <= {check.type for check in report.layers}
    assert torch_truth(spec_module._WARM_UP_SPEC)[0][-1] == report.output_shape
    spec_module.warm_up()
