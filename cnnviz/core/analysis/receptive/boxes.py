"""Where one unit looks in the input: its formula box, the box clipped to the input, the exact support."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from cnnviz.core.analysis.graph import LayerGraph, resolve_layer
from cnnviz.core.analysis.receptive.analytic import _NodeRF
from cnnviz.core.analysis.receptive.facts import as_fraction
from cnnviz.core.errors import LayerError

Box = tuple[int, int, int, int]


@dataclass
class UnitBox:
    """Where one unit of a layer looks in the input (inclusive model-input pixel boxes, [top, left, bottom, right]).

    ``box`` follows the formula ``y*S - P .. y*S - P + r - 1`` and may extend into the padding; ``clipped_box`` is
    that box cut to the input; ``support_box`` is the exact extent of the input pixels the unit depends on (see the
    module docstring); ``padding_fraction`` is the share of ``box`` that lies outside the input. ``image_box`` is
    ``clipped_box`` in original-image pixels (when an image geometry is known). ``global_`` units see everything.
    ``measured`` boxes come from the gradient support (untraceable models): all three boxes are that support.
    ``gated`` units sit behind a global gate (squeeze-and-excitation): the box is the convolution path's field,
    and ``support_box`` shows that through the gate the unit depends on the whole input.
    """

    layer: str
    unit: tuple[int, int]
    input_shape: tuple[int, int, int]
    size: tuple[int, int]
    stride: tuple[Fraction, Fraction]
    padding: tuple[Fraction, Fraction]
    box: Box
    clipped_box: Box | None
    support_box: Box | None
    padding_fraction: float
    global_: bool = False
    uniform: bool = True
    image_box: Box | None = None
    measured: bool = False
    gated: bool = False

    def to_json(self) -> dict[str, Any]:
        def num(v: Fraction) -> int | float:
            return int(v) if v.denominator == 1 else float(v)

        out: dict[str, Any] = {
            "layer": self.layer,
            "unit": list(self.unit),
            "input_shape": list(self.input_shape),
            "size": list(self.size),
            "stride": [num(v) for v in self.stride],
            "padding": [num(v) for v in self.padding],
            "box": list(self.box),
            "clipped_box": list(self.clipped_box) if self.clipped_box else None,
            "support_box": list(self.support_box) if self.support_box else None,
            "padding_fraction": round(self.padding_fraction, 6),
        }
        if self.global_:
            out["global"] = True
        if not self.uniform:
            out["uniform"] = False
        if self.measured:
            out["measured"] = True
        if self.gated:
            out["gated"] = True
        if self.image_box is not None:
            out["image_box"] = list(self.image_box)
        return out


def _subsumed(
    term: tuple[np.ndarray, np.ndarray], terms: list[tuple[np.ndarray, np.ndarray]]
) -> bool:
    return any(np.all(term[0] <= t[0]) and np.all(term[1] <= t[1]) for t in terms)


def _add_term(
    terms: list[tuple[np.ndarray, np.ndarray]], term: tuple[np.ndarray, np.ndarray]
) -> None:
    if _subsumed(term, terms):
        return
    terms[:] = [t for t in terms if not (np.all(t[0] <= term[0]) and np.all(t[1] <= term[1]))]
    terms.append(term)


def support_box(
    graph: LayerGraph, info: dict[str, _NodeRF], key: str, unit: tuple[int, int]
) -> Box | None:
    """Exact bounding box of the input pixels unit ``unit`` of layer ``key`` can depend on (None if unknown).

    Walks index sets back through the graph, branch by branch, dropping positions that a layer never reads.
    """
    start = info[key]
    if start.sizes is None:
        return None
    order = [n.key for n in graph.nodes]
    position = {k: i for i, k in enumerate(order)}
    h0 = np.zeros(start.sizes[0], dtype=bool)
    w0 = np.zeros(start.sizes[1], dtype=bool)
    h0[unit[0]] = True
    w0[unit[1]] = True
    pending: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {key: [(h0, w0)]}
    reached: list[tuple[np.ndarray, np.ndarray]] = []
    for idx in range(position[key], -1, -1):
        k = order[idx]
        terms = pending.pop(k, None)
        if not terms:
            continue
        node_info = info[k]
        if graph.node(k).kind == "input":
            reached.extend(terms)
            continue
        if node_info.back is None:
            if not node_info.global_:
                return None
            # a layer that reads the whole image (a gate made of a global mean): every input pixel
            whole = info[order[0]].sizes
            if whole is None:
                return None
            reached.append((np.ones(whole[0], dtype=bool), np.ones(whole[1], dtype=bool)))
            continue
        for in_key, maps in node_info.back.items():
            dest = pending.setdefault(in_key, [])
            for mh, mw in terms:
                if maps is not None:
                    mh, mw = maps[0](mh), maps[1](mw)
                if mh.any() and mw.any():
                    _add_term(dest, (mh, mw))
    if not reached:
        return None
    rows = np.any([t[0] for t in reached], axis=0)
    cols = np.any([t[1] for t in reached], axis=0)
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    return (int(ys[0]), int(xs[0]), int(ys[-1]), int(xs[-1]))


def _layer_key(graph: LayerGraph, layer: str) -> str:
    key = resolve_layer(graph, layer)
    if key in graph.containers:
        out = graph.containers[key].output_key
        if out is None:
            raise LayerError(f"layer '{layer}' has no single output to take units from")
        return out
    return key


def _box_area(box: Box) -> int:
    return max(0, box[2] - box[0] + 1) * max(0, box[3] - box[1] + 1)


def _intersect(box: Box, h: int, w: int) -> Box | None:
    top, left = max(box[0], 0), max(box[1], 0)
    bottom, right = min(box[2], h - 1), min(box[3], w - 1)
    if top > bottom or left > right:
        return None
    return (top, left, bottom, right)


def unit_box_from_analysis(
    graph: LayerGraph,
    info: dict[str, _NodeRF],
    layer: str,
    unit: tuple[int, int],
    input_shape: tuple[int, int, int],
    geometry: Any = None,
    exact_support: bool = True,
) -> UnitBox:
    """The box of ``unit`` (y, x) of ``layer`` given a finished analysis (see :func:`receptive_field`).

    ``exact_support=False`` skips the walk that finds ``support_box`` (left None) where the formula box suffices.
    """
    key = _layer_key(graph, layer)
    node = info.get(key)
    _, height, width = input_shape
    if node is None or node.sizes is None or node.axes is None:
        if node is not None and node.global_:
            raise LayerError(
                f"layer '{layer}' has no spatial map; each of its units sees the whole {height}×{width} input"
            )
        raise LayerError(f"layer '{layer}' has no spatial map to pick a unit from")
    y, x = int(unit[0]), int(unit[1])
    hh, ww = node.sizes
    if not (0 <= y < hh and 0 <= x < ww):
        raise LayerError(
            f"unit ({y}, {x}) is outside layer '{layer}', whose map is {hh}×{ww}: "
            f"y must be 0..{hh - 1} and x 0..{ww - 1}"
        )
    whole = (0, 0, height - 1, width - 1)
    if node.global_:
        return UnitBox(
            layer, (y, x), input_shape, (height, width), (Fraction(0), Fraction(0)), (Fraction(0), Fraction(0)),
            whole, whole, whole, 0.0, global_=True,
            image_box=geometry.box_to_original(whole) if geometry is not None else None,
        )  # fmt: skip
    needs_walk = exact_support or not node.uniform or node.rf is None
    support = support_box(graph, info, key, (y, x)) if needs_walk else None
    if node.rf is None:
        raise LayerError(
            f"the receptive field of layer '{layer}' cannot be derived from its operations"
        )
    rh, rw = node.rf
    if node.uniform:
        top = y * rh.s - rh.p
        left = x * rw.s - rw.p
        box = (int(top), int(left), int(top + rh.r - 1), int(left + rw.r - 1))
    else:
        box = support if support is not None else whole
    clipped = _intersect(box, height, width)
    area = _box_area(box)
    fraction = 1.0 - (_box_area(clipped) / area if clipped else 0.0)
    image_box = None
    if geometry is not None and clipped is not None:
        image_box = geometry.box_to_original(clipped)
    return UnitBox(
        layer, (y, x), input_shape, (int(rh.r), int(rw.r)), (as_fraction(rh.s), as_fraction(rw.s)),
        (as_fraction(rh.p), as_fraction(rw.p)), box, clipped, support,
        fraction, uniform=node.uniform, image_box=image_box, gated=node.gated,
    )  # fmt: skip
