"""Core figures, measured side by side in one process on the CPU; prints JSON.

For each network at 224 px (batch of one):
- forward_ms: a plain forward pass under torch.inference_mode (the baseline);
- capture_ms / capture_ratio: cnnviz.capture of every layer (modules, containers, functional ops);
- hooks_ms / hooks_ratio: bare forward hooks on every module storing outputs (what hook-based tools pay);
- summary_cold_ms / summary_cold_ratio: summarize() with receptive fields on a model never seen before
  (includes tracing); summary_warm_ms: the same model again (what the live editor pays);
- torchinfo_ms / torchinfo_ratio: torchinfo.summary for comparison (if installed);
- box_ms: one unit's box once the analysis exists (formula + clipping), and support_ms: its exact support walk;
- erf_ms / erf_ratio: effective receptive field of one unit of a middle layer vs a plain forward + backward to
  that layer (both with the input requiring grad).
Timings are medians of interleaved repetitions, so background load affects both sides alike. cnnviz asks glibc
to keep freed memory for reuse (see cnnviz.core.analysis.capture.keep_freed_memory); set CNNVIZ_KEEP_FREED_MEMORY=0 to
measure without it.

Usage: python benchmarks/bench_core.py [--models resnet18,resnet50] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch
import torchvision

from cnnviz.core.analysis.capture import capture
from cnnviz.core.analysis.graph import forget_graph, layer_graph
from cnnviz.core.analysis.receptive import (
    ReceptiveFieldIndex,
    effective_receptive_field,
    support_box,
)
from cnnviz.core.analysis.summary import summarize

MIDDLE_LAYER = {"resnet18": "layer3", "resnet50": "layer3"}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _hooks_capture(model: torch.nn.Module, x: torch.Tensor) -> None:
    store = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, o, n=n: store.__setitem__(n, o))
        for n, m in model.named_modules()
        if n
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()


def bench(name: str, repeats: int) -> dict:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    shape = (3, 224, 224)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    # warm-up: first calls allocate and trace
    forward()
    capture(model, x)
    _hooks_capture(model, x)

    samples: dict[str, list[float]] = {k: [] for k in ("forward", "capture", "hooks", "forward_s", "summary_cold",
                                                        "summary_warm")}  # fmt: skip
    # capture and hooks, interleaved with the forward they are compared to
    for _ in range(repeats):
        samples["forward"].append(_timed(forward))
        samples["capture"].append(_timed(lambda: capture(model, x)))
        samples["hooks"].append(_timed(lambda: _hooks_capture(model, x)))
    # summaries on models never seen before (built beforehand, so building them does not disturb the timings)
    fresh_models = [torchvision.models.get_model(name, weights=None).eval() for _ in range(repeats)]
    for fresh in fresh_models:
        forget_graph(fresh)
        samples["forward_s"].append(_timed(forward))
        samples["summary_cold"].append(_timed(lambda fresh=fresh: summarize(fresh, shape)))
        samples["summary_warm"].append(_timed(lambda: summarize(model, shape)))
    del fresh_models
    med = {k: statistics.median(v) for k, v in samples.items()}

    torchinfo_ms = None
    try:
        import torchinfo

        ti = [
            _timed(lambda: torchinfo.summary(model, (1, *shape), verbose=0))
            for _ in range(max(3, repeats // 2))
        ]
        torchinfo_ms = statistics.median(ti)
    except ImportError:
        pass

    index = ReceptiveFieldIndex(model, shape)
    layer = MIDDLE_LAYER.get(name, "layer3")
    h, w = index.map_size(layer)
    units = [(y, xx) for y in range(h) for xx in range(w)][:: max(1, (h * w) // 50)]
    t0 = time.perf_counter()
    for u in units:
        index.box(layer, u, exact_support=False)
    box_total = time.perf_counter() - t0
    graph = layer_graph(model)
    key = layer if layer not in graph.containers else graph.containers[layer].output_key
    t0 = time.perf_counter()
    for u in units:
        support_box(graph, index.info, key, u)
    support_total = time.perf_counter() - t0

    truncated = graph.truncated_module(key)

    def forward_backward() -> None:
        xr = x.clone().requires_grad_(True)
        out = truncated(xr)
        out[0, :, h // 2, w // 2].sum().backward()

    def erf() -> None:
        effective_receptive_field(model, x, layer, (h // 2, w // 2))

    forward_backward()
    erf()
    fb, er = [], []
    for _ in range(repeats):
        fb.append(_timed(forward_backward))
        er.append(_timed(erf))
    fb_ms, erf_ms = statistics.median(fb), statistics.median(er)

    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    out = {
        "model": name,
        "input": [1, *shape],
        "forward_ms": ms(med["forward"]),
        "capture_ms": ms(med["capture"]),
        "capture_ratio": round(med["capture"] / med["forward"], 3),
        "hooks_ms": ms(med["hooks"]),
        "hooks_ratio": round(med["hooks"] / med["forward"], 3),
        "summary_cold_ms": ms(med["summary_cold"]),
        "summary_cold_ratio": round(med["summary_cold"] / med["forward_s"], 3),
        "summary_warm_ms": ms(med["summary_warm"]),
        "summary_warm_ratio": round(med["summary_warm"] / med["forward_s"], 3),
        "box_ms": round(box_total / len(units) * 1000, 4),
        "support_ms": round(support_total / len(units) * 1000, 3),
        "erf_layer": layer,
        "forward_backward_ms": ms(fb_ms),
        "erf_ms": ms(erf_ms),
        "erf_ratio": round(erf_ms / fb_ms, 3),
    }
    if torchinfo_ms is not None:
        out["torchinfo_ms"] = ms(torchinfo_ms)
        out["torchinfo_ratio"] = round(torchinfo_ms / med["forward"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": [bench(n, args.repeats) for n in args.models.split(",")],
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
