"""One vocabulary on every command: the model's own name, shapes as the table writes them (``576``, ``4×24×24``,
never ``576x1x1``), and a bad picture named once in its one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.cli import main
from cnnviz.core.models import load_model

SPEC = {
    "name": "vocabnet",
    "input_shape": [3, 24, 24],
    "labels": ["a", "b", "c"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


@pytest.fixture
def files(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(SPEC))
    picture = tmp_path / "pic.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(
        picture
    )
    bad = tmp_path / "photos" / "bad.png"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a picture")
    return spec, picture, bad


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _shapes(spec):
    """Each layer's output shape from a real forward pass, without the batch, as the table writes it."""
    model = load_model(str(spec), weights="none")
    x = torch.zeros(1, *model.input_shape)
    shapes = {}
    for name, layer in model.module.named_children():
        x = layer(x)
        shapes[name] = "×".join(str(v) for v in x.shape[1:])
    return shapes


def test_the_bundled_model_has_one_name_in_the_table_and_the_exports(capsys, tmp_path):
    name = load_model("default").name  # what the app's title bar and exports show
    code, out, _ = _run(capsys, "summary", "--model", "default", "--format", "json")
    assert code == 0 and json.loads(out)["model"] == name
    code, out, _ = _run(capsys, "summary", "--model", "default")
    assert code == 0 and out.splitlines()[0].split()[0] == name
    from cnnviz.core.resources import sample_images

    digit = next(p for p in sample_images() if p.parent.name == "digits")
    code, out, _ = _run(capsys, "export", "--model", "default", "--image", digit, "--layer", "0",
                        "--out", tmp_path / "o", "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["model"] == name


def test_export_and_summary_write_shapes_alike(files, capsys, tmp_path):
    spec, picture, _ = files
    truth = _shapes(spec)
    code, out, _ = _run(capsys, "export", "--model", spec, "--weights", "none", "--image", picture,
                        "--all-layers", "--out", tmp_path / "o")  # fmt: skip
    assert code == 0
    lines = {
        line.split(" (")[0].strip(): line
        for line in out.splitlines()
        if line.startswith("  ") and "(" in line
    }
    code, table, _ = _run(capsys, "summary", "--model", spec)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.split()}
    for layer, shape in truth.items():
        assert f", {shape}): " in lines[layer], lines[layer]
        assert rows[layer][2] == shape
    assert truth["4"] == "3" and "x1x1" not in out and "×1×1" not in out


@pytest.mark.parametrize(
    "command",
    [
        ["rf", "--layer", "0", "--unit", "0,0", "--image", "{bad}"],
        ["export", "--layer", "0", "--image", "{bad}", "--out", "{tmp}/out"],
        ["predict", "{bad}"],
    ],
)
def test_a_bad_picture_is_named_once(files, capsys, tmp_path, command):
    spec, _, bad = files
    argv = [a.format(bad=bad, tmp=tmp_path) for a in command]
    code, out, err = _run(capsys, argv[0], "--model", spec, "--weights", "none", *argv[1:])
    assert code == 2 and err.count("\n") == 1 and err.startswith("cnnviz: error: ")
    assert err.count("bad.png") == 1, err


def test_convolve_names_a_bad_picture_once(files, capsys, tmp_path):
    _, _, bad = files
    code, _, err = _run(
        capsys, "convolve", "--image", bad, "--kernel", "sobel-x", "--out", tmp_path / "c.png"
    )
    assert code == 2 and err.count("\n") == 1 and err.count("bad.png") == 1, err
