"""The main window's dock layout: scrollable tool docks, default dock sizes, proportions after a resize, reset.

Dock sizes in a QMainWindow are absolute: shrinking the window squeezes the docks to their minimum, and growing
it back hands every new pixel to the central widget, so a Layers dock stays 60 px wide. The window calls
:func:`restore_proportions` when it grows, which gives a squeezed dock back its share of the window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea, QWidget

if TYPE_CHECKING:
    from cnnviz.gui.main_window import MainWindow

__all__ = [
    "apply_defaults",
    "default_size",
    "dock_extent",
    "reset_layout",
    "restore_proportions",
    "scrollable",
    "tool_sized",
]

# (share of the window, smallest, largest) of each dock's default extent, by object name: width for the
# side docks, height for the bottom ones.
_SHARES: dict[str, tuple[float, int, int]] = {
    "layers_dock": (0.24, 220, 340),
    "prediction_dock": (0.18, 200, 260),
    "draw_a_digit_dock": (0.18, 200, 260),
    "layer_table_dock": (0.30, 150, 260),
    "layer_editor_dock": (0.46, 260, 520),
    "training_dock": (0.46, 260, 520),
    "top_pictures_dock": (0.40, 250, 460),
}
_FLOOR = 0.6  # below this part of its default extent a dock counts as squeezed


def scrollable(dock: QDockWidget) -> QScrollArea:
    """Put the dock's contents in a scroll area, so that they scroll instead of raising the window's minimum."""
    body = dock.widget()
    scroll = QScrollArea()
    scroll.setObjectName(dock.objectName() + "_scroll")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    dock.setWidget(scroll)
    scroll.setWidget(body)
    return scroll


def _orientation(window: MainWindow, dock: QDockWidget) -> Qt.Orientation:
    area = window.dockWidgetArea(dock)
    side = area in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
    return Qt.Orientation.Horizontal if side else Qt.Orientation.Vertical


def default_size(window: MainWindow, dock: QDockWidget) -> int:
    """The extent (width of a side dock, height of a bottom one) ``dock`` has by default in this window."""
    share, low, high = _SHARES.get(dock.objectName(), (0.25, 150, 400))
    horizontal = _orientation(window, dock) == Qt.Orientation.Horizontal
    total = window.width() if horizontal else window.height()
    return int(min(high, max(low, share * total)))


def dock_extent(window: MainWindow, dock: QDockWidget) -> int:
    """The dock's current width (side area) or height (top or bottom area)."""
    horizontal = _orientation(window, dock) == Qt.Orientation.Horizontal
    return dock.width() if horizontal else dock.height()


def _docked(window: MainWindow) -> list[QDockWidget]:
    """The docks that take room in the window now: shown, not floating, in front of their tab group."""
    docks = [window.layers_dock, window.predictions_dock, window.draw_dock, window.table_dock,
             window.editor_dock, window.training_dock, window.top_pictures_dock]  # fmt: skip
    return [
        d for d in docks if d.isVisible() and not d.isFloating() and not d.visibleRegion().isEmpty()
    ]


def _resize(window: MainWindow, docks: list[QDockWidget]) -> None:
    for orientation in (Qt.Orientation.Horizontal, Qt.Orientation.Vertical):
        chosen = [d for d in docks if _orientation(window, d) == orientation]
        if chosen:
            window.resizeDocks(chosen, [default_size(window, d) for d in chosen], orientation)


def restore_proportions(window: MainWindow) -> list[str]:
    """Give every squeezed dock its default extent back; returns the names of the docks resized."""
    squeezed = [
        d for d in _docked(window) if dock_extent(window, d) < _FLOOR * default_size(window, d)
    ]
    _resize(window, squeezed)
    return [d.objectName() for d in squeezed]


def reset_layout(window: MainWindow, default_state: bytes) -> None:
    """The layout of a first start: the default docks where they belong, at their default sizes."""
    window.restoreState(default_state)
    for dock in (window.layers_dock, window.predictions_dock, window.table_dock):
        dock.setFloating(False)
        dock.show()
    for dock in (window.editor_dock, window.training_dock, window.top_pictures_dock):
        dock.hide()
    model = window.session.model
    window.draw_dock.setVisible(model is not None and model.input_shape[0] == 1)
    window.table_dock.raise_()
    apply_defaults(window)


def apply_defaults(window: MainWindow) -> None:
    """Give the side docks and the table their default extents (a first start, with no saved layout)."""
    _resize(window, [window.layers_dock, window.predictions_dock, window.table_dock])


def tool_sized(window: MainWindow, widget: QWidget) -> None:
    """The first time a tool dock opens, give it its default share of the window."""
    if isinstance(widget, QDockWidget) and not widget.isFloating():
        _resize(window, [widget])
