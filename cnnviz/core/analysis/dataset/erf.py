"""The data-set effective receptive field and its high-contribution area ratio (Ding et al., RepLKNet, CVPR 2022).

For a layer and one of its units, every picture contributes the magnitude of the input gradient of that unit:

* the scalar is ``s = sum_c y[c, uy, ux]``, the unit's activation summed over the layer's channels, one scalar
  per picture;
* its contribution map is ``|ds/dx|`` summed over the input's colour channels (H x W);
* the maps of the N pictures are averaged.

Pictures go through the model in batches. The gradient of the batch's sum of per-picture scalars is, for each
picture, exactly that picture's own gradient: in eval mode (BatchNorm uses its running statistics, Dropout is off)
pictures do not interact, so no term of one picture depends on another. The model is therefore always run in
eval mode (each module's own flag is restored afterwards), as every other analysis does, and only the input
gradient is computed (no weight gradients). The default unit is the centre of the layer's map, ``(H // 2, W // 2)``,
as in the literature.

The **high-contribution area ratio** for a share ``t`` (20%, 30%, 50%, 99%): the smallest square of odd side
``2r + 1`` centred on the unit's receptive-field centre, clipped to the input, that holds at least ``t`` of the
total contribution; the ratio is that square's area divided by ``H * W``. The centre is the middle of the
theoretical box ``((top + bottom) / 2, (left + right) / 2)`` rounded down (for an even-sized box, the upper and
left of the two middle pixels), then moved into the input if the box's middle lies in the padding. The unclipped
``side**2 / (H * W)`` exceeds 1 as soon as the square is wider than the input or runs over its border, and it
then counts padding that holds no contribution; the ratio reported is the *clipped* area over ``H * W``, so it
never exceeds 1 (and reaches 1 exactly when the square covers the whole input). The side itself, unclipped, is
reported as well. Where RepLKNet's script differs: it takes ``log10(1 + x)`` of the map first, relu's the unit and
the gradient, and starts at side 3 with a strict ``>``; here the contribution is the plain gradient magnitude and
side 1 counts, with ``>=``.

A unit whose gradient is zero on every picture (it does not depend on the input, or a ReLU is closed on all of
them) has no effective field: :func:`dataset_erf` says so instead of dividing by zero.

Memory: the backward pass keeps the outputs of every layer up to the chosen one for the whole batch. The batch is
sized so that those outputs, plus the largest one twice over for the gradients in flight, fit the memory budget
(estimated on meta tensors before anything is allocated; the figures, ``ERF_BATCH`` and ``ERF_GRADIENT_COPIES``,
are in :mod:`cnnviz.core.budget`); when not even one picture fits, :class:`~cnnviz.core.errors.MemoryBudgetError`
says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core import text
from cnnviz.core.analysis.forward_budget import estimate_forward
from cnnviz.core.analysis.graph import (
    LayerGraph,
    eval_mode,
    layer_graph,
    model_device,
    resolve_layer,
    unwrap_input,
)
from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
from cnnviz.core.analysis.receptive.boxes import Box, _layer_key
from cnnviz.core.analysis.receptive.effective import erf_forward_error, forward_until
from cnnviz.core.budget import (
    ADVICE,
    ERF_BATCH,
    ERF_GRADIENT_COPIES,
    ERF_PICTURES,
    memory_budget,
    model_param_bytes,
)
from cnnviz.core.errors import (
    ArgumentTypeError,
    CnnvizError,
    InvalidArgumentError,
    LayerError,
    MemoryBudgetError,
)
from cnnviz.core.text import nbytes
from cnnviz.core.validate import check_count, check_layer_name, check_module, check_unit, describe

__all__ = [
    "AREA_THRESHOLDS",
    "DEFAULT_BATCH",
    "DEFAULT_PICTURES",
    "DatasetERF",
    "ERFGrowth",
    "area_ratios",
    "dataset_erf",
    "erf_growth",
    "field_centre",
    "spatial_layers",
]

AREA_THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)
"""The shares of the total contribution the area ratio is reported for (RepLKNet's)."""

DEFAULT_PICTURES = ERF_PICTURES
"""Pictures averaged unless told otherwise (all of them when the folder has fewer)."""

DEFAULT_BATCH = ERF_BATCH
"""Pictures per forward and backward pass, lowered when the memory budget asks for it."""


@dataclass
class DatasetERF:
    """The averaged input-gradient magnitude of one unit over N pictures, and its high-contribution area ratios.

    ``heatmap`` (H x W, float64) is the mean over the pictures of ``|d unit / d input|`` summed over colour
    channels. ``area_ratio[t]`` and ``side[t]`` (t in :data:`AREA_THRESHOLDS`) are the clipped area ratio and the
    odd side of the smallest centred square holding ``t`` of the total; ``centre`` is that square's centre (input
    pixels). ``theoretical_box`` is the unit's receptive field by the formula (it may reach into the padding;
    None where it cannot be derived), ``theoretical_ratio`` its part inside the input over ``H * W``, and
    ``theoretical_square`` the ``(side, ratio)`` of the smallest centred odd square holding all of that part --
    the theoretical field measured by the rule of ``area_ratio`` (an even-sized box needs a square one wider).
    """

    layer: str
    unit: tuple[int, int]
    map_size: tuple[int, int]
    images: int
    input_shape: tuple[int, int, int]
    heatmap: np.ndarray
    area_ratio: dict[float, float]
    side: dict[float, int]
    centre: tuple[int, int]
    theoretical_box: Box | None
    theoretical_ratio: float | None
    theoretical_square: tuple[int, float] | None = None
    global_: bool = False
    layer_type: str = ""
    batch_size: int = DEFAULT_BATCH
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The machine-readable result (area ratios keyed by the share as text: ``"0.2"`` ... ``"0.99"``)."""
        out: dict[str, Any] = {
            "layer": self.layer,
            "type": self.layer_type,
            "unit": list(self.unit),
            "map_size": list(self.map_size),
            "images": self.images,
            "input_shape": list(self.input_shape),
            "area_ratio": {_key(t): round(r, 6) for t, r in self.area_ratio.items()},
            "side": {_key(t): s for t, s in self.side.items()},
            "centre": list(self.centre),
            "theoretical_box": list(self.theoretical_box) if self.theoretical_box else None,
            "theoretical_ratio": None
            if self.theoretical_ratio is None
            else round(self.theoretical_ratio, 6),
            "theoretical_square": None
            if self.theoretical_square is None
            else {
                "side": self.theoretical_square[0],
                "ratio": round(self.theoretical_square[1], 6),
            },
            "batch_size": self.batch_size,
            "seconds": round(self.seconds, 4),
        }
        if self.global_:
            out["global"] = True
        if self.skipped:
            out["skipped"] = [{"path": p, "reason": why} for p, why in self.skipped]
        return out


@dataclass
class ERFGrowth:
    """The effective field of the centre unit of every layer with a spatial map, in depth order.

    ``points`` holds one :class:`DatasetERF` per layer; ``silent`` names the layers whose centre unit had a zero
    gradient on every picture (no effective field to measure), which the plot leaves out.
    """

    points: list[DatasetERF]
    silent: list[str]
    images: int
    input_shape: tuple[int, int, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> list[dict[str, Any]]:
        """One entry per measured layer, with its depth (the position among the layers with a map)."""
        return [{"depth": i, **p.to_json()} for i, p in enumerate(self.points)]


def _key(t: float) -> str:
    return f"{t:g}"


# --------------------------------------------------------------------------------------------------------------
# The area ratio (pure NumPy)


def field_centre(box: Box | None, height: int, width: int) -> tuple[int, int]:
    """The pixel at the middle of an inclusive box, rounded down, moved into the input (the input's middle
    pixel without a box)."""
    if box is None:
        return ((height - 1) // 2, (width - 1) // 2)
    cy = (box[0] + box[2]) // 2
    cx = (box[1] + box[3]) // 2
    return (min(max(cy, 0), height - 1), min(max(cx, 0), width - 1))


def area_ratios(
    heatmap: np.ndarray, centre: tuple[int, int], thresholds: Sequence[float] = AREA_THRESHOLDS
) -> dict[float, tuple[int, float]]:
    """For each share ``t``: ``(side, ratio)`` of the smallest odd square centred on ``centre``, clipped to the map,
    whose sum is at least ``t`` of the map's total; ``ratio`` is the clipped area over ``H * W`` (see the module
    docstring). Raises InvalidArgumentError for a map whose total is zero."""
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2 or heat.size == 0:
        raise InvalidArgumentError(f"the contribution map must be H×W, not {list(heat.shape)}")
    h, w = heat.shape
    cy, cx = int(centre[0]), int(centre[1])
    if not (0 <= cy < h and 0 <= cx < w):
        raise InvalidArgumentError(f"the centre ({cy}, {cx}) is outside the {h}×{w} map")
    # A summed-area table gives every clipped square's sum at once; r runs until the square covers the map.
    table = np.zeros((h + 1, w + 1), dtype=np.float64)
    table[1:, 1:] = heat.cumsum(0).cumsum(1)
    total = table[h, w]
    if not total > 0:
        raise InvalidArgumentError(
            "the contribution map is zero everywhere: there is no area to measure"
        )
    r = np.arange(max(cy, h - 1 - cy, cx, w - 1 - cx) + 1)
    top, bottom = np.maximum(cy - r, 0), np.minimum(cy + r, h - 1) + 1
    left, right = np.maximum(cx - r, 0), np.minimum(cx + r, w - 1) + 1
    sums = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
    sums[-1] = total  # the whole map, exactly (no cancellation error on the last square)
    sums = np.maximum.accumulate(sums)  # rounding must not make a larger square hold less
    out: dict[float, tuple[int, float]] = {}
    for t in thresholds:
        i = min(int(np.searchsorted(sums, float(t) * total, side="left")), len(r) - 1)
        area = int((bottom[i] - top[i]) * (right[i] - left[i]))
        out[float(t)] = (int(2 * r[i] + 1), area / (h * w))
    return out


# --------------------------------------------------------------------------------------------------------------
# Pictures in batches


@dataclass
class _Batch:
    tensor: torch.Tensor
    skipped: list[tuple[str, str]]  # (file, why it could not be read)
    listed: int | None = None  # the pictures the source holds in all, when it is known


def _tensor_batches(tensor: torch.Tensor, batch: int) -> Iterator[_Batch]:
    for start in range(0, tensor.shape[0], batch):
        yield _Batch(tensor[start : start + batch], [], int(tensor.shape[0]))


def _stacked(items: Iterable[Any], batch: int) -> Iterator[_Batch]:
    """Tensors or loaded pictures (one each, or batches) regrouped into batches of ``batch``."""
    pending: list[torch.Tensor] = []
    count = 0
    for item in items:
        try:
            t = unwrap_input(item)
        except TypeError:
            raise ArgumentTypeError(
                "images must be a folder, picture files, a tensor or loaded pictures, "
                f"not {describe(item)}."
            ) from None
        if t.dim() != 4:
            raise InvalidArgumentError(
                f"each picture must be C×H×W or N×C×H×W, not a tensor of shape {list(t.shape)}."
            )
        pending.append(t)
        count += t.shape[0]
        while count >= batch:
            joined = torch.cat(pending)
            yield _Batch(joined[:batch], [])
            rest = joined[batch:]
            pending, count = ([rest] if rest.shape[0] else []), int(rest.shape[0])
    if count:
        yield _Batch(torch.cat(pending), [])


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def picture_batches(
    model: Any,
    images: Any,
    batch: int,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[_Batch]:
    """Batches of model inputs from a folder, picture files, a tensor (N x C x H x W) or loaded pictures.

    Folders and files go through the shared folder streamer with the model's own preprocessing.
    """
    if isinstance(images, torch.Tensor):
        tensor = images.unsqueeze(0) if images.dim() == 3 else images
        if tensor.dim() != 4:
            raise InvalidArgumentError(
                f"images must be N×C×H×W or C×H×W, not a tensor of shape {list(images.shape)}."
            )
        return _tensor_batches(tensor, batch)
    if hasattr(images, "tensor"):
        return _tensor_batches(unwrap_input(images), batch)
    paths: list[Any] | None = None
    if _is_path(images):
        from cnnviz.core.images.folder import list_pictures

        paths = list(list_pictures(images))
    elif isinstance(images, (list, tuple)) and images and all(_is_path(p) for p in images):
        paths = list(images)
    if paths is None:
        if isinstance(images, Iterable) and not isinstance(images, (str, bytes)):
            return _stacked(images, batch)
        raise ArgumentTypeError(
            "images must be a folder, picture files, a tensor or loaded pictures, "
            f"not {describe(images)}."
        )
    preprocess = getattr(model, "preprocess", None)
    if preprocess is None:
        raise InvalidArgumentError(
            "pictures read from files need the model's preprocessing: pass a loaded model "
            "(cnnviz.load_model) or the pictures as tensors."
        )
    return _streamed(paths, preprocess, batch, should_stop)


def _streamed(
    paths: list[Any], preprocess: Any, batch: int, should_stop: Callable[[], bool] | None
) -> Iterator[_Batch]:
    from cnnviz.core.images.folder import iter_picture_batches

    for b in iter_picture_batches(paths, preprocess, batch, should_stop=should_stop):
        yield _Batch(b.tensor, [(str(path), reason) for path, reason in b.skipped], len(paths))


# --------------------------------------------------------------------------------------------------------------
# The gradient pass


def spatial_layers(model: Any, input_shape: tuple[int, int, int]) -> list[str]:
    """The layers with a spatial map (an N x C x H x W output), in execution order."""
    index = ReceptiveFieldIndex(check_module(model), input_shape)
    graph = index.graph
    if graph.traced:
        keys = [k for k, is_container, _ in graph.ordered_keys() if not is_container]
    else:
        keys = graph.keys()
    out = []
    for key in keys:
        try:
            if index.map_size(key) is not None:
                out.append(key)
        except LayerError:
            continue
    return out


def _check_unit_arg(unit: Any) -> tuple[int, int] | None:
    """None for the centre, else (y, x)."""
    if isinstance(unit, str):
        if unit.strip().lower() in ("center", "centre"):
            return None
        raise InvalidArgumentError(
            f"The unit must be 'center' or two whole numbers (y, x), not '{unit}'."
        )
    return check_unit(unit)


def _batch_for_budget(module: nn.Module, key: str, shape: tuple[int, int, int], wanted: int) -> int:
    """The largest batch up to ``wanted`` whose backward pass to ``key`` fits the budget (module docstring)."""
    limit = memory_budget()
    if limit is None:
        return wanted
    estimate = estimate_forward(module, shape, keep=None)
    if not estimate.complete:
        return wanted
    params = model_param_bytes(module)
    steps = list(estimate.steps)
    upto = next((i for i, s in enumerate(steps) if s.key == key), len(steps) - 1)
    kept = steps[: upto + 1]
    held = (kept[-1].total - params) if kept else estimate.input
    largest = max([estimate.input, *(s.nbytes for s in kept)])
    per_picture = held + ERF_GRADIENT_COPIES * largest
    fits = int((limit - params) // per_picture) if per_picture > 0 else wanted
    if fits < 1:
        raise MemoryBudgetError(
            f"the gradient of layer '{key}' for one picture of {shape[0]}×{shape[1]}×{shape[2]} would "
            f"take {nbytes(params + per_picture)}, over the {nbytes(limit)} memory budget; use a smaller "
            f"input or an earlier layer, or {ADVICE}."
        )
    return max(1, min(wanted, fits))


class _Runner:
    """One model in eval mode, forward passes to chosen layers, and the per-layer accumulated gradients."""

    def __init__(self, module: nn.Module, graph: LayerGraph, keys: list[str], names: list[str]):
        self.module, self.graph, self.keys, self.names = module, graph, keys, names
        self.device = model_device(module)
        self.units: list[tuple[int, int] | None] = []
        self.map_sizes: list[tuple[int, int]] = []
        self.sums: list[torch.Tensor] = []
        self.count = 0

    def layer_type(self, i: int) -> str:
        """The type of layer ``i`` as the table names it (``Conv2d``, ``add`` ...)."""
        key, name = self.keys[i], self.names[i]
        if self.graph.traced:
            if (
                name in self.graph.containers
            ):  # a block: its own type, not that of its last operation
                return type(dict(self.module.named_modules()).get(name, self.module)).__name__
            return self.graph.node(key).type
        sub = dict(self.module.named_modules()).get(key.partition("@")[0])
        return type(sub).__name__ if sub is not None else ""

    def _outputs(self, x: torch.Tensor) -> list[Any]:
        graph = self.graph
        if len(self.keys) == 1:
            key = self.keys[0]
            out = (
                graph.truncated_module(key)(x)
                if graph.traced
                else forward_until(self.module, x, key)
            )
            outs = [out]
        elif graph.traced:
            _, values = graph.capture_module(frozenset(self.keys))(x)
            outs = [values[_output_of(graph, k)] if k in graph.containers else values[k]
                    for k in self.keys]  # fmt: skip
        else:
            outs = [forward_until(self.module, x, k) for k in self.keys]
        return [o[0] if isinstance(o, (tuple, list)) else o for o in outs]

    def add(self, batch: torch.Tensor, wanted_units: list[tuple[int, int] | None]) -> None:
        """Forward ``batch`` once and add each layer's summed |input gradient| to its total."""
        x = batch.detach().to(self.device, torch.float32).requires_grad_(True)
        try:
            outs = self._outputs(x)
        except CnnvizError:
            raise
        except Exception as exc:
            raise erf_forward_error(self.module, x[:1], self.names[0], exc) from exc
        if not self.units:
            for name, out, unit in zip(self.names, outs, wanted_units, strict=True):
                self.map_sizes.append(_map_size(name, out))
                self.units.append(_place_unit(name, unit, self.map_sizes[-1]))
            self.sums = [torch.zeros(x.shape[2:], dtype=torch.float64) for _ in outs]
        last = len(outs) - 1
        for i, (out, unit) in enumerate(zip(outs, self.units, strict=True)):
            assert unit is not None
            # One scalar per picture, summed over the batch: pictures do not interact in eval mode.
            target = out[:, :, unit[0], unit[1]].sum()
            if not target.requires_grad:  # a constant unit: its gradient is zero
                continue
            (grad,) = torch.autograd.grad(target, x, retain_graph=i < last, allow_unused=True)
            if grad is not None:
                self.sums[i] += grad.detach().abs().sum(dim=(0, 1)).to("cpu", torch.float64)
        self.count += x.shape[0]


def _output_of(graph: LayerGraph, key: str) -> str:
    out = graph.containers[key].output_key
    assert out is not None
    return out


def _map_size(layer: str, out: Any) -> tuple[int, int]:
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = (
            f"per picture is {text.dims(out.shape[1:])}, not C×H×W"
            if isinstance(out, torch.Tensor)
            else f"is a {type(out).__name__}"
        )
        raise LayerError(
            f"layer '{layer}' has no spatial map (its output {shape}); the effective receptive field "
            "needs a layer whose output is N×C×H×W, such as a convolution or pooling layer."
        )
    return (int(out.shape[2]), int(out.shape[3]))


def _place_unit(layer: str, unit: tuple[int, int] | None, size: tuple[int, int]) -> tuple[int, int]:
    hh, ww = size
    if unit is None:
        return (hh // 2, ww // 2)
    y, x = unit
    if not (0 <= y < hh and 0 <= x < ww):
        raise LayerError(
            f"unit ({y}, {x}) is outside layer '{layer}', whose map is {hh}×{ww}: "
            f"y must be 0..{hh - 1} and x 0..{ww - 1}."
        )
    return (y, x)


def _run(
    model: Any,
    images: Any,
    layers: list[str],
    units: list[tuple[int, int] | None],
    n: int,
    batch_size: int,
    should_stop: Callable[[], bool] | None,
    progress: Callable[[int, int], Any] | None = None,
) -> tuple[_Runner, tuple[int, int, int], list[tuple[str, str]], int]:
    """Every picture (up to ``n``) through the model, re-cut into batches the budget allows.

    ``progress(done, total)`` follows each gradient pass: pictures averaged so far, and the pictures that will be
    (``n``, or fewer when the source holds fewer readable ones).
    """
    if progress is not None and not callable(progress):
        raise ArgumentTypeError(
            f"progress must be a function (done, total), not {describe(progress)}."
        )
    listed: int | None = None

    def report() -> None:
        if progress is not None:
            total = n if listed is None else min(n, listed - len(skipped))
            progress(runner.count, max(total, runner.count))

    module = check_module(model)
    graph = layer_graph(module)
    if graph.compiled:
        raise LayerError(
            "the effective receptive field of a TorchScript archive cannot be taken layer by layer (it "
            "runs as one compiled program); open the original model or a torch.export .pt2 file."
        )
    keys = [
        _layer_key(graph, name) if graph.traced else resolve_layer(graph, name) for name in layers
    ]
    runner = _Runner(module, graph, keys, layers)
    skipped: list[tuple[str, str]] = []
    shape: tuple[int, int, int] | None = None
    batch = batch_size
    pending: list[torch.Tensor] = []
    queued = 0
    with torch.enable_grad(), eval_mode(module, out_of_place=True):
        for b in picture_batches(model, images, batch_size, should_stop):
            skipped.extend(b.skipped)
            listed = b.listed
            t = b.tensor
            if t.shape[0] == 0:
                continue
            if shape is None:
                shape = (int(t.shape[1]), int(t.shape[2]), int(t.shape[3]))
                batch = _batch_for_budget(module, keys[-1], shape, batch_size)
            elif tuple(t.shape[1:]) != shape:
                raise InvalidArgumentError(
                    f"all pictures must have the same shape; {list(t.shape[1:])} differs from {list(shape)}."
                )
            t = t[: n - runner.count - queued]
            pending.append(t)
            queued += t.shape[0]
            # The source's batches are re-cut to the size the budget allows.
            while queued >= batch:
                joined = torch.cat(pending)
                runner.add(joined[:batch], units)
                report()
                rest = joined[batch:]
                pending, queued = ([rest] if rest.shape[0] else []), int(rest.shape[0])
            if runner.count + queued >= n or (should_stop is not None and should_stop()):
                break
        if queued:
            runner.add(torch.cat(pending), units)
            report()
    if runner.count == 0 and should_stop is not None and should_stop():
        # nothing to average: not an error of the pictures, so not said as one
        raise InterruptedError("stopped before any picture was averaged")
    if runner.count == 0 or shape is None:
        where = f" in {os.fspath(images)}" if _is_path(images) else ""
        if skipped:
            raise InvalidArgumentError(
                f"{_unreadable(len(skipped), where)} ({skipped[0][1].rstrip('.')}); "
                "give a folder of readable PNG or JPEG pictures."
            )
        raise InvalidArgumentError(
            f"there are no pictures{where}; give a folder of PNG or JPEG pictures."
        )
    return runner, shape, skipped, batch


def _unreadable(count: int, where: str) -> str:
    if count == 1:
        return f"the one picture file{where} could not be read"
    return f"none of the {count} picture files{where} could be read"


def _result(
    runner: _Runner,
    i: int,
    index: ReceptiveFieldIndex | None,
    shape: tuple[int, int, int],
    skipped: list[tuple[str, str]],
    batch: int,
    seconds: float,
) -> DatasetERF | None:
    """The result of layer ``i``, None when its gradient is zero on every picture."""
    name, unit = runner.names[i], runner.units[i]
    assert unit is not None
    heat = (runner.sums[i] / runner.count).numpy()
    _, h, w = shape
    box: Box | None = None
    clipped: Box | None = None
    ratio: float | None = None
    global_ = False
    if index is not None:
        try:
            ub = index.box(name, unit, exact_support=False)
            box, global_, clipped = ub.box, ub.global_, ub.clipped_box
            ratio = 0.0 if clipped is None else (
                (clipped[2] - clipped[0] + 1) * (clipped[3] - clipped[1] + 1) / (h * w))  # fmt: skip
        except LayerError:
            box = (
                None  # a field that cannot be derived: the input's middle stands in for its centre
            )
    centre = field_centre(box, h, w)
    if not float(heat.sum()) > 0:
        return None
    found = area_ratios(heat, centre)
    square: tuple[int, float] | None = None
    if clipped is not None:
        # The theoretical field measured by the same rule: the smallest centred odd square holding all of it.
        inside = np.zeros((h, w))
        inside[clipped[0] : clipped[2] + 1, clipped[1] : clipped[3] + 1] = 1.0
        square = area_ratios(inside, centre, (1.0,))[1.0]
    return DatasetERF(
        name, unit, runner.map_sizes[i], runner.count, shape, heat,
        {t: r for t, (_, r) in found.items()}, {t: s for t, (s, _) in found.items()}, centre, box, ratio,
        square, global_, runner.layer_type(i), batch, list(skipped), seconds,
    )  # fmt: skip


def _theory(model: Any, shape: tuple[int, int, int]) -> ReceptiveFieldIndex | None:
    try:
        return ReceptiveFieldIndex(check_module(model), shape)
    except CnnvizError:
        return None


def _check_common(n: Any, batch_size: Any) -> tuple[int, int]:
    count = check_count(n, "The number of pictures (n)") if n is not None else DEFAULT_PICTURES
    batch = check_count(batch_size, "The batch size") if batch_size is not None else DEFAULT_BATCH
    return count, batch


def dataset_erf(
    model: Any,
    images: Any,
    layer: str,
    unit: Any = "center",
    *,
    n: int | None = DEFAULT_PICTURES,
    batch_size: int | None = DEFAULT_BATCH,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> DatasetERF:
    """The effective receptive field of one unit of ``layer`` averaged over up to ``n`` pictures.

    ``images``: a folder or picture files (read with the model's preprocessing; ``model`` is then a loaded
    model), a tensor N x C x H x W, or loaded pictures. ``unit``: ``"center"`` (the middle of the layer's map,
    ``(H // 2, W // 2)``) or ``(y, x)``. What is computed, how the area ratio is defined and how the batch is
    bounded by the memory budget: see the module docstring. ``should_stop`` ends the pass after the current
    batch (the result then averages the pictures done); ``progress(done, total)`` is called after each pass with
    the pictures averaged and the pictures to average (it may raise to abort); a stop before the first pass
    raises ``InterruptedError``. Raises a CnnvizError with one sentence for no readable
    picture, an unknown layer, a layer without a spatial map, a unit outside the map, or a unit whose gradient
    is zero on every picture.
    """
    t0 = time.perf_counter()
    check_module(model)
    layer = check_layer_name(layer)
    wanted = _check_unit_arg(unit)
    count, batch = _check_common(n, batch_size)
    runner, shape, skipped, used = _run(
        model, images, [layer], [wanted], count, batch, should_stop, progress
    )
    result = _result(
        runner, 0, _theory(model, shape), shape, skipped, used, time.perf_counter() - t0
    )
    if result is None:
        uy, ux = runner.units[0] or (0, 0)
        raise LayerError(
            f"unit ({uy}, {ux}) of layer '{layer}' does not depend on the input on these {runner.count} "
            "pictures (its gradient is zero everywhere), so it has no effective receptive field; pick another "
            "unit or layer."
        )
    return result


def erf_growth(
    model: Any,
    images: Any,
    layers: Sequence[str] | None = None,
    *,
    n: int | None = DEFAULT_PICTURES,
    batch_size: int | None = DEFAULT_BATCH,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> ERFGrowth:
    """The data-set effective field of the centre unit of each layer with a spatial map (or of ``layers``).

    One forward pass per batch serves every layer; each layer then takes its own input gradient. How the
    layers' fields grow with depth, next to their theoretical fields, is what :mod:`cnnviz.core.present.erfplot`
    draws. ``should_stop`` and ``progress`` as for :func:`dataset_erf`.
    """
    t0 = time.perf_counter()
    module = check_module(model)
    count, batch = _check_common(n, batch_size)
    if layers is None:
        shape = _first_shape(model, images)
        names = spatial_layers(module, shape)
        if not names:
            raise LayerError(
                "the model has no layer with a spatial map; the effective receptive field needs one."
            )
    else:
        names = [check_layer_name(name) for name in layers]
        if not names:
            raise InvalidArgumentError(
                "give at least one layer, or None for every layer with a spatial map."
            )
    runner, shape, skipped, used = _run(
        model, images, names, [None] * len(names), count, batch, should_stop, progress
    )
    index = _theory(model, shape)
    points, silent = [], []
    seconds = time.perf_counter() - t0
    for i, name in enumerate(names):
        res = _result(runner, i, index, shape, skipped, used, seconds)
        if res is None:
            silent.append(name)
        else:
            points.append(res)
    return ERFGrowth(points, silent, runner.count, shape, list(skipped), seconds)


def _first_shape(model: Any, images: Any) -> tuple[int, int, int]:
    """The input shape the pictures will have: a tensor's own, else the model's."""
    if isinstance(images, torch.Tensor) and images.dim() in (3, 4):
        return tuple(int(s) for s in images.shape[-3:])  # type: ignore[return-value]
    if hasattr(images, "tensor"):
        return tuple(int(s) for s in unwrap_input(images).shape[-3:])  # type: ignore[return-value]
    if isinstance(images, (list, tuple)) and images and not _is_path(images[0]):
        return tuple(int(s) for s in unwrap_input(images[0]).shape[-3:])  # type: ignore[return-value]
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise InvalidArgumentError(
            "the input shape is not known: pass a loaded model or the pictures as tensors."
        )
    return tuple(int(s) for s in shape)  # type: ignore[return-value]
