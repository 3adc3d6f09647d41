"""Layer outputs without a spatial map (C×1×1 maps, flat vectors) as one row of values, and their order.

Such outputs (global pooling, Flatten, Linear, logits) are drawn as bar charts: one bar per value, all on one
scale, so that a logit of -22 and one of +21 look different.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ORDERS", "value_order", "vector_values"]

ORDERS: dict[str, str] = {
    "index": "By index",
    "largest": "Largest first",
    "magnitude": "Largest |value| first",
}
"""The orders a bar chart offers, with their menu texts."""


def vector_values(activation: Any) -> np.ndarray | None:
    """The values of a one-picture output that has no spatial map, as a 1-D float64 array, else None.

    ``activation`` keeps its batch axis of one: ``(1, N)``, ``(1, C, 1, 1)`` and ``(1, C, 1)`` are vectors;
    ``(1, C, H, W)`` with ``H×W > 1`` is not.
    """
    if activation is None:
        return None
    arr = np.asarray(activation)
    if arr.ndim == 0 or arr.shape[0] != 1:
        return None
    body = arr.shape[1:]
    if len(body) == 0 or any(int(d) != 1 for d in body[1:]):
        return None
    return arr.reshape(-1).astype(np.float64)


def value_order(values: np.ndarray, order: str = "index") -> np.ndarray:
    """The indices of ``values`` in the order ``order`` (a key of :data:`ORDERS`); NaN values come last."""
    v = np.asarray(values, dtype=np.float64)
    if order == "index":
        return np.arange(v.size)
    key = np.abs(v) if order == "magnitude" else v
    key = np.where(np.isnan(key), -np.inf, key)
    # Stable, so equal values keep index order.
    return np.argsort(-key, kind="stable")
