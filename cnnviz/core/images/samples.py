"""The pictures shown before the user opens one: a bundled sample, or one drawn on the spot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def default_sample(channels: int) -> Path | None:
    """The sample picture shown at start-up: a digit for one-channel models, a photo for colour models."""
    from cnnviz.core.resources import sample_images

    samples = sample_images()
    digits = [p for p in samples if p.parent.name == "digits"]
    photos = [p for p in samples if p.parent.name != "digits"]
    preferred = digits if channels == 1 else photos
    pool = preferred or samples
    return pool[0] if pool else None


def fallback_picture(channels: int) -> Image.Image:
    """A picture to start with when no samples are installed: a large printed 3 (or a colour gradient)."""
    if channels == 1:
        im = Image.new("L", (112, 112), 255)
        draw = ImageDraw.Draw(im)
        try:
            font = ImageFont.load_default(size=90)
        except TypeError:
            font = ImageFont.load_default()
        draw.text((56, 56), "3", fill=0, font=font, anchor="mm")
        return im
    y, x = np.mgrid[0:224, 0:224]
    rgb = np.stack([x, y, 224 - x], axis=2).astype(np.float32) / 224 * 255
    return Image.fromarray(rgb.astype(np.uint8))
