"""The top activating units of a layer over a whole folder of pictures: :func:`top_units`.

Each picture of the folder goes through the model once, stopped at the layer (nothing after it runs). Per
channel, a running top-``k`` of ``(value, picture, y, x)`` is kept on the device and merged with each batch's own
top-``k`` (one ``torch.topk`` over the batch's flattened map, vectorised over channels), so activations are
held for one batch only and memory does not grow with the folder. Ties are ordered by value (descending), then
picture order, then ``y``, then ``x``: the order a plain sort of every unit of the folder gives.

Each winner is then placed in its picture: the unit's theoretical receptive field (the exact analysis of
:mod:`cnnviz.core.analysis.receptive`) in model-input pixels, mapped back to the original picture with the
picture's own :class:`~cnnviz.core.images.geometry.ImageGeometry` and clipped to it. Where the field reaches
beyond the picture (convolution padding, letterbox bars) the unit is flagged ``padding``; where the field is
global (after pooling, a vector layer) or cannot be derived, the crop is the whole picture, flagged by ``field``.

Memory: the pictures decoded ahead, one batch's forward pass to the layer (refused up front when it could not
fit) and ``channels * k`` kept values; the figures and defaults are in :mod:`cnnviz.core.budget`
(``FOLDER_PREFETCH``, ``TOP_UNITS_BATCH``, ``TOP_UNITS_K``).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.device import resolve_device
from cnnviz.core.analysis.failures import ForwardError, shape_of
from cnnviz.core.analysis.forward_budget import check_forward
from cnnviz.core.analysis.graph import (
    eval_mode,
    layer_graph,
    model_device,
    resolve_layer,
)
from cnnviz.core.analysis.receptive.boxes import Box
from cnnviz.core.analysis.receptive.effective import forward_until
from cnnviz.core.analysis.receptive.index import ReceptiveFieldIndex
from cnnviz.core.budget import TOP_UNITS_BATCH, TOP_UNITS_K
from cnnviz.core.errors import (
    ArgumentTypeError,
    CnnvizError,
    ImageLoadError,
    InvalidArgumentError,
    LayerError,
    is_out_of_memory,
    one_line,
)
from cnnviz.core.images.folder import iter_picture_batches, list_pictures
from cnnviz.core.images.geometry import ImageGeometry
from cnnviz.core.images.preprocess import Preprocess
from cnnviz.core.validate import as_whole_number, check_layer_name, check_module, describe

__all__ = ["TopUnit", "TopUnits", "top_units", "DEFAULT_K", "DEFAULT_BATCH_SIZE"]

DEFAULT_K = TOP_UNITS_K
DEFAULT_BATCH_SIZE = TOP_UNITS_BATCH

FIELDS = ("local", "gated", "measured", "global", "unknown")
"""What a unit's box is: the exact local field, a local field behind a global gate, a measured gradient support
(models that cannot be traced), the whole picture because every unit sees it, or the whole picture because the
field cannot be derived."""


@dataclass(frozen=True)
class TopUnit:
    """One of a channel's top units: where it is, how strongly it fired, and the picture part it sees.

    ``unit`` is ``(y, x)`` in the layer's map (``()`` for a vector layer). ``image_box`` is the receptive field
    in original-picture pixels, inclusive ``(top, left, bottom, right)``, clipped to the picture (None only when
    the whole field lies on padding). ``input_box`` is the unclipped field in model-input pixels; ``edges`` the
    unclipped field in original-picture pixel edges ``(y0, x0, y1, x1)`` (outside ``0..height``/``0..width``
    where it reaches past the picture). ``padding``: the field reaches outside the picture. ``field``: one of
    :data:`FIELDS`. ``index``: the picture's place in the run; ``size``: its original ``(height, width)``.
    """

    image: str
    unit: tuple[int, ...]
    value: float
    image_box: Box | None
    input_box: Box
    padding: bool
    field: str = "local"
    index: int = 0
    size: tuple[int, int] = (0, 0)
    edges: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def to_json(self) -> dict[str, Any]:
        """The entry of ``top_units.json``: image, unit, value, image_box, plus input_box and padding."""
        out: dict[str, Any] = {
            "image": self.image,
            "unit": list(self.unit),
            "value": self.value if math.isfinite(self.value) else None,
            "image_box": list(self.image_box) if self.image_box is not None else None,
            "input_box": list(self.input_box),
            "padding": self.padding,
        }
        if self.field != "local":
            out["field"] = self.field
        return out


@dataclass
class TopUnits:
    """The result of :func:`top_units`: per channel, its top units by value (descending).

    ``images`` counts the pictures read; ``skipped`` lists ``(path, reason)`` of the files that could not be.
    ``map_shape`` is the layer's ``(C, H, W)`` (``(C,)`` for a vector layer). ``cancelled``: the run was stopped
    early and holds what the pictures read so far gave. ``total`` is the number of picture files listed.
    """

    model: str
    layer: str
    k: int
    images: int
    skipped: list[tuple[str, str]]
    input_shape: tuple[int, int, int]
    map_shape: tuple[int, ...]
    channels: dict[int, list[TopUnit]]
    cancelled: bool = False
    total: int = 0
    device: str = "cpu"
    seconds: float = 0.0
    field: str = "local"
    notes: list[str] = _field(default_factory=list)

    @property
    def spatial(self) -> bool:
        """True when the layer has a spatial map (units are ``(y, x)``), False for a vector layer."""
        return len(self.map_shape) == 3

    def to_json(self) -> dict[str, Any]:
        """The document written as ``top_units.json`` (and printed by ``--format json``)."""
        return {
            "model": self.model,
            "layer": self.layer,
            "k": self.k,
            "images": self.images,
            "skipped": [{"image": path, "reason": reason} for path, reason in self.skipped],
            "input_shape": list(self.input_shape),
            "map_shape": list(self.map_shape),
            "field": self.field,
            "cancelled": self.cancelled,
            "channels": {
                str(c): [entry.to_json() for entry in entries]
                for c, entries in self.channels.items()
            },
        }


# -- arguments -----------------------------------------------------------------------------------------------------


def _check_k(k: Any) -> int:
    value = as_whole_number(k, "k (how many top units per channel)")
    if value < 1:
        raise InvalidArgumentError(f"k must be at least 1, not {value}.")
    return value


def _picture_paths(images: Any) -> list[str]:
    if isinstance(images, (str, os.PathLike)):
        if os.path.isdir(images):
            return [str(p) for p in list_pictures(images)]
        if not os.path.exists(images):
            raise ImageLoadError(
                f"The picture folder '{os.fspath(images)}' does not exist; give an existing folder."
            )
        return [os.fspath(images)]
    if isinstance(images, (bytes, bytearray)) or not isinstance(images, Iterable):
        raise ArgumentTypeError(
            f"images must be a folder or a list of picture paths, not {describe(images)}."
        )
    paths = []
    for item in images:
        if not isinstance(item, (str, os.PathLike)):
            raise ArgumentTypeError(
                f"images must be a folder or a list of picture paths; one item is {describe(item)}."
            )
        paths.append(os.fspath(item))
    if not paths:
        raise ImageLoadError("The list of pictures is empty; give at least one picture.")
    return paths


def _check_channels(channels: Any, count: int, layer: str) -> list[int]:
    if channels is None:
        return list(range(count))
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Iterable):
        channels = [channels]
    out: list[int] = []
    for c in channels:
        value = as_whole_number(c, "a channel")
        if not 0 <= value < count:
            raise LayerError(
                f"channel {value} is outside layer '{layer}', which has {count} channels "
                f"(0..{count - 1})."
            )
        if value not in out:
            out.append(value)
    if not out:
        raise InvalidArgumentError("No channel was given; give at least one, or None for all.")
    return out


def _preprocess_of(model: Any, preprocess: Any) -> Preprocess:
    chosen = preprocess if preprocess is not None else getattr(model, "preprocess", None)
    if chosen is None:
        raise ArgumentTypeError(
            "A bare torch module does not say how pictures become its input; pass preprocess= (e.g. "
            "cnnviz.core.images.Preprocess.imagenet()) or load the model with cnnviz.load_model."
        )
    if not isinstance(chosen, Preprocess):
        raise ArgumentTypeError(f"preprocess must be a Preprocess, not {describe(chosen)}.")
    return chosen


# -- the running top-k ---------------------------------------------------------------------------------------------


def _batch_top(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the ``k`` largest values and their positions, ties broken by the lowest position.

    One ``topk`` of ``k + 1`` per row finds them and says where a tie crosses the cut (the first value left
    out equals the last one kept). Only those rows are read again, for the lowest positions of the tied value:
    a ``topk`` of the smallest over a key that is the position where the value ties and ``n`` + the position
    elsewhere. Every key in a row differs (a key full of equal values is ``topk``'s slow case, and flat maps
    tie at the cut in most rows), and the positions come out in order. Entries are not sorted by value:
    :func:`_merge` orders them.
    """
    rows, n = values.shape
    if k >= n:  # every position is kept
        return values, torch.arange(n, device=values.device).repeat(rows, 1)
    top, pos = torch.topk(values, k + 1, dim=1)  # sorted, largest first
    edge, beyond = top[:, k - 1], top[:, k]
    top, pos = top[:, :k].contiguous(), pos[:, :k].contiguous()
    tied = torch.nonzero(beyond == edge).squeeze(1)
    if tied.numel():
        sub = values if tied.numel() == rows else values.index_select(0, tied)
        cut = edge.index_select(0, tied).unsqueeze(1)
        # the kept values above the tie come first (sorted); the rest of the k are the tie's lowest positions
        above = (top.index_select(0, tied) > cut).sum(1, keepdim=True)
        places = torch.arange(n, device=values.device)
        key = torch.where(sub == cut, places, places + n)
        first = torch.topk(key, k, dim=1, largest=False).values
        slot = torch.arange(k, device=values.device).unsqueeze(0)
        chosen = torch.where(
            slot < above,
            pos.index_select(0, tied),
            first.gather(1, (slot - above).clamp(min=0)),
        )
        pos.index_copy_(0, tied, chosen)
        top.index_copy_(0, tied, sub.gather(1, chosen))
    return top, pos


def _candidates(
    out: torch.Tensor, rows: torch.Tensor, everything: bool, k: int, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each picture's own top-``k`` per channel, as ``(channels, pictures * k)`` values and flat unit indices.

    The batch's top-``k`` of a channel lies among its pictures' own top-``k``, and taking those per picture
    reads the map where it lies (no copy of the batch's activations). The flat index of unit ``(y, x)`` of the
    ``n``-th picture of the run is ``n * H * W + y * W + x``, so sorting by it sorts by picture, then y, then x.
    """
    if not everything:
        out = out.index_select(1, rows)
    batch, channels = int(out.shape[0]), int(out.shape[1])
    values = out.reshape(batch * channels, -1)
    if values.dtype != torch.float32:
        values = values.float()
    positions = int(values.shape[1])
    top, pos = _batch_top(values, k)
    if bool(torch.isnan(top).any()):  # topk ranks NaN above everything: rank it below instead
        values = torch.nan_to_num(values, nan=-math.inf, posinf=math.inf, neginf=-math.inf)
        top, pos = _batch_top(values, k)
    kk = int(top.shape[1])
    picture = torch.arange(start, start + batch, device=out.device).view(batch, 1, 1) * positions
    index = pos.view(batch, channels, kk) + picture
    # (pictures, channels, k) -> (channels, pictures * k); pictures stay in order along the row
    return (
        top.view(batch, channels, kk).permute(1, 0, 2).reshape(channels, batch * kk),
        index.permute(1, 0, 2).reshape(channels, batch * kk),
    )


def _merge(
    best: tuple[torch.Tensor, torch.Tensor], new: tuple[torch.Tensor, torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best of two candidate sets, ordered by value descending, then position ascending."""
    values = torch.cat([best[0], new[0]], 1)
    index = torch.cat([best[1], new[1]], 1)
    order = torch.argsort(index, dim=1)
    values, index = torch.gather(values, 1, order), torch.gather(index, 1, order)
    order = torch.argsort(values, dim=1, descending=True, stable=True)[:, :k]
    return torch.gather(values, 1, order), torch.gather(index, 1, order)


# -- the run -------------------------------------------------------------------------------------------------------


def _runner(module: nn.Module, layer: str) -> tuple[Callable[[torch.Tensor], Any], str]:
    """A function running ``module`` up to ``layer`` (and no further), and the layer's key."""
    graph = layer_graph(module)
    if graph.compiled:
        raise LayerError(
            "a TorchScript archive runs as one compiled program, so its inner layers cannot be read; "
            "open the original model or a torch.export .pt2 file"
        )
    key = resolve_layer(graph, layer)
    if graph.traced:
        return graph.truncated_module(key), key
    return (lambda x: forward_until(module, x, key)), key


def _as_map(out: Any, layer: str) -> torch.Tensor:
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise LayerError(
            f"layer '{layer}' gives a {type(out).__name__}, not a tensor of activations."
        )
    if out.dim() not in (2, 4):
        raise LayerError(
            f"layer '{layer}' gives activations of shape {shape_of(out)}, which is neither a map "
            "(batch, channels, height, width) nor a vector (batch, channels); pick a convolution, pooling or "
            "linear layer."
        )
    return out


def _forward_failure(exc: Exception, layer: str, x: torch.Tensor) -> CnnvizError:
    if is_out_of_memory(exc):
        return ForwardError(
            f"The computer ran out of memory running a batch of {x.shape[0]} pictures to layer '{layer}'; "
            "use a smaller batch size."
        )
    return ForwardError(
        f"the forward pass to layer '{layer}' failed on a batch of shape {shape_of(x)}: {one_line(exc)}"
    )


def _on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` itself when it is already there, else a copy on ``device`` (the caller's model is left alone)."""
    if model_device(module) == device:
        return module
    return copy.deepcopy(module).to(device)


def _stopper(should_stop: Any) -> Callable[[], bool]:
    if should_stop is None:
        return lambda: False
    if hasattr(should_stop, "is_set"):
        return lambda: bool(should_stop.is_set())
    if callable(should_stop):
        return lambda: bool(should_stop())
    raise ArgumentTypeError(
        f"should_stop must be a function returning True to stop (or a threading.Event), not {describe(should_stop)}."
    )


def top_units(
    model: Any,
    images: Any,
    layer: str,
    k: int = DEFAULT_K,
    channels: Iterable[int] | int | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    progress: Callable[[int, int], Any] | None = None,
    should_stop: Any = None,
    preprocess: Preprocess | None = None,
) -> TopUnits:
    """Per channel of ``layer``, the ``k`` units (picture, y, x) with the highest activation over ``images``.

    ``model``: a model from :func:`cnnviz.load_model` (or an ``nn.Module`` with ``preprocess=`` given).
    ``images``: a folder (searched recursively; unreadable files are skipped and listed) or a list of picture
    paths. ``channels``: None for all, or the channel numbers. ``device``: ``"auto"`` (a CUDA GPU when there is
    one), ``"cpu"`` or ``"cuda"``; the model is copied there when it lives elsewhere, never moved.
    ``progress(done, total)`` is called after each batch with files consumed and files listed (it may raise to
    abort, as the app's cancel token does); ``should_stop()`` (or a ``threading.Event``) returning True ends the
    run after the current batch and returns what was found so far, marked ``cancelled``.

    A layer without a spatial map (after global pooling, a linear layer) gives the top pictures per channel,
    with ``unit == ()`` and the whole picture as the crop. Raises a CnnvizError subclass, with one sentence, for
    an empty folder, a folder with no readable picture, a ``k`` above the units available, an unknown layer or
    a channel out of range.
    """
    started = time.perf_counter()
    module = check_module(model)
    layer = check_layer_name(layer)
    k = _check_k(k)
    batch_size = as_whole_number(batch_size, "The batch size")
    if batch_size < 1:
        raise InvalidArgumentError(f"The batch size must be at least 1, not {batch_size}.")
    stop = _stopper(should_stop)
    if progress is not None and not callable(progress):
        raise ArgumentTypeError(
            f"progress must be a function (done, total), not {describe(progress)}."
        )
    prep = _preprocess_of(model, preprocess)
    input_shape = (prep.channels, *prep.size)
    target = resolve_device(device)

    run, _key = _runner(module, layer)  # an unknown layer is named before anything is read
    name = str(getattr(model, "name", None) or type(module).__name__)
    with torch.inference_mode(), eval_mode(module):
        probe = _as_map(run(torch.zeros((1, *input_shape), device=model_device(module))), layer)
    map_shape = tuple(int(s) for s in probe.shape[1:])
    del probe
    chosen = _check_channels(channels, map_shape[0], layer)
    positions = map_shape[1] * map_shape[2] if len(map_shape) == 3 else 1

    # k is checked against the units of the pictures actually read (after the run), never against the files
    # listed: a listed file may turn out unreadable.
    paths = _picture_paths(images)
    check_forward(module, input_shape, keep=[], batch=batch_size)

    work = _on_device(module, target)
    if work is not module:
        run, _key = _runner(work, layer)
    rows = torch.tensor(chosen, device=target)
    everything = chosen == list(range(map_shape[0]))
    best = (
        torch.empty((len(chosen), 0), device=target),
        torch.empty((len(chosen), 0), dtype=torch.int64, device=target),
    )
    read: list[str] = []
    geometries: list[ImageGeometry] = []
    skipped: list[tuple[str, str]] = []
    consumed = 0
    batches = iter_picture_batches(paths, prep, batch_size, should_stop=stop)
    with torch.inference_mode(), eval_mode(work, out_of_place=True):
        for batch in batches:
            skipped.extend((str(p), reason) for p, reason in batch.skipped)
            if len(batch):
                x = batch.tensor.to(target, non_blocking=True)
                try:
                    out = _as_map(run(x), layer)
                except CnnvizError:
                    raise
                except Exception as exc:
                    raise _forward_failure(exc, layer, x) from exc
                best = _merge(best, _candidates(out, rows, everything, k, batch.start), k)
                del out
                read.extend(str(p) for p in batch.paths)
                geometries.extend(batch.geometries)
            consumed = batch.done
            if progress is not None:
                progress(consumed, len(paths))
            if stop():
                break
    cancelled = consumed < len(paths)
    if not read and not cancelled:
        raise ImageLoadError(_none_readable(len(paths), skipped))
    if (
        not cancelled and len(read) * positions < k
    ):  # the units of the pictures read, not of the files listed
        raise InvalidArgumentError(_too_few(k, len(read), map_shape, layer, skipped=len(skipped)))

    values_cpu, index_cpu = best[0].cpu().tolist(), best[1].cpu().tolist()
    boxes = _FieldBoxes(module, input_shape, layer, map_shape)
    result: dict[int, list[TopUnit]] = {}
    for row, channel in enumerate(chosen):
        entries = []
        for value, flat in zip(values_cpu[row], index_cpu[row], strict=True):
            picture, offset = divmod(int(flat), positions)
            unit = divmod(offset, map_shape[2]) if len(map_shape) == 3 else ()
            entries.append(
                boxes.entry(read[picture], picture, geometries[picture], unit, float(value))
            )
        result[channel] = entries
    return TopUnits(
        model=name,
        layer=layer,
        k=k,
        images=len(read),
        skipped=skipped,
        input_shape=(int(input_shape[0]), int(input_shape[1]), int(input_shape[2])),
        map_shape=map_shape,
        channels=result,
        cancelled=cancelled,
        total=len(paths),
        device=str(target),
        seconds=time.perf_counter() - started,
        field=boxes.layer_field,
        notes=boxes.notes,
    )


def _too_few(
    k: int, pictures: int, map_shape: tuple[int, ...], layer: str, skipped: int = 0
) -> str:
    """The units a channel has over the pictures read (read × positions per map, or one per picture)."""
    read = f"{pictures} picture{'s' * (pictures != 1)} read"
    where = (
        f"{read} × {map_shape[1]}×{map_shape[2]} positions"
        if len(map_shape) == 3
        else f"{read}, one value each"
    )
    available = pictures * (map_shape[1] * map_shape[2] if len(map_shape) == 3 else 1)
    unread = f", {skipped} file{'s' * (skipped != 1)} skipped as unreadable" if skipped else ""
    return (
        f"k = {k} is more than the {available} units each channel of layer '{layer}' has over {where}"
        f"{unread}; use k {available} or less, or more pictures."
    )


def _none_readable(count: int, skipped: Sequence[tuple[str, str]]) -> str:
    first = skipped[0][1] if skipped else "no picture could be decoded"
    return (
        f"None of the {count} picture file(s) could be read (the first: {first}); "
        "check the files or pick another folder."
    )


class _FieldBoxes:
    """Each winner's receptive field, analysed once per unit and mapped to each picture."""

    def __init__(
        self,
        module: nn.Module,
        input_shape: tuple[int, int, int],
        layer: str,
        map_shape: tuple[int, ...],
    ):
        self.layer = layer
        self.input_shape = input_shape
        self.notes: list[str] = []
        self._cache: dict[tuple[int, ...], tuple[Box, Box | None, str]] = {}
        self._index: ReceptiveFieldIndex | None = None
        self.layer_field = "global"
        if len(map_shape) == 3:
            try:
                self._index = ReceptiveFieldIndex(module, input_shape)
                self.layer_field = "local"
            except CnnvizError as exc:
                self.layer_field = "unknown"
                self.notes.append(
                    f"The receptive field is not known ({one_line(exc)}): crops show whole pictures."
                )
        else:
            self.notes.append(
                f"Layer '{layer}' has no spatial map: each of its values sees the whole picture, so the "
                "top pictures are shown whole."
            )

    def _field(self, unit: tuple[int, ...]) -> tuple[Box, Box | None, str]:
        hit = self._cache.get(unit)
        if hit is not None:
            return hit
        _, height, width = self.input_shape
        whole = (0, 0, height - 1, width - 1)
        found: tuple[Box, Box | None, str] = (whole, whole, self.layer_field)
        if self._index is not None and len(unit) == 2:
            try:
                ub = self._index.box(self.layer, (unit[0], unit[1]), exact_support=False)
            except CnnvizError as exc:
                if self.layer_field != "unknown":
                    self.notes.append(
                        f"The receptive field is not known ({one_line(exc)}): crops show whole pictures."
                    )
                self.layer_field = "unknown"
                found = (whole, whole, "unknown")
            else:
                kind = (
                    "global"
                    if ub.global_
                    else "measured"
                    if ub.measured
                    else "gated"
                    if ub.gated
                    else "local"
                )
                if kind == "global":
                    self.layer_field = "global"
                found = (ub.box, ub.clipped_box, kind)
        self._cache[unit] = found
        return found

    def entry(
        self, image: str, index: int, geometry: ImageGeometry, unit: tuple[int, ...], value: float
    ) -> TopUnit:
        box, clipped, kind = self._field(unit)
        height, width = geometry.original_size
        if kind in ("global", "unknown"):
            whole = (0, 0, height - 1, width - 1)
            edges = (0.0, 0.0, float(height), float(width))
            return TopUnit(
                image, tuple(unit), value, whole, box, False, kind, index, (height, width), edges
            )
        edges = geometry.box_edges_to_original(box)
        image_box = geometry.box_to_original(clipped) if clipped is not None else None
        padding = edges[0] < 0 or edges[1] < 0 or edges[2] > height or edges[3] > width
        return TopUnit(
            image,
            tuple(unit),
            value,
            image_box,
            box,
            bool(padding),
            kind,
            index,
            (height, width),
            edges,
        )
