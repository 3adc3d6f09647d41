"""Training speed of the default digits architecture on the CPU, printed as JSON.

    python benchmarks/bench_training.py              # throughput of training steps and of digit generation
    python benchmarks/bench_training.py --reproduce  # also time the full default-model training command

Figures on a shared machine are noisy: compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cnnviz.commands.train import default_arch_path
from cnnviz.core.models.spec import build_model, load_spec
from cnnviz.core.training.digits import generate_digits

REPRODUCE = [
    "train", "--arch", "default", "--data", "synthetic-digits", "--epochs", "8", "--seed", "0",
    "--lr", "0.003", "--batch-size", "128", "--schedule", "cosine",
]  # fmt: skip


def train_throughput(batch_size: int, steps: int, threads: int) -> float:
    """Images per second of forward + backward + AdamW steps on random 1x28x28 inputs."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(load_spec(default_arch_path()))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (batch_size,))
    for _ in range(3):  # warm-up
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return batch_size * steps / (time.perf_counter() - start)


def generation_throughput(n: int) -> float:
    """Synthetic digits generated per second (glyph bank already built)."""
    generate_digits(16)
    start = time.perf_counter()
    generate_digits(n, seed=1)
    return n / (time.perf_counter() - start)


def reproduce() -> dict[str, float]:
    """Wall time of the documented command that trains resources/models/digits.pt (into a temp file)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "digits.pt")
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "cnnviz", *REPRODUCE, "--out", out, "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"training failed: {proc.stderr.strip()[-500:]}")
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "wall_s": round(wall, 1),
        "val_acc": metrics.get("val_acc"),
        "heldout_synthetic_acc": metrics.get("heldout_synthetic_acc"),
        "heldout_fonts_acc": metrics.get("heldout_fonts_acc"),
    }


def small_folder(seeds: int) -> dict[str, object]:
    """A 2-class folder of 80 pictures: the scaled defaults side by side with a batch of 64 for 8 epochs.

    Accuracy on the validation split and on 200 fresh pictures drawn with another seed; the time ratio of
    the two runs (one thread, so that the tiny net is not slowed by a busy second core).
    """
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from shape_folders import TINY_SPEC, make_folder

    from cnnviz.core.training import evaluate, train
    from cnnviz.core.training.datasets import image_folder

    torch.set_num_threads(1)
    spec = json.loads(json.dumps(TINY_SPEC))
    spec["layers"][-1]["out_features"] = 2
    pair = ("circle", "square")
    runs: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "train", per_class=40, seed=0, classes=pair)
        fresh = image_folder(
            make_folder(Path(tmp) / "fresh", per_class=100, seed=77, classes=pair),
            spec["input_shape"],
        )
        settings = {
            "fixed_batch64_8epochs": dict(epochs=8, batch_size=64, lr=1e-3, schedule="cosine"),
            "scaled_defaults": {},
        }
        for name, kwargs in settings.items():
            runs[name] = {"val_acc": [], "fresh_acc": [], "seconds": [], "steps": [], "warned": []}
            for seed in range(seeds):
                start = time.perf_counter()
                r = train(spec, str(folder), seed=seed, device="cpu", **kwargs)  # type: ignore[arg-type]
                runs[name]["seconds"].append(time.perf_counter() - start)
                runs[name]["val_acc"].append(r.metrics["val_acc"])
                runs[name]["fresh_acc"].append(evaluate(r.model, fresh.train, r.preprocess)["acc"])
                runs[name]["steps"].append(r.steps)
                runs[name]["warned"].append(float(r.warning is not None))
    summary: dict[str, object] = {}
    for name, values in runs.items():
        summary[name] = {
            "val_acc": [round(v, 3) for v in values["val_acc"]],
            "fresh_acc_mean": round(sum(values["fresh_acc"]) / seeds, 3),
            "fresh_acc_min": round(min(values["fresh_acc"]), 3),
            "steps": int(values["steps"][0]),
            "near_chance_warnings": int(sum(values["warned"])),
        }
    summary["time_ratio_scaled_over_fixed"] = round(
        sum(runs["scaled_defaults"]["seconds"]) / sum(runs["fixed_batch64_8epochs"]["seconds"]), 1
    )
    summary["seeds"] = seeds
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--reproduce", action="store_true", help="time the full default-model training"
    )
    parser.add_argument(
        "--small-folder",
        action="store_true",
        help="only compare the scaled defaults with fixed ones on a folder of 80 pictures",
    )
    parser.add_argument("--seeds", type=int, default=5, help="runs per setting for --small-folder")
    args = parser.parse_args()
    if args.small_folder:
        print(
            json.dumps({"benchmark": "training_small_folder", **small_folder(args.seeds)}, indent=2)
        )
        return
    threads = torch.get_num_threads()
    result: dict[str, object] = {
        "benchmark": "training",
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "batch_size": args.batch_size,
        "train_images_per_s": {
            f"{t}_threads": round(train_throughput(args.batch_size, args.steps, t), 1)
            for t in sorted({1, threads})
        },
        "generate_digits_per_s": round(generation_throughput(4096), 1),
    }
    torch.set_num_threads(threads)
    if args.reproduce:
        result["reproduce_default_model"] = reproduce()
        result["reproduce_command"] = (
            "cnnviz " + " ".join(REPRODUCE) + " --out resources/models/digits.pt"
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
