"""`cnnviz export` end to end through cnnviz.cli.main, with a spec model and a picture made in tmp_path."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.cli import main

SPEC = {
    "name": "clinet",
    "input_shape": [3, 24, 24],
    "labels": ["a", "b", "c"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 5, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


@pytest.fixture
def cli_files(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(SPEC))
    rng = np.random.default_rng(0)
    picture = tmp_path / "pic.png"
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(picture)
    return spec, picture


def test_export_layers_with_unit(cli_files, tmp_path, capsys):
    from cnnviz.core.analysis.receptive import receptive_field
    from cnnviz.core.images import load_image
    from cnnviz.core.models import load_model

    spec, picture = cli_files
    out = tmp_path / "out"
    code = main(["export", "--model", str(spec), "--weights", "none", "--image", str(picture),
                 "--layer", "0", "--layer", "3", "--unit", "2,1", "--out", str(out), "--svg"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "2 layer(s) written" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["layer"] for e in manifest["layers"]] == ["0", "3"]
    model = load_model(str(spec), weights="none")
    geometry = load_image(picture, model.preprocess).geometry
    for entry in manifest["layers"]:
        assert set(entry["files"]) == {"grid_png", "grid_svg", "rf_png", "rf_svg", "rf_json"}
        rf = json.loads((out / entry["files"]["rf_json"]).read_text())
        # The same fields as `cnnviz rf --format json` for that unit and picture.
        assert rf == receptive_field(model, entry["layer"], (2, 1), geometry=geometry).to_json()
    capsys.readouterr()
    assert main(["rf", "--model", str(spec), "--weights", "none", "--layer", "3", "--unit", "2,1",
                 "--image", str(picture), "--format", "json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == json.loads((out / "3_rf.json").read_text())
    # Shapes from a real forward pass of the same spec.
    x = load_image(picture, model.preprocess).tensor
    with torch.no_grad():
        y = model.module[:4](x)
    assert manifest["layers"][1]["shape"] == list(y.shape[1:])


def test_export_all_layers_json(cli_files, tmp_path, capsys):
    spec, picture = cli_files
    code = main(["export", "--model", str(spec), "--weights", "none", "--image", str(picture), "--all-layers",
                 "--out", str(tmp_path / "all"), "--format", "json", "--cmap", "magma", "--norm", "layer"])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["layer"] for e in data["layers"]] == ["0", "1", "2", "3", "4", "5"]
    assert data["cmap"] == "magma" and data["norm"] == "layer"
    for entry in data["layers"]:
        assert (tmp_path / "all" / entry["files"]["grid_png"]).is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "9"], "unknown layer '9'"),
        (["--layer", "3", "--unit", "40,0"], "outside layer '3'"),
    ],
)
def test_export_errors_are_one_line(cli_files, tmp_path, capsys, extra, message):
    spec, picture = cli_files
    code = main(["export", "--model", str(spec), "--weights", "none", "--image", str(picture),
                 "--out", str(tmp_path / "o"), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cnnviz: error: ") and message in err and err.count("\n") == 1


def test_export_bad_image(cli_files, tmp_path, capsys):
    spec, _ = cli_files
    bad = tmp_path / "bad.jpg"
    bad.write_text("no picture here")
    code = main(["export", "--model", str(spec), "--weights", "none", "--image", str(bad), "--all-layers",
                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "bad.jpg" in capsys.readouterr().err


def test_export_needs_layers_and_out(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "--model", "default", "--image", "x.png", "--out", "o"])
    assert exc.value.code == 2
    assert "--layer" in capsys.readouterr().err


def test_export_help_mentions_manifest(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "manifest.json" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "--out is empty"),
        ("{tmp}/file/sub", "is a file, not a folder"),
        ("{tmp}/file", "is a file, not a folder"),
        # Tests may run as root, whom chmod does not stop; /proc takes no new files from anyone.
        ("/proc/cnnviz-test", "does not accept new files"),
    ],
)
def test_export_bad_out_is_one_line_and_writes_nothing(cli_files, tmp_path, capsys, out, message):
    if out.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc")
    spec, picture = cli_files
    (tmp_path / "file").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["export", "--model", str(spec), "--weights", "none", "--image", str(picture),
                 "--all-layers", "--out", out.format(tmp=tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cnnviz: error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_export_all_layers_for_a_picture_point(cli_files, tmp_path, capsys):
    from cnnviz.core.analysis.receptive import receptive_field
    from cnnviz.core.images import load_image
    from cnnviz.core.models import load_model

    spec, picture = cli_files
    out = tmp_path / "out"
    code = main(["export", "--model", str(spec), "--weights", "none", "--image", str(picture),
                 "--all-layers", "--point", "14,30", "--no-erf", "--out", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["point"] == [14, 30] and manifest["unit"] is None
    model = load_model(str(spec), weights="none")
    geometry = load_image(picture, model.preprocess).geometry
    spatial = [e for e in manifest["layers"] if len(e["shape"]) == 3]
    assert len(spatial) == 4
    for entry in spatial:
        unit = tuple(entry["unit"])
        assert f"{entry['layer']} (" in text and f"[unit (y={unit[0]}, x={unit[1]})]" in text
        rf = json.loads((out / entry["files"]["rf_json"]).read_text())
        assert rf == receptive_field(model, entry["layer"], unit, geometry=geometry).to_json()
        # The unit's box holds the point (mapped onto the model input).
        py, px = geometry.point_from_original(14, 30)
        top, left, bottom, right = rf["box"]
        assert top <= py <= bottom and left <= px <= right
    for entry in manifest["layers"]:
        if len(entry["shape"]) != 3:
            assert "rf_skipped" in entry and "rf_json" not in entry["files"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--point", "30,0"], "outside the picture, which is 30×40"),
        (["--point", "2,2", "--unit", "1,1"], "not allowed with argument"),
        (["--point", "a,b"], "is not Y,X"),
    ],
)
def test_export_point_errors_are_one_line(cli_files, tmp_path, capsys, extra, message):
    spec, picture = cli_files
    try:  # usage mistakes leave through argparse's exit, the others through main's return
        code = main(["export", "--model", str(spec), "--weights", "none", "--image", str(picture),
                     "--all-layers", "--out", str(tmp_path / "o"), *extra])  # fmt: skip
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
