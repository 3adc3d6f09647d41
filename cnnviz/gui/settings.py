"""Preferences that outlive the window (geometry, colormap, recent files), kept with QSettings.

If the settings location cannot be written (a read-only home, a full disk), the app keeps working with the
values in memory and says so once in the status bar.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings

__all__ = ["Preferences"]

RECENT_LIMIT = 10


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
        return list(self.get(key, [], list) or [])

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
