"""Atomic writers, the table as CSV/Markdown, export_layers (the `cnnviz export` job) and export_view."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnviz.core import fileio
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import CnnvizError, LayerError
from cnnviz.core.images import Preprocess, load_image
from cnnviz.core.models import LoadedModel
from cnnviz.core.present import export, tables
from cnnviz.core.present.figures import Figure
from cnnviz.core.present.view import ViewState


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 5),
    ).eval()


@pytest.fixture
def tiny(tmp_path):
    pre = Preprocess(3, (16, 16), "resize", None, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    model = LoadedModel(_net(), "tiny", (3, 16, 16), pre, [f"class {i}" for i in range(5)])
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(path)
    return model, load_image(path, pre)


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.txt"
    fileio.atomic_write_text(target, "first")
    fileio.atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CnnvizError, match="No space left"):
        fileio.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_bad_destinations(tmp_path):
    with pytest.raises(CnnvizError, match="does not exist"):
        fileio.atomic_write_text(tmp_path / "missing" / "x.txt", "x")
    with pytest.raises(CnnvizError, match="is a folder"):
        fileio.atomic_write_text(tmp_path, "x")


def test_write_png_keeps_text_chunks(tmp_path):
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    path = export.write_png(tmp_path / "a.png", rgba, {"cnnviz.layer": "conv1"})
    with Image.open(path) as im:
        assert im.size == (4, 3)
        assert im.text["cnnviz.layer"] == "conv1"
        np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), rgba)


def test_write_figure_by_suffix(tmp_path):
    fig = Figure(np.full((5, 5, 4), 255, np.uint8), [], ["caption"], {"cnnviz.layer": "x"})
    png = export.write_figure(tmp_path / "f.png", fig)
    svg = export.write_figure(tmp_path / "f.svg", fig)
    with Image.open(png) as im:
        assert "caption" in im.text["Description"]
    assert svg.read_text().startswith("<?xml")
    with pytest.raises(CnnvizError, match=r"\.png or \.svg"):
        export.write_figure(tmp_path / "f.jpg", fig)


def _truth_macs(module: nn.Module, out_shape: torch.Size) -> int:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return int(np.prod(out_shape)) * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return None


def test_table_csv_matches_torch():
    net = _net()
    summary = summarize(net, (3, 16, 16))
    text = tables.to_csv(summary)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == tables.CSV_HEADERS
    body = rows[1:]
    assert [r[0] for r in body] == [r.name for r in summary.rows]
    # Truth: a real forward pass for shapes, numel() for parameters, the MAC formula for conv/linear.
    x = torch.zeros(1, 3, 16, 16)
    modules = dict(net.named_children())
    for row in body:
        layer = modules[row[0]]
        x = layer(x)
        assert row[2] == "×".join(str(d) for d in x.shape[1:])
        assert int(row[3]) == sum(p.numel() for p in layer.parameters())
        macs = _truth_macs(layer, x.shape)
        if macs is not None:
            assert int(row[5]) == macs
    assert sum(int(r[3]) for r in body) == sum(p.numel() for p in net.parameters())
    assert [int(r[12]) for r in body] == [r.depth for r in summary.rows]
    conv = body[0]
    assert conv[6:12] == ["3", "1", "1", "3", "1", "1"]


def test_table_markdown():
    summary = summarize(_net(), (3, 16, 16))
    md = tables.to_markdown(summary)
    lines = md.strip().splitlines()
    assert lines[2].startswith("| Layer | Type | Output shape |")
    assert lines[3].count("---:") == 3
    assert len(lines) == 4 + len(summary.rows) + 1
    total = sum(p.numel() for p in _net().parameters())
    assert f"**{total:,}**" in lines[-1]


def test_write_summary_by_suffix(tmp_path):
    summary = summarize(_net(), (3, 16, 16))
    assert export.write_summary(tmp_path / "t.csv", summary).read_text().startswith("layer,")
    assert export.write_summary(tmp_path / "t.md", summary).read_text().startswith("**")
    with pytest.raises(CnnvizError, match=r"\.csv or \.md"):
        export.write_summary(tmp_path / "t.xlsx", summary)


def test_layer_file_stem():
    assert export.layer_file_stem("layer1.0.relu@1") == "layer1.0.relu_1"
    assert export.layer_file_stem("features/3") == "features_3"
    assert export.layer_file_stem("@@") == "layer"


def test_export_named_layers_with_unit(tiny, tmp_path):
    from cnnviz.core.analysis.receptive import receptive_field

    model, image = tiny
    out = tmp_path / "out"
    result = export.export_layers(model, image, out, layers=["0", "3"], unit=(1, 2), cmap="magma")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == result.manifest
    assert [e["layer"] for e in manifest["layers"]] == ["0", "3"]
    for entry in manifest["layers"]:
        for name in entry["files"].values():
            assert (out / name).is_file()
        truth = receptive_field(model, entry["layer"], (1, 2), geometry=image.geometry).to_json()
        assert json.loads((out / entry["files"]["rf_json"]).read_text()) == truth
        with Image.open(out / entry["files"]["rf_png"]) as im:
            assert im.text["cnnviz.unit"] == "1,2"
            assert im.text["cnnviz.layer"] == entry["layer"]
        with Image.open(out / entry["files"]["grid_png"]) as im:
            assert im.text["cnnviz.shape"] == "x".join(map(str, entry["shape"]))
    # Shapes from a real forward pass.
    with torch.no_grad():
        conv0 = model.module[0](image.tensor)
    assert manifest["layers"][0]["shape"] == list(conv0.shape[1:])
    assert manifest["layers"][0]["effective_rf"]["support_box"] is not None


def test_export_all_layers_skips_rf_where_there_is_no_map(tiny, tmp_path):
    from cnnviz.core.analysis.capture import capture

    model, image = tiny
    seen = []
    result = export.export_layers(
        model, image, tmp_path, unit=(0, 0), effective_rf=False, formats=("png", "svg"),
        progress=lambda done, total, name: seen.append((done, total, name)),
    )  # fmt: skip
    keys = list(capture(model, image).keys())
    assert [e["layer"] for e in result.manifest["layers"]] == keys
    assert [s[2] for s in seen] == keys and seen[-1][:2] == (len(keys), len(keys))
    by_layer = {e["layer"]: e for e in result.manifest["layers"]}
    assert "rf_skipped" in by_layer["6"] and "rf_png" not in by_layer["6"]["files"]
    assert (tmp_path / by_layer["0"]["files"]["grid_svg"]).read_text().startswith("<?xml")
    assert all(p.exists() for p in result.files)


def test_export_errors(tiny, tmp_path):
    model, image = tiny
    with pytest.raises(LayerError, match="unknown layer"):
        export.export_layers(model, image, tmp_path, layers=["conv9"])
    with pytest.raises(LayerError, match="outside"):
        export.export_layers(model, image, tmp_path, layers=["3"], unit=(50, 0), effective_rf=False)
    with pytest.raises(CnnvizError, match="colormap"):
        export.export_layers(model, image, tmp_path, cmap="rainbow")


def test_export_cancel(tiny, tmp_path):
    model, image = tiny
    stop = threading.Event()
    stop.set()
    out = tmp_path / "new" / "out"
    result = export.export_layers(model, image, out, cancel=stop)
    assert result.cancelled and result.manifest["layers"] == [] and result.files == []
    # Nothing was written, so not even the folder was created.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def _listed(folder) -> set[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {name for entry in manifest["layers"] for name in entry["files"].values()}


def _present(folder) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file() and p.name != "manifest.json"}


def test_cancel_part_way_leaves_a_manifest_of_exactly_the_files_written(tiny, tmp_path):
    from cnnviz.core.analysis.capture import capture

    model, image = tiny
    keys = list(capture(model, image).keys())
    done: list[str] = []
    out = tmp_path / "out"
    result = export.export_layers(
        model, image, out, unit=(0, 0), effective_rf=False, cancel=lambda: len(done) >= 3,
        progress=lambda n, total, name: done.append(name),
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["cancelled"] and not manifest["complete"]
    assert [e["layer"] for e in manifest["layers"]] == keys[:3]
    assert _listed(out) == _present(out)
    assert {p.name for p in result.files} == _present(out) | {"manifest.json"}


def test_failure_part_way_leaves_a_manifest_of_exactly_the_files_written(tiny, tmp_path):
    from cnnviz.core.analysis.capture import capture

    model, image = tiny
    keys = list(capture(model, image).keys())
    out = tmp_path / "out"
    out.mkdir()
    # An earlier run's manifest, and a folder where the fourth layer's grid should go.
    (out / "manifest.json").write_text(json.dumps({"layers": [{"layer": "old", "files": {}}]}))
    blocker = out / f"{export.layer_file_stem(keys[3])}_grid.png"
    blocker.mkdir()
    with pytest.raises(CnnvizError, match="is a folder"):
        export.export_layers(model, image, out, unit=(0, 0), effective_rf=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and "is a folder" in manifest["error"]
    assert [e["layer"] for e in manifest["layers"]] == keys[:3]
    assert _listed(out) == _present(out)
    assert len(_present(out)) >= 3


def test_failure_before_the_first_file_changes_nothing(tiny, tmp_path):
    model, image = tiny
    out = tmp_path / "out"
    out.mkdir()
    old = json.dumps({"layers": [{"layer": "old", "files": {}}]})
    (out / "manifest.json").write_text(old)
    (out / "0_grid.png").mkdir()
    with pytest.raises(CnnvizError, match="is a folder"):
        export.export_layers(model, image, out, layers=["0"])
    assert (out / "manifest.json").read_text() == old
    assert sorted(p.name for p in out.iterdir()) == ["0_grid.png", "manifest.json"]

    fresh = tmp_path / "a" / "b"
    with pytest.raises(LayerError):
        export.export_layers(model, image, fresh, layers=["0", "conv9"])
    assert not (tmp_path / "a").exists()


def test_a_new_run_replaces_an_earlier_manifest(tiny, tmp_path):
    model, image = tiny
    out = tmp_path / "out"
    export.export_layers(model, image, out, layers=["0", "3"])
    result = export.export_layers(model, image, out, layers=["1"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and [e["layer"] for e in manifest["layers"]] == ["1"]
    assert _listed(out) == {p.name for p in result.files} - {"manifest.json"}


def test_export_destinations_that_cannot_work(tiny, tmp_path):
    model, image = tiny
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(CnnvizError, match="empty"):
        export.export_layers(model, image, "")
    with pytest.raises(CnnvizError, match="is a file, not a folder"):
        export.export_layers(model, image, a_file / "sub")
    if os.path.isdir("/proc/self"):  # root can write anywhere chmod allows, but not into /proc
        with pytest.raises(CnnvizError, match="does not accept new files"):
            export.export_layers(model, image, "/proc/cnnviz-test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "photo.png"]


def test_atomic_write_refuses_devices_and_fifos(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(CnnvizError, match="FIFO"):
        fileio.atomic_write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def _snapshot(tiny, *, unit=None, **view):
    from cnnviz.core.analysis.capture import capture
    from cnnviz.core.analysis.receptive import receptive_field

    model, image = tiny
    act = capture(model, image, layers=["3"])["3"]
    box = receptive_field(model, "3", unit, geometry=image.geometry) if unit else None
    return export.ExportSnapshot(
        model_name=model.name,
        layer="3",
        view=ViewState(layer="3", unit=unit, **view),
        layer_type="Conv2d",
        activation=act,
        box=box,
        unit_channel=1 if unit else None,
        image=image,
        summary=summarize(model),
    )


def test_export_view_writes_each_kind_with_machine_metadata(tiny, tmp_path):
    plain = _snapshot(tiny)
    assert export.export_problem("rf_png", plain) == (
        "select a unit first: click a pixel of a feature map"
    )
    assert export.export_problem("channel_png", plain).startswith("pick a channel first")
    with pytest.raises(CnnvizError, match="nothing to export"):
        export.export_view("rf_png", tmp_path / "x.png", plain)
    snap = _snapshot(tiny, unit=(1, 1), cmap="magma")
    for kind in export.EXPORT_KINDS:
        assert export.export_problem(kind, snap) is None
        name = export.default_file_name(kind, snap)
        path = export.export_view(kind, tmp_path / name, snap)
        assert path.is_file() and path.stat().st_size > 0
        if kind.endswith("png"):
            with Image.open(path) as im:
                assert im.text["cnnviz.shape"] == "x".join(map(str, snap.activation.shape[1:]))
                assert im.text["cnnviz.unit"] == "1,1"
                assert im.text["cnnviz.box"] == str(list(snap.box.box))
    assert export.default_file_name("rf_svg", snap) == f"{tiny[0].name}_3_rf_1_1.svg"
    assert export.default_file_name("channel_png", snap).endswith("_3_channel1.png")
    assert export.default_file_name("table_md", snap).endswith("_table.md")
    with pytest.raises(CnnvizError, match="unknown export"):
        export.export_problem("gif", snap)
