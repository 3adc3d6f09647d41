"""Index maps of the receptive-field walk: which input positions along one axis an output mask reads."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Maps a boolean mask over one axis of a layer's output to the mask over that axis of one of its inputs.
IndexMap = Callable[[np.ndarray], np.ndarray]


def window_map(k: int, s: int, p: int, d: int, n_in: int) -> IndexMap:
    taps = np.arange(k) * d

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        ys = np.flatnonzero(mask)
        if ys.size:
            idx = (ys[:, None] * s - p + taps[None, :]).ravel()
            out[idx[(idx >= 0) & (idx < n_in)]] = True
        return out

    return back


def transposed_map(k: int, s: int, p: int, d: int, n_in: int) -> IndexMap:
    # output y = i*s - p + t*d  <=>  i = (y + p - t*d) / s when that is a whole number
    taps = np.arange(k) * d

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        ys = np.flatnonzero(mask)
        if ys.size:
            num = (ys[:, None] + p - taps[None, :]).ravel()
            ok = num % s == 0
            idx = num[ok] // s
            out[idx[(idx >= 0) & (idx < n_in)]] = True
        return out

    return back


def adaptive_map(n_in: int, n_out: int) -> IndexMap:
    starts = np.array([(i * n_in) // n_out for i in range(n_out)])
    ends = np.array([-((-(i + 1) * n_in) // n_out) for i in range(n_out)])  # ceil, exclusive

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        for y in np.flatnonzero(mask):
            out[starts[y] : ends[y]] = True
        return out

    return back


def gather_map(source: np.ndarray, n_in: int) -> IndexMap:
    """Output position y reads input positions source[y] (a list of arrays or an int array)."""

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        idx = source[mask].ravel() if source.ndim > 1 else source[mask]
        idx = idx[(idx >= 0) & (idx < n_in)]
        out[idx] = True
        return out

    return back


def identity_map(mask: np.ndarray) -> np.ndarray:
    return mask


def broadcast_map(mask: np.ndarray) -> np.ndarray:
    # a size-1 axis broadcast over the output: any output position reads position 0
    return np.array([bool(mask.any())])


def every_map(n_in: int) -> IndexMap:
    """A reduction over the axis: any output position reads every input position."""

    def back(mask: np.ndarray) -> np.ndarray:
        return np.full(n_in, bool(mask.any()))

    return back
