"""``cnnviz summary`` and ``cnnviz rf`` through ``cnnviz.cli.main``, checked against torch computed here."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from cnnviz import __version__
from cnnviz.cli import build_parser, main

ROW_KEYS = {
    "name",
    "type",
    "output_shape",
    "params",
    "trainable_params",
    "macs",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "rf",
}

SPEC = {
    "name": "cli test net",
    "input_shape": [1, 16, 16],
    "labels": ["a", "b"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 2},
    ],
}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cnnviz: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def spec_path(tmp_path) -> Path:
    path = tmp_path / "net.json"
    path.write_text(json.dumps(SPEC))
    return path


def _leaf_calls(module: nn.Module, x: torch.Tensor) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """Every call of a leaf module in a real forward pass, keyed as the summary names them."""
    calls: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    count: dict[str, int] = {}
    handles = []
    for name, sub in module.named_modules():
        if name and not list(sub.children()):

            def hook(m, _inp, out, name=name):
                n = count.get(name, 0)
                count[name] = n + 1
                calls[name if n == 0 else f"{name}@{n}"] = (m, out)

            handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return calls


# ---------------------------------------------------------------------------------------------------------------
# summary


@pytest.fixture(scope="module")
def resnet18_json() -> dict:
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        code = main(["summary", "--model", "resnet18", "--weights", "none", "--format", "json"])
    assert code == 0
    return json.loads(capture.getvalue())


def test_summary_json_has_the_documented_keys(resnet18_json):
    data = resnet18_json
    assert set(data) >= {
        "model",
        "input_shape",
        "total_params",
        "trainable_params",
        "total_macs",
        "layers",
    }
    assert data["model"] == "resnet18"
    assert data["input_shape"] == [3, 224, 224]
    assert data["layers"]
    for row in data["layers"]:
        assert set(row) >= ROW_KEYS, row["name"]


def test_summary_json_totals_match_torch(resnet18_json):
    reference = torchvision.models.resnet18(weights=None)
    assert resnet18_json["total_params"] == sum(p.numel() for p in reference.parameters())
    assert resnet18_json["trainable_params"] == sum(
        p.numel() for p in reference.parameters() if p.requires_grad
    )
    # MACs of convolutions (weight elements × output positions) and linear layers, from a real forward pass
    macs = 0
    for module, out in _leaf_calls(reference.eval(), torch.zeros(1, 3, 224, 224)).values():
        if isinstance(module, nn.Conv2d):
            macs += module.weight.numel() * out.shape[2] * out.shape[3]
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
    assert resnet18_json["total_macs"] == macs


def test_summary_json_rows_match_a_forward_pass(resnet18_json):
    reference = torchvision.models.resnet18(weights=None).eval()
    rows = {r["name"]: r for r in resnet18_json["layers"]}
    modules = dict(reference.named_modules())
    calls = _leaf_calls(reference, torch.zeros(1, 3, 224, 224))
    assert "layer1.0.relu@1" in calls  # the block's ReLU runs twice
    for key, (module, out) in calls.items():
        row = rows[key]
        assert row["output_shape"] == list(out.shape), key
        assert row["type"] == type(module).__name__
        if "@" not in key:
            assert row["params"] == sum(p.numel() for p in module.parameters())
        if isinstance(module, nn.Conv2d):
            assert row["kernel_size"] == list(module.kernel_size)
            assert row["stride"] == list(module.stride)
            assert row["padding"] == list(module.padding)
            assert row["dilation"] == list(module.dilation)
            assert row["groups"] == module.groups
            assert row["macs"] == module.weight.numel() * out.shape[2] * out.shape[3]
    for name in ("layer1", "layer2.1", "layer4"):
        assert rows[name]["params"] == sum(p.numel() for p in modules[name].parameters())
    # receptive fields by the recurrence r += (k-1)·S, P += p·S, S *= s along the stem
    assert rows["conv1"]["rf"] == {"size": [7, 7], "stride": [2, 2], "padding": [3, 3]}
    r, s, p = 7, 2, 3
    k, st, pad = reference.maxpool.kernel_size, reference.maxpool.stride, reference.maxpool.padding
    r, p, s = r + (k - 1) * s, p + pad * s, s * st
    assert rows["maxpool"]["rf"] == {"size": [r, r], "stride": [s, s], "padding": [p, p]}
    assert rows["fc"]["rf"] == {"global": True}


def test_summary_text_formats(capsys):
    argv = ["summary", "--model", "resnet18", "--weights", "none"]
    code, table, _ = _run(capsys, *argv)
    assert code == 0
    assert table.splitlines()[0] == "resnet18"
    for name in ("conv1", "layer4.1.conv2", "fc"):
        assert name in table
    assert "Conv2d" in table

    code, text, _ = _run(capsys, *argv, "--format", "csv")
    assert code == 0
    records = list(csv.DictReader(io.StringIO(text)))
    by_name = {r["layer"]: r for r in records}
    reference = torchvision.models.resnet18(weights=None)
    assert int(by_name["fc"]["params"]) == reference.fc.weight.numel() + reference.fc.bias.numel()
    assert int(by_name["conv1"]["params"]) == reference.conv1.weight.numel()
    assert "layer3.0.downsample.0" in by_name

    code, markdown, _ = _run(capsys, *argv, "--format", "markdown")
    assert code == 0
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table_lines) == len(records) + 3  # header, alignment and totals rows
    assert "`conv1`" in markdown


def test_summary_of_a_spec_file_with_input_size(capsys, spec_path):
    code, out, err = _run(
        capsys, "summary", "--model", str(spec_path), "--format", "json", "--input-size", "1x16x16"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["input_shape"] == [1, 16, 16]
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, stride=2),
        nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 2),
    )  # fmt: skip
    assert data["total_params"] == sum(p.numel() for p in net.parameters())
    shapes = [list(o.shape) for _, o in _leaf_calls(net, torch.zeros(1, 1, 16, 16)).values()]
    assert [r["output_shape"] for r in data["layers"]] == shapes


def test_summary_input_size_changes_the_shapes(capsys):
    code, out, _ = _run(
        capsys, "summary", "--model", "resnet18", "--weights", "none", "--input-size", "3,64,96",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["input_shape"] == [3, 64, 96]
    reference = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        stem = reference.maxpool(
            reference.relu(reference.bn1(reference.conv1(torch.zeros(1, 3, 64, 96))))
        )
    rows = {r["name"]: r for r in data["layers"]}
    assert rows["maxpool"]["output_shape"] == list(stem.shape)


def test_summary_input_size_with_other_channels_is_an_error(capsys):
    code, out, err = _run(
        capsys, "summary", "--model", "resnet18", "--weights", "none", "--input-size", "1,224,224"
    )
    assert code == 2
    assert out == ""
    line = _one_error_line(err)
    assert "3-channel" in line


@pytest.mark.parametrize("bad", ["3,x,1", "3,224", "0,32,32", "a,b,c", "3,32,32,1"])
def test_bad_input_size_is_an_argparse_error(capsys, bad):
    with pytest.raises(SystemExit) as info:
        main(["summary", "--model", "resnet18", "--weights", "none", "--input-size", bad])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--input-size" in err
    assert f"'{bad}'" in err
    assert "Traceback" not in err


def test_unknown_model_is_one_error_line(capsys):
    code, out, err = _run(capsys, "summary", "--model", "resnet19", "--weights", "none")
    assert code == 2
    assert out == ""
    line = _one_error_line(err)
    assert "did you mean" in line and "resnet18" in line


def test_default_weights_offline_is_one_error_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    code, out, err = _run(capsys, "summary", "--model", "resnet18", "--weights", "default")
    assert code == 2
    line = _one_error_line(err)
    assert torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1] in line
    assert str(tmp_path) in line
    assert "--weights none" in line and "Errno" not in line


def test_untrusted_file_is_one_error_line(capsys, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Conv2d(1, 2, 3)), path)
    code, _, err = _run(capsys, "summary", "--model", str(path))
    assert code == 2
    line = _one_error_line(err)
    assert "--trust" in line
    code, out, err = _run(
        capsys,
        "summary",
        "--model",
        str(path),
        "--trust",
        "--input-size",
        "1,8,8",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["total_params"] == 2 * 9 + 2


@pytest.mark.parametrize("content", [b"", b"not a model", b"PK\x03\x04junk"])
def test_bad_model_file_is_one_error_line(capsys, tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    code, out, err = _run(capsys, "summary", "--model", str(path))
    assert code == 2
    assert out == ""
    assert "model.pt" in _one_error_line(err)


def test_bad_pt2_file_prints_no_traceback(capfd, tmp_path):
    path = tmp_path / "model.pt2"
    torch.save({"w": torch.zeros(2)}, path)
    assert main(["summary", "--model", str(path)]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    _one_error_line(err)


# ---------------------------------------------------------------------------------------------------------------
# rf


def _araujo(layers: list[nn.Module]) -> tuple[int, int, int]:
    """(r, S, P) of a chain of convolutions and poolings (Araujo, Norris & Sim 2019), height axis."""

    def first(v):
        return v[0] if isinstance(v, tuple) else v

    r, s, p = 1, 1, 0
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, st, pad = first(m.kernel_size), first(m.stride), first(m.padding)
            d = first(getattr(m, "dilation", 1))
            r += (d * (k - 1)) * s
            p += pad * s
            s *= st
    return r, s, p


@pytest.fixture(scope="module")
def vgg16_pool5() -> dict:
    # VGG-16 on the meta device: the receptive field depends on the architecture alone, and initialising
    # 138M parameters would take most of this file's time budget.
    capture = io.StringIO()
    with torch.device("meta"), contextlib.redirect_stdout(capture):
        code = main(
            ["rf", "--model", "vgg16", "--weights", "none", "--layer", "features", "--unit", "0,0",
             "--format", "json"]
        )  # fmt: skip
    assert code == 0
    return json.loads(capture.getvalue())


def test_rf_of_vgg16_pool5_matches_the_published_figures(vgg16_pool5):
    data = vgg16_pool5
    # Araujo, Norris & Sim (Distill 2019), table of receptive fields: VGG-16 pool5 r=212, S=32, P=90
    assert data["size"] == [212, 212]
    assert data["stride"] == [32, 32]
    assert data["padding"] == [90, 90]
    assert data["box"] == [-90, -90, 121, 121]
    assert data["clipped_box"] == [0, 0, 121, 121]
    assert data["layer"] == "features"
    assert data["unit"] == [0, 0]
    assert data["input_shape"] == [3, 224, 224]
    with torch.device("meta"):
        features = list(torchvision.models.vgg16(weights=None).features)
    assert _araujo(features) == (212, 32, 90)
    inside = 122 * 122
    assert data["padding_fraction"] == pytest.approx(1 - inside / (212 * 212), abs=1e-6)


def test_rf_of_a_spec_matches_the_recurrence_and_the_gradient(capsys, spec_path):
    code, out, err = _run(
        capsys, "rf", "--model", str(spec_path), "--layer", "3", "--unit", "2,1", "--format", "json"
    )
    assert code == 0, err
    data = json.loads(out)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, stride=2)
    )
    r, s, p = _araujo(list(net))
    assert data["size"] == [r, r] and data["stride"] == [s, s] and data["padding"] == [p, p]
    top, left = 2 * s - p, 1 * s - p
    assert data["box"] == [top, left, top + r - 1, left + r - 1]
    # the input pixels the unit depends on: gradient support with positive weights and average pooling
    for m in net:
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)
    net[1] = nn.Identity()
    net[2] = nn.AvgPool2d(2)
    x = torch.ones(1, 1, 16, 16, requires_grad=True)
    net(x)[0, 0, 2, 1].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
    support = [int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])]
    assert data["support_box"] == support
    assert data["clipped_box"] == [
        max(top, 0),
        max(left, 0),
        min(top + r - 1, 15),
        min(left + r - 1, 15),
    ]


def test_rf_text_output(capsys, spec_path):
    code, out, err = _run(capsys, "rf", "--model", str(spec_path), "--layer", "2", "--unit", "0,0")
    assert code == 0, err
    assert "layer 2, unit (y=0, x=0)" in out
    r, s, p = _araujo(
        list(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
    )
    assert f"size r = {r}×{r}, stride S = {s}×{s}, padding P = {p}×{p}" in out
    assert f"box:          rows {-p}–{r - 1 - p}, columns {-p}–{r - 1 - p}" in out


def test_rf_unknown_layer_lists_close_names(capsys):
    code, out, err = _run(
        capsys,
        "rf",
        "--model",
        "resnet18",
        "--weights",
        "none",
        "--layer",
        "layer3.0.conv",
        "--unit",
        "0,0",
    )
    assert code == 2
    assert out == ""
    line = _one_error_line(err)
    assert "unknown layer 'layer3.0.conv'" in line
    assert "layer3.0.conv1" in line


def test_rf_unit_outside_the_map_states_the_valid_range(capsys, spec_path):
    # layer "3" maps 16×16 -> conv(pad 1) 16 -> pool 8 -> conv(3, stride 2) 3×3
    code, out, err = _run(capsys, "rf", "--model", str(spec_path), "--layer", "3", "--unit", "3,0")
    assert code == 2
    line = _one_error_line(err)
    assert "3×3" in line
    assert "y must be 0..2 and x 0..2" in line


def test_rf_of_a_layer_without_a_spatial_map(capsys, spec_path):
    code, _, err = _run(capsys, "rf", "--model", str(spec_path), "--layer", "6", "--unit", "0,0")
    assert code == 2
    assert "no spatial map" in _one_error_line(err)


@pytest.mark.parametrize("unit", ["1", "1,2,3", "a,b"])
def test_rf_bad_unit_is_an_argparse_error(capsys, unit, spec_path):
    with pytest.raises(SystemExit) as info:
        main(["rf", "--model", str(spec_path), "--layer", "0", "--unit", unit])
    assert info.value.code == 2
    assert "--unit" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# the dispatcher


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cnnviz {__version__}"


def _sub_commands() -> list[str]:
    parser = build_parser()
    return sorted(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_summary_and_rf_are_registered():
    assert {"summary", "rf"} <= set(_sub_commands())


@pytest.mark.parametrize("command", _sub_commands())
def test_every_sub_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cnnviz {command}")


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("summary", "rf"):
        assert command in out
