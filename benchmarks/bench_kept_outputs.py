"""What keeping every layer's output costs on its own, apart from cnnviz: the floor under a capture; JSON.

A forward pass writes each layer's output into memory freed a moment before, which is still in the cache. A
capture keeps every output, so each one goes to memory outside the cache. This times one elementwise operation
(``hardtanh``, MobileNetV2's ReLU6) on a map of MobileNetV2's widest shape, three ways, with one thread:

- in_place: written over its input, as ``ReLU6(inplace=True)`` does in a forward pass;
- reused_buffer: into one output buffer, used again each time (memory in the cache);
- kept: into a fresh tensor each time, all of them kept (memory outside the cache, as in a capture).

and the same for a whole network: a plain forward, and the same forward with every module's output kept (a
forward hook appends it to a list; in-place activations switched off, as a capture must). Neither involves
cnnviz: the ratio of the second to the first is what keeping the outputs costs by itself. cnnviz's
``capture()`` of the same network, which keeps functional operations' outputs too, is timed alongside.

Usage: python benchmarks/bench_kept_outputs.py [--models mobilenet_v2,mnasnet0_75] [--repeats 9]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnnviz.core.analysis.capture import capture, keep_freed_memory


def _per_call(fn: Callable[[], Any], calls: int, repeats: int) -> float:
    """Median seconds per call of ``fn``, ``calls`` calls in a row whose results are all kept."""
    samples = []
    for _ in range(repeats):
        kept: list[Any] = []
        gc.collect()
        gc.disable()
        t0 = time.thread_time()
        for _ in range(calls):
            kept.append(fn())
        samples.append((time.thread_time() - t0) / calls)
        gc.enable()
        del kept
    return statistics.median(samples)


def _forward_ratio(name: str, repeats: int) -> dict[str, Any]:
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    kept: list[torch.Tensor] = []

    def keep(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            kept.append(out)

    def plain() -> None:
        with torch.inference_mode():
            model(x)

    def keeping() -> None:
        kept.clear()
        with torch.inference_mode():
            model(x)

    def captured() -> None:
        capture(model, x)

    inplace = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    forward_s: list[float] = []
    keeping_s: list[float] = []
    capture_s: list[float] = []
    for i in range(repeats + 2):
        for target, fn in ((forward_s, plain), (keeping_s, keeping), (capture_s, captured)):
            hooked = fn is keeping
            handles = [m.register_forward_hook(keep) for m in model.modules()] if hooked else []
            for m in inplace:
                m.inplace = not hooked
            gc.collect()
            gc.disable()
            t0 = time.thread_time()
            fn()
            elapsed = time.thread_time() - t0
            gc.enable()
            for h in handles:
                h.remove()
            if i >= 2:  # two warm-up rounds
                target.append(elapsed)
    kept_bytes = sum(t.numel() * t.element_size() for t in {id(t): t for t in kept}.values())
    kept.clear()
    for m in inplace:
        m.inplace = True
    fwd, keep_all = statistics.median(forward_s), statistics.median(keeping_s)
    return {
        "model": name,
        "forward_ms": round(fwd * 1000, 2),
        "forward_keeping_every_output_ms": round(keep_all * 1000, 2),
        "keeping_ratio": round(keep_all / fwd, 3),
        "kept_mib": round(kept_bytes / 2**20, 1),
        "cnnviz_capture_ratio": round(statistics.median(capture_s) / fwd, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default="mobilenet_v2,mnasnet0_75,mobilenet_v3_large,regnet_x_400mf"
    )
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as a capture does: freed blocks are reused, not page-faulted in again
    x = torch.randn(1, 96, 112, 112)
    out = torch.empty_like(x)
    calls = 50
    ways = {
        "in_place": lambda: F.hardtanh(x, 0.0, 6.0, inplace=True),
        "reused_buffer": lambda: torch.clamp(x, 0.0, 6.0, out=out),
        "kept": lambda: F.hardtanh(x, 0.0, 6.0),
    }
    op = {k: round(_per_call(fn, calls, args.repeats) * 1e6, 1) for k, fn in ways.items()}
    report = {
        "torch": torch.__version__,
        "threads": 1,
        "clock": "thread CPU time",
        "map": list(x.shape),
        "map_mib": round(x.numel() * 4 / 2**20, 2),
        "one_op_us": op,
        "kept_over_in_place": round(op["kept"] / op["in_place"], 2),
        "networks": [_forward_ratio(name, args.repeats) for name in args.models.split(",")],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
