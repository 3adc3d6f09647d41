"""Writers for everything the app exports: PNG, SVG, JSON, CSV, Markdown -- all written atomically.

Every file goes through :func:`cnnviz.core.fileio.atomic_writer` (a temporary file in the destination folder,
flushed to disk, then renamed over the target), so a crash or a full disk never leaves a half-written file behind.
:func:`export_layers` is the whole ``cnnviz export`` job (also used by the app's "all layers" export); its
manifest.json always lists exactly the files the run has written, even when it fails or is cancelled part-way.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.core import render, text
from cnnviz.core.errors import CnnvizError, LayerError
from cnnviz.core.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    folder_write_problem,
    is_cancelled,
    write_json,
)
from cnnviz.core.formatting import rf_cells

__all__ = [
    "ExportResult",
    "atomic_write_bytes",
    "atomic_write_text",
    "export_layers",
    "layer_file_stem",
    "summary_table",
    "summary_to_csv",
    "summary_to_markdown",
    "write_figure",
    "write_json",
    "write_png",
    "write_summary",
]

PathLike = str | os.PathLike[str]


def write_png(path: PathLike, rgba: np.ndarray, text: dict[str, str] | None = None) -> Path:
    """A uint8 RGBA/RGB/gray array as PNG (``text`` stored as PNG text chunks), atomically."""
    return atomic_write_bytes(path, render.encode_png(rgba, text))


def _metadata(fig: render.Figure) -> dict[str, str]:
    from cnnviz._version import __version__

    meta = {"Software": f"cnnviz {__version__}"}
    meta.update(fig.metadata)
    if fig.caption:
        meta.setdefault("Description", "\n".join(fig.caption))
    return meta


def write_figure(path: PathLike, fig: render.Figure) -> Path:
    """Write a figure as PNG or SVG, chosen by the file suffix (``.png`` / ``.svg``)."""
    target = Path(path)
    suffix = target.suffix.lower()
    meta = _metadata(fig)
    if suffix == ".png":
        return write_png(target, render.render_figure(fig), meta)
    if suffix == ".svg":
        return atomic_write_text(
            target, render.figure_to_svg(render.Figure(fig.image, fig.shapes, fig.caption, meta))
        )
    raise CnnvizError(
        f"cannot export a picture as '{suffix or target.name}'; use a .png or .svg file name"
    )


# --------------------------------------------------------------------------------------------------------------
# The per-layer table

TABLE_HEADERS = (
    "Layer",
    "Type",
    "Output shape",
    "Params",
    "Trainable",
    "MACs",
    "Kernel",
    "Stride",
    "Padding",
    "RF size",
    "RF stride",
    "RF padding",
)


def _pair(p: Any) -> str:
    if p is None:
        return ""
    a, b = (render._fmt_num(v) for v in p)
    return a if a == b else f"{a}x{b}"


def summary_table(summary: Any, *, totals: bool = True) -> tuple[tuple[str, ...], list[list[Any]]]:
    """Headers and rows of the per-layer table (numbers stay numbers; a totals row at the end)."""
    rows: list[list[Any]] = []
    for r in summary.rows:
        rows.append(
            [
                r.name,
                r.type,
                text.shape(r.output_shape, sep="x"),
                r.params,
                r.trainable_params,
                r.macs,
                _pair(r.kernel_size),
                _pair(r.stride),
                _pair(r.padding),
                *rf_cells(r.rf),
            ]
        )
    if totals:
        rows.append(
            ["Total", "", "", summary.total_params, summary.trainable_params, summary.total_macs]
            + [""] * 6
        )
    return TABLE_HEADERS, rows


def summary_to_csv(summary: Any) -> str:
    """The table as CSV (one header line, one line per layer, a totals line)."""
    headers, rows = summary_table(summary)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


def _md_cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def summary_to_markdown(summary: Any) -> str:
    """The table as a GitHub-flavoured Markdown table, numbers right-aligned, with a title line."""
    headers, rows = summary_table(summary)
    shape = "x".join(str(v) for v in summary.input_shape)
    numeric = {3, 4, 5}
    lines = [
        f"**{summary.model_name}** - input {shape}, {summary.total_params:,} parameters, "
        f"{summary.total_macs:,} MACs",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if i in numeric else "---" for i in range(len(headers))) + "|",
    ]
    for row in rows:
        cells = [_md_cell(v) for v in row]
        if row[0] == "Total" and row is rows[-1]:
            cells = [f"**{v}**" if v != "" else "" for v in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(path: PathLike, summary: Any) -> Path:
    """The table as CSV (``.csv``) or Markdown (``.md``/``.markdown``), atomically."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        return atomic_write_text(target, summary_to_csv(summary))
    if suffix in (".md", ".markdown"):
        return atomic_write_text(target, summary_to_markdown(summary))
    raise CnnvizError(
        f"cannot export the table as '{suffix or target.name}'; use a .csv or .md file name"
    )


# --------------------------------------------------------------------------------------------------------------
# Exporting layers (the `cnnviz export` job)


def layer_file_stem(layer: str) -> str:
    """A file-name-safe version of a layer name (``layer1.0.relu@1`` -> ``layer1.0.relu_1``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer).strip("._")
    return stem or "layer"


def grid_caption(
    model_name: str, layer: str, layer_type: str | None, mosaic: render.FeatureMosaic
) -> list[str]:
    """Caption lines of an exported feature-map grid."""
    c, h, w = mosaic.maps.shape
    kind = f" ({layer_type})" if layer_type else ""
    what = f"channel {mosaic.channel} of {c}" if mosaic.channel is not None else f"{c} channels"
    lo = float(mosaic.lo.min()) if mosaic.lo.size else 0.0
    hi = float(mosaic.hi.max()) if mosaic.hi.size else 0.0
    norm = "per channel" if mosaic.norm == "channel" else "per layer"
    return [
        f"{model_name}   layer {layer}{kind}   output {c}x{h}x{w}",
        f"{what}, colormap {mosaic.cmap}, normalised {norm}, values {lo:.4g} .. {hi:.4g}",
    ]


@dataclass
class ExportResult:
    """What :func:`export_layers` wrote (``manifest`` is also written as manifest.json)."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False


def export_layers(
    model: Any,
    image: Any,
    out_dir: PathLike,
    *,
    layers: Sequence[str] | None = None,
    unit: tuple[int, int] | None = None,
    cmap: str = "viridis",
    norm: str = "channel",
    sort: bool = False,
    effective_rf: bool = True,
    formats: Iterable[str] = ("png",),
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Any = None,
) -> ExportResult:
    """Write each layer's feature-map grid (and, with ``unit``, its receptive-field overlay and JSON).

    ``model`` is a LoadedModel, ``image`` a LoadedImage for it; ``layers`` None means every captured layer. For
    explicitly named layers a unit outside the map is an error; with all layers such layers get no overlay (the
    manifest says why). ``progress(done, total, layer)`` is called after each layer; ``cancel`` (an Event or a
    callable) stops between layers.

    The folder is created only when the first file is written, so a run that fails or is cancelled before
    that leaves the destination as it was. manifest.json is rewritten after every file and always lists exactly
    the files this run wrote; ``complete`` is true only for a finished run, and a failed one records ``error``.
    """
    from cnnviz._version import __version__
    from cnnviz.core.capture import capture
    from cnnviz.core.receptive import ReceptiveFieldIndex, effective_receptive_field
    from cnnviz.core.summary import summarize

    render.colormap_lut(cmap)  # unknown names fail before any work
    if norm not in render.NORMALIZATIONS:
        raise CnnvizError(
            f"unknown normalisation '{norm}'; choose one of {', '.join(render.NORMALIZATIONS)}"
        )
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

    explicit = layers is not None
    result = capture(model, image, layers=list(layers) if layers is not None else None)
    names = list(layers) if layers is not None else list(result.keys())
    try:
        summary = summarize(model, receptive_fields=False)
        types = {r.name: r.type for r in summary.rows}
    except CnnvizError:
        types = {}
    model_name = getattr(model, "name", type(getattr(model, "module", model)).__name__)
    rf_index = None
    if unit is not None:
        rf_index = ReceptiveFieldIndex(model)
    geometry = getattr(image, "geometry", None)

    out = ExportResult(folder)
    entries: list[dict[str, Any]] = []
    head = {
        "cnnviz_version": __version__,
        "model": model_name,
        "image": getattr(image, "path", None),
        "input_shape": list(getattr(model, "input_shape", []) or []),
        "unit": list(unit) if unit is not None else None,
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

    def write(entry: dict[str, Any], key: str, name: str, writer: Any, payload: Any) -> None:
        if not out.files:
            created.extend(_make_folder(folder))
        path = writer(folder / name, payload)
        out.files.append(path)
        entry["files"][key] = path.name
        # Rewritten (atomically) after every file, so that whenever the run stops -- an error, a
        # cancellation, a kill -- the manifest describes exactly what is in the folder. No fsync for
        # these: a killed process loses nothing from the page cache, and the last one is durable.
        text = json.dumps(manifest(complete=False), indent=2, ensure_ascii=False) + "\n"
        atomic_write_bytes(manifest_path, text.encode("utf-8"), durable=False)

    try:
        used: set[str] = set()
        total = len(names)
        for i, name in enumerate(names):
            if is_cancelled(cancel):
                out.cancelled = True
                break
            stem = layer_file_stem(name)
            while stem in used:
                stem += "_"
            used.add(stem)
            activation = result[name]
            mosaic = render.feature_mosaic(activation, cmap=cmap, norm=norm, sort=sort)
            maps_shape = list(mosaic.maps.shape)
            entry: dict[str, Any] = {
                "layer": name,
                "type": types.get(name),
                "shape": maps_shape,
                "files": {},
            }
            caption = grid_caption(model_name, name, types.get(name), mosaic)
            meta = {"Title": f"{model_name} {name}", "cnnviz.model": model_name, "cnnviz.layer": name,
                    "cnnviz.shape": "x".join(str(v) for v in maps_shape)}  # fmt: skip
            box = None
            if unit is not None and rf_index is not None:
                try:
                    box = rf_index.box(name, unit, geometry)
                except LayerError as exc:
                    if explicit:
                        raise
                    entry["rf_skipped"] = str(exc)
            grid_fig = render.feature_grid_figure(
                mosaic, caption=caption, unit=unit if box is not None else None, metadata=meta
            )
            entries.append(entry)
            for fmt in formats:
                write(entry, f"grid_{fmt}", f"{stem}_grid.{fmt}", write_figure, grid_fig)
            if box is not None and unit is not None:
                unit_json = box.to_json()
                heat = None
                if effective_rf:
                    erf = effective_receptive_field(model, image, name, unit)
                    heat = erf.heatmap
                    unit_json_erf = {
                        "support_box": list(erf.support_box) if erf.support_box else None
                    }
                    entry["effective_rf"] = unit_json_erf
                overlay_meta = dict(
                    meta,
                    **{"cnnviz.unit": f"{unit[0]},{unit[1]}", "cnnviz.box": str(list(box.box))},
                )
                fig = render.rf_overlay_figure(
                    image.display,
                    image.display_geometry,
                    geometry,
                    box,
                    heatmap=heat,
                    caption=[caption[0], *render.unit_caption(box)],
                    metadata=overlay_meta,
                )
                for fmt in formats:
                    write(entry, f"rf_{fmt}", f"{stem}_rf.{fmt}", write_figure, fig)
                write(entry, "rf_json", f"{stem}_rf.json", write_json, unit_json)
            if progress is not None:
                progress(i + 1, total, name)
    except BaseException as exc:
        if out.files:
            _record_failure(manifest_path, manifest(False, str(exc) or type(exc).__name__))
        else:
            _remove_folders(created)
        raise

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
