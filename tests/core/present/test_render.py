"""Mosaics, colormaps, normalisation and overlays of cnnviz.core.present, checked against NumPy/torch truth."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnviz.core.errors import CnnvizError
from cnnviz.core.present import colormaps, figures, view
from cnnviz.core.present import mosaic as mosaics


def test_render_is_qt_free():
    code = "import sys, cnnviz.core.present.figures, cnnviz.core.present.export; print(any(m.startswith(('PySide6', 'pyqtgraph')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", view.COLORMAPS)
def test_colormap_tables(name):
    lut = colormaps.colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    # Perceptual maps get lighter from one end to the other (coolwarm: blue end to red end).
    if name != "coolwarm":
        luma = lut @ np.array([0.299, 0.587, 0.114])
        assert luma[-1] > luma[0]
    else:
        assert lut[0, 2] > lut[0, 0] and lut[-1, 0] > lut[-1, 2]


def test_colormap_published_end_points():
    # viridis and magma start/end colours as published by matplotlib (#440154, #fde725; #000004, #fcfdbf).
    assert tuple(colormaps.colormap_lut("viridis")[0]) == (0x44, 0x01, 0x54)
    assert tuple(colormaps.colormap_lut("viridis")[-1]) == (0xFD, 0xE7, 0x25)
    assert tuple(colormaps.colormap_lut("magma")[0]) == (0x00, 0x00, 0x04)
    assert tuple(colormaps.colormap_lut("magma")[-1]) == (0xFC, 0xFD, 0xBF)
    np.testing.assert_array_equal(colormaps.colormap_lut("gray")[:, 0], np.arange(256))


def test_unknown_colormap_is_a_clear_error():
    with pytest.raises(CnnvizError, match="unknown colormap 'jet'.*viridis"):
        colormaps.colormap_lut("jet")


def test_apply_colormap_indices_and_background():
    values = np.array([[0.0, 1.0, 0.5, np.nan, -3.0, 7.0]], dtype=np.float32)
    out = colormaps.apply_colormap(values, "viridis", background=(1, 2, 3, 4))
    lut = colormaps.colormap_lut("viridis")
    assert out.shape == (1, 6, 4)
    assert tuple(out[0, 0]) == (*lut[0], 255)
    assert tuple(out[0, 1]) == (*lut[255], 255)
    assert tuple(out[0, 2]) == (*lut[int(0.5 * 255 + 0.5)], 255)
    assert tuple(out[0, 3]) == (1, 2, 3, 4)
    assert tuple(out[0, 4]) == (*lut[0], 255)  # clamped
    assert tuple(out[0, 5]) == (*lut[255], 255)


def test_value_ranges_and_normalize_match_numpy():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 4, 6)).astype(np.float32)
    maps[2] = 3.0  # a constant channel
    lo, hi = mosaics.value_ranges(maps, "channel")
    np.testing.assert_allclose(lo, maps.reshape(5, -1).min(1))
    np.testing.assert_allclose(hi, maps.reshape(5, -1).max(1))
    normed = mosaics.normalize(maps, lo, hi)
    for c in (0, 1, 3, 4):
        expected = (maps[c] - maps[c].min()) / (maps[c].max() - maps[c].min())
        np.testing.assert_allclose(normed[c], expected, atol=1e-6)
    assert np.all(normed[2] == 0.0)

    lo, hi = mosaics.value_ranges(maps, "layer")
    assert np.all(lo == maps.min()) and np.all(hi == maps.max())
    lo, hi = mosaics.value_ranges(maps, "channel", symmetric=True)
    m = np.abs(maps.reshape(5, -1)).max(1)
    np.testing.assert_allclose(hi, m)
    np.testing.assert_allclose(lo, -m)
    with pytest.raises(CnnvizError, match="normalisation"):
        mosaics.value_ranges(maps, "global")


def test_value_ranges_ignore_non_finite():
    maps = np.array([[[1.0, np.inf, -2.0, np.nan]]], dtype=np.float32)
    lo, hi = mosaics.value_ranges(maps)
    assert lo[0] == -2.0 and hi[0] == 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 10, 64, 100, 512, 2048])
def test_grid_shape_is_tight_and_near_square(n):
    rows, cols = mosaics.grid_shape(n, 7, 7)
    assert rows * cols >= n and (rows - 1) * cols < n
    assert abs(rows - cols) <= max(2, 0.2 * cols)


def test_grid_shape_respects_tile_aspect():
    rows, cols = mosaics.grid_shape(16, 4, 16, gap=0)  # wide tiles: fewer columns than rows
    assert rows > cols


def test_tile_places_every_value_and_locate_inverts():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(7, 3, 5)).astype(np.float32)
    order = [3, 0, 6, 1, 5, 2, 4]
    layout = mosaics.mosaic_layout(7, 3, 5, gap=1, order=order)
    big = mosaics.tile(maps, layout)
    assert big.shape == (layout.height, layout.width)
    seen = 0
    for c in range(7):
        oy, ox = layout.tile_origin(c)
        np.testing.assert_array_equal(big[oy : oy + 3, ox : ox + 5], maps[c])
        for y in range(3):
            for x in range(5):
                assert layout.locate(oy + y + 0.5, ox + x + 0.25) == (c, y, x)
                assert layout.unit_rect(c, y, x) == (oy + y, ox + x, oy + y + 1, ox + x + 1)
                seen += 1
    assert seen == maps.size
    # Everything else is gap or empty slot: NaN, and locate says None.
    mask = np.isnan(big)
    assert mask.sum() == big.size - maps.size
    ys, xs = np.nonzero(mask)
    assert all(layout.locate(y, x) is None for y, x in zip(ys, xs, strict=True))
    assert layout.locate(-1, 0) is None and layout.locate(0, layout.width) is None


def _conv_output():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()).eval()
    with torch.no_grad():
        return net(torch.randn(1, 3, 9, 11))


def test_feature_mosaic_colours_follow_the_activation():
    act = _conv_output()
    mosaic = mosaics.feature_mosaic(act, cmap="magma", norm="channel")
    maps = act[0].numpy()
    lut = colormaps.colormap_lut("magma")
    assert mosaic.maps.shape == (6, 9, 11)
    for c in range(6):
        lo, hi = maps[c].min(), maps[c].max()
        oy, ox = mosaic.layout.tile_origin(c)
        for y, x in [(0, 0), (4, 5), (8, 10)]:
            v = (maps[c, y, x] - lo) / (hi - lo) if hi > lo else 0.0
            assert tuple(mosaic.rgba[oy + y, ox + x, :3]) == tuple(
                lut[int(np.clip(v, 0, 1) * 255 + 0.5)]
            )
            hit = mosaic.value_at(oy + y, ox + x)
            assert hit[:3] == (c, y, x) and hit[3] == pytest.approx(float(maps[c, y, x]))
    # Gaps use the background colour.
    assert tuple(mosaic.rgba[0, 11]) == (255, 255, 255, 255)


def test_feature_mosaic_sort_by_mean_activation():
    act = _conv_output()
    mosaic = mosaics.feature_mosaic(act, sort=True)
    means = act[0].mean(dim=(1, 2)).numpy()
    assert list(mosaic.layout.order) == list(np.argsort(-means, kind="stable"))
    assert mosaic.layout.locate(0, 0)[0] == int(np.argmax(means))


def test_feature_mosaic_single_channel_and_layer_norm():
    act = _conv_output()
    mosaic = mosaics.feature_mosaic(act, channel=4, norm="layer")
    assert mosaic.rgba.shape == (9, 11, 4)
    assert mosaic.layout.locate(2, 3) == (4, 2, 3)
    maps = act[0].numpy()
    lut = colormaps.colormap_lut("viridis")
    v = (maps[4, 2, 3] - maps.min()) / (maps.max() - maps.min())
    assert tuple(mosaic.rgba[2, 3, :3]) == tuple(lut[int(v * 255 + 0.5)])
    with pytest.raises(CnnvizError, match="channel 6"):
        mosaics.feature_mosaic(act, channel=6)


def test_vectors_and_sequences_become_maps():
    logits = torch.arange(10.0).reshape(1, 10)
    mosaic = mosaics.feature_mosaic(logits)
    assert mosaic.layout.channels == 10 and mosaic.layout.gap == 0
    assert mosaic.value_at(0, 0)[3] == 0.0
    assert mosaics.to_maps(torch.zeros(1, 4, 8)).shape == (1, 4, 8)
    assert mosaics.to_maps(torch.zeros(1, 2, 3, 4, 5)).shape == (6, 4, 5)
    assert mosaics.to_maps((torch.zeros(1, 3, 2, 2), torch.zeros(1))).shape == (3, 2, 2)


def test_diverging_colormap_centres_zero():
    maps = np.array([[[-2.0, 0.0, 1.0]]], dtype=np.float32)
    mosaic = mosaics.feature_mosaic(maps, cmap="coolwarm")
    lut = colormaps.colormap_lut("coolwarm")
    assert tuple(mosaic.rgba[0, 1, :3]) == tuple(lut[128])  # zero -> (0 + 2) / 4 -> middle
    assert tuple(mosaic.rgba[0, 0, :3]) == tuple(lut[0])


def test_heatmap_rgba_opacity_follows_value():
    heat = np.zeros((4, 4), dtype=np.float32)
    heat[1, 1] = 2.0
    heat[2, 2] = 0.5
    rgba = colormaps.heatmap_rgba(heat, alpha=0.8, gamma=1.0)
    assert rgba[0, 0, 3] == 0
    assert rgba[1, 1, 3] == round(0.8 * 255)
    assert rgba[2, 2, 3] == round(0.25 * 0.8 * 255)


def test_render_figure_draws_shapes_and_caption():
    image = np.zeros((40, 60, 4), dtype=np.uint8)
    image[..., 3] = 255
    fig = figures.Figure(
        image, [figures.Shape("rect", (10, 20, 30, 50), (255, 0, 0, 255), 2)], ["first", "second"]
    )
    out = figures.render_figure(fig)
    assert out.shape[1] >= 60 and out.shape[0] > 40 + 2 * 19
    assert tuple(out[10, 30, :3]) == (255, 0, 0)  # top edge, inside the pixel-edge rectangle
    assert tuple(out[29, 30, :3]) == (255, 0, 0)  # bottom edge
    assert tuple(out[20, 35, :3]) == (0, 0, 0)  # interior untouched
    assert tuple(out[9, 30, :3]) == (0, 0, 0)  # outside untouched
    assert tuple(out[-2, -2, :3]) == (255, 255, 255)  # caption band


def test_figure_to_svg_is_valid_xml_with_vector_marks():
    image = np.full((8, 8, 4), 255, dtype=np.uint8)
    shapes = [
        figures.Shape("rect", (1, 1, 5, 5), (255, 140, 0, 255), 1, dash=True, title="box"),
        figures.Shape("line", (0, 0, 8, 8), (0, 0, 0, 255), 1),
    ]
    svg = figures.figure_to_svg(
        figures.Figure(image, shapes, ["a < b & c"], {"cnnviz.layer": "conv1"})
    )
    root = ET.fromstring(svg.encode())
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}image").get("href").startswith("data:image/png;base64,")
    rects = root.findall(f"{ns}rect")
    assert any(r.get("stroke-dasharray") for r in rects)
    assert root.find(f"{ns}line") is not None
    assert root.find(f"{ns}text").text == "a < b & c"
    assert "conv1" in root.find(f"{ns}desc").text


def test_feature_grid_figure_upscales_whole_and_marks_the_unit():
    from cnnviz.core.present.colormaps import colormap_lut

    act = _conv_output()
    mosaic = mosaics.feature_mosaic(act)
    fig = figures.feature_grid_figure(mosaic, unit=(2, 3), channel=1, target=200)
    frame, layout = fig.frame, mosaic.layout
    scale = frame.scale
    assert scale >= 2 and frame.band > 0
    th, tw = layout.tile_h * scale, layout.tile_w * scale
    for ch in range(layout.channels):
        oy, ox = layout.tile_origin(ch)
        fy, fx = (int(v) for v in frame.to_figure(oy, ox, layout.slot(ch) // layout.cols))
        tile = mosaic.rgba[oy : oy + layout.tile_h, ox : ox + layout.tile_w]
        # Every tile whole and sharp, each pixel a scale x scale block ...
        np.testing.assert_array_equal(
            fig.image[fy : fy + th, fx : fx + tw], tile.repeat(scale, 0).repeat(scale, 1)
        )
        # ... under a band holding its channel number (dark ink on white).
        label = fig.image[fy - frame.band : fy, fx : fx + tw, :3]
        assert label.min() < 128 and label.max() == 255
    # The colour bar under the grid runs through the colormap from one end to the other.
    grid_bottom = int(frame.to_figure(layout.height, 0, layout.rows - 1)[0])
    bar = fig.image[grid_bottom:, :, :3].reshape(-1, 3)
    lut = colormap_lut(mosaic.cmap)
    for colour in (lut[0], lut[255]):
        assert (bar == colour).all(axis=1).any()
    thick = [s for s in fig.shapes if s.width == 2.0]
    assert len(thick) == 1
    oy, ox = layout.tile_origin(1)
    y0, x0, y1, x1 = thick[0].coords
    fy, fx = frame.to_figure(oy + 2, ox + 3, layout.slot(1) // layout.cols)
    assert (y0 + 2, x0 + 2) == (fy, fx) and (y1 - 2, x1 - 2) == (fy + scale, fx + scale)
    assert len(fig.shapes) == 6  # one per channel


def test_feature_grid_vector_labels_rows_on_the_left():
    vec = torch.arange(40, dtype=torch.float32).reshape(1, 40)
    mosaic = mosaics.feature_mosaic(vec)
    fig = figures.feature_grid_figure(mosaic, target=200)
    frame = fig.frame
    assert frame.band == 0 and frame.left > 0
    scale = frame.scale
    h, w = mosaic.rgba.shape[:2]
    np.testing.assert_array_equal(
        fig.image[: h * scale, frame.left : frame.left + w * scale],
        mosaic.rgba.repeat(scale, 0).repeat(scale, 1),
    )
    assert fig.image[: h * scale, : frame.left, :3].min() < 128  # the row indices


def test_feature_grid_without_labels_or_bar_is_the_plain_upscaled_mosaic():
    mosaic = mosaics.feature_mosaic(_conv_output())
    fig = figures.feature_grid_figure(mosaic, target=200, labels=False, colorbar=False)
    scale = fig.frame.scale
    np.testing.assert_array_equal(fig.image, mosaic.rgba.repeat(scale, 0).repeat(scale, 1))


def test_rf_overlay_geometry(tmp_path):
    from cnnviz.core.analysis.receptive import receptive_field
    from cnnviz.core.images import Preprocess, load_image

    # A 60x80 picture, resized (shorter side 40) and centre-cropped to 32x32 as torchvision does.
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, size=(60, 80, 3), dtype=np.uint8)
    path = tmp_path / "pic.png"
    Image.fromarray(pixels).save(path)
    pre = Preprocess(3, (32, 32), "resize_crop", 40, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    loaded = load_image(path, pre)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1)
    )
    box = receptive_field(net, "2", (0, 7), (3, 32, 32), geometry=loaded.geometry)
    heat = np.zeros((32, 32), dtype=np.float32)
    heat[0:4, 20:32] = 1.0
    fig = figures.rf_overlay_figure(
        loaded.display, loaded.display_geometry, loaded.geometry, box, heatmap=heat, target=400
    )
    titled = {s.title: s for s in fig.shapes if s.title}
    full = titled["theoretical receptive field"].coords
    area = titled["model input"].coords
    # Recover the figure's scale/origin from the model-input rectangle, then check the RF box edges.
    edges_in = loaded.geometry.box_edges_to_original((0, 0, 31, 31))
    scale = (area[2] - area[0]) / (edges_in[2] - edges_in[0])
    y_min = edges_in[0] - area[0] / scale
    x_min = edges_in[1] - area[1] / scale
    expected = loaded.geometry.box_edges_to_original(box.box)
    got = (
        full[0] / scale + y_min,
        full[1] / scale + x_min,
        full[2] / scale + y_min,
        full[3] / scale + x_min,
    )
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert box.box[0] < 0  # reaches into the padding above the picture...
    inner = titled["part inside the picture"].coords
    assert inner[0] / scale + y_min == pytest.approx(max(expected[0], edges_in[0]))
    # ... and the picture itself is drawn where it belongs (a pixel far from any mark or heat).
    oy, ox = 50, 5  # original pixel, outside the crop and the heat
    cy, cx = int((oy + 0.5 - y_min) * scale), int((ox + 0.5 - x_min) * scale)
    assert tuple(fig.image[cy, cx, :3]) == tuple(pixels[oy, ox])
    out = figures.render_figure(fig)
    assert out.shape[2] == 4
