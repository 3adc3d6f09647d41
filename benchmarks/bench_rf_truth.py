"""Receptive fields checked against the gradient: every torchvision classifier and a set of timm models; prints JSON.

For each model (random weights, eval mode) at the smallest of 64, 96, 128, 160, 224 px that it accepts with more
than one unit in its chosen late layer, six layers with a spatial map are picked evenly over the forward order
(modules called once), and in each the centre unit and one seeded random unit. cnnviz's claim for the unit
(``ReceptiveFieldIndex.box``: exact support, gated, global, measured, or unknown) is compared with the oracle.

The oracle is torch alone: the model copied to float64, its own weights, the input gradient of the unit (all its
channels summed) on random normal inputs, the union of the supports over ``--seeds`` inputs. A ReLU closed or a
max pool's other positions on one input let the gradient through on another, so the union approaches every
pixel the unit depends on from below and never exceeds it. Hence:

- equal: cnnviz's box is the bounding box of the oracle's support;
- conservative: cnnviz's box contains it (a pixel the unit can depend on that no sampled input reached, or a
  global or gated claim where the gradient does not yet cover the whole input);
- wrong: the support reaches outside cnnviz's box (a bug);
- unknown: cnnviz says the field cannot be derived (never a box).

Usage: python benchmarks/bench_rf_truth.py [--seeds 2] [--max-params 150e6] [--models resnet18,timm:convit_tiny]
Models over ``--max-params`` parameters are listed as skipped (float64 copies of them would not fit in memory).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn

from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
from cnnviz.core.errors import CnnvizError

TIMM_MODELS = [
    "resnet18d", "efficientnet_b0", "tf_efficientnetv2_b0", "mobilenetv3_small_050", "convnext_atto",
    "regnetx_002", "res2net50_14w_8s", "cspdarknet53", "dla34", "ghostnet_100", "hrnet_w18_small", "rexnet_100",
    "densenet121", "xception41", "convit_tiny", "nest_tiny", "vit_small_r26_s32_224", "swin_tiny_patch4_window7_224",
]  # fmt: skip
SIZES = (64, 96, 128, 160, 224)


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """The model with random weights and the sizes it may take (timm transformers: their own only)."""
    if name.startswith("timm:"):
        import timm

        model = timm.create_model(name[5:], pretrained=False)
        fixed = getattr(getattr(model, "patch_embed", None), "strict_img_size", False)
        own = int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
        return model.eval(), (own,) if fixed or "swin" in name or "nest" in name else SIZES
    kwargs: dict[str, Any] = {"weights": None}
    if name in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=False, init_weights=False)
    model = torchvision.models.get_model(name, **kwargs)
    fixed = name.startswith("vit_")
    return model.eval(), (224,) if fixed else SIZES


def spatial_layers(model: nn.Module, size: int) -> list[tuple[str, tuple[int, int], bool]]:
    """(name, map size, channel-last) of each module called once with an image-shaped 4-D output per picture,
    in order."""
    calls: dict[str, list[tuple[int, ...]]] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m: Any, _i: Any, out: Any, name: str = name) -> None:
            calls.setdefault(name, []).append(tuple(out.shape) if torch.is_tensor(out) else ())

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            # a batch of two: maps computed from parameters alone (swin_v2's relative-position MLP) keep a
            # batch of one and are no units of the picture
            model(torch.randn(2, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    out = []
    for name, shapes in calls.items():
        if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][0] != 2:
            continue
        s = shapes[0]
        if s[2] == s[3] and s[2] > 1:
            out.append((name, (s[2], s[3]), False))
        elif s[1] == s[2] and s[1] > 1 and s[3] != s[2]:
            out.append((name, (s[1], s[2]), True))  # N H W C (Swin)
    return out


def oracle(
    model: nn.Module, size: int, picks: list[tuple[str, tuple[int, int], bool]], seeds: int
) -> list[tuple[int, int, int, int] | None]:
    """Bounding boxes of the union of gradient supports, one batch row per (unit, seed): rows are independent."""
    m = copy.deepcopy(model).double().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    rows = len(picks) * seeds
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((rows, 3, size, size), generator=gen, dtype=torch.float64).requires_grad_(True)
    targets: list[torch.Tensor] = []
    modules = dict(m.named_modules())
    handles = []
    for i, (name, unit, last) in enumerate(picks):

        def hook(
            _m: Any, _i: Any, out: Any, i: int = i, unit: tuple[int, int] = unit, last: bool = last
        ) -> None:
            # taken at once: a later in-place op (ReLU(inplace=True)) must not change what is differentiated
            for r in range(i * seeds, (i + 1) * seeds):
                v = out[r, unit[0], unit[1], :] if last else out[r, :, unit[0], unit[1]]
                targets.append(v.sum())

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.enable_grad():
            m(x)
            # units computed from parameters alone (ConViT's positional maps) do not use the input at all
            (grad,) = torch.autograd.grad(torch.stack(targets).sum(), x, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    if grad is None:
        grad = torch.zeros_like(x)
    support = (grad.abs().sum(1) > 0).numpy()
    boxes = []
    for i in range(len(picks)):
        s = support[i * seeds : (i + 1) * seeds].any(0)
        ys, xs = np.flatnonzero(s.any(1)), np.flatnonzero(s.any(0))
        boxes.append((int(ys[0]), int(xs[0]), int(ys[-1]), int(xs[-1])) if ys.size else None)
    return boxes


def _contains(outer: tuple[int, ...], inner: tuple[int, ...]) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def check(name: str, seeds: int, max_params: float, rng: random.Random) -> dict[str, Any]:
    start = time.perf_counter()
    row: dict[str, Any] = {"model": name}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, sizes = build(name)
    params = sum(p.numel() for p in model.parameters())
    if params > max_params:
        return {**row, "skipped": f"{params / 1e6:.0f}M parameters"}
    layers: list[tuple[str, tuple[int, int], bool]] = []
    size = sizes[0]
    for size in sizes:
        try:
            layers = spatial_layers(model, size)
        except Exception:  # noqa: BLE001 - too small for this model: try the next size
            continue
        if layers and layers[-1][1][0] > 1:
            break
    if not layers:
        return {**row, "error": "no size gave a spatial map"}
    chosen = (
        [layers[round(i * (len(layers) - 1) / 5)] for i in range(6)] if len(layers) > 6 else layers
    )
    picks = []
    for lname, (h, w), last in dict.fromkeys(chosen):
        picks.append((lname, (h // 2, w // 2), last))
        picks.append((lname, (rng.randrange(h), rng.randrange(w)), last))
    truths = oracle(model, size, picks, seeds)
    index = ReceptiveFieldIndex(model, (3, size, size))
    whole = (0, 0, size - 1, size - 1)
    counts = {"checked": 0, "equal": 0, "conservative": 0, "wrong": 0, "unknown": 0, "measured": 0}
    wrong = []
    for (lname, unit, _last), truth in zip(picks, truths, strict=True):
        counts["checked"] += 1
        try:
            box = index.box(lname, unit)
        except CnnvizError:
            counts["unknown"] += 1
            continue
        claim = whole if box.global_ else box.support_box
        if box.measured:
            counts["measured"] += 1
        if claim is None:
            counts["unknown"] += 1
        elif claim == truth:
            counts["equal"] += 1
        elif truth is None or _contains(claim, truth):
            counts["conservative"] += 1
        else:
            counts["wrong"] += 1
            wrong.append(
                {"layer": lname, "unit": list(unit), "claim": list(claim), "support": list(truth)}
            )
    row.update(size=size, traced=not index.measured, **counts)
    if wrong:
        row["wrong_units"] = wrong[:4]
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--max-params", type=float, default=150e6)
    parser.add_argument("--models", default="", help="comma-separated; timm models as timm:NAME")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.models:
        names = args.models.split(",")
    else:
        names = torchvision.models.list_models(module=torchvision.models)
        names += [f"timm:{n}" for n in TIMM_MODELS]
    rng = random.Random(0)
    t0 = time.perf_counter()
    rows = []
    for name in names:
        try:
            rows.append(check(name, args.seeds, args.max_params, rng))
        except Exception as exc:  # noqa: BLE001 - one model's failure is reported, the run goes on
            rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # progress, one line per model
    keys = ("checked", "equal", "conservative", "wrong", "unknown", "measured")
    totals = {k: sum(r.get(k, 0) for r in rows) for k in keys}
    for group, test in (
        ("torchvision", lambda n: not n.startswith("timm:")),
        ("timm", lambda n: n.startswith("timm:")),
    ):
        part = [r for r in rows if test(r["model"])]
        totals[group] = {k: sum(r.get(k, 0) for r in part) for k in keys} | {"models": len(part)}
    result = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "seeds": args.seeds,
        "seconds": round(time.perf_counter() - t0, 1),
        "skipped": [r["model"] for r in rows if "skipped" in r],
        "errors": [r["model"] for r in rows if "error" in r],
        "totals": totals,
        "rows": rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
