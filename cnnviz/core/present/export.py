"""Writers for everything the app exports: PNG, SVG, JSON, CSV, Markdown -- all written atomically.

Every file goes through :func:`cnnviz.core.fileio.atomic_writer` (a temporary file in the destination folder,
flushed to disk, then renamed over the target), so a crash or a full disk never leaves a half-written file behind.
:func:`export_layers` is the whole ``cnnviz export`` job (also used by the app's "all layers" export); its
manifest.json always lists exactly the files the run has written, even when it fails or is cancelled part-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.core import text
from cnnviz.core.errors import CnnvizError, LayerError
from cnnviz.core.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    folder_write_problem,
    is_cancelled,
    write_json,
)
from cnnviz.core.present import tables
from cnnviz.core.present.captions import grid_caption, unit_caption
from cnnviz.core.present.colormaps import colormap_lut
from cnnviz.core.present.figures import (
    Figure,
    encode_png,
    feature_grid_figure,
    figure_to_svg,
    render_figure,
    rf_overlay_figure,
)
from cnnviz.core.present.mosaic import feature_mosaic
from cnnviz.core.present.view import NORMALIZATIONS, ViewState

__all__ = [
    "EXPORT_KINDS",
    "ExportResult",
    "ExportSnapshot",
    "default_file_name",
    "export_layers",
    "export_problem",
    "export_view",
    "figure_bytes",
    "layer_file_stem",
    "unit_point",
    "view_figure",
    "write_figure",
    "write_png",
    "write_summary",
]

PathLike = str | os.PathLike[str]


def write_png(path: PathLike, rgba: np.ndarray, text: dict[str, str] | None = None) -> Path:
    """A uint8 RGBA/RGB/gray array as PNG (``text`` stored as PNG text chunks), atomically."""
    return atomic_write_bytes(path, encode_png(rgba, text))


def _metadata(fig: Figure) -> dict[str, str]:
    from cnnviz._version import __version__

    meta = {"Software": f"cnnviz {__version__}"}
    meta.update(fig.metadata)
    if fig.caption:
        meta.setdefault("Description", "\n".join(fig.caption))
    return meta


def write_figure(path: PathLike, fig: Figure) -> Path:
    """Write a figure as PNG or SVG, chosen by the file suffix (``.png`` / ``.svg``)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix in (".png", ".svg"):
        return atomic_write_bytes(target, figure_bytes(fig, suffix[1:]))
    raise CnnvizError(
        f"cannot export a picture as '{suffix or target.name}'; use a .png or .svg file name"
    )


def write_summary(path: PathLike, summary: Any) -> Path:
    """The table as CSV (``.csv``) or Markdown (``.md``/``.markdown``), atomically."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        return atomic_write_text(target, tables.to_csv(summary))
    if suffix in (".md", ".markdown"):
        return atomic_write_text(target, tables.to_markdown(summary))
    raise CnnvizError(
        f"cannot export the table as '{suffix or target.name}'; use a .csv or .md file name"
    )


# --------------------------------------------------------------------------------------------------------------
# Exporting layers (the `cnnviz export` job)


def layer_file_stem(layer: str) -> str:
    """A file-name-safe version of a layer name (``layer1.0.relu@1`` -> ``layer1.0.relu_1``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer).strip("._")
    return stem or "layer"


def _figure_meta(
    model_name: str, layer: str, maps_shape: Sequence[int], box: Any | None
) -> dict[str, str]:
    """PNG text chunks of an exported figure: the model, the layer, the maps' shape (a machine field,
    so ``x``) and, when a unit is shown, the unit and its box."""
    meta = {
        "Title": f"{model_name} {layer}",
        "cnnviz.model": model_name,
        "cnnviz.layer": str(layer),
        "cnnviz.shape": text.dims(maps_shape, sep="x"),
    }
    if box is not None:
        meta["cnnviz.unit"] = f"{box.unit[0]},{box.unit[1]}"
        meta["cnnviz.box"] = str(list(box.box))
    return meta


@dataclass
class ExportResult:
    """What :func:`export_layers` wrote (``manifest`` is also written as manifest.json)."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False


def unit_point(unit_box: Any, geometry: Any = None) -> tuple[float, float] | None:
    """The picture point a unit looks at: the centre of its receptive-field box, in original-picture pixels
    (pixel-index coordinates) when ``geometry`` is given, else in model-input pixels.

    None without a unit (``unit_box`` None) or for a unit that sees the whole input (no one spot).
    """
    if unit_box is None or getattr(unit_box, "global_", False):
        return None
    cy = (unit_box.box[0] + unit_box.box[2]) / 2
    cx = (unit_box.box[1] + unit_box.box[3]) / 2
    if geometry is None:
        return (float(cy), float(cx))
    return geometry.point_to_original(cy, cx)


def _output_shape(activation: Any) -> list[int]:
    """A layer output's shape without the batch of one (what the table shows), for the first of several."""
    if isinstance(activation, (tuple, list)) and activation:
        activation = activation[0]
    shape = [int(v) for v in getattr(activation, "shape", ())]
    return shape[1:] if len(shape) >= 2 and shape[0] == 1 else shape


def _check_point(point: Any, image: Any) -> tuple[float, float]:
    try:
        y, x = (float(v) for v in point)
    except (TypeError, ValueError):
        raise CnnvizError(
            f"the point {point!r} is not Y,X: give two numbers in picture pixels, e.g. 120,80"
        ) from None
    size = getattr(getattr(image, "geometry", None), "original_size", None)
    if size is not None and not (0 <= y < size[0] and 0 <= x < size[1]):
        raise CnnvizError(
            f"the point ({text.num(y)}, {text.num(x)}) is outside the picture, which is "
            f"{text.dims(size)} (height × width) pixels; give Y from 0 to {size[0] - 1} and X from 0 "
            f"to {size[1] - 1}"
        )
    return (y, x)


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """The file contents of a figure as ``png`` or ``svg`` (with the export metadata)."""
    meta = _metadata(fig)
    if fmt == "png":
        return encode_png(render_figure(fig), meta)
    return figure_to_svg(Figure(fig.image, fig.shapes, fig.caption, meta)).encode("utf-8")


def _workers() -> int:
    # PNG encoding (zlib) and drawing release the GIL, so threads use every core.
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class _Layer:
    """One layer prepared for writing: its manifest entry and its files, pictures still being encoded."""

    index: int
    name: str
    entry: dict[str, Any]
    files: list[tuple[str, str, Any]]  # (manifest key, file name, Future of bytes or a JSON object)


def export_layers(
    model: Any,
    image: Any,
    out_dir: PathLike,
    *,
    layers: Sequence[str] | None = None,
    unit: tuple[int, int] | None = None,
    point: tuple[float, float] | None = None,
    cmap: str = "viridis",
    norm: str = "channel",
    sort: bool = False,
    effective_rf: bool = True,
    formats: Iterable[str] = ("png",),
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Any = None,
) -> ExportResult:
    """Write each layer's feature-map grid (and, with ``unit`` or ``point``, its receptive-field overlay and JSON).

    ``model`` is a LoadedModel, ``image`` a LoadedImage for it; ``layers`` None means every captured layer.
    ``unit`` is one ``(y, x)`` in every layer (for one layer); ``point`` is a picture point ``(y, x)`` in
    original-picture pixels, and each layer shows the unit whose receptive-field centre is nearest to it (the
    same spot in every layer, as the app keeps it when switching layers). For explicitly named layers a unit
    outside the map is an error; with all layers such layers get no overlay (the manifest says why).
    ``progress(done, total, layer)`` is called after each layer's files are written; ``cancel`` (an Event or a
    callable) stops between layers.

    The folder is created only when the first file is written, so a run that fails or is cancelled before
    that leaves the destination as it was. manifest.json is rewritten after every file and always lists exactly
    the files this run wrote; ``complete`` is true only for a finished run, and a failed one records ``error``.
    Pictures are drawn and encoded on a few threads while the next layers are prepared; files are written in
    layer order.
    """
    from cnnviz._version import __version__
    from cnnviz.core.analysis.capture import capture
    from cnnviz.core.analysis.receptive import (
        ReceptiveFieldIndex,
        effective_receptive_field,
        unit_at_input,
    )
    from cnnviz.core.analysis.summary import summarize

    colormap_lut(cmap)  # unknown names fail before any work
    if norm not in NORMALIZATIONS:
        raise CnnvizError(
            f"unknown normalisation '{norm}'; choose one of {', '.join(NORMALIZATIONS)}"
        )
    if unit is not None and point is not None:
        raise CnnvizError("give either a unit or a picture point, not both")
    formats = tuple(f.lower().lstrip(".") for f in formats)
    for fmt in formats:
        if fmt not in ("png", "svg"):
            raise CnnvizError(f"cannot export pictures as '{fmt}'; use png or svg")
    if not os.fspath(out_dir).strip():
        raise CnnvizError("the output folder name is empty; give a folder such as 'export'")
    folder = Path(out_dir)
    problem = folder_write_problem(folder, may_create=True)
    if problem is not None:
        raise CnnvizError(
            f"cannot export into '{folder}': {problem}; choose a folder you can write to"
        )
    geometry = getattr(image, "geometry", None)
    if point is not None:
        point = _check_point(point, image)

    explicit = layers is not None
    result = capture(model, image, layers=list(layers) if layers is not None else None)
    names = list(layers) if layers is not None else list(result.keys())
    fields: dict[str, Any] = {}
    try:
        summary = summarize(model, receptive_fields=point is not None)
        types = {r.name: r.type for r in summary.rows}
        fields = {r.name: r.rf for r in summary.rows}
    except CnnvizError:
        types = {}
    model_name = getattr(model, "name", type(getattr(model, "module", model)).__name__)
    rf_index = None
    if unit is not None or point is not None:
        rf_index = ReceptiveFieldIndex(model)
    model_point = None
    if point is not None:
        model_point = geometry.point_from_original(*point) if geometry is not None else point

    out = ExportResult(folder)
    entries: list[dict[str, Any]] = []
    head = {
        "cnnviz_version": __version__,
        "model": model_name,
        "image": getattr(image, "path", None),
        "input_shape": list(getattr(model, "input_shape", []) or []),
        "unit": list(unit) if unit is not None else None,
        "point": list(point) if point is not None else None,
        "cmap": cmap,
        "norm": norm,
        "sorted": bool(sort),
    }
    manifest_path = folder / "manifest.json"
    created: list[Path] = []

    def manifest(complete: bool, error: str | None = None) -> dict[str, Any]:
        listed = [e for e in entries if e["files"]]
        extra = {"error": error} if error is not None else {}
        return dict(head, cancelled=out.cancelled, complete=complete, **extra, layers=listed)

    def write(entry: dict[str, Any], key: str, name: str, payload: Any) -> None:
        if not out.files:
            created.extend(_make_folder(folder))
        if isinstance(payload, Future):
            path = atomic_write_bytes(folder / name, payload.result())
        else:
            path = write_json(folder / name, payload)
        out.files.append(path)
        entry["files"][key] = path.name
        # Rewritten (atomically) after every file, so that whenever the run stops -- an error, a
        # cancellation, a kill -- the manifest describes exactly what is in the folder. No fsync and no
        # indentation for these (the C encoder): a killed process loses nothing from the page cache, and
        # the last one is durable and pretty.
        data = json.dumps(manifest(complete=False), ensure_ascii=False) + "\n"
        atomic_write_bytes(manifest_path, data.encode("utf-8"), durable=False)

    def layer_unit(name: str, entry: dict[str, Any]) -> tuple[int, int] | None:
        if model_point is None:
            return unit
        activation = result[name]
        if isinstance(activation, (tuple, list)) and activation:
            activation = activation[0]
        shape = tuple(getattr(activation, "shape", ()))
        size = (int(shape[2]), int(shape[3])) if len(shape) == 4 else None
        chosen = unit_at_input(fields.get(name), model_point, size)
        if chosen is None:
            why = (
                "this layer has no spatial map"
                if size is None
                else "every unit of this layer sees the whole input"
            )
            entry["rf_skipped"] = f"{why}, so no unit looks at one spot of the picture"
            return None
        entry["unit"] = list(chosen)
        return chosen

    def prepare(index: int, name: str, stem: str, pool: ThreadPoolExecutor) -> _Layer:
        activation = result[name]
        mosaic = feature_mosaic(activation, cmap=cmap, norm=norm, sort=sort)
        shape = _output_shape(activation)
        entry: dict[str, Any] = {
            "layer": name,
            "type": types.get(name),
            "shape": shape,
            "files": {},
        }
        files: list[tuple[str, str, Any]] = []
        box = None
        chosen = layer_unit(name, entry)
        if chosen is not None and rf_index is not None:
            try:
                box = rf_index.box(name, chosen, geometry)
            except LayerError as exc:
                if explicit and point is None:
                    raise
                entry["rf_skipped"] = str(exc)
        caption = grid_caption(model_name, name, types.get(name), mosaic, box, shape=shape)
        meta = _figure_meta(model_name, name, shape, box)
        grid_fig = feature_grid_figure(
            mosaic, caption=caption, unit=chosen if box is not None else None, metadata=meta
        )
        for fmt in formats:
            files.append(
                (f"grid_{fmt}", f"{stem}_grid.{fmt}", pool.submit(figure_bytes, grid_fig, fmt))
            )
        if box is not None and chosen is not None:
            unit_json = box.to_json()
            heat = None
            if effective_rf:
                erf = effective_receptive_field(model, image, name, chosen)
                heat = erf.heatmap
                entry["effective_rf"] = {
                    "support_box": list(erf.support_box) if erf.support_box else None
                }
            fig = rf_overlay_figure(image.display, image.display_geometry, geometry, box, heatmap=heat,
                                    caption=[caption[0], *unit_caption(box)], metadata=meta)  # fmt: skip
            for fmt in formats:
                files.append((f"rf_{fmt}", f"{stem}_rf.{fmt}", pool.submit(figure_bytes, fig, fmt)))
            files.append(("rf_json", f"{stem}_rf.json", unit_json))
        return _Layer(index, name, entry, files)

    def flush(layer: _Layer) -> bool:
        """Write one prepared layer; False when the run was cancelled before it."""
        if is_cancelled(cancel):
            out.cancelled = True
            return False
        entries.append(layer.entry)
        for key, file_name, payload in layer.files:
            write(layer.entry, key, file_name, payload)
        if progress is not None:
            progress(layer.index + 1, len(names), layer.name)
        return True

    workers = _workers()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cnnviz-export")
    try:
        used: set[str] = set()
        pending: deque[_Layer] = deque()
        for i, name in enumerate(names):
            if is_cancelled(cancel):
                break
            stem = layer_file_stem(name)
            while stem in used:
                stem += "_"
            used.add(stem)
            pending.append(prepare(i, name, stem, pool))
            # A few layers ahead keep every thread busy; more would only hold pictures in memory.
            while len(pending) > 2 * workers:
                if not flush(pending.popleft()):
                    pending.clear()
                    break
            if out.cancelled:
                break
        while pending and flush(pending.popleft()):
            pass
        if is_cancelled(cancel) and len(entries) < len(names):
            out.cancelled = True
    except BaseException as exc:
        pool.shutdown(wait=True, cancel_futures=True)
        if out.files:
            _record_failure(manifest_path, manifest(False, str(exc) or type(exc).__name__))
        else:
            _remove_folders(created)
        raise
    pool.shutdown(wait=True, cancel_futures=True)

    out.manifest = manifest(complete=not out.cancelled)
    if out.files:
        out.files.append(write_json(manifest_path, out.manifest))
    return out


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` (and missing parents); returns the folders created, deepest first."""
    missing: list[Path] = []
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnvizError(
            f"cannot create the output folder '{folder}': {exc.strerror or exc}; "
            "choose a folder you can write to"
        ) from exc
    return missing


def _remove_folders(created: list[Path]) -> None:
    """Remove the folders a failed run created before it wrote anything (only while still empty)."""
    for path in created:
        with contextlib.suppress(OSError):
            path.rmdir()


def _record_failure(manifest_path: Path, manifest: dict[str, Any]) -> None:
    """Note the error in the manifest; if even that fails, remove a manifest that could be out of date."""
    try:
        write_json(manifest_path, manifest)
    except CnnvizError:
        with contextlib.suppress(OSError):
            manifest_path.unlink()


# --------------------------------------------------------------------------------------------------------------
# Exporting what a view shows (the app's File > Export)

EXPORT_KINDS = ("grid_png", "grid_svg", "channel_png", "rf_png", "rf_svg", "table_csv", "table_md")
"""What :func:`export_view` writes: the layer's grid, one channel, the unit's overlay, or the table."""


@dataclass(frozen=True)
class ExportSnapshot:
    """Everything an export of the current view needs, taken at once so the export can run in the
    background while the view moves on.

    ``box`` is the selected unit's box (``None`` without a selected unit), ``unit_channel`` the channel the
    unit was picked in, ``erf_heatmap`` the effective receptive field of that unit (when computed),
    ``activation`` the shown layer's output and ``image`` the LoadedImage it came from.
    """

    model_name: str
    layer: str | None
    view: ViewState
    layer_type: str | None = None
    activation: Any = None
    box: Any = None
    unit_channel: int | None = None
    erf_heatmap: Any = None
    image: Any = None
    summary: Any = None

    def channel_for(self, kind: str) -> int | None:
        """The channel a one-channel export shows: the view's, else the one the unit was picked in."""
        if self.view.channel is not None or kind != "channel_png":
            return self.view.channel
        return self.unit_channel


def _check_kind(kind: str) -> None:
    if kind not in EXPORT_KINDS:
        raise CnnvizError(f"unknown export '{kind}'; choose one of {', '.join(EXPORT_KINDS)}")


def export_problem(kind: str, snapshot: ExportSnapshot) -> str | None:
    """Why ``kind`` cannot be exported from ``snapshot`` yet (a sentence), or ``None`` when it can."""
    _check_kind(kind)
    if kind.startswith("table"):
        return None if snapshot.summary is not None else "no model is loaded yet"
    if snapshot.activation is None or snapshot.layer is None:
        return "no feature maps are shown yet"
    if kind.startswith("rf") and snapshot.box is None:
        return "select a unit first: click a pixel of a feature map"
    if kind == "channel_png" and snapshot.channel_for(kind) is None:
        return "pick a channel first: click or double-click one of the feature maps"
    return None


def default_file_name(kind: str, snapshot: ExportSnapshot) -> str:
    """The file name an export of ``kind`` suggests, e.g. ``resnet18_layer1.0_rf_3_4.png``."""
    _check_kind(kind)
    model = layer_file_stem(snapshot.model_name or "model")
    layer = layer_file_stem(snapshot.layer or "layer")
    if kind.startswith("table"):
        return f"{model}_table.{'csv' if kind.endswith('csv') else 'md'}"
    if kind.startswith("rf"):
        unit = snapshot.view.unit or (0, 0)
        return f"{model}_{layer}_rf_{unit[0]}_{unit[1]}.{kind[-3:]}"
    if kind == "channel_png":
        channel = snapshot.channel_for(kind)
        return f"{model}_{layer}_channel{channel if channel is not None else 0}.png"
    return f"{model}_{layer}.{kind[-3:]}"


def export_view(kind: str, path: PathLike, snapshot: ExportSnapshot) -> Path:
    """Write one export of what the view shows (``kind`` from :data:`EXPORT_KINDS`) to ``path``, atomically.

    Raises :class:`CnnvizError` with :func:`export_problem`'s sentence when there is nothing to export.
    """
    problem = export_problem(kind, snapshot)
    if problem is not None:
        raise CnnvizError(f"nothing to export: {problem}")
    if kind.startswith("table"):
        return write_summary(path, snapshot.summary)
    return write_figure(path, view_figure(kind, snapshot))


def view_figure(kind: str, snapshot: ExportSnapshot) -> Figure:
    """The figure a picture export of ``kind`` shows (``grid_*``, ``channel_png`` or ``rf_*``): what
    :func:`export_view` writes, and what a notebook displays for the same view."""
    problem = export_problem(kind, snapshot)
    if problem is not None:
        raise CnnvizError(f"nothing to export: {problem}")
    if kind.startswith("table"):
        raise CnnvizError(f"'{kind}' is a table, not a picture; write it with export_view")
    view, box, layer = snapshot.view, snapshot.box, str(snapshot.layer)
    shape = _output_shape(snapshot.activation)
    name, layer_type = snapshot.model_name, snapshot.layer_type
    if kind.startswith("rf"):
        mosaic = feature_mosaic(snapshot.activation, cmap=view.cmap, norm=view.norm)
        caption = [
            grid_caption(name, layer, layer_type, mosaic, shape=shape)[0],
            *unit_caption(box),
        ]
        meta = _figure_meta(name, layer, shape, box)
        image = snapshot.image
        fig = rf_overlay_figure(image.display, image.display_geometry, image.geometry, box,
                                heatmap=snapshot.erf_heatmap, caption=caption, metadata=meta)  # fmt: skip
    else:
        shown = snapshot.channel_for(kind) if kind == "channel_png" else None
        mosaic = feature_mosaic(
            snapshot.activation, cmap=view.cmap, norm=view.norm, sort=view.sort, channel=shown
        )
        caption = grid_caption(name, layer, layer_type, mosaic, box, shape=shape)
        meta = _figure_meta(name, layer, shape, box)
        fig = feature_grid_figure(mosaic, caption=caption, unit=box.unit if box is not None else None,
                                  channel=snapshot.unit_channel, metadata=meta)  # fmt: skip
    return fig
