"""Showing signed filter outputs as pictures (display rules), and pictures as 0..1 floats."""

from __future__ import annotations

import numpy as np

from cnnviz.core.errors import CnnvizError

DISPLAY_RULES = ("auto", "clip", "abs", "signed", "stretch")


def display_rule(kernel: np.ndarray, rule: str = "auto", zero_sum: str = "abs") -> str:
    """Resolve the ``auto`` display rule: kernels whose weights sum to 0 (edge detectors) -> ``zero_sum``, else
    ``clip``.

    A zero-sum kernel answers 0 on flat areas and signed values at edges, so its magnitude (``abs``) or its sign
    (``signed``, which tells rising from falling edges, and correlation from convolution) is what to show;
    kernels that sum to 1 (identity, blurs, sharpen, emboss) keep the brightness scale, so clipping suffices.
    """
    if rule not in DISPLAY_RULES:
        raise CnnvizError(f"Unknown display rule '{rule}'; use one of {', '.join(DISPLAY_RULES)}.")
    if rule != "auto":
        return rule
    k = np.asarray(kernel, dtype=np.float64)
    scale = max(float(np.abs(k).sum()), 1e-300)
    return zero_sum if abs(float(k.sum())) <= 1e-9 * scale else "clip"


def to_uint8(values: np.ndarray, rule: str, full_scale: float = 1.0) -> np.ndarray:
    """Map convolution results to 0..255 by a named rule (``full_scale`` is the value shown as white).

    * ``clip``: ``v / full_scale`` clipped to 0..1 (negatives black, overshoots white);
    * ``abs``: ``|v| / full_scale`` clipped to 0..1 (edges of either sign bright);
    * ``signed``: ``0.5 + v / (2*full_scale)`` clipped (mid grey is 0, darker negative, brighter positive);
    * ``stretch``: the smallest value black and the largest white (a constant map is mid grey).

    The result is ``rint(255 * t)`` as uint8.
    """
    v = np.asarray(values, dtype=np.float64)
    if rule == "clip":
        t = v / full_scale
    elif rule == "abs":
        t = np.abs(v) / full_scale
    elif rule == "signed":
        t = 0.5 + v / (2 * full_scale)
    elif rule == "stretch":
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        t = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
    else:
        raise CnnvizError(
            f"Unknown display rule '{rule}'; use one of {', '.join(DISPLAY_RULES[1:])}."
        )
    return np.rint(np.clip(np.nan_to_num(t), 0.0, 1.0) * 255).astype(np.uint8)


def image_to_float(image: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """A uint8 picture (H x W, H x W x 3 or x 4; alpha dropped) as float64 in 0..1, shrunk to ``max_side``.

    Shrinking (area-averaging with Pillow) keeps the lab responsive on large photos.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        raise CnnvizError(f"Expected an H x W or H x W x 3 picture, got shape {arr.shape}.")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if max_side is not None and max(arr.shape[:2]) > max_side:
        from PIL import Image

        h, w = arr.shape[:2]
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BOX))
    return arr.astype(np.float64) / 255.0


def sample_image(size: int = 64) -> np.ndarray:
    """A synthetic RGB picture (uint8) with edges in every direction: a disc, a bar, a ramp and a checker."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = np.zeros((size, size, 3))
    img[..., 0] = 0.15 + 0.5 * x  # ramp: flat for edge detectors, shows blur keeps gradients
    img[..., 1] = 0.2 + 0.3 * y
    img[..., 2] = 0.35
    disc = (x - 0.3) ** 2 + (y - 0.32) ** 2 < 0.18**2
    img[disc] = (0.95, 0.85, 0.2)
    bar = (np.abs(x - y - 0.15) < 0.05) & (x > 0.5)
    img[bar] = (0.1, 0.1, 0.5)
    checker = (x >= 2 / 16) & (x < 7 / 16) & (y >= 10 / 16) & (y < 15 / 16)
    cells = ((np.floor(x * 16) + np.floor(y * 16)) % 2).astype(bool)
    img[checker & cells] = (1.0, 1.0, 1.0)
    img[checker & ~cells] = (0.0, 0.0, 0.0)
    return np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
