"""The data-set effective receptive field against a plain forward + backward of the truncated model; prints JSON.

For each model (the bundled digits model; resnet18 with random weights at 224 px) a folder of random pictures is
generated, and both sides go over the same pictures in the same batches:

* ``dataset_erf``: ``cnnviz.dataset_erf`` on the layer's centre unit (its batching, budget check, unit selection,
  input gradient and accumulation);
* ``input_grad``: the model truncated at the layer (the same fx graph), ``autograd.grad(out.sum(), x)``: the
  stricter baseline, as it computes no weight gradients either;
* ``backward``: the same forward with ``out.sum().backward()``, a training step's backward (weight gradients too).

Each is timed on tensors decoded once (the compute alone) and, for ``dataset_erf`` against ``input_grad``, on
the folder itself read by the shared streamer with the model's preprocessing (decoding included on both sides).
Runs are interleaved and the best of ``--repeat`` is kept (the machine is shared). Ratios above 1 mean
``dataset_erf`` is slower; the goal is at most 1.3 against ``input_grad``.

On a machine shared with other work, run it with ``OMP_NUM_THREADS=1``: threads that compete for the same cores
made single timings swing by 3× either way.

Usage: python benchmarks/bench_dataset_erf.py [--pictures 32] [--batch 16] [--repeat 3] [--device cpu]
       [--models default,resnet18]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnviz.core.analysis.dataset import dataset_erf
from cnnviz.core.analysis.graph import eval_mode, layer_graph
from cnnviz.core.images.folder import iter_picture_batches, list_pictures
from cnnviz.core.models import load_model

CASES = [("default", "default", "11", 28), ("resnet18", "none", "layer4", 224)]


def _folder(root: Path, count: int, side: int, gray: bool) -> Path:
    rng = np.random.default_rng(0)
    folder = root / f"pictures_{side}"
    folder.mkdir()
    for i in range(count):
        shape = (side + 32, side + 48) if gray else (side + 32, side + 48, 3)
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(
            folder / f"p{i:03d}.png"
        )
    return folder


def _best(fn: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def _case(spec: str, weights: str, layer: str, side: int, args: Any, tmp: str, device: torch.device,
          sync: Callable[[], None]) -> dict[str, Any]:  # fmt: skip
    """Time both sides on one model."""
    model = load_model(spec, weights=weights)
    model.module.to(device)
    folder = _folder(Path(tmp), args.pictures, side, model.input_shape[0] == 1)
    paths = list_pictures(folder)
    batches = [b.tensor for b in iter_picture_batches(paths, model.preprocess, args.batch)]
    tensor = torch.cat(batches).to(device)
    graph = layer_graph(model.module)
    truncated = graph.truncated_module(layer)

    def erf_tensors() -> None:
        dataset_erf(model, tensor, layer, n=args.pictures, batch_size=args.batch)

    def erf_folder() -> None:
        dataset_erf(model, folder, layer, n=args.pictures, batch_size=args.batch)

    def plain(kind: str, source: Any) -> Callable[[], None]:
        def run() -> None:
            with torch.enable_grad(), eval_mode(model.module, out_of_place=True):
                for b in source():
                    x = b.to(device).requires_grad_(True)
                    out = truncated(x)
                    if kind == "input_grad":
                        torch.autograd.grad(out.sum(), x)
                    else:
                        out.sum().backward()
            model.module.zero_grad(set_to_none=True)

        return run

    def from_tensor() -> list[torch.Tensor]:
        return list(tensor.split(args.batch))

    def from_folder() -> list[torch.Tensor]:
        return [b.tensor for b in iter_picture_batches(paths, model.preprocess, args.batch)]

    erf_tensors()  # warm-up: tracing and the first allocation on both sides
    plain("input_grad", from_tensor)()
    timed = {"dataset_erf": [], "input_grad": [], "backward": [], "erf_folder": [],
             "input_grad_folder": []}  # fmt: skip
    for _ in range(args.repeat):
        timed["dataset_erf"].append(_best(erf_tensors, 1, sync))
        timed["input_grad"].append(_best(plain("input_grad", from_tensor), 1, sync))
        timed["backward"].append(_best(plain("backward", from_tensor), 1, sync))
        timed["erf_folder"].append(_best(erf_folder, 1, sync))
        timed["input_grad_folder"].append(_best(plain("input_grad", from_folder), 1, sync))
    best = {k: min(v) for k, v in timed.items()}
    return {
        "layer": layer,
        "input": list(model.input_shape),
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "ratio_vs_input_grad": round(best["dataset_erf"] / best["input_grad"], 3),
        "ratio_vs_backward": round(best["dataset_erf"] / best["backward"], 3),
        "ratio_folder_vs_input_grad_folder": round(
            best["erf_folder"] / best["input_grad_folder"], 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--models", default="default,resnet18", help="which of default,resnet18 to run"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results: dict[str, Any] = {"device": str(device), "pictures": args.pictures, "batch": args.batch,
                               "threads": torch.get_num_threads()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for spec, weights, layer, side in CASES:
            if spec not in args.models.split(","):
                continue
            results[spec] = _case(spec, weights, layer, side, args, tmp, device, sync)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
