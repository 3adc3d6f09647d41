"""Top units over a folder vs a plain batched forward to the same layer, side by side; prints JSON.

For each case (a model, a layer, a generated folder of pictures, one batch size):
- forward_ips: pictures per second of the baseline -- the same pictures read by the same streamer
  (cnnviz.core.images.folder, decoding in background threads) and run through the model truncated at the layer
  under torch.inference_mode, the output dropped;
- top_units_ips / ratio: cnnviz.top_units over the same folder (decode, forward to the layer, the per-channel
  running top-k, and the receptive-field boxes of the winners). Decoding and preprocessing are included on both
  sides, so the ratio is what a user sees; the goal is ratio >= 0.8;
- naive_ips: a plain loop that reads each picture with load_image and forwards it in batches without
  prefetching, for comparison (what a script written by hand would do).
Runs are interleaved (baseline, top units, baseline, top units ...) and the best of each is kept, so background
load affects both alike. Also: the wall time of cnnviz.top_units on the whole digits folder (1,000 pictures by
default), and of writing its mosaics.

Usage: python benchmarks/bench_top_units.py [--digits 1000] [--resnet 160] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnviz.core.analysis.dataset import resolve_device, top_units
from cnnviz.core.analysis.graph import layer_graph
from cnnviz.core.images import load_image
from cnnviz.core.images.folder import iter_picture_batches, list_pictures
from cnnviz.core.models import load_model
from cnnviz.core.present.topunits import write_top_units


def _digits_folder(root: Path, count: int) -> None:
    """Light-on-dark and dark-on-light strokes on assorted canvas sizes, as PNGs in a few subfolders."""
    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(28, 64, 2))
        arr = np.full((h, w), 255 if i % 2 else 0, dtype=np.uint8)
        for _ in range(3):
            y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
            arr[y : y + int(rng.integers(3, h // 2)), x : x + 3] = 0 if i % 2 else 255
        sub = root / f"{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(sub / f"{i:05d}.png")


def _photo_folder(root: Path, count: int) -> None:
    """Smooth random colour pictures of about 256 px, as JPEGs (what photo folders hold)."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        h, w = (int(v) for v in rng.integers(240, 320, 2))
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(
            root / f"{i:05d}.jpg", quality=90
        )


def _forward(model, folder: Path, layer: str, batch: int, device: torch.device) -> int:
    graph = layer_graph(model.module)
    run = graph.truncated_module(layer)
    count = 0
    with torch.inference_mode():
        for b in iter_picture_batches(list_pictures(folder), model.preprocess, batch):
            if len(b):
                run(b.tensor.to(device))
                count += len(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count


def _naive(model, folder: Path, layer: str, batch: int, device: torch.device) -> int:
    run = layer_graph(model.module).truncated_module(layer)
    paths = list_pictures(folder)
    with torch.inference_mode():
        for start in range(0, len(paths), batch):
            tensors = [load_image(p, model.preprocess).tensor for p in paths[start : start + batch]]
            run(torch.cat(tensors).to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(paths)


def _case(
    name: str, model, folder: Path, layer: str, batch: int, k: int, device, repeats: int
) -> dict:
    model.module.to(device)
    _forward(model, folder, layer, batch, device)  # warm-up: tracing, allocator, file cache
    top_units(model, folder, layer, k=k, batch_size=batch, device=device)
    forward, topk, naive = [], [], []
    images = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        images = _forward(model, folder, layer, batch, device)
        forward.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = top_units(model, folder, layer, k=k, batch_size=batch, device=device)
        topk.append(time.perf_counter() - t0)
        assert result.images == images
    t0 = time.perf_counter()
    _naive(model, folder, layer, batch, device)
    naive.append(time.perf_counter() - t0)
    forward_ips, top_ips = images / min(forward), images / min(topk)
    return {
        "case": name,
        "layer": layer,
        "map_shape": list(result.map_shape),
        "images": images,
        "batch_size": batch,
        "k": k,
        "device": str(device),
        "forward_ips": round(forward_ips, 1),
        "top_units_ips": round(top_ips, 1),
        "ratio": round(top_ips / forward_ips, 3),
        "naive_ips": round(images / min(naive), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000, help="pictures in the digits folder")
    parser.add_argument("--resnet", type=int, default=160, help="pictures in the resnet18 folder")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _digits_folder(root / "digits", args.digits)
        digits = load_model("default")
        for layer in ("4", "8"):
            out["cases"].append(
                _case(
                    f"digits {layer}",
                    digits,
                    root / "digits",
                    layer,
                    args.batch_size,
                    9,
                    device,
                    args.repeats,
                )
            )
        t0 = time.perf_counter()
        result = top_units(
            digits, root / "digits", "8", k=9, batch_size=args.batch_size, device=device
        )
        run_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        files = write_top_units(result, root / "digits-out")
        write_s = time.perf_counter() - t0
        out["digits_wall"] = {
            "images": result.images,
            "layer": "8",
            "channels": len(result.channels),
            "top_units_s": round(run_s, 2),
            "mosaics_s": round(write_s, 2),
            "files": len(files),
        }
        if args.resnet > 0:
            _photo_folder(root / "photos", args.resnet)
            resnet = load_model("resnet18", weights="none")
            for layer in ("layer1", "layer3"):
                out["cases"].append(
                    _case(
                        f"resnet18 {layer}",
                        resnet,
                        root / "photos",
                        layer,
                        args.batch_size,
                        9,
                        device,
                        args.repeats,
                    )
                )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
