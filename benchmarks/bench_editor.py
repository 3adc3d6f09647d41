"""Layer editor latency: from a spin-box change to the updated live table, for 10-, 30- and 100-layer specs; JSON.

For each size, in one process (offscreen Qt, CPU):
- updated_ms: setting the kernel spin box of the first convolution until the table model emitted ``updated``
  (the edit, the undo command, shape inference, parameters/MACs/receptive fields and the Qt model update);
- painted_ms: the same plus a synchronous repaint of the table's visible rows;
- core_ms: ``EditSession.set_param`` + ``table()`` alone (no Qt);
- first_ms: the first edit of that model (cold per-layer caches).
Figures are medians (and the slowest) of alternating edits 3x3 -> 5x5 -> 3x3 ...; the target is <= 50 ms at 30 layers.
The first convolution is edited, so every layer after it is re-derived each time (the worst case).

Any traceable network (``--graph-models``, default resnet50), core only (``GraphEditSession``, no Qt):
- typical_ms: ``set(out_channels)`` of the first block's first convolution to a new value each time (the batch
  norm and convolution after it follow), until the whole table (every row, receptive fields included) is back;
- worst_ms: the stem convolution's stride toggled 2 <-> 1, with the session's table snapshots dropped before
  each edit, so every row is re-derived (node caches warm, as while typing);
- first_ms: the first edit after opening (cold caches); open_ms: tracing and the original table;
- typical_vs_summarize: typical edits interleaved with ``summarize`` of each edited model (traced afresh, as
  a new model must be), the ratio of their medians (robust to the machine's load).

Usage: python benchmarks/bench_editor.py [--repeats 25] [--sizes 10,30,100] [--graph-models resnet50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def make_spec(n_layers: int) -> dict:
    """A VGG-like chain of exactly ``n_layers`` layers on 3x32x32 inputs, ending in a classifier."""
    body: list[dict] = []
    channels = 8
    while len(body) < n_layers - 3:
        body += [
            {"type": "Conv2d", "out_channels": channels, "kernel_size": 3, "padding": 1},
            {"type": "BatchNorm2d"},
            {"type": "ReLU"},
        ]
        channels = min(channels * 2, 64)
    head = [{"type": "AdaptiveAvgPool2d", "output_size": 1}, {"type": "Flatten"}, {"type": "Linear", "out_features": 10}]  # fmt: skip
    return {
        "name": f"{n_layers}-layer chain",
        "input_shape": [3, 32, 32],
        "layers": body[: n_layers - 3] + head,
    }


def bench(n_layers: int, repeats: int, app: object) -> dict:
    from cnnviz.core.editing import EditSession
    from cnnviz.core.models import load_model
    from cnnviz.core.models.spec import save_spec
    from cnnviz.gui.tools.editor import LayerEditorDock

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chain.json"
        save_spec(make_spec(n_layers), path)
        model = load_model(str(path))
    dock = LayerEditorDock()
    dock.resize(1200, 600)
    dock.set_model(model)
    dock.show()
    app.processEvents()
    dock.select(0)
    app.processEvents()
    spin = dock.editors["kernel_size"].h
    updated = [False]
    dock.table_model.updated.connect(lambda: updated.__setitem__(0, True))

    def edit(value: int, paint: bool) -> float:
        updated[0] = False
        t0 = time.perf_counter()
        spin.setValue(value)
        deadline = t0 + 10
        while not updated[0]:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the table did not update after setting {value}")
            app.processEvents()
        if paint:
            dock.view.viewport().repaint()
        return (time.perf_counter() - t0) * 1000

    values = iter([3, 5] * (repeats + 1))  # alternate, so every setValue is a change
    first = edit(5, paint=False)
    updated_ms, painted_ms = [], []
    for _ in range(repeats):
        updated_ms.append(edit(next(values), paint=False))
        painted_ms.append(edit(next(values), paint=True))
    assert len(dock.table.rows) == n_layers and dock.table.ok

    session = EditSession.from_model(model)
    core_ms = []
    for i in range(repeats):
        t0 = time.perf_counter()
        session.set_param(0, "kernel_size", 5 if i % 2 == 0 else 3)
        session.table()
        core_ms.append((time.perf_counter() - t0) * 1000)
    dock.close()
    dock.deleteLater()
    app.processEvents()

    def stats(xs: list[float]) -> dict:
        return {"median": round(statistics.median(xs), 2), "max": round(max(xs), 2)}

    return {
        "layers": n_layers,
        "updated_ms": stats(updated_ms),
        "painted_ms": stats(painted_ms),
        "core_ms": stats(core_ms),
        "first_ms": round(first, 2),
    }


def bench_graph(name: str, repeats: int) -> dict:
    """Edit -> updated table over a whole traced graph (see the module docstring)."""
    from cnnviz.core.editing import GraphEditSession
    from cnnviz.core.models import load_model

    model = load_model(name, weights="none")
    t0 = time.perf_counter()
    session = GraphEditSession.from_model(model)
    open_ms = (time.perf_counter() - t0) * 1000
    conv = next(m.name for m in session.modules() if m.type == "Conv2d" and m.name.count(".") >= 2)
    width = next(f.value for f in session.fields(conv) if f.key == "out_channels")
    t0 = time.perf_counter()
    table = session.set(conv, "out_channels", width + 1)
    first_ms = (time.perf_counter() - t0) * 1000
    typical = []
    for i in range(repeats):
        t0 = time.perf_counter()
        table = session.set(conv, "out_channels", width + 2 + i)
        typical.append((time.perf_counter() - t0) * 1000)
        assert table.error is None, table.error
    rows = len(table.rows)
    stem = next(m.name for m in session.modules() if m.type == "Conv2d")
    stride = next(f.value for f in session.fields(stem) if f.key == "stride")[0]
    worst = []
    for i in range(repeats):
        session._states = type(session._states)((k, v) for k, v in session._states.items() if not k)
        t0 = time.perf_counter()
        table = session.set(stem, "stride", 1 if i % 2 == 0 else stride)
        worst.append((time.perf_counter() - t0) * 1000)
        assert table.error is None and all(r.computed for r in table.rows)

    # side by side, interleaved so both see the same machine load: the summary of the edited model (a new model
    # after every edit, so it is traced and run on meta tensors afresh) -- what an edit costs without the session
    from cnnviz.core.analysis.summary import summarize

    fresh, paired = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        session.set(conv, "out_channels", width + 100 + i)
        paired.append((time.perf_counter() - t0) * 1000)
        edited = session.current_model
        t0 = time.perf_counter()
        summarize(edited, model.input_shape)
        fresh.append((time.perf_counter() - t0) * 1000)

    def stats(xs: list[float]) -> dict:
        return {"median": round(statistics.median(xs), 2), "max": round(max(xs), 2)}

    return {
        "model": name,
        "summarize_ms": stats(fresh),
        "typical_vs_summarize": round(statistics.median(paired) / statistics.median(fresh), 3),
        "rows": rows,
        "typical_ms": stats(typical),
        "worst_ms": stats(worst),
        "first_ms": round(first_ms, 2),
        "open_ms": round(open_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--sizes", default="10,30,100")
    parser.add_argument("--graph-models", default="resnet50")
    args = parser.parse_args()

    import pyqtgraph as pg
    import torch
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    pg.setConfigOptions(imageAxisOrder="row-major")
    results = [bench(int(n), args.repeats, app) for n in args.sizes.split(",") if n]
    thirty = next((r for r in results if r["layers"] == 30), None)
    out = {
        "benchmark": "layer editor: spin-box change -> updated live table",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "results": results,
    }
    if thirty is not None:
        out["target_30_layers_ms"] = 50
        out["meets_target"] = thirty["updated_ms"]["median"] <= 50
    graphs = [bench_graph(n, args.repeats) for n in args.graph_models.split(",") if n]
    if graphs:
        out["graph_results"] = graphs
        out["graph_target_ms"] = 50
        out["graph_meets_target"] = all(
            max(g["typical_ms"]["median"], g["worst_ms"]["median"]) <= 50 for g in graphs
        )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
