"""Temporary: the old path of the export writers; imports move to :mod:`cnnviz.core.present.export`,
:mod:`cnnviz.core.present.tables`, :mod:`cnnviz.core.present.captions` and :mod:`cnnviz.core.fileio`."""

from __future__ import annotations

from cnnviz.core.fileio import atomic_write_bytes, atomic_write_text, write_json
from cnnviz.core.present.captions import grid_caption
from cnnviz.core.present.export import (
    EXPORT_KINDS,
    ExportResult,
    ExportSnapshot,
    default_file_name,
    export_layers,
    export_problem,
    export_view,
    layer_file_stem,
    write_figure,
    write_png,
    write_summary,
)
from cnnviz.core.present.tables import to_csv as summary_to_csv
from cnnviz.core.present.tables import to_markdown as summary_to_markdown

__all__ = [
    "EXPORT_KINDS",
    "ExportResult",
    "ExportSnapshot",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_file_name",
    "export_layers",
    "export_problem",
    "export_view",
    "grid_caption",
    "layer_file_stem",
    "summary_to_csv",
    "summary_to_markdown",
    "write_figure",
    "write_json",
    "write_png",
    "write_summary",
]
