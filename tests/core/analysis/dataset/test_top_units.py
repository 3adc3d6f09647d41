"""top_units against a plain loop: one picture at a time, a forward hook, every unit sorted in Python."""

from __future__ import annotations

import math
import os
import threading
import weakref
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

import cnnviz
from cnnviz.core.analysis.dataset import TopUnits, top_units
from cnnviz.core.errors import CnnvizError, ImageLoadError, InvalidArgumentError, LayerError
from cnnviz.core.images import Preprocess, load_image
from cnnviz.core.images.folder import iter_picture_batches, list_pictures

GRAY = Preprocess(1, (16, 16), "resize", None, (0.5,), (0.25,))
RGB = Preprocess(3, (20, 20), "resize_crop", 24, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))


def _net(channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3),
    ).eval()


def _write_folder(root: Path, count: int = 14, seed: int = 0) -> list[Path]:
    """PNG and JPEG pictures of assorted sizes in nested folders, plus unreadable and ignored files."""
    rng = np.random.default_rng(seed)
    written = []
    for i in range(count):
        sub = root / ("a" if i % 3 == 0 else "b/deep" if i % 3 == 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = (int(v) for v in rng.integers(9, 40, 2))
        if i % 2:
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            path = sub / f"p{i:02d}.jpg"
            Image.fromarray(arr).save(path, quality=90)
        else:
            arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
            path = sub / f"p{i:02d}.png"
            Image.fromarray(arr).save(path)
        written.append(path)
    (root / "broken.png").write_bytes(b"not a picture at all")
    (root / "b" / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not a picture")
    (root / ".hidden.png").write_bytes(b"x")
    return written


def _oracle(module, paths, preprocess, layer_module, k):
    """Every unit of every readable picture, one picture at a time, sorted by (-value, picture, y, x)."""
    rows: dict[int, list[tuple[float, int, tuple[int, ...]]]] = {}
    readable = []
    for path in paths:
        try:
            loaded = load_image(path, preprocess)
        except CnnvizError:
            continue
        index = len(readable)
        readable.append((str(path), loaded))
        seen: list[torch.Tensor] = []
        handle = layer_module.register_forward_hook(
            lambda m, a, out, seen=seen: seen.append(out.detach())
        )
        with torch.no_grad():
            module(loaded.tensor)
        handle.remove()
        out = seen[0][0]
        for c in range(out.shape[0]):
            entries = rows.setdefault(c, [])
            if out.dim() == 3:
                for y in range(out.shape[1]):
                    for x in range(out.shape[2]):
                        entries.append((float(out[c, y, x]), index, (y, x)))
            else:
                entries.append((float(out[c]), index, ()))
    top = {c: sorted(entries, key=lambda e: (-e[0], e[1], e[2]))[:k] for c, entries in rows.items()}
    return top, readable


def _assert_matches(result: TopUnits, top, readable, tol: float = 1e-5) -> None:
    assert set(result.channels) == set(top)
    for c, expected in top.items():
        got = result.channels[c]
        assert len(got) == len(expected)
        for entry, (value, index, unit) in zip(got, expected, strict=True):
            assert math.isclose(entry.value, value, rel_tol=tol, abs_tol=tol)
            assert entry.image == readable[index][0]
            assert entry.unit == unit
            assert entry.index == index
        values = [e.value for e in got]
        assert values == sorted(values, reverse=True)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _write_folder(tmp_path / "pics")
    return tmp_path / "pics"


# -- the folder streamer --------------------------------------------------------------------------------------------


def test_list_pictures_is_recursive_sorted_and_by_suffix(folder: Path) -> None:
    found = list_pictures(folder)
    expected = sorted(
        Path(here, f)
        for here, dirs, files in os.walk(folder)
        for f in files
        if f.endswith((".png", ".jpg")) and not f.startswith(".")
    )
    assert found == expected
    assert folder / "broken.png" in found and folder / "notes.txt" not in found
    assert all(not p.name.startswith(".") for p in found)


def test_list_pictures_refuses_missing_file_and_empty(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="does not exist"):
        list_pictures(tmp_path / "nowhere")
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ImageLoadError, match="not a folder"):
        list_pictures(tmp_path / "a.png")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("hi")
    with pytest.raises(ImageLoadError, match="no picture files"):
        list_pictures(tmp_path / "empty")


def test_batches_hold_each_picture_as_load_image_reads_it(folder: Path) -> None:
    paths = list_pictures(folder)
    batches = list(iter_picture_batches(paths, RGB, 4))
    read = [p for b in batches for p in b.paths]
    skipped = [p for b in batches for p, _ in b.skipped]
    assert sorted(skipped) == sorted([folder / "broken.png", folder / "b" / "empty.jpg"])
    assert read == [p for p in paths if p not in skipped]
    assert [len(b) for b in batches][:-1] == [4] * (len(batches) - 1)
    assert batches[-1].done == len(paths)
    for batch in batches:
        assert batch.tensor.shape == (len(batch), 3, 20, 20)
        for row, path in enumerate(batch.paths):
            loaded = load_image(path, RGB)
            assert torch.equal(batch.tensor[row], loaded.tensor[0])
            with Image.open(path) as im:
                assert batch.originals[row] == (im.height, im.width)
            assert batch.geometries[row] == loaded.geometry
        assert all(str(p) in reason and "\n" not in reason for p, reason in batch.skipped)
    assert [b.start for b in batches] == list(np.cumsum([0] + [len(b) for b in batches])[:-1])


def test_stream_stops_when_asked(folder: Path) -> None:
    paths = list_pictures(folder)
    stop = threading.Event()
    seen = 0
    for batch in iter_picture_batches(paths, GRAY, 3, should_stop=stop):
        seen += len(batch)
        stop.set()
    assert seen == 3


# -- top units against the plain loop ------------------------------------------------------------------------------


@pytest.mark.parametrize(("layer", "k", "batch"), [("1", 7, 4), ("4", 5, 3), ("0", 1, 16)])
def test_top_units_equal_the_plain_loop(folder: Path, layer: str, k: int, batch: int) -> None:
    module = _net()
    paths = list_pictures(folder)
    result = top_units(module, folder, layer, k=k, batch_size=batch, preprocess=GRAY, device="cpu")
    top, readable = _oracle(module, paths, GRAY, dict(module.named_modules())[layer], k)
    _assert_matches(result, top, readable)
    assert result.images == len(readable) and result.total == len(paths)
    assert sorted(p for p, _ in result.skipped) == sorted(
        [str(folder / "broken.png"), str(folder / "b" / "empty.jpg")]
    )
    assert not result.cancelled


def test_rgb_pictures_and_a_channel_subset(folder: Path) -> None:
    module = _net(3)
    result = top_units(module, folder, "3", k=4, channels=[3, 0], preprocess=RGB, batch_size=5)
    top, readable = _oracle(module, list_pictures(folder), RGB, module[3], 4)
    assert list(result.channels) == [3, 0]
    _assert_matches(result, {c: top[c] for c in (3, 0)}, readable)


def test_ties_go_by_picture_then_y_then_x(tmp_path: Path) -> None:
    # identical flat pictures: every interior unit of every picture has the same value
    for i in range(5):
        Image.new("L", (16, 16), 200).save(tmp_path / f"{i}.png")
    torch.manual_seed(1)
    module = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1)).eval()
    with torch.no_grad():
        module[0].weight.fill_(0.1)
        module[0].bias.zero_()
    result = top_units(module, tmp_path, "0", k=40, batch_size=2, preprocess=GRAY)
    top, readable = _oracle(module, list_pictures(tmp_path), GRAY, module[0], 40)
    _assert_matches(result, top, readable, tol=0)
    first = result.channels[0][:3]
    assert [(e.index, e.unit) for e in first] == [(0, (1, 1)), (0, (1, 2)), (0, (1, 3))]


def test_a_dead_channel_ties_everywhere(tmp_path: Path) -> None:
    _write_folder(tmp_path, count=6)
    module = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()).eval()
    with torch.no_grad():
        module[0].bias[1] = -1e6  # channel 1 is zero everywhere after the ReLU
    result = top_units(module, tmp_path, "1", k=9, batch_size=2, preprocess=GRAY)
    top, readable = _oracle(module, list_pictures(tmp_path), GRAY, module[1], 9)
    _assert_matches(result, top, readable)
    assert [(e.index, e.unit) for e in result.channels[1]] == [(0, (0, x)) for x in range(9)]


def test_boxes_are_the_rf_box_mapped_to_each_picture(folder: Path) -> None:
    module = _net()
    result = top_units(module, folder, "3", k=6, preprocess=GRAY, batch_size=4)
    for entries in result.channels.values():
        for entry in entries:
            rf = cnnviz.receptive_field(module, "3", entry.unit, (1, 16, 16))
            assert entry.input_box == rf.box
            # "resize" stretches: a model edge u lies at u * H / 16 in the picture, by hand
            with Image.open(entry.image) as im:
                height, width = im.height, im.width
            sy, sx = Fraction(height, 16), Fraction(width, 16)
            top, left, bottom, right = rf.box
            y0, x0 = max(top, 0) * sy, max(left, 0) * sx
            y1, x1 = (min(bottom, 15) + 1) * sy, (min(right, 15) + 1) * sx
            expected = (
                math.floor(y0),
                math.floor(x0),
                min(math.ceil(y1) - 1, height - 1),
                min(math.ceil(x1) - 1, width - 1),
            )
            assert entry.image_box == expected
            assert entry.padding == (top < 0 or left < 0 or bottom > 15 or right > 15)
            assert entry.size == (height, width)
            assert entry.field == "local"


def test_digits_model_boxes_equal_cnnviz_rf_on_the_picture(tmp_path: Path) -> None:
    _write_folder(tmp_path, count=8)
    model = cnnviz.load_model("default")
    layer = next(n for n, m in model.module.named_modules() if isinstance(m, nn.Conv2d))
    result = top_units(model, tmp_path, layer, k=3, batch_size=3)
    assert result.model == model.name
    letterbox_padding = False
    for entries in result.channels.values():
        for entry in entries:
            loaded = load_image(entry.image, model.preprocess)
            rf = cnnviz.receptive_field(model, layer, entry.unit, geometry=loaded.geometry)
            assert entry.image_box == rf.image_box
            assert entry.input_box == rf.box
            letterbox_padding |= entry.padding
    assert letterbox_padding  # non-square pictures are letterboxed: some fields reach past them


def test_vector_layer_gives_the_top_pictures(folder: Path) -> None:
    module = _net()
    result = top_units(module, folder, "7", k=4, preprocess=GRAY)
    top, readable = _oracle(module, list_pictures(folder), GRAY, module[7], 4)
    _assert_matches(result, top, readable)
    assert result.map_shape == (3,) and not result.spatial and result.field == "global"
    entry = result.channels[0][0]
    with Image.open(entry.image) as im:
        assert entry.image_box == (0, 0, im.height - 1, im.width - 1)
    assert entry.unit == () and entry.field == "global"
    assert result.to_json()["channels"]["0"][0]["unit"] == []


def test_untraceable_model_is_stopped_at_the_layer_and_measured(folder: Path) -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            if float(y.mean()) > 1e9:  # data-dependent: torch.fx cannot trace this
                y = y * 2
            return self.head(y.mean((2, 3)))

    torch.manual_seed(0)
    module = Branchy().eval()
    result = top_units(module, folder, "conv", k=5, preprocess=GRAY, batch_size=4)
    top, readable = _oracle(module, list_pictures(folder), GRAY, module.conv, 5)
    _assert_matches(result, top, readable)
    assert {e.field for es in result.channels.values() for e in es} == {"measured"}


def test_json_document(folder: Path) -> None:
    module = _net()
    result = top_units(module, folder, "1", k=3, preprocess=GRAY)
    doc = result.to_json()
    assert {"model", "layer", "k", "images", "channels"} <= set(doc)
    assert doc["layer"] == "1" and doc["k"] == 3 and doc["images"] == result.images
    assert list(doc["channels"]) == ["0", "1", "2", "3"]
    entry = doc["channels"]["2"][0]
    assert set(entry) >= {"image", "unit", "value", "image_box"}
    assert len(entry["unit"]) == 2 and len(entry["image_box"]) == 4


# -- cancel, progress, memory ---------------------------------------------------------------------------------------


def test_progress_and_cancel_return_the_prefix(folder: Path) -> None:
    module = _net()
    calls: list[tuple[int, int]] = []
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if len(calls) == 2:
            stop.set()

    result = top_units(
        module, folder, "1", k=3, preprocess=GRAY, batch_size=3, progress=progress, should_stop=stop
    )
    assert result.cancelled and 0 < result.images < 14
    assert calls[0][1] == len(list_pictures(folder)) and calls[0][0] < calls[1][0]
    read = list_pictures(folder)[: calls[-1][0]]
    top, readable = _oracle(module, read, GRAY, module[1], 3)
    _assert_matches(result, top, readable)


def test_progress_that_raises_aborts(folder: Path) -> None:
    class Stop(BaseException):
        pass

    def progress(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        top_units(_net(), folder, "1", preprocess=GRAY, progress=progress)


def test_only_one_batch_of_activations_is_alive(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(300):
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(
            tmp_path / f"{i:03d}.png"
        )
    module = _net()
    alive: list[weakref.ref[torch.Tensor]] = []
    sizes: list[int] = []

    def hook(_m: nn.Module, _a: object, out: torch.Tensor) -> None:
        # every earlier batch's activations were freed before this one was computed
        assert all(ref() is None for ref in alive)
        alive.append(weakref.ref(out))
        sizes.append(out.shape[0])

    handle = module[1].register_forward_hook(hook)
    try:
        result = top_units(module, tmp_path, "1", k=9, batch_size=8, preprocess=GRAY)
    finally:
        handle.remove()
    # besides shape probes at batch 1 (on meta tensors, and one real one), the folder in batches of 8
    assert [s for s in sizes if s != 1] == [8] * 37 + [4]
    assert result.images == 300
    assert all(len(v) == 9 for v in result.channels.values())


# -- bad input ------------------------------------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text and "torch" not in text.lower()
    return text


def test_empty_folder_and_only_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageLoadError) as exc:
        top_units(_net(), tmp_path / "empty", "1", preprocess=GRAY)
    assert "no picture files" in _one_line(exc)
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"garbage")
    with pytest.raises(ImageLoadError) as exc:
        top_units(_net(), bad, "1", k=1, preprocess=GRAY)
    assert "None of the 3 picture file(s) could be read" in _one_line(exc)


def test_k_larger_than_the_units(tmp_path: Path) -> None:
    for i in range(2):
        Image.new("L", (10, 10), 30 * i).save(tmp_path / f"{i}.png")
    with pytest.raises(InvalidArgumentError) as exc:  # 2 pictures x 4x4 positions at layer "3"
        top_units(_net(), tmp_path, "3", k=33, preprocess=GRAY)
    assert "k = 33 is more than the 32 units" in _one_line(exc)
    assert len(top_units(_net(), tmp_path, "3", k=32, preprocess=GRAY).channels[0]) == 32
    (tmp_path / "broken.png").write_bytes(b"x")  # listed, so the check comes after reading
    with pytest.raises(InvalidArgumentError, match="2 pictures read .*, 1 file skipped"):
        top_units(_net(), tmp_path, "3", k=40, preprocess=GRAY)
    with pytest.raises(InvalidArgumentError):
        top_units(
            _net(), tmp_path, "7", k=3, preprocess=GRAY
        )  # a vector layer: one value per picture


def test_k_is_checked_against_the_pictures_read_not_the_files_listed(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    listed = list_pictures(tmp_path)
    readable = 0
    for path in listed:
        try:
            load_image(path, GRAY)
            readable += 1
        except CnnvizError:
            pass
    unread = len(listed) - readable
    assert (len(listed), readable) == (6, 5)
    # a vector layer: one value per picture read, so k may be at most the pictures read
    for k in (readable + 1, len(listed) + 1):
        with pytest.raises(InvalidArgumentError) as exc:
            top_units(_net(), tmp_path, "7", k=k, preprocess=GRAY)
        text = _one_line(exc)
        assert f"k = {k} is more than the {readable} units" in text, text
        assert f"{readable} pictures read" in text and f"{unread} file skipped" in text, text
        assert f"use k {readable} or less" in text
    probe = nn.Sequential(*list(_net().children())[:4])(
        torch.zeros(1, 1, 16, 16)
    )  # up to layer "3"
    positions = int(probe.shape[-2] * probe.shape[-1])
    with pytest.raises(InvalidArgumentError) as exc:
        top_units(_net(), tmp_path, "3", k=readable * positions + 1, preprocess=GRAY)
    assert f"more than the {readable * positions} units" in _one_line(exc)
    assert (
        len(top_units(_net(), tmp_path, "7", k=readable, preprocess=GRAY).channels[0]) == readable
    )


def test_channel_layer_and_argument_errors(folder: Path) -> None:
    with pytest.raises(LayerError) as exc:
        top_units(_net(), folder, "3", channels=[0, 5], preprocess=GRAY)
    assert "channel 5 is outside layer '3', which has 5 channels" in _one_line(exc)
    with pytest.raises(LayerError, match="unknown layer"):
        top_units(_net(), folder, "conv9", preprocess=GRAY)
    with pytest.raises(CnnvizError, match="preprocess"):
        top_units(_net(), folder, "3")
    with pytest.raises(CnnvizError, match="k must be at least 1"):
        top_units(_net(), folder, "3", k=0, preprocess=GRAY)
    with pytest.raises(CnnvizError, match="whole number"):
        top_units(_net(), folder, "3", k=2.0, preprocess=GRAY)
    with pytest.raises(CnnvizError, match="batch size"):
        top_units(_net(), folder, "3", batch_size=0, preprocess=GRAY)
    with pytest.raises(CnnvizError, match="does not exist"):
        top_units(_net(), folder / "nope", "3", preprocess=GRAY)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_sentence(folder: Path) -> None:
    with pytest.raises(InvalidArgumentError) as exc:
        top_units(_net(), folder, "3", preprocess=GRAY, device="cuda")
    assert "no CUDA GPU is available" in _one_line(exc)


def test_a_list_of_paths_and_the_public_name(folder: Path) -> None:
    paths = [str(p) for p in list_pictures(folder)][:5]
    module = _net()
    result = cnnviz.top_units(module, paths, "1", k=2, preprocess=GRAY)
    assert result.total == 5
    top, readable = _oracle(module, paths, GRAY, module[1], 2)
    _assert_matches(result, top, readable)


def test_nan_units_rank_last(folder: Path) -> None:
    class Holes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(2)
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return torch.where(y > 0.3, torch.full_like(y, float("nan")), y)

    from cnnviz.core.analysis.graph import layer_graph

    module = Holes().eval()
    layer = next(key for key in layer_graph(module).keys() if "where" in key)
    result = top_units(module, folder, layer, k=5, preprocess=GRAY)
    # truth: the conv's units, those the where turns into NaN left out
    top, readable = _oracle(module, list_pictures(folder), GRAY, module.conv, 10**6)
    for c, entries in top.items():
        kept = [e for e in entries if e[0] <= 0.3][:5]
        got = result.channels[c]
        assert [(g.index, g.unit) for g in got] == [(i, u) for _, i, u in kept]
        assert np.allclose([g.value for g in got], [v for v, _, _ in kept], atol=1e-5)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 5),
    n=st.integers(1, 30),
    k=st.integers(1, 12),
    levels=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_batch_top_is_a_stable_sort(rows: int, n: int, k: int, levels: int, seed: int) -> None:
    """The per-row top-k, with many ties, equals a Python sort by (-value, position)."""
    from cnnviz.core.analysis.dataset.topunits import _batch_top

    gen = torch.Generator().manual_seed(seed)
    values = torch.randint(0, levels, (rows, n), generator=gen).float()
    top, pos = _batch_top(values, k)
    for r in range(rows):
        want = sorted(range(n), key=lambda j: (-float(values[r, j]), j))[:k]
        assert sorted(pos[r].tolist(), key=lambda j: (-float(values[r, j]), j)) == want
        assert torch.equal(top[r], values[r, pos[r]])
