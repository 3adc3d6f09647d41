"""A one-line label that never cuts its text silently: it shows the longest wording that fits, else elides it,
and then carries the full text in its tooltip."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

__all__ = ["ElidedLabel"]


class ElidedLabel(QLabel):
    """A plain-text label that fits its width.

    ``set_texts(long, shorter, ...)`` offers wordings, longest first: the longest that fits is shown. When none
    fits, the shortest is elided with "…" and the tooltip holds the full (longest) text, followed by the tooltip
    given with :meth:`set_base_tooltip`. :meth:`text` returns the full text, not the elided one.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None, *, bold: bool = False):
        super().__init__(parent)
        self._texts: tuple[str, ...] = ("",)
        self._base_tip = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(8)
        if bold:
            font = self.font()
            font.setBold(True)
            self.setFont(font)
        self.set_texts(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self.set_texts(text)

    def set_texts(self, *texts: str) -> None:
        """Show the longest of ``texts`` that fits (given longest first)."""
        self._texts = tuple(str(t) for t in texts) or ("",)
        self._refit()
        self.updateGeometry()

    def text(self) -> str:
        return self._texts[0]

    def shown_text(self) -> str:
        """What is drawn now (a shorter wording or the elided text)."""
        return super().text()

    def set_base_tooltip(self, tip: str) -> None:
        """A tooltip shown whether or not the text fits."""
        self._base_tip = tip
        self._refit()

    def is_elided(self) -> bool:
        return self.shown_text() != self._texts[0]

    def _refit(self) -> None:
        metrics = self.fontMetrics()
        width = max(self.contentsRect().width(), 1)
        shown = None
        for candidate in self._texts:
            if metrics.horizontalAdvance(candidate) <= width:
                shown = candidate
                break
        if shown is None:
            shown = metrics.elidedText(self._texts[-1], Qt.TextElideMode.ElideRight, width)
        super().setText(shown)
        full = self._texts[0]
        if shown != full and full.strip():
            self.setToolTip(full + (f"\n{self._base_tip}" if self._base_tip else ""))
        else:
            self.setToolTip(self._base_tip)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """As wide as the full text, so that a layout gives it the room it needs when there is room."""
        hint = super().sizeHint()
        margins = self.contentsMargins()
        width = (
            self.fontMetrics().horizontalAdvance(self._texts[0]) + margins.left() + margins.right()
        )
        return QSize(width + 2, hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(8, super().minimumSizeHint().height())

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        self._refit()

    def changeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().changeEvent(ev)
        if ev.type() == ev.Type.FontChange:
            self._refit()
