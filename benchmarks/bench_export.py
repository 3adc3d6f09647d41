"""Exporting every layer (``cnnviz export --all-layers``), measured side by side in one process; prints JSON.

For one network at its own input size and a bundled photo:
- forward_ms: a plain forward pass under torch.inference_mode (the baseline);
- export_ms / export_ratio: export_layers of every layer (grid PNGs and manifest, written to a temporary folder);
- serial_ms / threads_speedup: the same export drawing and encoding on one thread, and how much faster the
  default threads are;
- point_ms: every layer with a picture point (each layer's receptive-field overlay and JSON too, no gradients);
- files: how many files the export writes.
Timings are medians of interleaved repetitions, so background load affects both sides alike. The process
starting (importing torch) is not part of any figure.

Usage: python benchmarks/bench_export.py [--model resnet18] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from cnnviz.core.images import load_image
from cnnviz.core.models import load_model
from cnnviz.core.present import export
from cnnviz.core.resources import resource_path


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = load_model(args.model, weights="none")
    image = load_image(resource_path("samples", "photos", "chelsea.jpg"), model.preprocess)
    x = image.tensor
    module = model.module.eval()
    threaded = export._workers

    def forward() -> None:
        with torch.inference_mode():
            module(x)

    files = 0

    def run(point: tuple[float, float] | None = None) -> None:
        nonlocal files
        with tempfile.TemporaryDirectory(prefix="cnnviz-bench-") as tmp:
            result = export.export_layers(
                model, image, Path(tmp) / "out", point=point, effective_rf=False
            )
            if point is None:
                files = len(result.files)

    def serial() -> None:
        export._workers = lambda: 1  # type: ignore[assignment]
        try:
            run()
        finally:
            export._workers = threaded  # type: ignore[assignment]

    oh, ow = image.geometry.original_size
    centre = ((oh - 1) / 2, (ow - 1) / 2)
    forward()
    run()  # warm: tracing caches, fonts
    times: dict[str, list[float]] = {"forward": [], "export": [], "serial": [], "point": []}
    for _ in range(args.repeats):
        times["forward"].append(_timed(forward))
        times["export"].append(_timed(run))
        times["serial"].append(_timed(serial))
        times["point"].append(_timed(lambda: run(centre)))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(json.dumps({
        "model": args.model,
        "input_shape": list(model.input_shape),
        "threads": threaded(),
        "files": files,
        "forward_ms": round(med["forward"], 1),
        "export_ms": round(med["export"], 1),
        "export_ratio": round(med["export"] / med["forward"], 1),
        "serial_ms": round(med["serial"], 1),
        "threads_speedup": round(med["serial"] / med["export"], 2),
        "point_ms": round(med["point"], 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
