"""The layer table sorts numbers as numbers with the totals row last, shows shares that add up to 100 % over
the leaf layers (truth: numel of the real model), fills its dock; the layer list names Sequential indices
with their type."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from torch import nn  # noqa: E402

from cnnviz.core.analysis.summary import summarize  # noqa: E402
from cnnviz.core.models import load_model  # noqa: E402
from cnnviz.gui.views.layer_table import (  # noqa: E402
    MACS_SHARE,
    PARAMS,
    PARAMS_SHARE,
    LayerListView,
    LayerTableView,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    ).eval()  # fmt: skip


@pytest.fixture
def table(qtbot):
    module = _net()
    summary = summarize(load_model(module, input_shape=(3, 16, 16)))
    view = LayerTableView()
    qtbot.addWidget(view)
    view.resize(900, 300)
    view.show()
    qtbot.waitExposed(view)
    view.set_summary(summary)
    return view, module, summary


def test_sorting_by_params_is_numeric_and_keeps_the_total_last(table):
    view, module, _summary = table
    own = {name: sum(p.numel() for p in m.parameters()) for name, m in module.named_children()}
    view.sort_by(PARAMS, Qt.SortOrder.DescendingOrder)
    shown = view.shown_layers()
    assert shown[-1] is None  # the totals row
    counts = [own.get(name, 0) for name in shown[:-1]]
    assert counts == sorted(counts, reverse=True)
    # 5,130 > 2,312 > 896: sorted as text, "896" would come first.
    assert shown[:3] == ["6", "3", "0"]
    view.sort_by(PARAMS, Qt.SortOrder.AscendingOrder)
    shown = view.shown_layers()
    assert shown[-1] is None and [own.get(n, 0) for n in shown[:-1]] == sorted(counts)
    view.sort_by(0)  # the Layer column: back to the execution order
    assert view.shown_layers()[:-1] == [r.name for r in view.model.rows]


def test_shares_add_up_to_100_percent_over_leaf_layers(table):
    view, module, summary = table
    model = view.model
    total = sum(p.numel() for p in module.parameters())
    leaf = [i for i, r in enumerate(model.rows) if r.kind != "container"]
    shares = [model.value(i, PARAMS_SHARE) for i in leaf]
    assert sum(shares) == pytest.approx(100.0)
    conv = model.row_of("0")
    assert model.value(conv, PARAMS_SHARE) == pytest.approx(
        100.0 * sum(p.numel() for p in module[0].parameters()) / total
    )
    assert sum(model.value(i, MACS_SHARE) for i in leaf) == pytest.approx(100.0)
    cell = model.data(model.index(conv, PARAMS_SHARE))
    assert cell == f"{100.0 * 896 / total:.1f} %"


def test_columns_fit_their_cells_and_the_table_fills_the_dock(table):
    view, _module, _summary = table
    t = view.table
    metrics = t.fontMetrics()
    for col in range(view.model.columnCount()):
        widest = max(
            metrics.horizontalAdvance(str(view.model.data(view.model.index(r, col)) or ""))
            for r in range(view.model.rowCount())
        )
        assert t.columnWidth(col) >= widest, col
    used = sum(t.columnWidth(c) for c in range(view.model.columnCount()))
    assert used >= t.viewport().width() - 2


def test_selecting_a_sorted_row_selects_its_layer(table, qtbot):
    view, _module, _summary = table
    view.sort_by(PARAMS, Qt.SortOrder.DescendingOrder)
    with qtbot.waitSignal(view.layerSelected) as blocker:
        view.table.selectRow(0)
    assert blocker.args == ["6"]
    view.set_current("3")
    current = view.table.currentIndex()
    assert view.proxy.mapToSource(current).row() == view.model.row_of("3")


def test_layer_list_names_sequential_indices_with_their_type(qtbot):
    module = _net()
    summary = summarize(load_model(module, input_shape=(3, 16, 16)))
    rows = {r.name: r for r in summary.rows}
    view = LayerListView()
    qtbot.addWidget(view)
    names = [r.name for r in summary.rows]
    view.set_layers(names, rows, {n: r.output_shape for n, r in rows.items()})
    assert view.items["0"].text(0) == "0 · Conv2d 3×3, 32"
    assert view.items["6"].text(0) == "6 · Linear 512 → 10"
    assert view.items["1"].text(0) == "1 · ReLU"
    view.filter.setText("3×3")
    assert not view.items["0"].isHidden() and view.items["1"].isHidden()


def test_the_layer_column_gives_back_the_room_of_a_vertical_scroll_bar(qtbot):
    view = LayerTableView()
    qtbot.addWidget(view)
    view.resize(1400, 120)  # wide enough for every column, too short for every row
    view.show()
    qtbot.waitExposed(view)
    view.set_summary(summarize(load_model(_net(), input_shape=(3, 16, 16))))
    qtbot.wait(50)
    t = view.table
    assert t.verticalScrollBar().isVisible()
    used = sum(t.columnWidth(c) for c in range(view.model.columnCount()))
    assert used == t.viewport().width()
    assert not t.horizontalScrollBar().isVisible()
