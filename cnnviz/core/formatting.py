"""Temporary: the old path of the table renderings; imports move to :mod:`cnnviz.core.present.tables`
and :mod:`cnnviz.core.text`."""

from __future__ import annotations

from cnnviz.core.present.tables import COLUMNS, rf_cells, to_csv, to_markdown, to_text, totals_lines
from cnnviz.core.text import shape as shape_text

__all__ = ["COLUMNS", "rf_cells", "shape_text", "to_csv", "to_markdown", "to_text", "totals_lines"]
