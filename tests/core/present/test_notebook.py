"""The notebook API: cnnviz.summarize's HTML table and to_pandas, cnnviz.show's PNG figures -- tested
without Jupyter by calling the reprs Jupyter calls and reading their output back (html.parser, PIL)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnviz
from cnnviz.core.analysis.capture import capture
from cnnviz.core.analysis.receptive import effective_receptive_field, receptive_field
from cnnviz.core.analysis.summary import summarize as analyse
from cnnviz.core.analysis.types import Summary
from cnnviz.core.errors import ArgumentTypeError, CnnvizError, InvalidArgumentError, LayerError
from cnnviz.core.images import Preprocess, load_image
from cnnviz.core.models import LoadedModel
from cnnviz.core.present import export
from cnnviz.core.present.html import summary_html
from cnnviz.core.present.notebook import ShownFigure, SummaryTable
from cnnviz.core.present.view import ViewState

PRE = Preprocess(3, (16, 16), "resize", None, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _net() -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.ReLU())
    # a module whose name is markup: the HTML must show it as text
    body.add_module("<script>", nn.Conv2d(6, 6, 1))
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        body,
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 5),
    ).eval()
    net[0].weight.requires_grad_(False)  # frozen weights: trainable differs from total
    return net


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return LoadedModel(_net(), "tiny", (3, 16, 16), PRE, [f"class {i}" for i in range(5)])


@pytest.fixture
def photo(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(path)
    return path


class _Table(HTMLParser):
    """Cells (text, style) of every <table>, by section."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, list[list[tuple[str, str]]]]] = []
        self.section = ""
        self.cell: list[str] | None = None
        self.style = ""
        self.details = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"thead": [], "tbody": [], "tfoot": []})
        elif tag in ("thead", "tbody", "tfoot"):
            self.section = tag
        elif tag == "tr":
            self.tables[-1][self.section].append([])
        elif tag in ("td", "th"):
            self.cell, self.style = [], a.get("style") or ""
        elif tag == "details":
            self.details += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][self.section][-1].append(("".join(self.cell), self.style))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        self.text.append(data)


def _parse(html: str) -> _Table:
    parser = _Table()
    parser.feed(html)
    parser.close()
    return parser


def _number(cell: str) -> int:
    return int(cell.replace(",", "")) if cell else 0


def _shape_text(shape) -> str:
    return "×".join(str(s) for s in shape[1:])


def _axis_text(value) -> str:
    """How a per-axis figure reads: one number when both axes agree."""
    if value is None:
        return ""
    parts = [str(v) for v in value]
    return parts[0] if len(set(parts)) == 1 else "×".join(parts)


# ---------------------------------------------------------------------------------------------- summarize


def test_summarize_is_the_analysis_table_and_renders_itself(tiny):
    table = cnnviz.summarize(tiny)
    assert isinstance(table, SummaryTable) and isinstance(table, Summary)
    assert table.to_json() == analyse(tiny).to_json()
    assert "show" in cnnviz.__all__ and cnnviz.show is not None
    assert repr(table).startswith("<SummaryTable tiny:") and "\n" not in repr(table)
    assert str(table).splitlines()[0] == "tiny"  # the command line's text table


def test_html_rows_equal_the_table_and_totals_equal_the_parameters(tiny):
    table = cnnviz.summarize(tiny)
    parsed = _parse(table._repr_html_())
    assert len(parsed.tables) == 1
    t = parsed.tables[0]
    header = [c for c, _ in t["thead"][0]]
    assert header[:6] == ["Layer", "Type", "Output shape", "Params", "Trainable", "MACs"]
    assert header[-3:] == ["RF size", "RF stride", "RF padding"]
    col = {name: i for i, name in enumerate(header)}
    body = t["tbody"]
    assert len(body) == len(table.rows)
    for cells, row in zip(body, table.rows, strict=True):
        text = [c for c, _ in cells]
        assert text[col["Layer"]] == row.name
        assert text[col["Type"]] == row.type
        assert text[col["Output shape"]] == _shape_text(row.output_shape)
        assert _number(text[col["Params"]]) == row.params
        assert _number(text[col["Trainable"]]) == row.trainable_params
        assert _number(text[col["MACs"]]) == row.macs
        assert text[col["Kernel"]] == _axis_text(row.kernel_size)
        assert text[col["Stride"]] == _axis_text(row.stride)
        if row.rf is not None and not row.rf.global_:
            assert text[col["RF size"]] == _axis_text(row.rf.size)
            assert text[col["RF stride"]] == _axis_text(row.rf.stride)
        for name in ("Params", "Trainable", "MACs"):
            assert "text-align:right" in cells[col[name]][1]
        assert "text-align:left" in cells[col["Layer"]][1]
    assert [c for c, _ in body[0]][
        col["RF size"]
    ] == "3"  # the first 3×3 convolution sees 3×3 pixels
    totals = [c for c, _ in t["tfoot"][0]]
    module = tiny.module
    assert totals[0] == "Total"
    assert _number(totals[col["Params"]]) == sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert _number(totals[col["Trainable"]]) == trainable < table.total_params
    assert _number(totals[col["MACs"]]) == sum(r.macs for r in table.rows if r.kind != "container")
    # thousands separators, as in the command line
    big = next(r for r in table.rows if r.macs >= 1000)
    assert f"{big.macs:,}" in [c for c, _ in body[table.rows.index(big)]]


def test_html_escapes_module_names(tiny):
    html = cnnviz.summarize(tiny)._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    names = [cells[0][0] for cells in _parse(html).tables[0]["tbody"]]
    assert any("<script>" in n for n in names)  # read back, it is the module's name


def test_html_states_the_note_when_the_analysis_fell_back():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return y if float(y.sum()) > -1e9 else -y  # data-dependent: not traceable

    model = LoadedModel(Branchy().eval(), "branchy", (3, 8, 8), PRE)
    table = cnnviz.summarize(model)
    assert table.note  # the hook fall-back says why
    parsed = _parse(table._repr_html_())
    assert f"Note: {table.note}" in "".join(parsed.text)
    assert "Note:" not in cnnviz.summarize(LoadedModel(_net(), "t", (3, 16, 16), PRE)).to_html()


def test_long_tables_fold_behind_their_top_level_layers():
    blocks = [nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()) for _ in range(70)]
    model = LoadedModel(nn.Sequential(*blocks).eval(), "deep", (2, 4, 4), PRE)
    table = cnnviz.summarize(model, receptive_fields=False)
    assert len(table.rows) > 200
    parsed = _parse(table._repr_html_())
    assert parsed.details == 1 and len(parsed.tables) == 2
    top, full = parsed.tables
    assert [c[0][0] for c in top["tbody"]] == [r.name for r in table.rows if r.depth == 0]
    assert [c[0][0] for c in full["tbody"]] == [r.name for r in table.rows]
    short = _parse(summary_html(table, collapse_rows=len(table.rows)))
    assert short.details == 0 and len(short.tables) == 1


def test_to_pandas_has_one_row_per_layer_with_numbers_as_numbers(tiny):
    pd = pytest.importorskip("pandas")
    table = cnnviz.summarize(tiny)
    frame = table.to_pandas()
    assert len(frame) == len(table.rows)
    assert list(frame.columns)[:6] == [
        "layer",
        "type",
        "output_shape",
        "params",
        "trainable_params",
        "macs",
    ]
    for column in ("params", "trainable_params", "macs", "depth"):
        assert str(frame[column].dtype) == "int64"
    for record, row in zip(frame.to_dict("records"), table.rows, strict=True):
        assert record["layer"] == row.name and record["type"] == row.type
        assert record["output_shape"] == _shape_text(row.output_shape)
        assert (record["params"], record["trainable_params"], record["macs"]) == (
            row.params,
            row.trainable_params,
            row.macs,
        )
        assert record["depth"] == row.depth
        kernel = _axis_text(row.kernel_size)
        assert record["kernel"] == kernel if kernel else pd.isna(record["kernel"])
    assert int(frame["params"][frame["depth"] == 0].sum()) == table.total_params


def test_to_pandas_without_pandas_says_how_to_install_it():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pandas"] = None  # as if pandas were not installed
        from torch import nn
        import cnnviz
        from cnnviz.core.errors import CnnvizError
        table = cnnviz.summarize(nn.Sequential(nn.Conv2d(3, 2, 3)), (3, 8, 8))
        assert "<table" in table._repr_html_()
        try:
            table.to_pandas()
        except CnnvizError as exc:
            print("ERROR", exc)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("ERROR ") and "pip install pandas" in line and "\n" not in line


# ---------------------------------------------------------------------------------------------------- show


def _pixels(data: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        return np.asarray(im.convert("RGBA"))


def _exported(tmp_path, kind, model, image, layer, *, unit=None, channel=None, heat=None):
    """What the app's File > Export writes for the same view, built here from its parts."""
    act = capture(model, image, layers=[layer])[layer]
    box = receptive_field(model, layer, unit, geometry=image.geometry) if unit else None
    snap = export.ExportSnapshot(
        model_name=model.name,
        layer=layer,
        view=ViewState(layer=layer, channel=None if unit else channel, unit=unit),
        layer_type=analyse(model).row(layer).type,
        activation=act,
        box=box,
        unit_channel=channel if unit else None,
        erf_heatmap=heat,
        image=image,
    )
    return _pixels(export.export_view(kind, tmp_path / f"{kind}.png", snap))


def test_show_mosaic_is_the_exported_grid(tiny, photo, tmp_path):
    fig = cnnviz.show(tiny, photo, "3")
    assert isinstance(fig, ShownFigure)
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG")
    pixels = _pixels(png)
    assert (pixels.shape[1], pixels.shape[0]) == fig.size
    assert np.array_equal(
        pixels, _exported(tmp_path, "grid_png", tiny, load_image(photo, PRE), "3")
    )
    # one channel, enlarged
    one = cnnviz.show(tiny, photo, "3", channel=2)
    expected = _exported(tmp_path, "channel_png", tiny, load_image(photo, PRE), "3", channel=2)
    assert np.array_equal(_pixels(one._repr_png_()), expected)
    assert not np.array_equal(_pixels(one._repr_png_()), pixels)


def test_show_unit_is_the_receptive_field_on_the_original_picture(tiny, photo, tmp_path):
    image = load_image(photo, PRE)
    fig = cnnviz.show(tiny, photo, "3.0", unit=(1, 2))
    assert fig.box == receptive_field(tiny, "3.0", (1, 2), geometry=image.geometry)
    expected = _exported(tmp_path, "rf_png", tiny, image, "3.0", unit=(1, 2))
    assert np.array_equal(_pixels(fig._repr_png_()), expected)
    # the picture drawn is the original (24×20, not the 16×16 model input): the overlay keeps its aspect
    assert fig.figure.image.shape[0] > fig.figure.image.shape[1]
    # with the effective receptive field of channel 1
    heat = effective_receptive_field(tiny, image, "3.0", (1, 2), channel=1).heatmap
    with_erf = cnnviz.show(tiny, photo, "3.0", channel=1, unit=(1, 2), erf=True)
    expected = _exported(tmp_path, "rf_png", tiny, image, "3.0", unit=(1, 2), channel=1, heat=heat)
    assert np.array_equal(_pixels(with_erf._repr_png_()), expected)
    assert not np.array_equal(_pixels(with_erf._repr_png_()), _pixels(fig._repr_png_()))


def test_show_takes_pil_pictures_and_tensors(tiny, photo, tmp_path):
    with Image.open(photo) as im:
        from_pil = cnnviz.show(tiny, im.copy(), "3")
    assert np.array_equal(
        _pixels(from_pil._repr_png_()), _pixels(cnnviz.show(tiny, photo, "3").to_png())
    )
    x = load_image(photo, PRE).tensor[0]
    from_tensor = cnnviz.show(tiny, x, "3")
    snap_act = capture(tiny, x, layers=["3"])["3"]
    snap = export.ExportSnapshot(
        model_name="tiny", layer="3", view=ViewState(layer="3"), layer_type="Sequential",
        activation=snap_act,
    )  # fmt: skip
    expected = _pixels(export.export_view("grid_png", tmp_path / "t.png", snap))
    assert np.array_equal(_pixels(from_tensor._repr_png_()), expected)
    # a tensor is its own original picture: the box is drawn on the model input
    rf = cnnviz.show(tiny, x, "3", unit=(0, 0))
    assert rf.box.box == receptive_field(tiny, "3", (0, 0)).box


@pytest.mark.parametrize("channels", [1, 2])
def test_show_draws_tensors_of_any_channel_count(channels):
    pre = Preprocess(1, (12, 12), "resize", None, (0.5,), (0.25,))
    model = LoadedModel(
        nn.Sequential(nn.Conv2d(channels, 3, 3)).eval(), "odd", (channels, 12, 12), pre
    )
    x = torch.linspace(-2, 2, channels * 12 * 12).reshape(channels, 12, 12)
    fig = cnnviz.show(model, x, "0", unit=(5, 5))
    assert fig.box.box == receptive_field(model, "0", (5, 5)).box == (5, 5, 7, 7)
    pixels = _pixels(fig.to_png())
    assert (pixels.shape[1], pixels.shape[0]) == fig.size


def test_save_writes_png_and_svg_atomically(tiny, photo, tmp_path):
    fig = cnnviz.show(tiny, photo, "0")
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    assert fig.save(target) == target
    assert np.array_equal(_pixels(target), _pixels(fig._repr_png_()))
    svg = fig.save(tmp_path / "out.svg")
    assert "<svg" in svg.read_text()[:200]
    with pytest.raises(CnnvizError, match="use a .png or .svg"):
        fig.save(tmp_path / "out.gif")
    with pytest.raises(CnnvizError, match="does not exist"):
        fig.save(tmp_path / "missing" / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out.svg", "photo.png"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"layer": "3.O"}, LayerError, "unknown layer '3.O'; closest:"),
        ({"layer": "3", "channel": 6}, LayerError, "has 6 channels (0 to 5)"),
        ({"layer": "3", "channel": -1}, InvalidArgumentError, "channel"),
        ({"layer": "3", "unit": (4, 0)}, LayerError, "outside layer '3'"),
        ({"layer": "5", "unit": (0, 0)}, LayerError, "no spatial map"),
        ({"layer": "3", "erf": True}, InvalidArgumentError, "give unit=(y, x)"),
        ({"layer": "3", "cmap": "rainbow"}, InvalidArgumentError, "unknown colormap"),
        ({"layer": 3}, ArgumentTypeError, "as a string"),
    ],
)
def test_show_refuses_bad_arguments_in_one_line(tiny, photo, kwargs, error, words):
    with pytest.raises(error) as info:
        cnnviz.show(tiny, photo, **kwargs)
    message = str(info.value)
    assert words in message and "\n" not in message


def test_show_needs_a_loaded_model(photo):
    with pytest.raises(ArgumentTypeError, match="cnnviz.load_model"):
        cnnviz.show(_net(), photo, "0")
    with pytest.raises(CnnvizError):
        cnnviz.show(LoadedModel(_net(), "t", (3, 16, 16), PRE), torch.zeros(2, 3, 16, 16), "0")
