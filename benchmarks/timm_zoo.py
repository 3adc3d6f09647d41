"""How much of timm's zoo cnnviz reads: one architecture per timm family, loaded, traced and checked; prints JSON.

A family is a timm model module (``resnet``, ``efficientnet``, ``vision_transformer`` ...). From each sampled
family the architecture with the fewest parameters among its first candidates (counted on the meta device, so
nothing is allocated) is loaded as ``timm:NAME`` with random weights. For each it records:

- loads: ``cnnviz.load_model`` returned a model;
- traced: the summary came from a torch.fx trace (not the module-hook fall-back), with the fall-back's note
  otherwise;
- shapes_match: every leaf module's output shape in the summary equals the one recorded by plain forward
  hooks on a real forward pass at the model's own input size (timm's ``pretrained_cfg``).

Usage: python benchmarks/timm_zoo.py [--families 40] [--seed 0] [--candidates 6]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from typing import Any

import timm
import torch
from torch import nn

from cnnviz.core.analysis.graph import forget_graph
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.budget import model_param_bytes
from cnnviz.core.models import load_model


def families() -> dict[str, list[str]]:
    """timm's model modules and their architectures, only those with pretrained weights listed."""
    pretrained = {n.split(".")[0] for n in timm.list_models(pretrained=True)}
    out: dict[str, list[str]] = {}
    for module in sorted(timm.list_modules()):
        names = [n for n in timm.list_models(module=module) if n in pretrained]
        if names:
            out[module] = names
    return out


def smallest(names: list[str], candidates: int) -> str:
    """The architecture with the fewest parameters among the first ``candidates`` (sorted by name length)."""
    best: tuple[int, str] | None = None
    for name in sorted(names, key=lambda n: (len(n), n))[:candidates]:
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                size = model_param_bytes(timm.create_model(name))
        except Exception:  # noqa: BLE001 - cannot be counted ahead: try it last
            size = 1 << 62
        if best is None or size < best[0]:
            best = (size, name)
    assert best is not None
    return best[1]


def _empty_container(module: nn.Module) -> bool:
    return isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) and len(module) == 0


def hook_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, list[tuple[int, ...]]]:
    """Every leaf module's tensor output shapes, one per call, from plain hooks on a real forward."""
    shapes: dict[str, list[tuple[int, ...]]] = {}
    handles = []
    for name, module in model.named_modules():
        # An empty Sequential (timm's identity shortcut) runs no operation: torch.fx inlines it to
        # nothing, so the table has no row for it.
        if name and not list(module.children()) and not _empty_container(module):

            def hook(_m: Any, _i: Any, out: Any, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    shapes.setdefault(name, []).append(tuple(out.shape))

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def check(name: str) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "loads": False, "traced": False, "shapes_match": False}
    start = time.perf_counter()
    try:
        loaded = load_model(f"timm:{name}", weights="none")
    except Exception as exc:  # noqa: BLE001 - the sweep records every failure
        row["error"] = f"load: {type(exc).__name__}: {str(exc)[:200]}"
        return row
    row["loads"] = True
    row["input_shape"] = list(loaded.input_shape)
    try:
        summary = summarize(loaded, receptive_fields=False)
        row["traced"] = summary.traced
        if summary.note:
            row["note"] = summary.note[:240]
        by_name = {r.name: r.output_shape for r in summary.rows}
        truth = hook_shapes(loaded.module, torch.randn(1, *loaded.input_shape))
        wrong = [
            key
            for module_name, calls in truth.items()
            for n, shape in enumerate(calls)
            if by_name.get(key := module_name if n == 0 else f"{module_name}@{n}") != shape
        ]
        row["layers"] = len(summary.rows)
        row["shapes_match"] = not wrong and bool(truth)
        if wrong:
            row["mismatched"] = wrong[:5]
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"summary: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        forget_graph(loaded.module)
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(0)
    every = families()
    chosen = sorted(random.Random(args.seed).sample(sorted(every), min(args.families, len(every))))
    rows = []
    for fam in chosen:
        rows.append({"family": fam, **check(smallest(every[fam], args.candidates))})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # progress, one line per family
    result = {
        "timm": timm.__version__,
        "torch": torch.__version__,
        "families_total": len(every),
        "sampled": len(rows),
        "load": sum(r["loads"] for r in rows),
        "traced": sum(r["traced"] for r in rows),
        "shapes_match": sum(r["shapes_match"] for r in rows),
        "rows": rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
