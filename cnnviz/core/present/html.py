"""The per-layer table as HTML, for notebooks: the same columns, cells and totals as the command line.

Cells come from :func:`cnnviz.core.present.tables.table_rows` (so shapes read ``64×56×56`` and counts
``1,234`` exactly as in ``cnnviz summary``); every piece of text is escaped, so a module named
``<script>`` shows as its name. Styles are inline because notebook front ends drop ``<style>`` blocks
from untrusted output. Tables longer than :data:`COLLAPSE_ROWS` show their top-level layers and fold
the whole tree into a ``<details>`` element, so a notebook stays scrollable.
"""

from __future__ import annotations

from html import escape
from typing import Any

from cnnviz.core.present import tables
from cnnviz.core.text import count

__all__ = ["COLLAPSE_ROWS", "summary_html"]

COLLAPSE_ROWS = 200
"""Above this many rows the full table is folded away behind its top-level layers."""

_NUMERIC = frozenset({"Params", "Trainable", "MACs"})
_CELL = "padding:1px 8px;white-space:nowrap;"
_LEFT = _CELL + "text-align:left;"
_RIGHT = _CELL + "text-align:right;font-variant-numeric:tabular-nums;"
_INDENT_EM = 1.2


def _style(column: str) -> str:
    return _RIGHT if column in _NUMERIC else _LEFT


def _header() -> str:
    cells = "".join(f'<th style="{_style(c)}">{escape(c)}</th>' for c in tables.COLUMNS)
    return f"<thead><tr>{cells}</tr></thead>"


def _row(row: tables.TableRow) -> str:
    cells = row.cells()
    indent = f"padding-left:{0.5 + _INDENT_EM * row.depth:g}em;"
    out = [f'<td style="{_LEFT}{indent}"><code>{escape(cells[0])}</code></td>']
    out.extend(
        f'<td style="{_style(column)}">{escape(cell)}</td>'
        for column, cell in zip(tables.COLUMNS[1:], cells[1:], strict=True)
    )
    return f'<tr data-depth="{row.depth}">{"".join(out)}</tr>'


def _totals(summary: Any) -> str:
    totals = {
        "Params": summary.total_params,
        "Trainable": summary.trainable_params,
        "MACs": summary.total_macs,
    }
    cells = ['<th style="' + _LEFT + '">Total</th>']
    for column in tables.COLUMNS[1:]:
        value = totals.get(column)
        text = escape(count(value)) if value is not None else ""
        cells.append(f'<th style="{_style(column)}">{text}</th>')
    return f'<tfoot><tr style="border-top:1px solid currentColor;">{"".join(cells)}</tr></tfoot>'


def _table(summary: Any, rows: list[tables.TableRow]) -> str:
    body = "".join(_row(r) for r in rows)
    return (
        '<table style="border-collapse:collapse;font-size:90%;">'
        f"{_header()}<tbody>{body}</tbody>{_totals(summary)}</table>"
    )


def summary_html(summary: Any, *, collapse_rows: int = COLLAPSE_ROWS) -> str:
    """The table of ``summary`` (a :class:`cnnviz.core.analysis.types.Summary`) as one HTML fragment.

    A title line (model and input), the table with a totals row, the totals as the command line prints
    them, and the note when the analysis fell back (e.g. hooks instead of a traced graph). More than
    ``collapse_rows`` rows: the top-level layers are shown and the full table folds into ``<details>``.
    """
    rows = tables.table_rows(summary)
    lines = tables.totals_lines(summary)
    note = f"Note: {summary.note}" if summary.note else None
    figures = [line for line in lines if line != note]
    parts = [
        '<div class="cnnviz-summary">',
        f"<p><b>{escape(str(summary.model_name))}</b> &middot; {escape(' · '.join(figures))}</p>",
    ]
    if len(rows) > collapse_rows:
        top = [r for r in rows if r.depth == 0]
        parts.append(_table(summary, top))
        parts.append(
            f"<details><summary>All {count(len(rows))} layers "
            f"({count(len(top))} at the top level shown above)</summary>"
            f"{_table(summary, rows)}</details>"
        )
    else:
        parts.append(_table(summary, rows))
    if note is not None:
        parts.append(f'<p class="cnnviz-note"><i>{escape(note)}</i></p>')
    parts.append("</div>")
    return "".join(parts)
