"""Multiply-accumulates of cnnviz's table against fvcore's, model by model; prints JSON.

The reference is fvcore's FlopCountAnalysis (one "flop" there is one multiply-accumulate) restricted to the
handles of convolutions, linear layers and matrix products (conv, linear, matmul, einsum, bmm, addmm,
baddbmm), plus two handles fvcore lacks, computed here from the traced operands' shapes:
scaled-dot-product attention (two batched products, 2·B·H·L·S·E) and torch's fused multi-head attention
(its input and output projections and the same two products). For every model it prints cnnviz's total, the
reference and their ratio (1.0 = equal).

``--zoo`` runs every classifier of torchvision's registry and bench_zoo's timm set, each at its input size;
the last object then says how many are within 1% and which are not.

Usage: python benchmarks/bench_macs.py [--models vit_b_16,tv:resnet18,timm:deit_tiny_patch16_224] [--zoo]
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from typing import Any

import torch
import torchvision

from cnnviz.core.analysis.summary import summarize

TORCHVISION = [
    "vit_b_16",
    "swin_t",
    "maxvit_t",
    "resnet18",
    "mobilenet_v3_small",
    "efficientnet_b0",
]
TIMM = [
    "vit_tiny_patch16_224",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "convnext_nano",
]
COUNTED = (
    "conv", "linear", "matmul", "einsum", "bmm", "addmm", "baddbmm",
    "scaled_dot_product_attention", "_native_multi_head_attention",
)  # fmt: skip


def _shape(value: Any) -> list[int]:
    return list(value.type().sizes())


def _sdpa_handle(inputs: list[Any], _outputs: list[Any]) -> int:
    q, k, v = (_shape(x) for x in inputs[:3])
    # Q·Kᵀ is L×S per head over E, then weights·V is L×Ev per head over S
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * q[-1] + batch * q[-2] * v[-1] * k[-2]


def _native_mha_handle(inputs: list[Any], _outputs: list[Any]) -> int:
    # _native_multi_head_attention(query, key, value, embed_dim, num_heads, in_w, in_b, out_w, out_b, ...)
    q, k = _shape(inputs[0]), _shape(inputs[1])
    embed = q[-1]
    lq, lk = math.prod(q[:-1]), math.prod(k[:-1])
    batch = q[0] if len(q) == 3 else 1
    projections = lq * embed * embed + 2 * lk * embed * embed + lq * embed * embed
    attention = (
        2 * batch * (q[-2] if len(q) == 3 else q[0]) * (k[-2] if len(k) == 3 else k[0]) * embed
    )
    return projections + attention


def reference_macs(model: torch.nn.Module, size: int | tuple[int, int]) -> int:
    """fvcore's count of convolutions, linear layers and matrix products, plus attention products."""
    from fvcore.nn import FlopCountAnalysis

    h, w = (size, size) if isinstance(size, int) else size
    x = torch.zeros(1, 3, h, w)
    analysis = FlopCountAnalysis(model, x)
    analysis.set_op_handle(
        "aten::scaled_dot_product_attention", _sdpa_handle,
        "aten::_native_multi_head_attention", _native_mha_handle,
    )  # fmt: skip
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    return int(sum(v for k, v in by_op.items() if k in COUNTED))


def build(name: str) -> torch.nn.Module:
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False).eval()
    name = name.removeprefix("tv:")
    return torchvision.models.get_model(name, weights=None).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ",".join([*TORCHVISION, *(f"timm:{n}" for n in TIMM)])
    parser.add_argument("--models", default=default)
    parser.add_argument(
        "--zoo", action="store_true", help="every torchvision classifier and the timm set"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    todo: list[tuple[str, tuple[int, int]]] = [(n, (224, 224)) for n in args.models.split(",")]
    if args.zoo:
        from bench_zoo import timm_models, torchvision_models

        todo = [(f"tv:{n}", (s[1], s[2])) for n, s in torchvision_models(False)]
        todo += [(n, (s[1], s[2])) for n, s in timm_models()]
    results: dict[str, Any] = {}
    for name, size in todo:
        torch.manual_seed(0)
        model = build(name)
        ours = summarize(model, (3, *size), receptive_fields=False).total_macs
        with torch.no_grad():
            ref = reference_macs(model, size)
        results[name] = {"cnnviz": ours, "reference": ref, "ratio": round(ours / ref, 4)}
        print(json.dumps({name: results[name]}), flush=True)
        del model
    off = sorted((r["ratio"], n) for n, r in results.items() if abs(r["ratio"] - 1) > 0.01)
    results["summary"] = {
        "models": len(todo),
        "within_1_percent": len(todo) - len(off),
        "outside": [{"model": n, "ratio": v} for v, n in off],
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
