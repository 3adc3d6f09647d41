"""What the graph editor holds between edits: snapshots of the session, undo steps, the totals line.

The session is changed on a worker thread only; the editor reads :class:`Snapshot` objects taken there after
each edit, so nothing on the GUI thread touches the session while an edit is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QUndoCommand

from cnnviz.core.editing import delta_text
from cnnviz.core.text import count

__all__ = ["Snapshot", "UndoStep", "take_snapshot", "totals_text"]


@dataclass(frozen=True)
class Snapshot:
    """What the editor shows of a session at one moment, taken on the worker thread after an edit.

    The GUI reads only snapshots, never the session itself, so the worker may change the session meanwhile.
    """

    edits: tuple[Any, ...]
    table: Any
    rows: list[Any]  # the table's rows, every row of the model in execution order
    modules: list[Any]
    fields: dict[str, list[Any]]


def take_snapshot(session: Any) -> Snapshot:
    """The session's edits, table, module tree and every editable module's fields."""
    modules = list(session.modules())
    fields = {
        m.name: list(session.fields(m.name))
        for m in modules
        if m.name and m.editable and not m.is_container
    }
    table = session.table()
    return Snapshot(tuple(session.edits), table, list(table.rows), modules, fields)


def totals_text(table: Any, rows: list[Any]) -> str:
    """The totals line: parameters and MACs with their change, and what the edits touched."""

    def total(label: str, now: int, base: int) -> str:
        change = "" if now == base else f" ({delta_text(now, base)})"
        return f"{label} {count(now)}{change}"

    parts = [
        total("Parameters", table.total_params, table.base_params),
        total("MACs", table.total_macs, table.base_macs),
    ]
    edited = sum(1 for r in rows if r.status != "same" and r.kind != "container")
    shaped = sum(1 for r in rows if r.shape_changed and r.kind != "container")
    if edited:
        parts.append(f"{edited} edited or new")
    if shaped:
        parts.append(f"{shaped} with a new output shape")
    missing = sum(1 for r in rows if not r.computed)
    if missing:
        parts.append(f"{missing} not computed")
    removed = table.removed
    if removed:
        parts.append(f"deleted: {', '.join(removed[:6])}" + (" …" if len(removed) > 6 else ""))
    if table.error is not None:
        parts[0] = "Valid rows only: " + parts[0]
    return " · ".join(parts)


class UndoStep(QUndoCommand):
    """One edit: the session's edits before and after. Typing in one field merges into one step.

    ``editor`` is the graph editor: undo and redo call its ``_goto(edits, select)``; ``selected`` is read.
    """

    MERGE_ID = 4712

    def __init__(
        self,
        editor: Any,
        text: str,
        before: tuple[Any, ...],
        after: tuple[Any, ...],
        merge_key: tuple[Any, ...] | None,
        select: str | None,
    ):
        super().__init__(text)
        self.editor = editor
        self.before = before
        self.after = after
        self.merge_key = merge_key
        self.select_before = editor.selected
        self.select_after = select if select is not None else editor.selected
        self._first = True  # the session is already at `after` when the step is pushed

    def id(self) -> int:
        return self.MERGE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, UndoStep) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.select_after = other.select_after
        self.setText(other.text())  # named by the value it ends with
        return True

    def redo(self) -> None:
        if self._first:
            self._first = False
            return
        self.editor._goto(self.after, self.select_after)

    def undo(self) -> None:
        self.editor._goto(self.before, self.select_before)
