"""ONNX conversion side by side: cnnviz's converter and onnx2torch on the same torchvision exports.

For each file: whether each converter succeeds, its largest difference from onnxruntime, and the time to
convert and to run one forward pass, as the ratio cnnviz / onnx2torch measured in the same run. Prints JSON.

    python benchmarks/bench_onnx.py [--models resnet18,mobilenet_v2] [--opsets 13,17,19] [--no-fold]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import torchvision

from cnnviz.core.models.onnx import load_onnx


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _onnx2torch(path: Path) -> Any:
    from onnx2torch import convert

    return convert(str(path)).eval()


def _randomize_norms(module: torch.nn.Module) -> torch.nn.Module:
    """Random batch-norm statistics and weights: outputs of a freshly built network are otherwise near zero."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--models", default="resnet18,mobilenet_v2,mobilenet_v3_small,squeezenet1_0,densenet121"
    )
    parser.add_argument("--opsets", default="13,17,19")
    parser.add_argument("--no-fold", action="store_true", help="export without constant folding")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            net = _randomize_norms(getattr(torchvision.models, name)(weights=None)).eval()
            for opset in (int(v) for v in args.opsets.split(",")):
                path = Path(folder) / f"{name}_{opset}.onnx"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=opset,
                                      do_constant_folding=not args.no_fold)  # fmt: skip
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                truth = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
                row: dict[str, Any] = {"model": name, "opset": opset, "fold": not args.no_fold}
                row["output_max_abs"] = float(np.abs(truth).max())
                times: dict[str, tuple[float, float]] = {}
                for label, convert in (
                    ("cnnviz", lambda p=path: load_onnx(p).module),
                    ("onnx2torch", lambda p=path: _onnx2torch(p)),
                ):
                    try:
                        module, t_convert = _timed(convert)
                        with torch.no_grad():
                            module(x)  # warm-up
                            out, t_run = _timed(lambda m=module: m(x))
                        row[f"{label}_max_abs_diff"] = float(np.abs(out.numpy() - truth).max())
                        times[label] = (t_convert, t_run)
                    except Exception as exc:  # noqa: BLE001 - the failure is the result
                        row[f"{label}_error"] = " ".join(str(exc).split())[:160]
                if len(times) == 2:
                    row["convert_time_ratio"] = round(
                        times["cnnviz"][0] / times["onnx2torch"][0], 2
                    )
                    row["forward_time_ratio"] = round(
                        times["cnnviz"][1] / times["onnx2torch"][1], 2
                    )
                results.append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps({"results": results}, indent=1))


if __name__ == "__main__":
    main()
