"""Exporting every layer for one picture point: each layer's unit is the one whose receptive field is centred
nearest that point, checked by brute force over the units of every spatial layer of a real torchvision model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnviz.core.analysis.capture import capture
from cnnviz.core.analysis.receptive import ReceptiveFieldIndex, receptive_field
from cnnviz.core.errors import CnnvizError
from cnnviz.core.images import load_image
from cnnviz.core.models import load_model
from cnnviz.core.present import export


def _centre(
    index: ReceptiveFieldIndex, layer: str, unit: tuple[int, int], geometry
) -> tuple[float, float]:
    box = index.box(layer, unit, geometry, exact_support=False).box
    return geometry.point_to_original((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pic")
    rng = np.random.default_rng(1)
    # Wider than tall, so the preprocessing resizes and crops: the point must go through that geometry.
    path = folder / "wide.png"
    Image.fromarray(rng.integers(0, 255, (150, 260, 3), dtype=np.uint8)).save(path)
    model = load_model("resnet18", weights="none", input_shape=(3, 96, 96))
    return model, load_image(path, model.preprocess)


@pytest.mark.parametrize(
    "point",
    [(75.0, 130.0), pytest.param((3.0, 60.0), marks=pytest.mark.slow),
     pytest.param((149.0, 200.0), marks=pytest.mark.slow)],
)  # fmt: skip
def test_every_layer_shows_the_unit_centred_nearest_the_point(resnet, tmp_path, point):
    model, image = resnet
    out = tmp_path / "out"
    result = export.export_layers(model, image, out, point=point, effective_rf=False)
    acts = capture(model, image)
    index = ReceptiveFieldIndex(model)
    geometry = image.geometry
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == result.manifest and manifest["point"] == list(point)
    spatial = 0
    for entry in manifest["layers"]:
        act = acts[entry["layer"]]
        if act.dim() != 4:
            assert "unit" not in entry and "no spatial map" in entry["rf_skipped"]
            continue
        if index.box(entry["layer"], (0, 0), geometry).global_:  # after global pooling
            assert "unit" not in entry and "sees the whole input" in entry["rf_skipped"]
            continue
        spatial += 1
        h, w = act.shape[2:]
        y, x = entry["unit"]
        # A box's rows depend on the unit's row only and its columns on its column, so the nearest unit in
        # the plane is the nearest row with the nearest column: brute force over each axis of the map.
        rows = [
            abs(_centre(index, entry["layer"], (i, 0), geometry)[0] - point[0]) for i in range(h)
        ]
        cols = [
            abs(_centre(index, entry["layer"], (0, j), geometry)[1] - point[1]) for j in range(w)
        ]
        assert rows[y] <= min(rows) + 1e-9 and cols[x] <= min(cols) + 1e-9, entry["layer"]
        # The overlay's JSON is that unit's receptive field, as `cnnviz rf` gives it.
        rf = json.loads((out / entry["files"]["rf_json"]).read_text())
        assert rf == receptive_field(model, entry["layer"], (y, x), geometry=geometry).to_json()
    assert spatial > 50


def test_the_point_stays_on_the_same_spot_as_the_maps_shrink(resnet, tmp_path):
    model, image = resnet
    result = export.export_layers(model, image, tmp_path / "o", layers=["conv1", "layer2", "layer4"],
                                  point=(75.0, 130.0), effective_rf=False)  # fmt: skip
    units = {e["layer"]: e["unit"] for e in result.manifest["layers"]}
    # The picture's centre: the middle unit of every map, whatever its size (48, 12 and 3 units across).
    assert units == {"conv1": [24, 24], "layer2": [6, 6], "layer4": [1, 1]}


def test_point_errors(resnet, tmp_path):
    model, image = resnet
    with pytest.raises(CnnvizError, match=r"outside the picture, which is 150×260"):
        export.export_layers(model, image, tmp_path / "a", point=(150, 3))
    with pytest.raises(CnnvizError, match="either a unit or a picture point"):
        export.export_layers(model, image, tmp_path / "b", point=(1, 1), unit=(0, 0))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unit_point_is_the_box_centre_in_the_picture(resnet):
    model, image = resnet
    box = receptive_field(model, "layer3", (2, 3), geometry=image.geometry)
    py, px = export.unit_point(box, image.geometry)
    assert export.unit_point(box) == ((box.box[0] + box.box[2]) / 2, (box.box[1] + box.box[3]) / 2)
    assert image.geometry.point_from_original(py, px) == pytest.approx(export.unit_point(box))
    # No spot without a unit, or for a unit that sees the whole picture.
    assert export.unit_point(None, image.geometry) is None
    assert export.unit_point(receptive_field(model, "avgpool", (0, 0)), image.geometry) is None
