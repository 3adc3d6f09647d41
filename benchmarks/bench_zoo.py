"""The table and the capture against a plain forward pass on every torchvision classifier (and a timm set); JSON.

For each model (random weights, batch of one, ``torch.set_num_threads(2)``), at 224 px (inception_v3: 299):

- forward_ms: a plain forward pass under ``torch.inference_mode`` (the baseline of every ratio);
- warm_ratio: ``summarize()`` with receptive fields of a model already summarised once (what live editing and
  the app pay on every change);
- cold_ratio: the first table of a model never seen before (a fresh copy, so it includes tracing);
- capture_ratio: ``capture()`` of every layer (modules, containers, functional operations);
- capture_read_ratio: the same capture with every layer's value then read, so that each value the capture
  left to be recomputed (elementwise layers, see ``cnnviz/core/analysis/deferred.py``) is computed too;
- torchinfo_ratio / torchscan_ratio: ``torchinfo.summary`` and ``torchscan.summary`` in the same run, when
  installed (torchscan prints its table; that output is swallowed).

Timings are medians of interleaved repetitions, so background load touches every side alike; as with timeit,
the cyclic garbage collector is off while a sample is timed (and run before it). The last object is
a summary: max and median of each ratio and the models over each goal (warm <= 1.0, cold <= 3.0,
capture <= 1.25).

``--skip-large`` leaves out models above 30 GMACs at 224 px (from torchvision's weight metadata: vit_h_14,
vit_l_16, regnet_y_128gf, regnet_y_32gf, regnet_x_32gf, convnext_large), which take seconds per forward on two
cores. ``--quick`` runs the models named in the goals only.

``--cpu-time`` times the CPU time of the calling thread instead of the wall clock: with ``--threads 1`` every
operation runs on that thread, so the ratios hold on a machine shared with other work.

Usage: python benchmarks/bench_zoo.py [--skip-large] [--quick] [--models a,b] [--no-timm] [--repeats 5]
       [--threads 1 --cpu-time]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torchvision
from torch import nn

from cnnviz.core.analysis.capture import capture
from cnnviz.core.analysis.summary import summarize

GOALS = {"warm_ratio": 1.0, "cold_ratio": 3.0, "capture_ratio": 1.25}
QUICK = [
    "mobilenet_v3_large",
    "mobilenet_v2",
    "regnet_y_400mf",
    "regnet_x_400mf",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "maxvit_t",
    "resnet50",
]
# SE, attention, ConvNeXt, ViT, Swin, EfficientNet, MobileNetV3, RegNetY, GhostNet, ReXNet ...
TIMM = [
    "ghostnet_100",
    "rexnet_100",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "regnety_008",
    "seresnet50",
    "ecaresnet50d",
    "convnext_tiny",
    "vit_small_patch16_224",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "maxvit_tiny_rw_224",
    "coatnet_0_rw_224",
    "mixnet_s",
    "levit_128",
    "resnet50d",
]
LARGE_GMACS = 30.0


_CLOCK: Callable[[], float] = time.perf_counter


def _timed(fn: Callable[[], Any]) -> float:
    # As timeit does: the cyclic collector off while timing. A collection of the whole process (every model
    # built so far, torchvision's modules) lands on whichever sample allocates most -- the trace -- and would
    # time the process's heap rather than the model.
    gc.collect()
    gc.disable()
    try:
        t0 = _CLOCK()
        fn()
        return _CLOCK() - t0
    finally:
        gc.enable()


def torchvision_models(skip_large: bool) -> list[tuple[str, tuple[int, int, int]]]:
    """Every classifier of torchvision's registry with its input shape."""
    out = []
    for name in torchvision.models.list_models(module=torchvision.models):
        side = 299 if name == "inception_v3" else 224
        if skip_large:
            meta = torchvision.models.get_model_weights(name).DEFAULT.meta
            crop = torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size[0]
            if meta.get("_ops", 0) * (side / crop) ** 2 > LARGE_GMACS:
                continue
        out.append((name, (3, side, side)))
    return out


def timm_models() -> list[tuple[str, tuple[int, int, int]]]:
    try:
        import timm
    except ImportError:
        return []
    out = []
    for name in TIMM:
        cfg = timm.get_pretrained_cfg(name)
        size = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
        out.append((f"timm:{name}", size))
    return out


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False).eval()
    kwargs: dict[str, Any] = (
        {"aux_logits": False, "init_weights": False}
        if name in ("inception_v3", "googlenet")
        else {}
    )
    return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def _read_every_value(result: Mapping[str, Any]) -> None:
    for key in result:
        result[key]


def bench(name: str, shape: tuple[int, int, int], repeats: int) -> dict[str, Any]:
    model = build(name)
    x = torch.randn(1, *shape)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    # warm-up: allocator, first trace, the first table
    forward()
    summarize(model, shape)
    capture(model, x)
    forward()
    cold_repeats = max(3, repeats // 2)
    fresh = [copy.deepcopy(model) for _ in range(cold_repeats)]
    samples: dict[str, list[float]] = {
        k: [] for k in ("forward", "warm", "capture", "capture_read", "cold")
    }
    for i in range(repeats):
        samples["forward"].append(_timed(forward))
        samples["warm"].append(_timed(lambda: summarize(model, shape)))
        samples["capture"].append(_timed(lambda: capture(model, x)))
        samples["capture_read"].append(_timed(lambda: _read_every_value(capture(model, x))))
        if i < cold_repeats:
            m = fresh[i]
            samples["cold"].append(_timed(lambda m=m: summarize(m, shape)))
    del fresh
    others: dict[str, Callable[[], Any]] = {}
    with contextlib.suppress(ImportError):
        import torchinfo

        others["torchinfo"] = lambda: torchinfo.summary(model, (1, *shape), verbose=0)
    with contextlib.suppress(ImportError):
        import torchscan

        def scan() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                torchscan.summary(model, shape)

        others["torchscan"] = scan
    errors: dict[str, str] = {}
    for tool, fn in others.items():
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a tool that cannot read the model: say so, go on
            errors[tool] = (
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            )
            continue
        samples[tool] = []
        samples[f"forward_{tool}"] = []
        for _ in range(max(2, repeats // 2)):
            samples[f"forward_{tool}"].append(_timed(forward))
            samples[tool].append(_timed(fn))
    med = {k: statistics.median(v) for k, v in samples.items()}
    out: dict[str, Any] = {
        "model": name,
        "input": [1, *shape],
        "forward_ms": round(med["forward"] * 1000, 2),
        "warm_ratio": round(med["warm"] / med["forward"], 3),
        "cold_ratio": round(med["cold"] / med["forward"], 3),
        "capture_ratio": round(med["capture"] / med["forward"], 3),
        "capture_read_ratio": round(med["capture_read"] / med["forward"], 3),
    }
    for tool in others:
        if tool in med:
            out[f"{tool}_ratio"] = round(med[tool] / med[f"forward_{tool}"], 3)
    if errors:
        out["errors"] = errors
    return out


def summary_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [
        "warm_ratio",
        "cold_ratio",
        "capture_ratio",
        "capture_read_ratio",
        "torchinfo_ratio",
        "torchscan_ratio",
    ]
    out: dict[str, Any] = {"models": len(results)}
    for key in keys:
        values = [(r[key], r["model"]) for r in results if key in r]
        if not values:
            continue
        top = max(values)
        out[key] = {
            "max": top[0],
            "max_model": top[1],
            "median": round(statistics.median(v for v, _ in values), 3),
        }
        if key in GOALS:
            out[key]["goal"] = GOALS[key]
            out[key]["over_goal"] = sorted(
                (m for v, m in values if v > GOALS[key]),
                key=lambda m: -next(r[key] for r in results if r["model"] == m),
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (timm ones as timm:NAME)")
    parser.add_argument(
        "--skip-large", action="store_true", help=f"leave out models over {LARGE_GMACS:g} GMACs"
    )
    parser.add_argument("--quick", action="store_true", help="only the models named in the goals")
    parser.add_argument("--no-timm", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the CPU time of the calling thread (with --threads 1: steady on a loaded machine)",
    )
    args = parser.parse_args()
    global _CLOCK
    if args.cpu_time:
        _CLOCK = time.thread_time
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    tv = dict(torchvision_models(args.skip_large))
    tm = dict(timm_models()) if not args.no_timm else {}
    if args.models:
        names = args.models.split(",")
        todo = [(n, tm.get(n) or tv.get(n) or (3, 224, 224)) for n in names]
    elif args.quick:
        todo = [(n, tv[n]) for n in QUICK] + [(n, tm[n]) for n in list(tm)[:4]]
    else:
        todo = list(tv.items()) + list(tm.items())
    started = time.perf_counter()
    results = []
    for name, shape in todo:
        try:
            results.append(bench(name, shape, args.repeats))
        except Exception as exc:  # noqa: BLE001 - one model's failure is a result, not the end of the run
            results.append({"model": name, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    ok = [r for r in results if "error" not in r]
    report = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "clock": "thread CPU time" if args.cpu_time else "wall clock",
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "summary": summary_of(ok),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
