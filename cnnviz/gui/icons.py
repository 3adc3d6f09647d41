"""The application icon, in one place for the app's bootstrap and the main window."""

from __future__ import annotations

from typing import Any

__all__ = ["app_icon"]


def app_icon() -> Any:
    """The cnnviz icon (a QIcon with every shipped PNG size), or None if the icons are missing."""
    from PySide6.QtGui import QIcon

    from cnnviz.core.resources import resource_path

    folder = resource_path("icons")
    if not folder.is_dir():
        return None
    icon = QIcon()
    for png in sorted(folder.glob("cnnviz-*.png")):
        icon.addFile(str(png))
    svg = folder / "cnnviz.svg"
    if icon.isNull() and svg.is_file():
        icon.addFile(str(svg))
    return None if icon.isNull() else icon
