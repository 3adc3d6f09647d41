"""Text renderings of the per-layer table: aligned text, CSV, Markdown (JSON is Summary.to_json())."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from cnnviz.core.summary_types import LayerRow, ReceptiveField, Summary

COLUMNS = ("Layer", "Type", "Output shape", "Params", "MACs", "Kernel", "Stride", "Padding", "RF size",
           "RF stride", "RF padding")  # fmt: skip


def _num(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{float(v):.3g}"


def _pair(p: tuple[int, int] | None) -> str:
    if p is None:
        return ""
    return str(p[0]) if p[0] == p[1] else f"{p[0]}×{p[1]}"


def _fpair(p: tuple[Fraction, Fraction] | None) -> str:
    if p is None:
        return ""
    return _num(p[0]) if p[0] == p[1] else f"{_num(p[0])}×{_num(p[1])}"


def shape_text(shape: Sequence[Any] | None) -> str:
    """[1, 64, 56, 56] -> '64×56×56' (batch dropped); a tuple of outputs -> joined with ' | '."""
    if shape is None:
        return ""
    if isinstance(shape, list):
        return " | ".join(shape_text(s) for s in shape)
    dims = list(shape)[1:] if len(shape) > 1 else list(shape)
    return "×".join(str(d) for d in dims)


def rf_cells(rf: ReceptiveField | None) -> tuple[str, str, str]:
    """(size, stride, padding) as table cells; 'global' after global pooling, '' when unknown."""
    if rf is None:
        return ("", "", "")
    if rf.global_:
        return ("global", "", "")
    assert rf.size is not None
    size = _pair(rf.size)
    if rf.gated:
        size += " (+gate)"
    if not rf.uniform:
        size = "≤" + size
    return (size, _fpair(rf.stride), _fpair(rf.padding))


def row_cells(row: LayerRow, indent: bool = True) -> list[str]:
    name = ("  " * row.depth + row.name) if indent else row.name
    return [
        name,
        row.type,
        shape_text(row.output_shape),
        f"{row.params:,}" if row.params else "",
        f"{row.macs:,}" if row.macs else "",
        _pair(row.kernel_size),
        _pair(row.stride),
        _pair(row.padding),
        *rf_cells(row.rf),
    ]


def totals_lines(summary: Summary) -> list[str]:
    lines = [
        "Input: " + "×".join(str(v) for v in summary.input_shape),
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.total_params - summary.trainable_params:,}",
        f"Total MACs: {summary.total_macs:,}",
    ]
    if summary.note:
        lines.append(f"Note: {summary.note}")
    return lines


def to_text(summary: Summary) -> str:
    rows = [list(COLUMNS)] + [row_cells(r) for r in summary.rows]
    numeric = {3, 4}
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    out = io.StringIO()
    out.write(f"{summary.model_name}\n")
    rule = "─" * (sum(widths) + 2 * (len(widths) - 1))
    for n, r in enumerate(rows):
        cells = [
            r[i].rjust(widths[i]) if i in numeric else r[i].ljust(widths[i]) for i in range(len(r))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write(rule + "\n")
    out.write(rule + "\n")
    for line in totals_lines(summary):
        out.write(line + "\n")
    return out.getvalue()


def to_csv(summary: Summary) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.lower().replace(" ", "_") for c in COLUMNS] + ["trainable_params", "depth"])
    for r in summary.rows:
        cells = row_cells(r, indent=False)
        cells[3] = str(r.params)
        cells[4] = str(r.macs)
        writer.writerow(cells + [str(r.trainable_params), str(r.depth)])
    return out.getvalue()


def to_markdown(summary: Summary) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"**{esc(summary.model_name)}**", "", "| " + " | ".join(COLUMNS) + " |"]
    lines.append(
        "|" + "|".join("---:" if i in (3, 4) else "---" for i in range(len(COLUMNS))) + "|"
    )
    for r in summary.rows:
        cells = row_cells(r, indent=False)
        cells[0] = "&nbsp;" * (2 * r.depth) + f"`{cells[0]}`"
        lines.append("| " + " | ".join(esc(c) if i else c for i, c in enumerate(cells)) + " |")
    lines.append("")
    lines.extend(f"- {line}" for line in totals_lines(summary))
    return "\n".join(lines) + "\n"
