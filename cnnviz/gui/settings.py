"""Preferences that outlive the window (geometry, colormap, recent files), kept with QSettings.

If the settings location cannot be written (a read-only home, a full disk), the app keeps working with the
values in memory and says so once in the status bar.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QSettings

__all__ = ["Preferences", "recent_path", "recent_problem"]

RECENT_LIMIT = 10


def recent_path(path: str | os.PathLike[str]) -> str:
    """The absolute form of ``path`` to remember, symlinks resolved where that is possible.

    A symlink loop, a path too long or a name the system refuses cannot be resolved
    (``Path.resolve`` raises RuntimeError or OSError then); such a path is kept as given, made
    absolute, so that opening it reports the problem instead of failing here.
    """
    try:
        text = os.path.expanduser(os.fspath(path))
    except (TypeError, ValueError):
        return str(path)
    from pathlib import Path

    try:
        return str(Path(text).resolve())
    except (OSError, RuntimeError, ValueError):
        try:
            return os.path.abspath(text)
        except (OSError, ValueError):
            return text


def recent_problem(path: str) -> str | None:
    """Why a recent entry cannot be opened any more (e.g. "does not exist", "is a symlink
    loop ..."), or None when it is still there (a folder is left to its opener to judge)."""
    from cnnviz.core.fileio import regular_file_problem

    problem = regular_file_problem(path)
    return None if problem is None or problem.startswith("is a folder") else problem


class Preferences:
    """A thin, failure-tolerant layer over QSettings."""

    def __init__(self, settings: QSettings | None = None):
        self.settings = settings if settings is not None else QSettings("cnnviz", "cnnviz")
        self._memory: dict[str, Any] = {}
        self.writable = self.settings.isWritable()

    def get(self, key: str, default: Any = None, kind: type | None = None) -> Any:
        if key in self._memory:
            return self._memory[key]
        try:
            value = self.settings.value(key, default)
        except Exception:  # noqa: BLE001 - a damaged settings file must not stop the app
            return default
        if value is None:
            return default
        if kind is bool:
            return value in (True, "true", "1", 1)
        if kind is list:
            if isinstance(value, str):
                return [value]
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else default
        if kind is str:
            # A hand-edited file can hold a list or a number where a folder name belongs.
            return value if isinstance(value, str) and "\0" not in value else default
        if kind is not None:
            try:
                return kind(value)
            except (TypeError, ValueError):
                return default
        return value

    def set(self, key: str, value: Any) -> None:
        self._memory[key] = value
        if not self.writable:
            return
        try:
            self.settings.setValue(key, value)
        except Exception:  # noqa: BLE001
            self.writable = False

    def sync(self) -> bool:
        """Write to disk; False if that failed (values stay available in memory)."""
        if not self.writable:
            return False
        self.settings.sync()
        ok = self.settings.status() == QSettings.Status.NoError
        if not ok:
            self.writable = False
        return ok

    def recent(self, key: str) -> list[str]:
        """The remembered paths, newest first; entries a damaged settings file may hold (empty,
        with a NUL byte, not an absolute path such as a bare number) are left out."""
        items = self.get(key, [], list) or []
        return [v for v in items if isinstance(v, str) and "\0" not in v and os.path.isabs(v)]

    def add_recent(self, key: str, value: str) -> list[str]:
        items = [v for v in self.recent(key) if v != value]
        items.insert(0, value)
        items = items[:RECENT_LIMIT]
        self.set(key, items)
        return items

    def remove_recent(self, key: str, value: str) -> list[str]:
        items = [v for v in self.recent(key) if v != value]
        self.set(key, items)
        return items
