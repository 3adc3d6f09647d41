"""The top-5 predictions as labelled probability bars, with a warning when the weights are random."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from cnnviz.gui.views.elided import ElidedLabel

__all__ = ["PredictionPanel"]

CAVEAT_STYLE = (
    "QLabel { background: rgba(230, 150, 40, 60); border: 1px solid rgba(230, 150, 40, 160);"
    " border-radius: 3px; padding: 3px; }"
)


class PredictionPanel(QWidget):
    """Shows a list of :class:`cnnviz.core.analysis.predict.Prediction` (label, index, probability), best first.

    A note given with predictions is a caveat about them (random weights) and is shown as a warning above them;
    a note without predictions says why there are none.
    """

    ROWS = 5

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.predictions: list[Any] = []
        self.note = QLabel("No prediction yet")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.caveat = QLabel()
        self.caveat.setWordWrap(True)
        self.caveat.setTextFormat(Qt.TextFormat.PlainText)
        self.caveat.setStyleSheet(CAVEAT_STYLE)
        self.caveat.setVisible(False)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        self.labels: list[ElidedLabel] = []
        self.bars: list[QProgressBar] = []
        for i in range(self.ROWS):
            label = ElidedLabel(bold=i == 0)
            label.setMinimumWidth(60)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
            bar.setFixedHeight(18)
            bar.setMinimumWidth(64)
            grid.addWidget(label, i, 0)
            grid.addWidget(bar, i, 1)
            self.labels.append(label)
            self.bars.append(bar)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.caveat)
        layout.addWidget(self.note)
        layout.addLayout(grid)
        layout.addStretch(1)
        self.set_predictions(None, "No prediction yet")

    def set_predictions(self, predictions: list[Any] | None, note: str | None = None) -> None:
        self.predictions = list(predictions or [])
        for i in range(self.ROWS):
            visible = i < len(self.predictions)
            self.labels[i].setVisible(visible)
            self.bars[i].setVisible(visible)
            if visible:
                p = self.predictions[i]
                self.labels[i].setText(p.label)
                self.labels[i].set_base_tooltip(f"{p.label} (output {p.index})")
                self.bars[i].setValue(int(round(p.probability * 1000)))
                self.bars[i].setFormat(f"{p.probability * 100:.1f} %")
                self.bars[i].setToolTip(f"{p.label}: {p.probability * 100:.3g} %")
        if self.predictions:
            self.note.setText("Most likely classes")
            self.caveat.setText(note or "")
            self.caveat.setVisible(bool(note))
        else:
            self.note.setText(note or "No prediction yet")
            self.caveat.setVisible(False)

    def texts(self) -> list[tuple[str, str]]:
        """(label, percentage) of the visible rows, for tests."""
        return [
            (self.labels[i].text(), self.bars[i].format())
            for i in range(len(self.predictions[: self.ROWS]))
        ]
