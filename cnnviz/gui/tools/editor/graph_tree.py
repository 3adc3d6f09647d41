"""The graph editor's module tree: the model's modules nested as in the Layers dock, and where each one sits.

Modules that cannot be edited are grey with the reason in their tooltip. The tree also answers the questions
Insert and Delete ask: which container a module is in, at which position, and what a container holds.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from cnnviz.gui.tools.editor.model import DIM_FG

__all__ = ["ModuleTree"]


def _parent_name(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


class ModuleTree(QTreeWidget):
    """Every module of the edited model (``EditableModule`` rows); emits ``moduleSelected(name)`` on a click."""

    moduleSelected = Signal(str)
    NAME_ROLE = 257  # Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["Module", "Type"])
        self.setUniformRowHeights(True)
        self.setIndentation(12)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.header().setStretchLastSection(True)
        self.modules: dict[str, Any] = {}
        self.items: dict[str, QTreeWidgetItem] = {}
        self.currentItemChanged.connect(self._current_changed)

    def fill(self, modules: list[Any]) -> None:
        """Show ``modules`` (in tree order, each with its depth); the root ("") is the model itself."""
        self.blockSignals(True)
        self.clear()
        self.items = {}
        self.modules = {}
        parents: list[tuple[int, QTreeWidgetItem]] = []
        for module in modules:
            self.modules[module.name] = module
            if not module.name:
                continue
            while parents and parents[-1][0] >= module.depth:
                parents.pop()
            parent = parents[-1][1] if parents else None
            short = module.name.rsplit(".", 1)[-1] if parent is not None else module.name
            item = QTreeWidgetItem([short, module.type])
            item.setData(0, self.NAME_ROLE, module.name)
            item.setToolTip(0, module.name)
            if not module.editable and not module.is_container:
                for column in (0, 1):
                    item.setForeground(column, DIM_FG)
                    item.setToolTip(column, f"{module.name}: {module.why_not or 'not editable'}")
            if parent is not None:
                parent.addChild(item)
            else:
                self.addTopLevelItem(item)
            self.items[module.name] = item
            parents.append((module.depth, item))
        if len(self.items) <= 80:
            self.expandAll()
        else:
            self.collapseAll()
        self.blockSignals(False)

    def names(self) -> list[str]:
        return list(self.modules)

    def shows(self, modules: list[Any]) -> bool:
        """Whether the tree already shows ``modules`` (the same names and types)."""
        return [(m.name, m.type) for m in modules] == [
            (m.name, m.type) for m in self.modules.values()
        ]

    def show_module(self, name: str | None) -> None:
        """Make ``name`` (or the module an operation belongs to) current, without emitting."""
        scope = self.module_of(name) if name else None
        item = self.items.get(scope) if scope else None
        self.blockSignals(True)
        if item is not None:
            parent = item.parent()
            while parent is not None:
                parent.setExpanded(True)
                parent = parent.parent()
            self.setCurrentItem(item)
            self.scrollToItem(item)
        else:
            self.setCurrentItem(None)  # type: ignore[call-overload]
        self.blockSignals(False)

    def current_name(self) -> str | None:
        item = self.currentItem()
        return item.data(0, self.NAME_ROLE) if item is not None else None

    def _current_changed(self, item: QTreeWidgetItem | None, _previous: Any) -> None:
        if item is not None:
            self.moduleSelected.emit(item.data(0, self.NAME_ROLE))

    # -- where modules sit -----------------------------------------------------------------------------------
    def module_of(self, name: str) -> str | None:
        """The module ``name`` belongs to: itself, or for an operation such as ``layer1.0.add`` its scope."""
        while name:
            if name in self.modules:
                return name
            name = _parent_name(name)
        return None

    def children_of(self, container: str) -> list[str]:
        """The direct children of ``container`` in order."""
        return [m for m in self.modules if m and _parent_name(m) == container]

    def position(self, name: str) -> tuple[str, int]:
        """The container of ``name`` and its index among that container's children."""
        container = _parent_name(name)
        return container, self.children_of(container).index(name)
