"""Tiny picture folders of three shapes, and a small net that learns them: shared by the
training tests of the core and of the train command."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "cross", "square")


TINY_SPEC = {
    "input_shape": [1, 16, 16],
    "layers": [
        {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


def draw_shape(kind: str, rnd: random.Random, size: int = 24) -> Image.Image:
    img = Image.new("L", (size, size), rnd.randint(0, 40))
    d = ImageDraw.Draw(img)
    r = rnd.uniform(5, 9)
    cx, cy = rnd.uniform(r + 1, size - r - 1), rnd.uniform(r + 1, size - r - 1)
    ink = rnd.randint(170, 255)
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=ink, width=2)
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], outline=ink, width=2)
    else:
        d.line([cx - r, cy - r, cx + r, cy + r], fill=ink, width=2)
        d.line([cx - r, cy + r, cx + r, cy - r], fill=ink, width=2)
    return img


def make_folder(root: Path, per_class: int = 30, seed: int = 0, classes=SHAPES) -> Path:
    rnd = random.Random(seed)
    for kind in classes:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(kind, rnd).save(root / kind / f"{i:03d}.png")
    return root
