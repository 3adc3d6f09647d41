"""The per-layer table: one row model and its renderings as aligned text, CSV and Markdown.

The command line, the app's table exports and ``cnnviz export`` all use these, so the same model gives
the same table everywhere. CSV is for machines (snake_case headers, raw integers, no totals row);
Markdown and text are for people (thousands separators, totals). JSON is ``Summary.to_json()``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from cnnviz.core.text import count, dims, pair, shape

__all__ = [
    "COLUMNS",
    "CSV_HEADERS",
    "TableRow",
    "rf_cells",
    "table_rows",
    "to_csv",
    "to_markdown",
    "to_text",
    "totals_lines",
]

COLUMNS = ("Layer", "Type", "Output shape", "Params", "Trainable", "MACs", "Kernel", "Stride",
           "Padding", "RF size", "RF stride", "RF padding")  # fmt: skip
"""The column titles people read (text and Markdown)."""

CSV_HEADERS = ("layer", "type", "output_shape", "params", "trainable_params", "macs", "kernel",
               "stride", "padding", "rf_size", "rf_stride", "rf_padding", "depth")  # fmt: skip
"""The CSV header: the columns in snake_case, plus each layer's nesting depth."""

_NUMERIC = frozenset({3, 4, 5})  # Params, Trainable, MACs: right-aligned


def rf_cells(rf: Any | None) -> tuple[str, str, str]:
    """(size, stride, padding) as table cells; 'global' after global pooling, '' when unknown."""
    if rf is None:
        return ("", "", "")
    if rf.global_:
        return ("global", "", "")
    size = pair(rf.size)
    if rf.gated:
        size += " (+gate)"
    if not rf.uniform:
        size = "≤" + size
    return (size, pair(rf.stride), pair(rf.padding))


@dataclass(frozen=True)
class TableRow:
    """One layer of the table: numbers stay numbers, everything else is already text."""

    name: str
    type: str
    depth: int
    output_shape: str
    params: int
    trainable: int
    macs: int
    kernel: str
    stride: str
    padding: str
    rf_size: str
    rf_stride: str
    rf_padding: str

    def cells(self, *, raw: bool = False) -> list[str]:
        """The row's cells in column order; ``raw`` keeps counts as plain integers (and 0 as "0")."""

        def number(n: int) -> str:
            return str(n) if raw else (count(n) if n else "")

        return [self.name, self.type, self.output_shape, number(self.params),
                number(self.trainable), number(self.macs), self.kernel, self.stride, self.padding,
                self.rf_size, self.rf_stride, self.rf_padding]  # fmt: skip


def table_rows(summary: Any) -> list[TableRow]:
    """The rows of ``summary`` (a :class:`cnnviz.core.analysis.types.Summary`) as table rows."""
    return [
        TableRow(
            r.name,
            r.type,
            r.depth,
            shape(r.output_shape),
            r.params,
            r.trainable_params,
            r.macs,
            pair(r.kernel_size),
            pair(r.stride),
            pair(r.padding),
            *rf_cells(r.rf),
        )  # fmt: skip
        for r in summary.rows
    ]


def totals_lines(summary: Any) -> list[str]:
    """The totals under the text table: input, parameters (all, trainable, frozen), MACs, the note."""
    lines = [
        "Input: " + dims(summary.input_shape),
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.total_params - summary.trainable_params:,}",
        f"Total MACs: {summary.total_macs:,}",
    ]
    if summary.note:
        lines.append(f"Note: {summary.note}")
    return lines


def to_text(summary: Any) -> str:
    """An aligned plain-text table (names indented by depth), then the totals."""
    rows = [list(COLUMNS)] + [
        ["  " * r.depth + r.name, *r.cells()[1:]] for r in table_rows(summary)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    out = io.StringIO()
    out.write(f"{summary.model_name}\n")
    rule = "─" * (sum(widths) + 2 * (len(widths) - 1))
    for n, r in enumerate(rows):
        cells = [
            r[i].rjust(widths[i]) if i in _NUMERIC else r[i].ljust(widths[i]) for i in range(len(r))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write(rule + "\n")
    out.write(rule + "\n")
    for line in totals_lines(summary):
        out.write(line + "\n")
    return out.getvalue()


def to_csv(summary: Any) -> str:
    """One header line, then one line per layer with raw integers; no totals row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADERS)
    for r in table_rows(summary):
        writer.writerow([*r.cells(raw=True), str(r.depth)])
    return out.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(summary: Any) -> str:
    """A GitHub-flavoured Markdown table: a title line with the totals, `code` names indented by depth,
    numbers right-aligned, and a bold totals row."""
    title = (
        f"**{_md(summary.model_name)}** - input {dims(summary.input_shape)}, "
        f"{summary.total_params:,} parameters, {summary.total_macs:,} MACs"
    )
    lines = [
        title,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if i in _NUMERIC else "---" for i in range(len(COLUMNS))) + "|",
    ]
    for r in table_rows(summary):
        cells = [_md(c) for c in r.cells()]
        cells[0] = "&nbsp;" * (2 * r.depth) + f"`{cells[0]}`"
        lines.append("| " + " | ".join(cells) + " |")
    totals = [count(summary.total_params), count(summary.trainable_params),
              count(summary.total_macs)]  # fmt: skip
    cells = ["**Total**", "", "", *(f"**{t}**" for t in totals)] + [""] * 6
    lines.append("| " + " | ".join(cells) + " |")
    if summary.note:
        lines.extend(["", f"Note: {_md(summary.note)}"])
    return "\n".join(lines) + "\n"
